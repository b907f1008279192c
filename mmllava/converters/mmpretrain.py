"""mmllava <-> mmpretrain's LLaVA files.

mmpretrain 1.x runs LLaVA from two files:

- **the LLM file**, what its ``llava-delta2mmpre.py`` writes: one torch
  state dict whose keys are the official LLaVA keys under
  ``model.lang_encoder.`` (the merged Llama, ``model.mm_projector.*``
  included; ``rotary_emb.inv_freq`` left out)::

      model.lang_encoder.model.X        <-> llm.model.X
      model.lang_encoder.lm_head.weight <-> llm.lm_head.weight
      model.lang_encoder.model.mm_projector.K <-> projector.K

  Its embedding and LM head may have rows for tokens mmpretrain's ``Llava``
  added to the tokenizer (``<im_patch>``; ``<im_start>``/``<im_end>`` for
  its v1 config). mmllava's templates never produce them: rows past the
  vocabulary of the model loaded into are dropped, with a warning.
- **the tower file**: mmpretrain's CLIP ViT-L/14 (``VisionTransformer``
  with ``pre_norm=True``), keys prefixed ``backbone.`` (its downloadable
  checkpoints; ``Llava`` strips the prefix on load), ``visual.`` (the
  output of its ``openai-clip_to_mmpretrain-clip.py``) or
  ``model.vision_tower.`` (a whole ``Llava`` state dict). The map onto
  transformers' ``CLIPVisionModel`` (mmllava's ``vision_encoder.model.*``),
  written from the two models' structures::

      cls_token (1, 1, C)           <-> embeddings.class_embedding (C,)
      pos_embed (1, N + 1, C)       <-> embeddings.position_embedding.weight
      patch_embed.projection.weight <-> embeddings.patch_embedding.weight
      pre_norm                      <-> pre_layrnorm
      layers.i.ln1 / ln2            <-> encoder.layers.i.layer_norm1 / 2
      layers.i.attn.qkv (3C rows: q, k, v) <-> self_attn.{q,k,v}_proj
      layers.i.attn.proj            <-> self_attn.out_proj
      layers.i.ffn.layers.0.0 / 1   <-> mlp.fc1 / fc2
      ln1 (final norm)              <-> post_layernorm

  ``post_layernorm`` never touches LLaVA's features (they are hidden states
  taken before it); mmpretrain's LLaVA configs build the tower without it
  (``final_norm=False``), so a tower file may lack it.
"""
import re
import warnings
from pathlib import Path
from typing import Optional

import torch

from mmllava.converters.native import (LLM_PREFIX, VISION_PREFIX, Shards,
                                       load_shards_into, split_parts)
from mmllava.converters.official import (OFFICIAL_PROJECTOR, from_official_key,
                                         to_official_key, tower_shards)
from mmllava.converters.shards import Log, file_keys, load_file_tensors
from mmllava.utils.safe_load import (UnreadableCheckpointError,
                                     UnsafePickleError, load_torch_file)

LANG_PREFIX = 'model.lang_encoder.'
#: Prefixes of a ViT in mmpretrain files, in the order they are looked for.
TOWER_PREFIXES = ('backbone.', 'visual.', 'model.vision_tower.')
#: The prefix mmllava writes (mmpretrain's classifier checkpoints').
TOWER_PREFIX = 'backbone.'
#: Tensors grown by tokens mmpretrain's Llava added, as mmllava keys.
GROWN_KEYS = (LLM_PREFIX + 'model.embed_tokens.weight',
              LLM_PREFIX + 'lm_head.weight')
POST_NORM = ('post_layernorm.weight', 'post_layernorm.bias')

_LAYER = re.compile(r'layers\.(\d+)\.(.+)')
#: Per-layer names: mmpretrain -> transformers (q, k, v handled apart).
_LAYER_NAMES = {'ln1': 'layer_norm1', 'ln2': 'layer_norm2',
                'attn.proj': 'self_attn.out_proj',
                'ffn.layers.0.0': 'mlp.fc1', 'ffn.layers.1': 'mlp.fc2'}
_TOP_NAMES = {'pre_norm': 'pre_layrnorm', 'ln1': 'post_layernorm'}


