"""The LLM rows one image becomes, derived from the vision tower's
``config.json`` and the model's AnyRes settings: the count
``TokenizeConversation`` truncates samples with
(``num_image_tokens``), which configs therefore do not type."""
import copy
import json
from pathlib import Path
from typing import Mapping, Optional, Union

from mmengine.config import Config

from mmllava.utils.runner_pipelines import runner_tokenize_steps


def tower_config(vision_encoder: Mapping) -> Optional[dict]:
    """The vision settings in the ``config.json`` of the tower a config
    names (``vision_encoder.pretrained``): its ``vision_config`` section
    where it has one (a whole CLIP or SigLIP model), else the file itself
    (a vision model alone). None when the folder is not on this
    machine."""
    folder = vision_encoder.get('pretrained')
    config_file = Path(folder or '', 'config.json')
    if folder is None or not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    return config.get('vision_config', config)


def keeps_cls_token(vision_encoder: Mapping) -> bool:
    """Whether the vision encoder keeps the CLS token's feature row
    (``select_feature='cls_patch'``)."""
    return vision_encoder.get('select_feature') == 'cls_patch'


def rows_per_tile(tower: Mapping, cls_token: bool = False) -> int:
    """Feature rows of one tower input: ``(image_size // patch_size) ** 2``
    patches, plus the CLS token where kept.

    Args:
        tower (Mapping): The tower's vision settings (``image_size``,
            ``patch_size``).
        cls_token (bool): Whether the CLS token's row is kept. Defaults to
            False.
    """
    return (tower['image_size'] // tower['patch_size'])**2 + int(cls_token)


def tower_token_count(vision_encoder: Mapping) -> Optional[int]:
    """Feature rows one image becomes in the tower a config names: its
    patches, plus the CLS token where kept. None when the tower's folder
    is not on this machine (building the model will say so)."""
    tower = tower_config(vision_encoder)
    if tower is None:
        return None
    return rows_per_tile(tower, keeps_cls_token(vision_encoder))


def anyres_count_args(model: Mapping, tower: Mapping) -> dict:
    """:class:`~mmllava.datasets.transforms.tokenize.AnyResTokenCount`'s
    arguments for an AnyRes model.

    Args:
        model (Mapping): The model's config: its ``image_grid_pinpoints``,
            ``mm_patch_merge_type`` (default ``'flat'``), ``anyres_max``
            and the vision encoder's ``select_feature``.
        tower (Mapping): The tower's vision settings (:func:`tower_config`):
            the tile size is its ``image_size``.
    """
    count = dict(
        grid_pinpoints=[list(pair) for pair in model['image_grid_pinpoints']],
        tile_size=tower['image_size'], patch_size=tower['patch_size'],
        merge_type=model.get('mm_patch_merge_type', 'flat'),
        cls_token=keeps_cls_token(model.get('vision_encoder') or {}))
    if model.get('anyres_max') is not None:
        count['anyres_max'] = model['anyres_max']
    return count


def model_image_token_count(model: Mapping) -> Union[int, dict, None]:
    """The ``num_image_tokens`` of a model's pipelines: the tower's rows
    per image (:func:`tower_token_count`), or for an AnyRes model (one
    with ``image_grid_pinpoints``) the arguments that count each image
    from its size (:func:`anyres_count_args`). None when the tower's
    folder is not on this machine."""
    vision_encoder = model.get('vision_encoder') or {}
    tower = tower_config(vision_encoder)
    if tower is None:
        return None
    if model.get('image_grid_pinpoints') is None:
        return rows_per_tile(tower, keeps_cls_token(vision_encoder))
    return anyres_count_args(model, tower)


def _no_tower_message(key: str, model: Mapping) -> str:
    """Why the count of the step at ``key`` cannot be derived."""
    folder = (model.get('vision_encoder') or {}).get('pretrained')
    if folder is None:
        missing = ('model.vision_encoder names no pretrained folder: name '
                   "the tower's folder there")
    else:
        missing = (f"{Path(folder, 'config.json')} is not here: put the "
                   f"tower's folder at {folder} (model.vision_encoder."
                   'pretrained, relative to the working directory)')
    return (f"{key}.num_image_tokens is derived from the tower's "
            f'config.json, but {missing}, or type num_image_tokens in the '
            'pipeline.')


def fill_image_token_counts(cfg: Config) -> Config:
    """Give every ``TokenizeConversation`` of the pipelines the runner
    builds that truncates (``max_length`` set) and has no
    ``num_image_tokens`` the model's count
    (:func:`model_image_token_count`).

    A count typed in the config is left as it is (``check_settings_agree``
    checks it against the tower). Call it before building the pipelines;
    the tools do (``apply_runner_args``).

    Args:
        cfg (Config): The config, changed in place.

    Returns:
        Config: ``cfg``.

    Raises:
        ValueError: A count is needed but the tower's ``config.json`` is not
            on this machine, naming the pipeline's key and the file.
    """
    needed = [(key, step) for key, step in runner_tokenize_steps(cfg)
              if step.get('max_length') is not None
              and step.get('num_image_tokens') is None]
    if not needed:
        return cfg
    model = cfg.get('model') or {}
    count = model_image_token_count(model)
    if count is None:
        raise ValueError(_no_tower_message(needed[0][0], model))
    for _, step in needed:
        step['num_image_tokens'] = copy.deepcopy(count)
    return cfg
