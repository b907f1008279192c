"""mmllava <-> the official LLaVA layout (``LlavaLlamaForCausalLM``).

Keys::

    llm.model.X               <-> model.X
    llm.lm_head.weight        <-> lm_head.weight
    projector.K               <-> model.mm_projector.K
    vision_encoder.model.X    <-> model.vision_tower.vision_tower.vision_model.X

The official checkpoint usually lacks the tower (it was frozen): its config
names it in ``mm_vision_tower``, which must then be a local folder (or be
given as ``vision_tower``). Config fields read and written:
``mm_projector_type`` (absent in LLaVA v1: ``linear``),
``mm_vision_select_layer``, ``mm_vision_select_feature``,
``mm_hidden_size``, ``mm_vision_tower``, ``image_aspect_ratio`` (``'pad'``:
pad to square), ``mm_use_im_start_end`` (must be false: mmllava puts no
start/end tokens around images) and ``mm_use_im_patch_token`` (its token is
part of the saved tokenizer and vocabulary; nothing else to do).

The stage-1 result ``mm_projector.bin`` (keys ``model.mm_projector.*``) is
read and written too.
"""
import itertools
import json
from pathlib import Path
from typing import Iterator, Optional

import torch

from mmllava.converters.native import (LLM_PREFIX, PROJECTOR_PREFIX,
                                       VISION_PREFIX, LLaVASpec, Shards,
                                       config_to_dict,
                                       default_image_processor,
                                       image_processor_kwargs,
                                       load_shards_into,
                                       read_weights,
                                       spec_from_config, split_parts,
                                       write_mmllava_folders)
from mmllava.converters.shards import (DEFAULT_SHARD_SIZE, TOKENIZER_FILES,
                                       Log, ShardWriter, copy_files,
                                       file_keys, iter_shards,
                                       checkpoint_files, load_file_tensors)
from mmllava.model_index import load_config

OFFICIAL_PROJECTOR = 'model.mm_projector.'
OFFICIAL_TOWER = 'model.vision_tower.vision_tower.vision_model.'
#: Config fields of the official multimodal model.
MM_FIELDS = ('mm_projector_type', 'mm_vision_select_layer',
             'mm_vision_select_feature', 'mm_hidden_size', 'mm_vision_tower',
             'image_aspect_ratio', 'mm_use_im_start_end',
             'mm_use_im_patch_token', 'mm_patch_merge_type',
             'mm_projector_lr', 'mm_vision_tower_lr', 'freeze_mm_mlp_adapter',
             'tune_mm_mlp_adapter', 'unfreeze_mm_vision_tower', 'use_mm_proj',
             'image_grid_pinpoints', 'tokenizer_padding_side',
             'tokenizer_model_max_length', 'mm_resampler_type', 'mm_tokens')
#: Official class and model type per LLM model type.
OFFICIAL_CLASSES = {'llama': ('LlavaLlamaForCausalLM', 'llava_llama'),
                    'mistral': ('LlavaMistralForCausalLM', 'llava_mistral')}


def to_official_key(part: str, key: str) -> str:
    if part == 'vision':
        return OFFICIAL_TOWER + key
    if part == 'projector':
        return OFFICIAL_PROJECTOR + key
    return key


def from_official_key(key: str) -> str:
    """An official key as an mmllava key."""
    if key.startswith(OFFICIAL_PROJECTOR):
        return PROJECTOR_PREFIX + key[len(OFFICIAL_PROJECTOR):]
    if key.startswith(OFFICIAL_TOWER):
        return VISION_PREFIX + key[len(OFFICIAL_TOWER):]
    if key.startswith('model.vision_tower.'):
        raise KeyError(f'{key!r}: the official tower keys are '
                       f'{OFFICIAL_TOWER}*')
    if key.startswith(('model.', 'lm_head.')):
        return LLM_PREFIX + key
    raise KeyError(f'{key!r} is not an official LLaVA key (expected model.*, '
                   'lm_head.*)')


def read_config(folder: str) -> dict:
    path = Path(folder, 'config.json')
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: an official LLaVA folder '
                                'holds config.json beside its weights.')
    return json.loads(path.read_text())


def is_official(folder: str) -> bool:
    """A folder whose config or keys are the official multimodal ones."""
    path = Path(folder, 'config.json')
    if not path.is_file():
        return False
    config = json.loads(path.read_text())
    if 'mm_projector_type' in config or 'mm_vision_tower' in config:
        return True
    try:
        files = checkpoint_files(folder)
    except FileNotFoundError:
        return False
    return any(key.startswith(OFFICIAL_PROJECTOR)
               for key in file_keys(files[0]))


