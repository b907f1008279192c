"""Build a model from a name, a config file or a Config, and load trained
weights into it."""
import re
from os import PathLike
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel

from mmllava.converters.layouts import detect_layout, load_pretrained
from mmllava.model_index import load_config
from mmllava.registry import MODELS
from mmllava.setup_env import register_all_modules
from mmllava.utils.files import resolve_checkpoint
from mmllava.utils.safe_load import unsafe_pickle_scope


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
