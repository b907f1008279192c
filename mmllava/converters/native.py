"""The mmllava side of every conversion.

A conversion reads a checkpoint as a :class:`LLaVASpec` (what the model is,
without weights) and a stream of shards whose keys are mmllava's
(``vision_encoder.model.*``, ``projector.*``, ``llm.*``: the keys of
``LLaVA.state_dict()``), and writes that stream in another layout, one
shard at a time. This module reads mmllava checkpoints and writes the
folders mmllava configs load from.
"""
import json
import pprint
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import torch
from mmengine.config import Config

from mmllava.converters.shards import (DEFAULT_SHARD_SIZE, Log, ShardWriter,
                                       TOKENIZER_FILES, copy_files,
                                       iter_shards)
from mmllava.utils.safe_load import load_torch_file

VISION_PREFIX = 'vision_encoder.model.'
PROJECTOR_PREFIX = 'projector.'
LLM_PREFIX = 'llm.'
#: AnyRes 'spatial_unpad' models' learned row separator.
NEWLINE_KEY = 'image_newline'
#: Vision towers by their transformers ``model_type``.
VISION_TYPES = {'clip_vision_model': 'CLIPVisionEncoder',
                'siglip_vision_model': 'SiglipVisionEncoder'}
ENCODER_TYPES = {value: key for key, value in VISION_TYPES.items()}
#: Default CLIP image-processor settings (LLaVA's CLIP towers).
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

#: A stream of shards: per shard, mmllava key -> tensor.
Shards = Iterable[dict[str, torch.Tensor]]


@dataclass
class LLaVASpec:
    """What a LLaVA model is, in mmllava's terms, without its weights.

    Args:
        vision_config (dict): Vision config kwargs with ``model_type``
            (``'clip_vision_model'`` or ``'siglip_vision_model'``).
        llm_config (dict): Causal-LM config kwargs with ``model_type``.
        projector_type (str): ``'linear'``, ``'mlp{N}x_gelu'`` or
            ``'identity'``.
        select_layer (int): The vision hidden state taken.
        select_feature (str): ``'patch'`` or ``'cls_patch'``.
        tokenizer_dir (str): Folder with the tokenizer files.
        image_processor (dict): Image-processor kwargs (size, crop_size,
            image_mean, image_std, ...).
        pad_to_square (bool): Whether images are padded to squares first
            (LLaVA-1.5, ``image_aspect_ratio='pad'``).
        template (str): Chat template. Defaults to ``'vicuna_v1'``.
        vision_tower_dir (str, optional): The folder the tower was loaded
            from (the official layout names it; it may hold weights the
            checkpoint lacks).
        image_aspect_ratio (str): ``'pad'`` or ``'anyres'`` (the model's).
        image_grid_pinpoints (list, optional): ``(height, width)`` pairs,
            mmllava's convention (converters swap them at their boundary).
        mm_patch_merge_type (str): ``'flat'``, ``'spatial'`` or
            ``'spatial_unpad'``.
        anyres_max (int, optional): ``N`` of ``anyres_max_N`` (the model's
            ``anyres_max``).
    """

    vision_config: dict
    llm_config: dict
    projector_type: str
    select_layer: int
    select_feature: str
    tokenizer_dir: str
    image_processor: dict = field(default_factory=dict)
    pad_to_square: bool = True
    template: str = 'vicuna_v1'
    vision_tower_dir: Optional[str] = None
    image_aspect_ratio: str = 'pad'
    image_grid_pinpoints: Optional[list] = None
    mm_patch_merge_type: str = 'flat'
    anyres_max: Optional[int] = None

    def anyres_kwargs(self) -> dict:
        """The ``LLaVA`` kwargs of the image layout ({} for 'pad')."""
        if self.image_aspect_ratio == 'pad':
            return {}
        kwargs = dict(image_aspect_ratio=self.image_aspect_ratio,
                      image_grid_pinpoints=[list(pair) for pair in
                                            self.image_grid_pinpoints],
                      mm_patch_merge_type=self.mm_patch_merge_type)
        if self.anyres_max is not None:
            kwargs['anyres_max'] = self.anyres_max
        return kwargs

    @property
    def has_cls_token(self) -> bool:
        return self.vision_config['model_type'] == 'clip_vision_model'

    @property
    def num_image_tokens(self) -> int:
        """Feature rows per image in the LLM input."""
        side = self.vision_config['image_size'] // \
            self.vision_config['patch_size']
        return side * side + int(self.select_feature == 'cls_patch')

    @property
    def vocab_size(self) -> int:
        return self.llm_config['vocab_size']

    @property
    def tie_word_embeddings(self) -> bool:
        return bool(self.llm_config.get('tie_word_embeddings', False))