def read_spec(folder: str, vision_tower: Optional[str] = None,
              template: str = 'vicuna_v1') -> LLaVASpec:
    """Describe an official LLaVA folder in mmllava's terms.

    Args:
        folder (str): The official model folder.
        vision_tower (str, optional): Local tower folder; defaults to the
            config's ``mm_vision_tower``.
        template (str): The chat template it was trained with.
    """
    from transformers import AutoConfig, AutoImageProcessor
    config = read_config(folder)
    if config.get('mm_use_im_start_end'):
        raise ValueError(f'{folder}: mm_use_im_start_end is true; mmllava '
                         'puts no <im_start>/<im_end> around image features.')
    if config.get('mm_patch_merge_type', 'flat') != 'flat':
        raise ValueError(f'{folder}: mm_patch_merge_type '
                         f'{config["mm_patch_merge_type"]!r} (LLaVA-NeXT) is '
                         "not supported; only 'flat'.")
    tower = vision_tower or config.get('mm_vision_tower')
    if not tower or not Path(tower, 'config.json').is_file():
        raise FileNotFoundError(
            f'{folder}: the vision tower {tower!r} (mm_vision_tower) is not a '
            'local folder with config.json; give its folder as vision_tower '
            '(--vision-tower).')
    vision_config = config_to_dict(AutoConfig.from_pretrained(tower))
    vision_config = vision_config.get('vision_config', vision_config)
    model_type = vision_config.get('model_type', '')
    if model_type in ('clip', 'clip_vision_model'):
        vision_config['model_type'] = 'clip_vision_model'
    elif model_type in ('siglip', 'siglip_vision_model'):
        vision_config['model_type'] = 'siglip_vision_model'
    else:
        raise ValueError(f'Vision tower {tower}: model_type {model_type!r} '
                         'is neither CLIP nor SigLIP.')
    if config.get('mm_hidden_size') not in (None,
                                            vision_config['hidden_size']):
        raise ValueError(f'{folder}: mm_hidden_size {config["mm_hidden_size"]}'
                         f' but the tower {tower} has hidden_size '
                         f'{vision_config["hidden_size"]}.')
    llm_type = {value[1]: key for key, value in OFFICIAL_CLASSES.items()}.get(
        config.get('model_type'), 'llama')
    llm_config = {key: value for key, value in config.items()
                  if key not in MM_FIELDS and key not in (
                      'architectures', 'transformers_version',
                      '_name_or_path', 'torch_dtype', 'dtype', 'model_type')}
    llm_config['model_type'] = llm_type
    processor = default_image_processor(vision_config)
    if Path(tower, 'preprocessor_config.json').is_file():
        processor = image_processor_kwargs(
            AutoImageProcessor.from_pretrained(tower, backend='pil'))
    return LLaVASpec(
        vision_config=vision_config, llm_config=llm_config,
        projector_type=config.get('mm_projector_type', 'linear'),
        select_layer=config.get('mm_vision_select_layer', -2),
        select_feature=config.get('mm_vision_select_feature', 'patch'),
        tokenizer_dir=folder, image_processor=processor,
        pad_to_square=config.get('image_aspect_ratio') == 'pad',
        template=template, vision_tower_dir=tower)


def has_tower(folder: str) -> bool:
    return any(key.startswith(OFFICIAL_TOWER)
               for path in checkpoint_files(folder)
               for key in file_keys(path))


def tower_shards(tower: str) -> Iterator[dict[str, torch.Tensor]]:
    """A tower folder's vision weights as mmllava keys (a full CLIP
    checkpoint's text half is skipped)."""
    for _, tensors in iter_shards(tower):
        mapped = {}
        for key, tensor in tensors.items():
            if key.startswith('vision_model.'):
                mapped[VISION_PREFIX + key[len('vision_model.'):]] = tensor
            elif not key.startswith(('text_model.', 'logit_scale',
                                     'text_projection', 'visual_projection')):
                mapped[VISION_PREFIX + key] = tensor
        yield mapped


def read_shards(folder: str, with_tower: Optional[str] = None) -> Shards:
    """An official folder's weights as mmllava-key shards; ``with_tower``
    (a tower folder) adds the tower weights the checkpoint lacks."""
    for _, tensors in iter_shards(folder):
        mapped = {from_official_key(key): tensor
                  for key, tensor in tensors.items()}
        del tensors
        yield mapped
    if with_tower:
        yield from tower_shards(with_tower)


def load_into_model(model, folder: str, log: Optional[Log] = None) -> None:
    """Load an official LLaVA folder into a built mmllava ``LLaVA``.

    Every weight of the built model comes from the folder, except the
    vision tower when the folder holds none: then the built model's own
    tower (from its config) is kept, as the official code loads it from
    ``mm_vision_tower``.
    """
    config = read_config(folder)
    if config.get('mm_use_im_start_end'):
        raise ValueError(f'{folder}: mm_use_im_start_end is true; mmllava '
                         'puts no <im_start>/<im_end> around image features.')
    shards = read_shards(folder)
    if not has_tower(folder):
        if log:
            log(f'{folder} holds no vision tower; keeping the tower the '
                'config built.')
        state = {VISION_PREFIX + key: value for key, value in
                 model.vision_encoder.model.state_dict().items()}
        shards = itertools.chain(shards, [state])
    load_shards_into(model, shards, folder)


