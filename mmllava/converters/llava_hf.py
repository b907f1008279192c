"""mmllava <-> llava-hf (``transformers.LlavaForConditionalGeneration``).

Export writes a folder that ``LlavaForConditionalGeneration.from_pretrained``
and ``AutoProcessor.from_pretrained`` load as they are, and that serving
stacks (vLLM, SGLang) read; docs/checkpoints.md lists the fields each reads:

- weights in the llava-hf layout that transformers 4 and 5 (and vLLM) read::

      vision_encoder.model.X      <-> vision_tower.vision_model.X
      projector.0.* / projector.2.*  <-> multi_modal_projector.linear_1/2.*
      llm.model.X                 <-> language_model.model.X
      llm.lm_head.weight          <-> language_model.lm_head.weight

- a tokenizer with ``<image>`` added (its id is ``image_token_index``) and a
  ``<pad>`` token when the tokenizer has none. The vocabulary grows by the
  added tokens: the input embedding and the LM head get one new row per
  added token, set to the mean of the existing rows (so a new token's logit
  is the mean logit, never the greedy choice). Every original row is kept
  bit for bit.
- ``architectures`` (what vLLM and SGLang pick their model class by) and
  ``dtype`` / ``torch_dtype`` (the LLM weights' dtype, which their
  ``dtype='auto'`` serves in);
- ``vision_feature_layer`` (= ``select_layer``),
  ``vision_feature_select_strategy`` (``'default'``: drop CLIP's CLS token,
  = ``select_feature='patch'``; ``'full'``: keep every token), and
  ``image_seq_length``;
- a processor: ``LlavaImageProcessor`` with the model's resize / crop /
  normalisation and ``do_pad`` for LLaVA-1.5's pad-to-square, ``patch_size``,
  ``num_additional_image_tokens`` (1 for CLIP's CLS), and the chat template
  rendered as mmllava renders it.

Import reads either key layout (transformers 4 / 5) back into mmllava keys;
the added rows are dropped when the target model is built with the original
vocabulary.

llava-hf's projector is two linear layers with an activation, so only
``mlp2x_gelu`` projectors export.

AnyRes models (``image_aspect_ratio='anyres'``) export as
``LlavaNextForConditionalGeneration``, or with an ``anyres_max`` budget as
``LlavaOnevisionForConditionalGeneration``, and import back; what differs
is in :mod:`.llava_next_hf` and :mod:`.llava_onevision_hf`.
"""
import json
from pathlib import Path
from types import ModuleType
from typing import Iterator, Optional

import torch

from mmllava.converters import llava_next_hf, llava_onevision_hf
from mmllava.converters.native import (LLM_PREFIX, NEWLINE_KEY,
                                       PROJECTOR_PREFIX,
                                       VISION_PREFIX, LLaVASpec, Shards,
                                       image_processor_kwargs,
                                       load_shards_into,
                                       read_weights,
                                       spec_from_config, spec_from_model,
                                       split_parts, write_mmllava_folders)
from mmllava.converters.shards import (DEFAULT_SHARD_SIZE, Log, ShardWriter,
                                       iter_shards)
from mmllava.model_index import load_config
from mmllava.templates import get_template
from mmllava.templates import CHATML_TEMPLATES, SYSTEM_FRAME

IMAGE_TOKEN = '<image>'
PAD_TOKEN = '<pad>'
#: config.json's ``architectures``: the class serving stacks build.
ARCHITECTURE = 'LlavaForConditionalGeneration'
#: mmllava projector key -> llava-hf projector key.
PROJECTOR_KEYS = {'0.weight': 'linear_1.weight', '0.bias': 'linear_1.bias',
                  '2.weight': 'linear_2.weight', '2.bias': 'linear_2.bias'}
GROWN = ('model.embed_tokens.weight', 'lm_head.weight')
#: The AnyRes llava-hf forms, by config.json's ``model_type``.
ANYRES_FORMATS = {module.MODEL_TYPE: module
                  for module in (llava_next_hf, llava_onevision_hf)}


