"""Config mistakes that mmengine lets through: a misspelled top-level key
(ignored, so the base's value trains) and a ``--cfg-options`` value of the
wrong type (a string where the recipe has a number, failing deep inside the
optimizer or not at all)."""
import difflib
import inspect
import logging
from typing import Any, Mapping

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import FlexibleRunner, Runner

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