def convert_official_to_mmllava(folder: str, out_dir: str,
                                vision_tower: Optional[str] = None,
                                template: str = 'vicuna_v1',
                                max_shard_size=DEFAULT_SHARD_SIZE,
                                log: Optional[Log] = None) -> str:
    """An official LLaVA folder to the folders an mmllava config loads
    from. Returns the written config."""
    spec = read_spec(folder, vision_tower, template)
    tower = None if has_tower(folder) else spec.vision_tower_dir
    return write_mmllava_folders(spec, read_shards(folder, tower), out_dir,
                                 max_shard_size, log)


def official_config(spec: LLaVASpec, vision_tower: str) -> dict:
    llm_type = spec.llm_config['model_type']
    if llm_type not in OFFICIAL_CLASSES:
        raise ValueError(f'The official LLaVA code has no class for a '
                         f'{llm_type!r} LLM (known: '
                         f'{sorted(OFFICIAL_CLASSES)}).')
    architecture, model_type = OFFICIAL_CLASSES[llm_type]
    config = dict(spec.llm_config)
    config.update(
        architectures=[architecture], model_type=model_type,
        mm_projector_type=spec.projector_type,
        mm_vision_select_layer=spec.select_layer,
        mm_vision_select_feature=spec.select_feature,
        mm_hidden_size=spec.vision_config['hidden_size'],
        mm_vision_tower=vision_tower,
        image_aspect_ratio='pad' if spec.pad_to_square else 'square',
        mm_use_im_start_end=False, mm_use_im_patch_token=False,
        mm_patch_merge_type='flat', use_mm_proj=True,
        tokenizer_padding_side='right')
    return config


def write_official(spec: LLaVASpec, shards: Shards, out_dir: str,
                   vision_tower: Optional[str] = None,
                   include_vision_tower: bool = True,
                   max_shard_size=DEFAULT_SHARD_SIZE,
                   log: Optional[Log] = None) -> str:
    """Write an official LLaVA folder from mmllava-key shards.

    Args:
        vision_tower (str, optional): ``mm_vision_tower`` (a hub name or a
            folder); defaults to the tower folder the model was built from.
        include_vision_tower (bool): Write the tower weights too (the
            official code reads its tower from ``mm_vision_tower``; keep them
            when the tower was trained).
    """
    log = log or (lambda line: None)
    tower = vision_tower or spec.vision_tower_dir
    if not tower:
        raise ValueError('The official layout names its vision tower '
                         '(mm_vision_tower): give vision_tower '
                         '(--vision-tower), a hub name or a folder.')
    config = official_config(spec, tower)
    writer = ShardWriter(out_dir, max_shard_size, log)
    for part, key, tensor in split_parts(shards):
        if part == 'end_of_shard':
            writer.flush()
        elif part == 'vision' and not include_vision_tower:
            continue
        elif part == 'llm' and key == 'lm_head.weight' and \
                spec.tie_word_embeddings:
            continue
        else:
            writer.add(to_official_key(part, key), tensor)
    writer.close()
    Path(out_dir, 'config.json').write_text(json.dumps(config, indent=2))
    copied = copy_files(spec.tokenizer_dir, out_dir, TOKENIZER_FILES)
    log(f'wrote {out_dir} ({config["architectures"][0]}); tokenizer files: '
        f'{", ".join(copied) or "none"}')
    return out_dir


def convert_mmllava_to_official(config, checkpoint: Optional[str],
                                out_dir: str,
                                vision_tower: Optional[str] = None,
                                include_vision_tower: bool = True,
                                max_shard_size=DEFAULT_SHARD_SIZE,
                                log: Optional[Log] = None) -> str:
    """An mmllava config and checkpoint (None: the folders the config
    loads from) to an official LLaVA folder."""
    cfg = load_config(config)
    spec = spec_from_config(cfg)
    return write_official(spec, read_weights(cfg, checkpoint), out_dir,
                          vision_tower, include_vision_tower, max_shard_size,
                          log)


def write_projector_bin(shards: Shards, path: str) -> dict:
    """Write the stage-1 ``mm_projector.bin`` (keys ``model.mm_projector.*``)
    from mmllava-key shards; returns what was written."""
    state = {}
    for tensors in shards:
        for key, tensor in tensors.items():
            if key.startswith(PROJECTOR_PREFIX):
                state[OFFICIAL_PROJECTOR + key[len(PROJECTOR_PREFIX):]] = \
                    tensor.detach().clone()
    if not state:
        raise KeyError(f'No projector.* weights to write to {path}.')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def read_projector_bin(path: str) -> dict[str, torch.Tensor]:
    """``mm_projector.bin`` as mmllava keys (``projector.*``)."""
    state = load_file_tensors(path)
    selected = {PROJECTOR_PREFIX + key[len(OFFICIAL_PROJECTOR):]: value
                for key, value in state.items()
                if key.startswith(OFFICIAL_PROJECTOR)}
    if not selected:
        raise KeyError(f'{path} holds no {OFFICIAL_PROJECTOR}* weights '
                       f'(keys: {sorted(state)[:5]}).')
    return selected