# ---------------------------------------------------------------------------
# Keys.
# ---------------------------------------------------------------------------
def to_hf_key(part: str, key: str) -> str:
    """An mmllava key (split by :func:`split_parts`) in llava-hf's layout."""
    if part == 'newline':
        return NEWLINE_KEY
    if part == 'vision':
        return 'vision_tower.vision_model.' + key
    if part == 'projector':
        return 'multi_modal_projector.' + PROJECTOR_KEYS[key]
    return 'language_model.' + key


def from_hf_key(key: str) -> Optional[str]:
    """A llava-hf key (transformers 4 or 5 layout) as an mmllava key."""
    if key in (NEWLINE_KEY, 'model.' + NEWLINE_KEY):
        return NEWLINE_KEY
    rules = [
        ('language_model.lm_head.', LLM_PREFIX + 'lm_head.'),
        ('lm_head.', LLM_PREFIX + 'lm_head.'),
        ('language_model.model.', LLM_PREFIX + 'model.'),
        ('model.language_model.', LLM_PREFIX + 'model.'),
        ('vision_tower.vision_model.', VISION_PREFIX),
        ('model.vision_tower.vision_model.', VISION_PREFIX),
        ('model.vision_tower.', VISION_PREFIX),
        ('vision_tower.', VISION_PREFIX),
        ('model.multi_modal_projector.', PROJECTOR_PREFIX),
        ('multi_modal_projector.', PROJECTOR_PREFIX),
    ]
    for source, target in rules:
        if key.startswith(source):
            rest = key[len(source):]
            if target == PROJECTOR_PREFIX:
                inverse = {v: k for k, v in PROJECTOR_KEYS.items()}
                if rest not in inverse:
                    raise KeyError(f'Unknown llava-hf projector key {key!r}')
                rest = inverse[rest]
            return target + rest
    raise KeyError(f'{key!r} is not a llava-hf key (expected language_model.*,'
                   ' vision_tower.*, multi_modal_projector.*, lm_head.*)')


# ---------------------------------------------------------------------------
# Export.
# ---------------------------------------------------------------------------
def select_strategy(spec: LLaVASpec) -> str:
    """llava-hf's strategy: ``'default'`` drops the first token."""
    return 'default' if spec.has_cls_token and \
        spec.select_feature == 'patch' else 'full'


def anyres_format(spec: LLaVASpec) -> ModuleType:
    """The llava-hf form of an AnyRes model: LlavaOnevision for one with an
    ``anyres_max`` budget, else LlavaNext."""
    return llava_next_hf if spec.anyres_max is None else llava_onevision_hf


def check_exportable(spec: LLaVASpec) -> None:
    if spec.image_aspect_ratio == 'anyres' and \
            spec.mm_patch_merge_type != 'spatial_unpad':
        name = anyres_format(spec).ARCHITECTURE.removesuffix(
            'ForConditionalGeneration')
        raise ValueError(
            f'mm_patch_merge_type {spec.mm_patch_merge_type!r} has no '
            f"llava-hf form: {name} merges tiles as 'spatial_unpad'.")
    if spec.projector_type != 'mlp2x_gelu':
        raise ValueError(
            f"Projector {spec.projector_type!r} has no llava-hf form: "
            "LlavaMultiModalProjector is two linear layers with GELU "
            "between ('mlp2x_gelu').")


