"""Build a model from a name, a config file or a Config, and load trained
weights into it."""
import copy
import re
from os import PathLike
from pathlib import Path
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import load_checkpoint

from mmllava.apis.model_index import find_model
from mmllava.registry import MODELS
from mmllava.setup_env import register_all_modules
from mmllava.utils.files import (is_deepspeed_checkpoint,
                                 resolve_checkpoint)
from mmllava.utils.safe_load import unsafe_pickle_scope


def load_config(model: Union[str, PathLike, Config]) -> Config:
    """A copy of ``model`` if it is a Config, else the config of a file
    (``.py``) or of a model-index name."""
    if isinstance(model, Config):
        return copy.deepcopy(model)
    if not isinstance(model, (str, PathLike)):
        raise TypeError('model must be a model name, a config path or a '
                        f'Config, got {type(model).__name__}.')
    path = Path(model)
    if path.suffix != '.py':
        info = find_model(str(model))
        path = Path(info.config)
        if not path.is_file():
            raise FileNotFoundError(
                f'Model {info.name!r}: its config {path} does not exist.')
    elif not path.is_file():
        raise FileNotFoundError(f'Config file not found: {path}')
    return Config.fromfile(str(path))


#: The layouts :func:`load_pretrained` reads, as named in its errors.
LAYOUTS = {
    'mmllava': 'an mmllava checkpoint (.pth), a DeepSpeed checkpoint folder '
               '(mp_rank_00_model_states.pt) or a training work dir (with '
               'last_checkpoint)',
    'official': 'an official LLaVA folder (config.json with mm_projector_type'
                ' or mm_vision_tower, or weights model.mm_projector.*)',
    'llava-hf': 'a llava-hf folder (config.json with model_type "llava")',
    'mmpretrain': "an mmpretrain LLaVA file (one .pth whose keys are "
                  'model.lang_encoder.*, as its llava-delta2mmpre.py writes)',
}


def detect_layout(path: Union[str, PathLike]) -> str:
    """Which layout ``path`` holds: ``'mmllava'``, ``'official'``,
    ``'llava-hf'`` or ``'mmpretrain'``.

    A file whose keys are ``model.lang_encoder.*`` is mmpretrain's; any
    other file is an mmllava checkpoint (mmengine reads it).

    Raises:
        FileNotFoundError: ``path`` does not exist, or is a folder in no
            layout it knows (the error lists those it looked for).
    """
    from mmllava.converters import llava_hf, mmpretrain, official
    path = Path(path)
    if path.is_file():
        return 'mmpretrain' if mmpretrain.is_mmpretrain_file(str(path)) \
            else 'mmllava'
    if path.is_dir():
        if (path / 'last_checkpoint').is_file() or \
                is_deepspeed_checkpoint(str(path)):
            return 'mmllava'
        # Official first: LLaVA v0/v1 configs also say model_type "llava".
        if official.is_official(str(path)):
            return 'official'
        if llava_hf.is_llava_hf(str(path)):
            return 'llava-hf'
    else:
        raise FileNotFoundError(f'Checkpoint not found: {str(path)!r} (give a '
                                'checkpoint file, a training work dir or a '
                                'converted model folder).')
    looked_for = '; '.join(f'{name}: {what}' for name, what in LAYOUTS.items())
    raise FileNotFoundError(f'{str(path)!r} is a folder in no layout mmllava '
                            f'reads. Looked for {looked_for}.')


