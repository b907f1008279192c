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

from mmllava.apis.model_index import find_model
from mmllava.registry import MODELS
from mmllava.utils.files import resolve_checkpoint


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


def load_pretrained(model: torch.nn.Module, path: Union[str, PathLike]) -> str:
    """Load trained weights into ``model``, every key strictly.

    Args:
        model (nn.Module): The built model.
        path (str | PathLike): An mmllava checkpoint (``.pth`` holding a
            ``state_dict``, read with ``torch.load(weights_only=True)``) or a
            training work dir (its latest checkpoint).

    Returns:
        str: The checkpoint file that was loaded.
    """
    checkpoint = resolve_checkpoint(str(path))
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                    logger='silent')
    return checkpoint


def default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def get_model(model: Union[str, PathLike, Config],
              pretrained: Union[str, PathLike, None] = None,
              device: Union[str, torch.device, None] = None,
              **kwargs) -> BaseModel:
    """Build a model for inference, as mmpretrain's ``get_model``.

    Data and weight paths in the config stay relative to the working
    directory, as with ``tools/train.py``.

    Args:
        model (str | PathLike | Config): A name from :func:`list_models`, a
            config file or a Config.
        pretrained (str | PathLike, optional): An mmllava checkpoint or a
            work dir (see :func:`load_pretrained`). Its weights replace the
            config's ``projector_pretrained``, which is then not read.
            Defaults to None (the weights the config names).
        device (str | torch.device, optional): Defaults to ``'cuda'`` when
            available, else ``'cpu'``.
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
        pretrained = resolve_checkpoint(str(pretrained))
        model_cfg.pop('projector_pretrained', None)
    built = MODELS.build(model_cfg)
    if pretrained is not None:
        load_pretrained(built, pretrained)
    built.cfg = config
    return built.to(device or default_device()).eval()