def chat_template(name: str) -> str:
    """A jinja chat template that renders as mmllava's template ``name``
    does (images first in a message, as ``<image>\\n``)."""
    template = get_template(name)
    if template.single_turn_with_image:
        raise ValueError(f'Template {name!r} is for stage-1 pretraining; '
                         'export a chat model (vicuna_v1, llava_v1).')
    user_prefix, user_suffix = template.user.split('{content}')
    answer_prefix, answer_suffix = template.assistant.split('{content}')
    # A system message in the conversation replaces the template's, framed
    # as the template frames its own (ChatML gives it a turn).
    system_prefix, system_suffix = SYSTEM_FRAME \
        if name in CHATML_TEMPLATES else ('', ' ')

    def literal(text):
        return json.dumps(text)

    return (
        '{%- set ns = namespace(system=' + literal(template.system) + ') -%}'
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        '{%- set ns.system = ' + literal(system_prefix) + " + (messages[0]"
        "['content'] if messages[0]['content'] is string else messages[0]"
        "['content'][0]['text']) + " + literal(system_suffix) + ' -%}'
        '{%- endif -%}'
        '{{- ns.system -}}'
        '{%- for message in messages -%}'
        "{%- set part = namespace(images='', text='') -%}"
        "{%- if message['content'] is string -%}"
        "{%- set part.text = message['content'] -%}"
        '{%- else -%}'
        "{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' -%}"
        "{%- set part.images = part.images + '<image>' -%}"
        "{%- elif item['type'] == 'text' -%}"
        "{%- set part.text = part.text + item['text'] -%}"
        '{%- endif -%}'
        '{%- endfor -%}'
        '{%- endif -%}'
        "{%- set content = (part.images + '\\n' + part.text) "
        'if part.images and part.text else (part.images or part.text) -%}'
        "{%- if message['role'] == 'user' -%}"
        '{{- ' + literal(user_prefix) + ' + content + '
        + literal(user_suffix) + ' -}}'
        "{%- elif message['role'] == 'assistant' -%}"
        '{{- ' + literal(template.assistant_prefix + answer_prefix)
        + ' + content + ' + literal(answer_suffix) + ' -}}'
        '{%- endif -%}'
        '{%- endfor -%}'
        '{%- if add_generation_prompt -%}{{- '
        + literal(template.assistant_prefix) + ' -}}{%- endif -%}')


def hf_tokenizer(spec: LLaVASpec):
    """The tokenizer with ``<image>`` (a LlavaOnevision export's
    ``<video>`` too, and ``<pad>`` if needed) added.

    A tokenizer that has them already (a model imported from a llava-hf
    folder keeps that folder's tokenizer and vocabulary) is taken as it is,
    provided the model has a row for its ``<image>``.
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer
    tokens = [IMAGE_TOKEN]
    if spec.image_aspect_ratio == 'anyres':
        tokens += anyres_format(spec).ADDED_TOKENS
    tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_dir)
    vocab = tokenizer.get_vocab()
    if IMAGE_TOKEN in vocab:
        image_id = vocab[IMAGE_TOKEN]
        problems = []
        if image_id >= spec.vocab_size:
            problems.append(f'the model has {spec.vocab_size} vocabulary '
                            'rows')
        if tokenizer.pad_token is None:
            problems.append('the tokenizer no pad token')
        missing = [token for token in tokens if token not in vocab]
        if missing:
            problems.append(f'the tokenizer no {missing}')
        if problems:
            raise ValueError(
                f'The tokenizer in {spec.tokenizer_dir} has {IMAGE_TOKEN!r} '
                f'(id {image_id}) but ' + ' and '.join(problems)
                + ': give the LLM\'s own tokenizer, to which export adds '
                'them.')
        return tokenizer
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)
                          for token in tokens], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({'pad_token': PAD_TOKEN})
    return tokenizer


def hf_config(spec: LLaVASpec, tokenizer, vocab_size: int,
              dtype: Optional[torch.dtype] = None):
    """The config, with the ids of ``tokenizer`` (:func:`hf_tokenizer`) and
    ``dtype`` the weights' (None: not written)."""
    from transformers import LlavaConfig
    pad_token_id = tokenizer.pad_token_id
    text_config = dict(spec.llm_config, vocab_size=vocab_size,
                       pad_token_id=pad_token_id)
    kwargs = dict(
        vision_config=dict(spec.vision_config),
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=spec.select_layer,
        vision_feature_select_strategy=select_strategy(spec),
        image_seq_length=spec.num_image_tokens,
        projector_hidden_act='gelu',
        multimodal_projector_bias=True,
        tie_word_embeddings=spec.tie_word_embeddings,
        pad_token_id=pad_token_id, dtype=dtype)
    if spec.image_aspect_ratio == 'pad':
        return LlavaConfig(**kwargs, architectures=[ARCHITECTURE])
    if spec.anyres_max is None:
        return llava_next_hf.hf_config(spec, kwargs)
    return llava_onevision_hf.hf_config(spec, kwargs, tokenizer)