def load_pretrained(model: torch.nn.Module, path: Union[str, PathLike],
                    vision_tower: Union[str, PathLike, None] = None) -> str:
    """Load trained weights into ``model``, every key strictly.

    The layout is detected (:func:`detect_layout`); official and llava-hf
    folders are read shard by shard and their keys mapped to the model's
    (see :mod:`mmllava.converters`); mmpretrain's LLaVA file is mapped as
    :mod:`mmllava.converters.mmpretrain` says.

    Args:
        model (nn.Module): The built model.
        path (str | PathLike): An mmllava checkpoint (``.pth`` holding a
            ``state_dict``, read with ``torch.load(weights_only=True)``), a
            training work dir (its latest checkpoint), an official LLaVA
            folder, a llava-hf folder or mmpretrain's LLaVA file.
        vision_tower (str | PathLike, optional): For mmpretrain's file only
            (it holds no tower): a transformers CLIP folder or an mmpretrain
            CLIP ViT checkpoint (``backbone.*`` keys). Defaults to the tower
            the config built.

    Returns:
        str: The checkpoint file or folder that was loaded.
    """
    layout = detect_layout(path)
    if vision_tower is not None and layout != 'mmpretrain':
        raise ValueError(f'vision_tower is read with mmpretrain\'s LLaVA '
                         f'file only; {str(path)!r} is {LAYOUTS[layout]}.')
    if layout == 'mmpretrain':
        from mmllava.converters.mmpretrain import load_into_model
        load_into_model(model, str(path),
                        str(vision_tower) if vision_tower else None)
        return str(path)
    if layout == 'official':
        from mmllava.converters.official import load_into_model
        load_into_model(model, str(path))
        return str(path)
    if layout == 'llava-hf':
        from mmllava.converters.llava_hf import load_into_model
        load_into_model(model, str(path))
        return str(path)
    checkpoint = resolve_checkpoint(str(path))
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                    logger='silent')
    return checkpoint


def runner_checkpoint(cfg: Config, path: Union[str, PathLike],
                      work_dir: Union[str, PathLike],
                      vision_tower: Union[str, PathLike, None] = None) -> str:
    """The checkpoint file an mmengine Runner loads (``load_from``, as in
    ``tools/test.py``) for the weights at ``path``.

    An mmllava checkpoint, DeepSpeed folder or work dir resolves as it is.
    mmpretrain's LLaVA file is converted for the config's model (as
    ``tools/model_converters/mmpretrain_to_mmllava.py`` does) into
    ``WORK_DIR/mmpretrain_converted.pth``. An official or llava-hf folder
    fails, naming the converter that turns it into a config and folders.

    Args:
        cfg (Config): The config the runner builds the model from.
        path (str | PathLike): The weights.
        work_dir (str | PathLike): Where a converted checkpoint is written.
        vision_tower (str | PathLike, optional): With mmpretrain's file: a
            transformers CLIP folder or an mmpretrain CLIP ViT checkpoint;
            defaults to the tower folder the config names.
    """
    layout = detect_layout(path)
    if layout == 'mmllava':
        if vision_tower is not None:
            raise ValueError(f'vision_tower is read with mmpretrain\'s LLaVA '
                             f'file only; {str(path)!r} is {LAYOUTS[layout]}.')
        return resolve_checkpoint(str(path))
    if layout != 'mmpretrain':
        tool = dict(official='official_to_mmllava.py',
                    **{'llava-hf': 'hf_to_mmllava.py'})[layout]
        raise ValueError(
            f'{str(path)!r} is {LAYOUTS[layout]}: a runner loads mmllava '
            'checkpoints and mmpretrain\'s LLaVA file. Convert it with '
            f'tools/model_converters/{tool} and use the llava_config.py it '
            'writes (as a _base_), or load it with get_model(pretrained=).')
    from mmllava.converters.mmpretrain import to_mmllava_state, vocab_size_of
    state = to_mmllava_state(str(path), vocab_size_of(cfg),
                             str(vision_tower) if vision_tower else None,
                             cfg.model.vision_encoder.get('pretrained'))
    out = Path(work_dir, 'mmpretrain_converted.pth')
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix('.pth.tmp')
    torch.save(dict(state_dict=state, meta=dict(source=str(path))), partial)
    partial.replace(out)
    return str(out)


def default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def _mmpretrain_call_shape(pretrained, device, device_map,
                           url_mapping) -> tuple:
    """``pretrained`` and ``device`` from mmpretrain's ``get_model``
    arguments."""
    if pretrained is True:
        raise ValueError(
            'pretrained=True (the weights of the model index) is not '
            'available: mmllava\'s model index names no weights; give a '
            'file or folder.')
    if pretrained is False:
        pretrained = None
    if pretrained is not None and url_mapping is not None:
        pattern, replacement = url_mapping
        pretrained = re.sub(pattern, replacement, str(pretrained))
    if device_map is not None:
        if not isinstance(device_map, (str, torch.device)) or \
                str(device_map) in ('auto', 'balanced', 'sequential'):
            raise ValueError(
                f'device_map={device_map!r}: mmllava puts the whole model on '
                'one device; give device= (or device_map=\'cuda:0\').')
        if device is not None and str(device) != str(device_map):
            raise ValueError(f'device={device!r} and device_map='
                             f'{device_map!r} disagree.')
        device = device_map
    if device is not None and torch.device(device).type == 'cuda' and \
            not torch.cuda.is_available():
        # Before building: a 7B model takes minutes to build.
        raise ValueError(f'device={str(device)!r}, but CUDA is not available '
                         "here; give device='cpu' or leave device out.")
    return pretrained, device


