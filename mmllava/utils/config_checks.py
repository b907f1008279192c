"""Config mistakes that mmengine lets through: a misspelled top-level key
(ignored, so the base's value trains), a ``--cfg-options`` value of the
wrong type (a string where the recipe has a number, failing deep inside the
optimizer or not at all), and a setting that the model and its pipelines
both hold with different values."""
import difflib
import inspect
import logging
from typing import Any, Mapping

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import FlexibleRunner, Runner

from mmllava.utils.image_token_counts import tower_token_count
from mmllava.utils.runner_pipelines import runner_tokenize_steps

#: Top-level keys mmllava's tools and recipes read besides the runners'
#: arguments.
MMLLAVA_KEYS = ('runner_type', 'custom_imports', 'default_scope', 'strategy',
                'inference', 'answer_file', 'image_mean', 'demo',
                'max_epochs', 'gpu_ids')


def known_top_level_keys() -> set[str]:
    """The runners' constructor arguments and :data:`MMLLAVA_KEYS`."""
    keys = set(MMLLAVA_KEYS)
    for runner in (Runner, FlexibleRunner):
        keys |= set(inspect.signature(runner.__init__).parameters) - {'self'}
    return keys


def warn_unknown_top_level_keys(cfg: Config) -> list[str]:
    """Warn about each top-level key that is not read but is close to one
    that is (``optim_wraper`` for ``optim_wrapper``).

    A config file's other top-level names are its own variables (``model``
    pieces, pipelines, paths), which Python configs use freely; only a near
    miss of a known key is taken for a typo.

    Returns:
        list[str]: The warnings given.
    """
    known = known_top_level_keys()
    warnings = []
    for key in cfg.keys():
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        if close:
            warnings.append(
                f'Config key {key!r} is read by nothing, so it has no '
                f'effect; did you mean {close[0]!r}? (The run uses '
                f'{close[0]!r} as the config or its base sets it.)')
    for message in warnings:
        print_log(message, logger='current', level=logging.WARNING)
    return warnings


def _lookup(cfg: Mapping, dotted_key: str) -> tuple[bool, Any]:
    """Whether ``dotted_key`` is set in ``cfg``, and its value."""
    node: Any = cfg
    for part in dotted_key.split('.'):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() \
                and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def check_option_types(cfg: Config, options: Mapping[str, Any]) -> None:
    """Refuse a ``--cfg-options`` value whose type cannot stand for the
    recipe's: a number or a bool given as text that is neither.

    Call it before merging ``options`` into ``cfg``.

    Raises:
        ValueError: Naming the key, the value given, the recipe's value and
            the type it needs.
    """
    recipe = cfg.to_dict()
    for key, value in options.items():
        found, current = _lookup(recipe, key)
        if not found or current is None or not isinstance(value, str):
            continue
        if isinstance(current, bool):
            needed = 'a bool (True or False)'
        elif isinstance(current, (int, float)):
            needed = f'a number ({type(current).__name__})'
        else:
            continue
        raise ValueError(
            f'--cfg-options {key}={value}: {value!r} is not {needed}, as '
            f'the config\'s value {current!r} is.')


def check_settings_agree(cfg: Config) -> None:
    """Refuse a config whose pipelines and model disagree on a setting
    both hold: the chat template, the tokenizer folder, and the feature
    rows of an image where a pipeline types them (against the tower's own
    geometry; with AnyRes, the grids, merge type and ``anyres_max`` that
    truncation counts with). Where none is typed,
    :mod:`mmllava.utils.image_token_counts` derives the count.

    A mismatch would not fail: a pipeline rendering another template than
    the model generates with stops generation at the wrong text, and a
    wrong image-token count mis-truncates samples.

    Raises:
        ValueError: Naming both keys and both values.
    """
    recipe = cfg.to_dict()
    model = recipe.get('model') or {}
    tower_rows = tower_token_count(model.get('vision_encoder') or {})
    for key, transform in runner_tokenize_steps(recipe):
        pairs = [('template', model.get('template'),
                  transform.get('template')),
                 ('tokenizer.pretrained',
                  (model.get('tokenizer') or {}).get('pretrained'),
                  (transform.get('tokenizer') or {}).get('pretrained'))]
        for name, model_value, pipeline_value in pairs:
            if None not in (model_value, pipeline_value) and \
                    model_value != pipeline_value:
                raise ValueError(
                    f'model.{name} is {model_value!r} but {key}.{name} is '
                    f'{pipeline_value!r}: the model and its data must use '
                    'the same one.')
        rows = transform.get('num_image_tokens')
        if isinstance(rows, int) and tower_rows is not None and \
                rows != tower_rows:
            raise ValueError(
                f'{key}.num_image_tokens is {rows}, but the tower '
                f'{model["vision_encoder"]["pretrained"]} gives {tower_rows} '
                'feature rows an image (its image_size / patch_size, squared'
                '; plus one with select_feature=\'cls_patch\').')
        if isinstance(rows, Mapping):
            _check_anyres_count_agrees(model, key, rows)


def _check_anyres_count_agrees(model: Mapping, key: str,
                               count: Mapping) -> None:
    """An AnyRes ``num_image_tokens`` dict counts with the model's grids,
    merge and ``anyres_max`` (unset on both sides is agreement)."""
    # (model key, its LLaVA default, the count's key)
    pairs = [('image_grid_pinpoints', None, 'grid_pinpoints'),
             ('mm_patch_merge_type', 'flat', 'merge_type'),
             ('anyres_max', None, 'anyres_max')]
    for model_name, default, count_name in pairs:
        model_value = model.get(model_name, default)
        count_value = count.get(count_name)
        if model_name == 'image_grid_pinpoints' and None not in (
                model_value, count_value):
            # Tuples in one file, lists in another.
            model_value = [list(pair) for pair in model_value]
            count_value = [list(pair) for pair in count_value]
        if model_value != count_value:
            raise ValueError(
                f'model.{model_name} is {model_value!r} but '
                f'{key}.num_image_tokens.{count_name} is {count_value!r}: '
                'truncation would count other image rows than the model '
                'makes.')