def config_to_dict(config) -> dict:
    """A transformers config as the kwargs that rebuild it."""
    data = config.to_dict()
    for key in ('architectures', 'transformers_version', '_name_or_path',
                'dtype', 'torch_dtype', 'id2label', 'label2id'):
        data.pop(key, None)
    return data


def image_processor_kwargs(processor) -> dict:
    """Settings of a transformers image processor that LLaVA uses."""
    data = processor.to_dict()
    keys = ('size', 'crop_size', 'image_mean', 'image_std', 'resample',
            'do_resize', 'do_center_crop', 'do_rescale', 'rescale_factor',
            'do_normalize', 'do_convert_rgb')
    kwargs = {key: data[key] for key in keys if key in data}
    for key in ('image_mean', 'image_std'):
        if key in kwargs:
            kwargs[key] = [float(value) for value in kwargs[key]]
    if 'resample' in kwargs:
        kwargs['resample'] = int(kwargs['resample'])
    return kwargs


def default_image_processor(vision_config: dict) -> dict:
    size = vision_config['image_size']
    return dict(size=dict(shortest_edge=size),
                crop_size=dict(height=size, width=size),
                image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def _pipeline_image_settings(cfg: Config) -> tuple[Optional[dict], bool]:
    """The image processor and pad-to-square of a config's test pipeline."""
    from mmllava.datasets.transforms.image import build_image_processor
    processor, pad = None, False
    for transform in cfg.get('test_pipeline', None) or []:
        if transform['type'] == 'PadToSquare' or (
                transform['type'] == 'ProcessImage'
                and transform.get('pad_to_square') is not None):
            pad = True
        if transform['type'] in ('ProcessImage', 'AnyResImage'):
            processor = image_processor_kwargs(
                build_image_processor(dict(transform['image_processor'])))
    return processor, pad


def spec_from_config(cfg: Config) -> LLaVASpec:
    """Describe the model a config builds, without building it.

    The image settings come from the config's ``test_pipeline``
    (``PadToSquare``, ``ProcessImage``), else from the vision folder.
    """
    from transformers import AutoConfig, AutoImageProcessor
    model = cfg.model
    if model.get('type') != 'LLaVA':
        raise ValueError(f'The config builds {model.get("type")!r}; only '
                         'LLaVA models convert.')
    encoder = model.vision_encoder
    if encoder['type'] not in ENCODER_TYPES:
        raise ValueError(f'Vision encoder {encoder["type"]!r} has no '
                         f'conversion (known: {sorted(ENCODER_TYPES)}).')
    model_type = ENCODER_TYPES[encoder['type']]
    if encoder.get('pretrained'):
        vision_config = config_to_dict(AutoConfig.from_pretrained(
            encoder['pretrained']))
        vision_config = vision_config.get('vision_config', vision_config)
    else:
        vision_config = dict(encoder['config'])
    vision_config['model_type'] = model_type
    llm = model.llm
    if llm.get('pretrained'):
        llm_config = config_to_dict(AutoConfig.from_pretrained(
            llm['pretrained']))
    else:
        llm_config = dict(llm['config'])
    tokenizer = model.tokenizer
    processor, pad = _pipeline_image_settings(cfg)
    if processor is None and encoder.get('pretrained') and Path(
            encoder['pretrained'], 'preprocessor_config.json').is_file():
        processor = image_processor_kwargs(AutoImageProcessor.from_pretrained(
            encoder['pretrained'], backend='pil'))
    return LLaVASpec(
        vision_config=vision_config, llm_config=llm_config,
        projector_type=model.get('projector', dict(type='mlp2x_gelu'))['type'],
        select_layer=encoder.get('select_layer', -2),
        select_feature=encoder.get('select_feature', 'patch'),
        tokenizer_dir=tokenizer['pretrained'],
        image_processor=processor or default_image_processor(vision_config),
        pad_to_square=pad, template=model.get('template', 'vicuna_v1'),
        vision_tower_dir=encoder.get('pretrained'),
        image_aspect_ratio=model.get('image_aspect_ratio', 'pad'),
        image_grid_pinpoints=model.get('image_grid_pinpoints'),
        mm_patch_merge_type=model.get('mm_patch_merge_type', 'flat'),
        anyres_max=model.get('anyres_max'))


def projector_type_of(projector: torch.nn.Module) -> str:
    from mmllava.models.projectors import (IdentityProjector,
                                           LinearProjector, MLPProjector)
    if isinstance(projector, MLPProjector):
        depth = sum(isinstance(m, torch.nn.Linear) for m in projector)
        return f'mlp{depth}x_gelu'
    if isinstance(projector, LinearProjector):
        return 'linear'
    if isinstance(projector, IdentityProjector):
        return 'identity'
    raise ValueError(f'Projector {type(projector).__name__} has no '
                     'conversion (linear, mlpNx_gelu and identity do).')


def spec_from_model(model, tokenizer_dir: str,
                    image_processor: Optional[dict] = None,
                    pad_to_square: Optional[bool] = None) -> LLaVASpec:
    """Describe a built mmllava ``LLaVA``.

    Args:
        model (LLaVA): The built model.
        tokenizer_dir (str): The folder its tokenizer was loaded from.
        image_processor (dict, optional): Image-processor kwargs; defaults
            to the model config's test pipeline (``model.cfg``), else CLIP's
            defaults at the tower's image size.
        pad_to_square (bool, optional): Defaults to whether the model
            config's test pipeline pads.
    """
    encoder = model.vision_encoder
    vision_config = config_to_dict(encoder.model.config)
    vision_config['model_type'] = ENCODER_TYPES[type(encoder).__name__]
    cfg_processor, cfg_pad = (None, False)
    if getattr(model, 'cfg', None) is not None:
        cfg_processor, cfg_pad = _pipeline_image_settings(model.cfg)
    return LLaVASpec(
        vision_config=vision_config,
        llm_config=config_to_dict(model.llm.config),
        projector_type=projector_type_of(model.projector),
        select_layer=encoder.select_layer,
        select_feature=encoder.select_feature,
        tokenizer_dir=tokenizer_dir,
        image_processor=image_processor or cfg_processor
        or default_image_processor(vision_config),
        pad_to_square=cfg_pad if pad_to_square is None else pad_to_square,
        template=model.template.name,
        image_aspect_ratio=model.image_aspect_ratio,
        image_grid_pinpoints=model.image_grid_pinpoints,
        mm_patch_merge_type=model.mm_patch_merge_type,
        anyres_max=model.anyres_max)


def read_mmllava_checkpoint(path: str) -> Iterator[dict[str, torch.Tensor]]:
    """The weights of an mmllava checkpoint as a stream of shards.

    ``path`` is a ``.pth`` (its ``state_dict``, memory-mapped, as one shard),
    a work dir (its latest checkpoint), or a folder of safetensors shards
    holding mmllava keys.
    """
    from mmllava.utils.files import resolve_checkpoint
    if Path(path).is_dir() and not (Path(path) / 'last_checkpoint').is_file():
        for _, tensors in iter_shards(path):
            yield tensors
        return
    checkpoint = resolve_checkpoint(path)
    state = load_torch_file(checkpoint, mmap=True)
    yield state.get('state_dict', state)


def read_config_weights(cfg: Config) -> Iterator[dict[str, torch.Tensor]]:
    """The weights a config loads from its folders, as mmllava-key shards:
    the tower folder, ``projector_pretrained`` and the LLM folder. For a
    model defined by folders (as :func:`write_mmllava_folders` writes)."""
    from mmllava.models.llava import load_projector_state
    model = cfg.model
    folders = dict(vision=model.vision_encoder.get('pretrained'),
                   llm=model.llm.get('pretrained'))
    missing = [part for part, folder in folders.items() if not folder]
    if not model.get('projector_pretrained'):
        missing.append('projector')
    if missing:
        raise ValueError(
            'Without a checkpoint the weights come from the folders the '
            f'config names; it names none for: {missing}. Give a checkpoint.')
    for _, tensors in iter_shards(folders['vision']):
        yield {VISION_PREFIX + key[len('vision_model.'):]
               if key.startswith('vision_model.') else VISION_PREFIX + key:
               value for key, value in tensors.items()
               if not key.startswith(('text_model.', 'logit_scale',
                                      'text_projection', 'visual_projection'))}
    yield {key if key == NEWLINE_KEY else PROJECTOR_PREFIX + key: value
           for key, value in
           load_projector_state(model.projector_pretrained).items()}
    for _, tensors in iter_shards(folders['llm']):
        yield {LLM_PREFIX + key: value for key, value in tensors.items()}


def read_weights(cfg: Config, checkpoint: Optional[str]) -> Iterator[dict]:
    """A checkpoint's weights, or without one the config's folders'."""
    if checkpoint:
        return read_mmllava_checkpoint(checkpoint)
    return read_config_weights(cfg)


def split_parts(shards: Shards) -> Iterator[tuple[str, str, torch.Tensor]]:
    """``(part, key within the part, tensor)`` for each tensor; part is
    ``'vision'``, ``'projector'``, ``'llm'`` or ``'newline'`` (the AnyRes
    ``image_newline``, key ``''``), and ``'end_of_shard'`` after each shard
    (writers flush there). Unknown keys and LoRA adapter keys fail."""
    for tensors in shards:
        for key, tensor in tensors.items():
            if '.lora_' in key or '.base_layer.' in key:
                raise KeyError(
                    f'{key!r} is a LoRA adapter key: merge the adapters '
                    'first (tools/model_converters/merge_mmllava_lora.py).')
            if key == NEWLINE_KEY:
                yield 'newline', '', tensor
                continue
            for part, prefix in (('vision', VISION_PREFIX),
                                 ('projector', PROJECTOR_PREFIX),
                                 ('llm', LLM_PREFIX)):
                if key.startswith(prefix):
                    yield part, key[len(prefix):], tensor
                    break
            else:
                raise KeyError(
                    f'{key!r} is not an mmllava LLaVA key (expected '
                    f'{VISION_PREFIX}*, {PROJECTOR_PREFIX}*, {LLM_PREFIX}*)')
        yield 'end_of_shard', '', torch.empty(0)


def write_mmllava_folders(spec: LLaVASpec, shards: Shards, out_dir: str,
                          max_shard_size=DEFAULT_SHARD_SIZE,
                          log: Optional[Log] = None) -> str:
    """Write the folders an mmllava config loads from, and that config.

    Layout::

        OUT/vision_encoder/   tower config, weights, image processor
        OUT/llm/              causal-LM config, weights, tokenizer files
        OUT/tokenizer/        tokenizer files
        OUT/projector.safetensors   keys projector.* (projector_pretrained)
                                    and an AnyRes model's image_newline
        OUT/llava_config.py   builds the model from the folders above

    Returns:
        str: The path of ``llava_config.py``.
    """
    from transformers import AutoConfig, AutoImageProcessor
    from safetensors.torch import save_file
    log = log or (lambda line: None)
    out = Path(out_dir)
    writers = dict(vision=ShardWriter(str(out / 'vision_encoder'),
                                      max_shard_size, log),
                   llm=ShardWriter(str(out / 'llm'), max_shard_size, log))
    projector = {}
    tied = spec.tie_word_embeddings
    for part, key, tensor in split_parts(shards):
        if part == 'end_of_shard':
            for writer in writers.values():
                writer.flush()
        elif part == 'projector':
            projector[PROJECTOR_PREFIX + key] = tensor.contiguous().clone()
        elif part == 'newline':
            projector[NEWLINE_KEY] = tensor.contiguous().clone()
        elif part == 'vision':
            writers['vision'].add('vision_model.' + key, tensor)
        elif not (tied and key == 'lm_head.weight'):
            writers['llm'].add(key, tensor)
    for writer in writers.values():
        writer.close()
    if projector:
        save_file(projector, str(out / 'projector.safetensors'),
                  metadata={'format': 'pt'})
    elif spec.projector_type != 'identity':
        raise KeyError('The checkpoint holds no projector weights.')
    vision_config = dict(spec.vision_config)
    AutoConfig.for_model(vision_config.pop('model_type'),
                         **vision_config).save_pretrained(
                             out / 'vision_encoder')
    llm_config = dict(spec.llm_config)
    AutoConfig.for_model(llm_config.pop('model_type'),
                         **llm_config).save_pretrained(out / 'llm')
    for folder in ('tokenizer', 'llm'):
        copy_files(spec.tokenizer_dir, str(out / folder), TOKENIZER_FILES)
    processor_class = 'SiglipImageProcessor' \
        if not spec.has_cls_token else 'CLIPImageProcessor'
    from mmllava.datasets.transforms.image import build_image_processor
    build_image_processor(dict(type=processor_class,
                               **spec.image_processor)).save_pretrained(
        out / 'vision_encoder')
    config_path = out / 'llava_config.py'
    config_path.write_text(render_config(spec, out))
    (out / 'llava_spec.json').write_text(json.dumps(asdict(spec), indent=2))
    log(f'wrote {out}: vision_encoder/, llm/, tokenizer/, '
        f'projector.safetensors, {config_path.name}')
    return str(config_path)


def render_config(spec: LLaVASpec, out: Path) -> str:
    """An mmllava config that builds the converted model from ``out``."""
    root = str(out.resolve())
    tokenizer = dict(type='PretrainedTokenizer',
                     pretrained=f'{root}/tokenizer', padding_side='right')
    image_processor = dict(pretrained=f'{root}/vision_encoder')
    model = dict(
        type='LLaVA',
        vision_encoder=dict(type=VISION_TYPES[spec.vision_config[
            'model_type']], pretrained=f'{root}/vision_encoder',
            select_layer=spec.select_layer,
            select_feature=spec.select_feature),
        projector=dict(type=spec.projector_type),
        projector_pretrained=f'{root}/projector.safetensors'
        if spec.projector_type != 'identity' else None,
        llm=dict(type='HFCausalLM', pretrained=f'{root}/llm'),
        tokenizer=tokenizer, template=spec.template,
        generation_cfg=dict(max_new_tokens=128, do_sample=False),
        **spec.anyres_kwargs())
    if model['projector_pretrained'] is None:
        model.pop('projector_pretrained')
    pipeline = [dict(type='LoadImage')]
    pad_mean = spec.image_processor.get('image_mean', CLIP_MEAN) \
        if spec.pad_to_square else None
    if spec.image_aspect_ratio == 'anyres':
        if pad_mean is not None:
            pipeline.append(dict(type='PadToSquare', mean=pad_mean))
        pipeline.append(dict(
            type='AnyResImage', image_processor=image_processor,
            grid_pinpoints=model['image_grid_pinpoints']))
    else:
        process = dict(type='ProcessImage', image_processor=image_processor)
        if pad_mean is not None:
            process['pad_to_square'] = pad_mean
        pipeline.append(process)
    pipeline += [
        dict(type='TokenizeConversation', tokenizer=tokenizer,
             template=spec.template, mode='predict'),
        dict(type='PackLLaVAInputs', meta_keys=('sample_id', )),
    ]
    def fmt(value):
        return pprint.pformat(value, indent=4, sort_dicts=False)

    return ('# Written by mmllava.converters: the converted model, built '
            'from the folders beside this file.\n'
            f'model = {fmt(model)}\n'
            f'test_pipeline = {fmt(pipeline)}\n'
            "inference = dict(task='vqa', prompt_suffix='')\n")


def load_shards_into(model: torch.nn.Module, shards: Shards,
                     where: str) -> None:
    """Load a stream of mmllava-key shards into a built model, every key
    strictly (tied weights count once), one shard in memory at a time."""
    state = model.state_dict()
    pointers = {}
    for key, value in state.items():
        pointers.setdefault(value.data_ptr(), []).append(key)
    seen = set()
    for tensors in shards:
        for key, tensor in tensors.items():
            if key not in state:
                raise KeyError(f'{where}: {key!r} has no counterpart in the '
                               'built model.')
            if state[key].shape != tensor.shape:
                raise ValueError(
                    f'{where}: {key!r} has shape {tuple(tensor.shape)}, the '
                    f'built model {tuple(state[key].shape)}.')
            with torch.no_grad():
                state[key].copy_(tensor)
            seen.update(pointers[state[key].data_ptr()])
    missing = sorted(set(state) - seen)
    if missing:
        raise KeyError(f'{where}: {len(missing)} weights of the built model '
                       f'are not in the checkpoint, e.g. {missing[:5]}')