def get_model(model: Union[str, PathLike, Config],
              pretrained: Union[str, PathLike, bool, None] = None,
              device: Union[str, torch.device, None] = None,
              device_map: Union[str, torch.device, None] = None,
              offload_folder: Optional[str] = None,
              url_mapping: Optional[tuple[str, str]] = None,
              vision_tower: Union[str, PathLike, None] = None,
              allow_unsafe_pickle: bool = False,
              **kwargs) -> BaseModel:
    """Build a model for inference, as mmpretrain's ``get_model`` (its
    arguments are accepted as they are).

    Data and weight paths in the config stay relative to the working
    directory, as with ``tools/train.py``.

    Args:
        model (str | PathLike | Config): A name from :func:`list_models`, a
            config file or a Config.
        pretrained (str | PathLike | bool, optional): An mmllava checkpoint,
            a work dir, an official LLaVA folder, a llava-hf folder or
            mmpretrain's LLaVA file (see :func:`load_pretrained`). Its
            weights replace the config's ``projector_pretrained``, which is
            then not read. None or False (mmpretrain's "no weights"): the
            weights the config names. True fails: the model index names no
            weights.
        device (str | torch.device, optional): Defaults to ``'cuda'`` when
            available, else ``'cpu'``.
        device_map (str | torch.device, optional): mmpretrain's; one device
            (``'cuda:0'``) is taken as ``device``. Splitting the model
            over devices (``'auto'``, a dict) fails.
        offload_folder (str, optional): mmpretrain's; unused (nothing is
            offloaded), accepted so its calls run.
        url_mapping (tuple[str, str], optional): mmpretrain's ``(pattern,
            replacement)`` applied to ``pretrained`` with ``re.sub``.
        vision_tower (str | PathLike, optional): With mmpretrain's file:
            the tower, a transformers CLIP folder or an mmpretrain CLIP ViT
            checkpoint (see :func:`load_pretrained`).
        allow_unsafe_pickle (bool): Load weight files that need full
            unpickling (which can run code hidden in them) instead of
            refusing them; only for files whose source you trust. Defaults
            to False: refused unless ``MMLLAVA_ALLOW_UNSAFE_PICKLE=1`` (see
            :mod:`mmllava.utils.safe_load`).
        **kwargs: Merged into the model config, e.g.
            ``generation_cfg=dict(max_new_tokens=32)``.

    Returns:
        BaseModel: The model in eval mode, with its config as ``model.cfg``.

    Examples:
        >>> model = get_model('llava-tiny_demo_vqa',
        ...                   pretrained='work_dirs/llava-tiny_demo_ft')
        >>> inference_model(model, 'data/demo/images/eval_00000.png',
        ...                 'Where is the blue triangle?')
        {'pred_answer': 'Bottom right'}
    """
    register_all_modules()
    pretrained, device = _mmpretrain_call_shape(pretrained, device,
                                                device_map, url_mapping)
    config = load_config(model)
    if 'model' not in config:
        raise KeyError(f'The config {config.filename} has no `model`.')
    if kwargs:
        config.merge_from_dict(dict(model=kwargs))
    model_cfg = config.model.copy()
    if pretrained is not None:
        # Fail before building: a 7B model takes minutes to build.
        if detect_layout(pretrained) == 'mmllava':
            pretrained = resolve_checkpoint(str(pretrained))
        model_cfg.pop('projector_pretrained', None)
    with unsafe_pickle_scope(allow_unsafe_pickle or None):
        built = MODELS.build(model_cfg)
        if pretrained is not None:
            load_pretrained(built, pretrained, vision_tower)
    built.cfg = config
    return built.to(device or default_device()).eval()