def write_processor(spec: LLaVASpec, tokenizer, out_dir: str) -> None:
    """The processor, whose image-token count is the model's, and the
    tokenizer, both with the chat template."""
    from transformers import LlavaImageProcessorPil, LlavaProcessor
    template = chat_template(spec.template)
    strategy = select_strategy(spec)
    if spec.image_aspect_ratio == 'pad':
        LlavaProcessor(
            image_processor=LlavaImageProcessorPil(
                **spec.image_processor, do_pad=spec.pad_to_square),
            tokenizer=tokenizer,
            patch_size=spec.vision_config['patch_size'],
            vision_feature_select_strategy=strategy,
            num_additional_image_tokens=int(spec.has_cls_token),
            chat_template=template).save_pretrained(out_dir)
    elif spec.anyres_max is None:
        llava_next_hf.hf_processor(spec, tokenizer, strategy,
                                   template).save_pretrained(out_dir)
    else:
        llava_onevision_hf.write_processor(spec, IMAGE_TOKEN, strategy,
                                           out_dir)
    # The tokenizer alone also carries the template (AutoTokenizer users).
    tokenizer.chat_template = template
    tokenizer.save_pretrained(out_dir)


def grow_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Append ``rows`` rows, each the mean of the existing rows."""
    if rows == 0:
        return tensor
    mean = tensor.float().mean(0, keepdim=True).to(tensor.dtype)
    return torch.cat([tensor, mean.expand(rows, -1)])


def write_llava_hf(spec: LLaVASpec, shards: Shards, out_dir: str,
                   max_shard_size=DEFAULT_SHARD_SIZE,
                   log: Optional[Log] = None) -> str:
    """Write a llava-hf folder from a stream of mmllava-key shards.

    Returns:
        str: ``out_dir``.
    """
    log = log or (lambda line: None)
    check_exportable(spec)
    tokenizer = hf_tokenizer(spec)
    # An LLM with spare rows (a vocabulary padded to a multiple) gives the
    # added tokens ids among them; otherwise new rows are appended.
    vocab_size = max(len(tokenizer), spec.vocab_size)
    added = vocab_size - spec.vocab_size
    image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_token_index >= vocab_size:
        raise ValueError(f'{IMAGE_TOKEN} got id {image_token_index}, past the '
                         f'vocabulary of {vocab_size}.')
    writer = ShardWriter(out_dir, max_shard_size, log)
    dtype = None
    for part, key, tensor in split_parts(shards):
        if part == 'end_of_shard':
            writer.flush()
            continue
        if part == 'llm' and key == 'lm_head.weight' and \
                spec.tie_word_embeddings:
            continue
        if part == 'llm' and key in GROWN:
            if tensor.shape[0] != spec.vocab_size:
                raise ValueError(f'{LLM_PREFIX}{key} has {tensor.shape[0]} '
                                 f'rows, the LLM config {spec.vocab_size}.')
            tensor = grow_rows(tensor, added)
        if part == 'llm' and dtype is None and tensor.is_floating_point():
            dtype = tensor.dtype
        writer.add(to_hf_key(part, key), tensor)
    writer.close()
    pad_token_id = tokenizer.pad_token_id
    hf_config(spec, tokenizer, vocab_size, dtype).save_pretrained(out_dir)
    write_processor(spec, tokenizer, out_dir)
    from transformers import GenerationConfig
    GenerationConfig(
        bos_token_id=spec.llm_config.get('bos_token_id'),
        eos_token_id=spec.llm_config.get('eos_token_id'),
        pad_token_id=pad_token_id).save_pretrained(out_dir)
    add_transformers4_fields(out_dir)
    log(f'wrote {out_dir}: vocabulary {spec.vocab_size} -> {vocab_size} '
        f'({IMAGE_TOKEN} = {image_token_index}, pad = {pad_token_id}), '
        f'{spec.num_image_tokens} image tokens, strategy '
        f'{select_strategy(spec)!r}')
    return out_dir


def add_transformers4_fields(out_dir: str) -> None:
    """Write, beside what transformers 5 saves, the fields transformers 4.x
    reads instead (checked with 4.57.1), so that serving stacks still on 4.x
    load the folder right:

    - ``text_config.rope_theta`` (and ``rope_scaling``) beside 5's
      ``rope_parameters``: without it 4.x takes theta 10000, and an LLM
      with another theta (Qwen, Llama-3, Mistral) gives wrong logits;
    - ``torch_dtype`` beside 5's ``dtype`` (4.x before 4.56, and SGLang,
      read only the old name);
    - no list-valued ``extra_special_tokens`` (4.x expects a dict and fails)
      when its tokens are special tokens of the tokenizer anyway;
    - ``preprocessor_config.json``, where 4.x looks for the image processor
      (5 keeps it in ``processor_config.json``).
    """
    folder = Path(out_dir)
    config_file = folder / 'config.json'
    config = json.loads(config_file.read_text())
    if config.get('dtype'):
        config.setdefault('torch_dtype', config['dtype'])
    text_config = config.get('text_config', {})
    rope = text_config.get('rope_parameters')
    if rope and 'rope_theta' in rope:
        text_config.setdefault('rope_theta', rope['rope_theta'])
        if rope.get('rope_type', 'default') != 'default':
            text_config.setdefault('rope_scaling', {
                key: value for key, value in rope.items()
                if key != 'rope_theta'})
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True)
                           + '\n')
    tokenizer_file = folder / 'tokenizer_config.json'
    tokenizer_config = json.loads(tokenizer_file.read_text())
    extra = tokenizer_config.get('extra_special_tokens')
    special = {token['content'] for token in json.loads(
        (folder / 'tokenizer.json').read_text()).get('added_tokens', [])
        if token.get('special')}
    if isinstance(extra, list) and set(extra) <= special:
        del tokenizer_config['extra_special_tokens']
        tokenizer_file.write_text(json.dumps(tokenizer_config, indent=2)
                                  + '\n')
    processor_file = folder / 'processor_config.json'
    preprocessor_file = folder / 'preprocessor_config.json'
    if processor_file.is_file() and not preprocessor_file.is_file():
        processor = json.loads(processor_file.read_text())
        preprocessor_file.write_text(json.dumps(dict(
            processor['image_processor'],
            processor_class=processor['processor_class']), indent=2) + '\n')


def export_model(model, out_dir: str, tokenizer_dir: Optional[str] = None,
                 image_processor: Optional[dict] = None,
                 pad_to_square: Optional[bool] = None,
                 max_shard_size=DEFAULT_SHARD_SIZE,
                 log: Optional[Log] = None) -> str:
    """Export a built mmllava ``LLaVA`` as a llava-hf folder.

    Args:
        model (LLaVA): The model (its ``state_dict`` is written).
        out_dir (str): Output folder.
        tokenizer_dir (str, optional): Its tokenizer folder; defaults to the
            tokenizer's ``name_or_path``.
        image_processor (dict, optional): Image-processor kwargs; defaults
            to the model config's test pipeline.
        pad_to_square (bool, optional): Defaults to the test pipeline's.
        max_shard_size (int | str): Largest shard.
        log (Callable, optional): Gets progress lines.
    """
    spec = spec_from_model(model, tokenizer_dir or
                           model.tokenizer.name_or_path,
                           image_processor, pad_to_square)
    return write_llava_hf(spec, [model.state_dict()], out_dir,
                          max_shard_size, log)


def convert_mmllava_to_hf(config, checkpoint: Optional[str], out_dir: str,
                          max_shard_size=DEFAULT_SHARD_SIZE,
                          log: Optional[Log] = None) -> str:
    """An mmllava config and checkpoint (``.pth``, work dir or folder of
    mmllava-key shards; None: the folders the config loads from) to a
    llava-hf folder, without building the model."""
    cfg = load_config(config)
    return write_llava_hf(spec_from_config(cfg), read_weights(cfg, checkpoint),
                          out_dir, max_shard_size, log)


# ---------------------------------------------------------------------------
# Import.
# ---------------------------------------------------------------------------
def is_llava_hf(folder: str) -> bool:
    config = Path(folder, 'config.json')
    return config.is_file() and json.loads(config.read_text()).get(
        'model_type') in ('llava', *ANYRES_FORMATS)


def read_spec(folder: str) -> LLaVASpec:
    """Describe a llava-hf folder in mmllava's terms."""
    from transformers import AutoImageProcessor
    from mmllava.converters.native import config_to_dict
    from transformers import AutoConfig
    if not is_llava_hf(folder):
        raise ValueError(f'{folder} is not a llava-hf folder (its '
                         'config.json needs model_type "llava", '
                         '"llava_next" or "llava_onevision").')
    config = AutoConfig.from_pretrained(folder)
    if config.projector_hidden_act != 'gelu' or \
            not config.multimodal_projector_bias:
        raise ValueError(f'{folder}: projector_hidden_act '
                         f'{config.projector_hidden_act!r} / bias '
                         f'{config.multimodal_projector_bias}: mmllava\'s '
                         'mlp2x_gelu needs gelu with biases.')
    if not isinstance(config.vision_feature_layer, int):
        raise ValueError(f'{folder}: vision_feature_layer '
                         f'{config.vision_feature_layer!r} (several layers) '
                         'has no mmllava form.')
    vision_config = config_to_dict(config.vision_config)
    llm_config = config_to_dict(config.text_config)
    if config.tie_word_embeddings:
        llm_config['tie_word_embeddings'] = True
    has_cls = vision_config['model_type'] == 'clip_vision_model'
    strategy = config.vision_feature_select_strategy
    select_feature = 'patch' if strategy == 'default' or not has_cls \
        else 'cls_patch'
    if strategy == 'default' and not has_cls:
        raise ValueError(f"{folder}: strategy 'default' drops the first "
                         'token of a tower without CLS token; mmllava keeps '
                         'every SigLIP token.')
    processor, pad = {}, True
    if Path(folder, 'preprocessor_config.json').is_file() or \
            Path(folder, 'processor_config.json').is_file():
        image_processor = AutoImageProcessor.from_pretrained(folder,
                                                             backend='pil')
        processor = image_processor_kwargs(image_processor)
        pad = bool(getattr(image_processor, 'do_pad', False))
    anyres = ANYRES_FORMATS[config.model_type].anyres_fields(config) \
        if config.model_type in ANYRES_FORMATS else {}
    if anyres:
        # Their do_pad pads a batch's tile stacks, not the image.
        pad = False
    return LLaVASpec(
        vision_config=vision_config, llm_config=llm_config,
        projector_type='mlp2x_gelu', select_layer=config.vision_feature_layer,
        select_feature=select_feature, tokenizer_dir=folder,
        image_processor=processor, pad_to_square=pad, **anyres)