def is_mmpretrain_file(path: str) -> bool:
    """A weight file whose keys are mmpretrain's LLaVA ones
    (``model.lang_encoder.*``)."""
    if path.endswith('.safetensors'):
        return any(key.startswith(LANG_PREFIX) for key in file_keys(path))
    try:
        # Never unpickled unsafely here, even where the caller allows it:
        # a file that needs it is left to the load that follows detection,
        # so that its code (if allowed) runs once, not twice.
        state = load_torch_file(path, mmap=True, allow_unsafe_pickle=False)
    except (UnsafePickleError, UnreadableCheckpointError):
        return False
    return isinstance(state, dict) and any(
        isinstance(key, str) and key.startswith(LANG_PREFIX)
        for key in state)


def _split_param(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition('.')
    if param not in ('weight', 'bias'):
        raise KeyError(name)
    return module, param


def vit_to_clip(state: dict[str, torch.Tensor],
                where: str = 'the tower') -> dict[str, torch.Tensor]:
    """mmpretrain ``VisionTransformer`` keys (no prefix) -> transformers
    ``CLIPVisionModel`` keys."""
    out = {}
    for key, value in state.items():
        try:
            if key == 'cls_token':
                out['embeddings.class_embedding'] = value.reshape(-1)
            elif key == 'pos_embed':
                out['embeddings.position_embedding.weight'] = value[0]
            elif key == 'patch_embed.projection.weight':
                out['embeddings.patch_embedding.weight'] = value
            elif key.startswith('layers.'):
                number, name = _LAYER.fullmatch(key).groups()
                module, param = _split_param(name)
                prefix = f'encoder.layers.{number}.'
                if module == 'attn.qkv':
                    # (3C, ...) rows: q, then k, then v (OpenAI's in_proj).
                    for part, chunk in zip('qkv', value.chunk(3, dim=0)):
                        out[f'{prefix}self_attn.{part}_proj.{param}'] = chunk
                else:
                    out[f'{prefix}{_LAYER_NAMES[module]}.{param}'] = value
            else:
                module, param = _split_param(key)
                out[f'{_TOP_NAMES[module]}.{param}'] = value
        except (KeyError, AttributeError):
            raise KeyError(
                f'{where}: {key!r} is not a key of a CLIP VisionTransformer '
                'in mmpretrain\'s naming (cls_token, pos_embed, '
                'patch_embed.projection.weight, pre_norm.*, layers.N.{ln1,'
                'attn.qkv,attn.proj,ln2,ffn.layers.0.0,ffn.layers.1}.*, '
                'ln1.*); a ViT with a patch-embedding bias or layer scale '
                'is not a CLIP tower.') from None
    return out


def clip_to_vit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``CLIPVisionModel`` keys -> mmpretrain
    ``VisionTransformer`` keys (the inverse of :func:`vit_to_clip`)."""
    out = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    top = {value: key for key, value in _TOP_NAMES.items()}
    layer_names = {value: key for key, value in _LAYER_NAMES.items()}
    for key, value in state.items():
        if key == 'embeddings.class_embedding':
            out['cls_token'] = value.reshape(1, 1, -1)
        elif key == 'embeddings.position_embedding.weight':
            out['pos_embed'] = value.unsqueeze(0)
        elif key == 'embeddings.patch_embedding.weight':
            out['patch_embed.projection.weight'] = value
        elif key.startswith('encoder.layers.'):
            number, name = _LAYER.fullmatch(
                key[len('encoder.'):]).groups()
            module, param = _split_param(name)
            match = re.fullmatch(r'self_attn\.([qkv])_proj', module)
            if match:
                qkv.setdefault(f'layers.{number}.attn.qkv.{param}',
                               {})[match.group(1)] = value
            else:
                out[f'layers.{number}.{layer_names[module]}.{param}'] = \
                    value
        else:
            module, param = _split_param(key)
            out[f'{top[module]}.{param}'] = value
    for key, parts in qkv.items():
        if sorted(parts) != ['k', 'q', 'v']:
            raise KeyError(f'{key}: the tower lacks {set("qkv") - set(parts)}'
                           ' of q, k, v.')
        out[key] = torch.cat([parts['q'], parts['k'], parts['v']], dim=0)
    return out


def tower_prefix(keys, where: str) -> str:
    """The prefix under which ``keys`` hold a ViT."""
    for prefix in TOWER_PREFIXES:
        if prefix + 'patch_embed.projection.weight' in keys:
            return prefix
    if 'patch_embed.projection.weight' in keys:
        return ''
    raise KeyError(
        f'{where} holds no CLIP VisionTransformer in mmpretrain\'s naming: '
        'looked for patch_embed.projection.weight under the prefixes '
        f'{", ".join(TOWER_PREFIXES)} or none (keys: {sorted(keys)[:5]}).')


def read_mmpretrain_tower(path: str) -> dict[str, torch.Tensor]:
    """An mmpretrain CLIP ViT checkpoint as mmllava keys
    (``vision_encoder.model.*``); keys outside the ViT's prefix (a
    classifier head, CLIP's text half) are skipped."""
    state = load_file_tensors(path)
    prefix = tower_prefix(state, path)
    vit = {key[len(prefix):]: value for key, value in state.items()
           if key.startswith(prefix)}
    return {VISION_PREFIX + key: value
            for key, value in vit_to_clip(vit, path).items()}


def read_tower(vision_tower: str) -> dict[str, torch.Tensor]:
    """A tower as mmllava keys: a transformers CLIP folder or an mmpretrain
    CLIP ViT checkpoint file."""
    if Path(vision_tower).is_dir():
        return {key: value for shard in tower_shards(vision_tower)
                for key, value in shard.items()}
    if Path(vision_tower).is_file():
        return read_mmpretrain_tower(vision_tower)
    raise FileNotFoundError(
        f'Vision tower not found: {vision_tower!r} (give a transformers CLIP '
        'folder or an mmpretrain CLIP checkpoint file).')


def read_llm_file(path: str) -> dict[str, torch.Tensor]:
    """mmpretrain's LLaVA file as mmllava keys: the LLM and projector, and
    the tower when the file holds one (``model.vision_tower.*``)."""
    state = load_file_tensors(path)
    if not any(key.startswith(LANG_PREFIX) for key in state):
        raise KeyError(f'{path} is not an mmpretrain LLaVA file: it has no '
                       f'{LANG_PREFIX}* keys (keys: {sorted(state)[:5]}).')
    mapped, tower = {}, {}
    for key, value in state.items():
        if key.startswith(LANG_PREFIX):
            official = key[len(LANG_PREFIX):]
            if official.endswith('rotary_emb.inv_freq'):
                continue  # a buffer recomputed from the config
            try:
                mapped[from_official_key(official)] = value
            except KeyError as error:
                raise KeyError(f'{path}: {key!r}: {error.args[0]}') from None
        elif key.startswith('model.vision_tower.'):
            tower[key[len('model.vision_tower.'):]] = value
        else:
            raise KeyError(f'{path}: {key!r} is neither {LANG_PREFIX}* nor '
                           'model.vision_tower.*')
    if tower:
        mapped.update({VISION_PREFIX + key: value for key, value in
                       vit_to_clip(tower, path).items()})
    return mapped


def has_tower(state: dict) -> bool:
    return any(key.startswith(VISION_PREFIX) for key in state)


def drop_added_rows(state: dict[str, torch.Tensor], vocab_size: int,
                    where: str) -> dict[str, torch.Tensor]:
    """Cut the embedding and LM head to ``vocab_size`` rows, warning about
    the rows dropped (tokens mmpretrain's Llava added, e.g. ``<im_patch>``,
    which mmllava's templates never produce)."""
    for key in GROWN_KEYS:
        if key not in state:
            continue
        rows = state[key].shape[0]
        if rows > vocab_size:
            warnings.warn(
                f'{where}: {key[len(LLM_PREFIX):]} has {rows} rows, the model '
                f'{vocab_size}: dropped rows {vocab_size}..{rows - 1} (tokens '
                "mmpretrain's Llava added, such as <im_patch>; mmllava's "
                'templates do not use them).', stacklevel=2)
            state[key] = state[key][:vocab_size]
    return state


def load_into_model(model, path: str, vision_tower: Optional[str] = None,
                    log: Optional[Log] = None) -> None:
    """Load mmpretrain's LLaVA file into a built mmllava ``LLaVA``.

    Args:
        model (LLaVA): The built model.
        path (str): The LLM file (``model.lang_encoder.*`` keys).
        vision_tower (str, optional): A transformers CLIP folder or an
            mmpretrain CLIP ViT checkpoint. Defaults to the tower in the
            file, else the tower the config built (as mmpretrain loads its
            own from its config).
    """
    state = read_llm_file(path)
    vocab = model.llm.get_input_embeddings().weight.shape[0]
    drop_added_rows(state, vocab, path)
    if vision_tower:
        state = {key: value for key, value in state.items()
                 if not key.startswith(VISION_PREFIX)}
        state.update(read_tower(vision_tower))
    built = {VISION_PREFIX + key: value for key, value in
             model.vision_encoder.model.state_dict().items()}
    if not has_tower(state):
        if log:
            log(f'{path} holds no vision tower; keeping the tower the config '
                'built.')
        state.update(built)
    for key in POST_NORM:
        # Unused by LLaVA's features; mmpretrain's LLaVA towers lack it.
        state.setdefault(VISION_PREFIX + key, built[VISION_PREFIX + key])
    load_shards_into(model, [state], path)


def to_mmllava_state(path: str, vocab_size: int,
                     vision_tower: Optional[str] = None,
                     fallback_tower: Optional[str] = None
                     ) -> dict[str, torch.Tensor]:
    """mmpretrain's files as one mmllava state dict (what an mmllava
    checkpoint holds), without building the model.

    Args:
        path (str): The LLM file.
        vocab_size (int): The vocabulary of the mmllava model.
        vision_tower (str, optional): A transformers CLIP folder or an
            mmpretrain CLIP ViT checkpoint.
        fallback_tower (str, optional): A tower folder used when neither the
            file nor ``vision_tower`` hold one (the config's), and for the
            final norm when the tower lacks it.
    """
    state = drop_added_rows(read_llm_file(path), vocab_size, path)
    if vision_tower:
        state = {key: value for key, value in state.items()
                 if not key.startswith(VISION_PREFIX)}
        state.update(read_tower(vision_tower))
    if not has_tower(state):
        if not fallback_tower:
            raise FileNotFoundError(
                f'{path} holds no vision tower: give one (--vision-tower, a '
                'transformers CLIP folder or an mmpretrain CLIP checkpoint).')
        state.update(read_tower(fallback_tower))
    missing = [VISION_PREFIX + key for key in POST_NORM
               if VISION_PREFIX + key not in state]
    if missing and fallback_tower:
        # As get_model keeps the built tower's: the config's folder.
        fallback = read_tower(fallback_tower)
        state.update({key: fallback[key] for key in missing})
    elif missing:
        reference = state[VISION_PREFIX + 'pre_layrnorm.weight']
        warnings.warn('The tower has no final norm (ln1; mmpretrain\'s '
                      'LLaVA towers are built with final_norm=False): '
                      'post_layernorm set to LayerNorm\'s initial values; '
                      'LLaVA\'s features do not pass through it.',
                      stacklevel=2)
        defaults = dict(zip((VISION_PREFIX + key for key in POST_NORM),
                            (torch.ones_like(reference),
                             torch.zeros_like(reference))))
        state.update({key: defaults[key] for key in missing})
    return state


def to_mmpretrain_states(shards: Shards) -> tuple[dict, dict]:
    """mmllava-key shards -> (the LLM file's state dict with
    ``model.lang_encoder.*`` keys, the tower's with ``backbone.*`` keys)."""
    llm, tower = {}, {}
    for part, key, tensor in split_parts(shards):
        if part == 'end_of_shard':
            continue
        if part == 'newline':
            raise ValueError('An AnyRes model (image_newline) has no '
                             'mmpretrain layout: mmpretrain runs LLaVA v1 '
                             'and v1.5 only.')
        if part == 'vision':
            tower[key] = tensor
        else:
            llm[LANG_PREFIX + to_official_key(part, key)] = tensor
    if not any(key.startswith(LANG_PREFIX + OFFICIAL_PROJECTOR)
               for key in llm):
        raise KeyError('The checkpoint holds no projector.* weights.')
    return llm, {TOWER_PREFIX + key: value
                 for key, value in clip_to_vit(tower).items()}


def vocab_size_of(cfg) -> int:
    """The LLM vocabulary of the model a config builds (not built)."""
    llm = cfg.model.llm
    if llm.get('pretrained'):
        from transformers import AutoConfig
        return AutoConfig.from_pretrained(llm['pretrained']).vocab_size
    return llm['config']['vocab_size']


__all__ = ['is_mmpretrain_file', 'vit_to_clip', 'clip_to_vit',
           'read_llm_file', 'read_tower', 'load_into_model',
           'to_mmllava_state', 'to_mmpretrain_states', 'vocab_size_of']
