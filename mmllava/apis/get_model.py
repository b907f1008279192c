"""Build a model from a name, a config file or a Config, and load trained
weights into it."""
import copy
from os import PathLike
from pathlib import Path
from typing import Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import load_checkpoint

import mmllava.engine  # noqa: F401  (the safe checkpoint loader)
from mmllava.apis.model_index import find_model
from mmllava.registry import MODELS
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
}


def detect_layout(path: Union[str, PathLike]) -> str:
    """Which layout ``path`` holds: ``'mmllava'``, ``'official'`` or
    ``'llava-hf'``.

    A file is an mmllava checkpoint (mmengine reads it).

    Raises:
        FileNotFoundError: ``path`` does not exist, or is a folder in no
            layout it knows (the error lists those it looked for).
    """
    from mmllava.converters import llava_hf, official
    path = Path(path)
    if path.is_file():
        return 'mmllava'
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


def load_pretrained(model: torch.nn.Module, path: Union[str, PathLike]) -> str:
    """Load trained weights into ``model``, every key strictly.

    The layout is detected (:func:`detect_layout`); official and llava-hf
    folders are read shard by shard and their keys mapped to the model's
    (see :mod:`mmllava.converters`).

    Args:
        model (nn.Module): The built model.
        path (str | PathLike): An mmllava checkpoint (``.pth`` holding a
            ``state_dict``, read with ``torch.load(weights_only=True)``), a
            training work dir (its latest checkpoint), an official LLaVA
            folder or a llava-hf folder.

    Returns:
        str: The checkpoint file or folder that was loaded.
    """
    layout = detect_layout(path)
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


def default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def get_model(model: Union[str, PathLike, Config],
              pretrained: Union[str, PathLike, None] = None,
              device: Union[str, torch.device, None] = None,
              allow_unsafe_pickle: bool = False,
              **kwargs) -> BaseModel:
    """Build a model for inference, as mmpretrain's ``get_model``.

    Data and weight paths in the config stay relative to the working
    directory, as with ``tools/train.py``.

    Args:
        model (str | PathLike | Config): A name from :func:`list_models`, a
            config file or a Config.
        pretrained (str | PathLike, optional): An mmllava checkpoint, a
            work dir, an official LLaVA folder or a llava-hf folder (see
            :func:`load_pretrained`). Its weights replace the
            config's ``projector_pretrained``, which is then not read.
            Defaults to None (the weights the config names).
        device (str | torch.device, optional): Defaults to ``'cuda'`` when
            available, else ``'cpu'``.
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
            load_pretrained(built, pretrained)
    built.cfg = config
    return built.to(device or default_device()).eval()