def read_shards(folder: str,
                vocab_size: Optional[int] = None
                ) -> Iterator[dict[str, torch.Tensor]]:
    """A llava-hf folder's weights as mmllava-key shards.

    Args:
        vocab_size (int, optional): Keep only the first rows of the input
            embedding and LM head (the model was built with the vocabulary
            before export added tokens).
    """
    for path, tensors in iter_shards(folder):
        mapped = {}
        for key, tensor in tensors.items():
            new_key = from_hf_key(key)
            if vocab_size is not None and new_key[len(LLM_PREFIX):] in GROWN:
                tensor = tensor[:vocab_size]
            mapped[new_key] = tensor
        del tensors
        yield mapped


def load_into_model(model, folder: str) -> None:
    """Load a llava-hf folder into a built mmllava ``LLaVA``, every weight.

    A model built with fewer vocabulary rows than the folder (the rows that
    export added for ``<image>`` and ``<pad>``) takes the first rows, which
    are the original ones bit for bit; the folder's ``image_token_index``
    must lie among the dropped rows.
    """
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(folder)
    rows = model.llm.get_input_embeddings().weight.shape[0]
    hf_rows = config.text_config.vocab_size
    vocab_size = None
    if rows < hf_rows:
        if config.image_token_index < rows:
            raise ValueError(
                f'{folder} has {hf_rows} vocabulary rows and the model '
                f'{rows}, but its image token {config.image_token_index} is '
                'among the kept rows: the extra rows are not the ones '
                'export adds.')
        vocab_size = rows
    load_shards_into(model, read_shards(folder, vocab_size), folder)


def convert_hf_to_mmllava(folder: str, out_dir: str,
                          max_shard_size=DEFAULT_SHARD_SIZE,
                          log: Optional[Log] = None) -> str:
    """A llava-hf folder to the folders an mmllava config loads from (see
    :func:`write_mmllava_folders`); the vocabulary stays the folder's (the
    tokenizer is the folder's, with ``<image>`` and ``<pad>``).

    Returns:
        str: The written config.
    """
    spec = read_spec(folder)
    return write_mmllava_folders(spec, read_shards(folder), out_dir,
                                 max_shard_size, log)
