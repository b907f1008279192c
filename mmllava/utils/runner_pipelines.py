"""The pipelines of a config that the runner builds, and the
``TokenizeConversation`` steps in them."""
from typing import Any, Mapping, Union

from mmengine.config import Config

#: Where a config's pipelines are that the runner builds (a config's other
#: top-level names are its own variables, which may hold another stage's
#: pipeline).
RUNNER_PIPELINE_KEYS = ('train_dataloader', 'val_dataloader',
                        'test_dataloader', 'custom_hooks')


def _tokenize_steps(node: Any, path: str) -> list[tuple[str, dict]]:
    """Every ``TokenizeConversation`` under ``node``, with its dotted key."""
    found = []
    if isinstance(node, Mapping):
        if str(node.get('type')).split('.')[-1] == 'TokenizeConversation':
            found.append((path, node))
        for key, value in node.items():
            found += _tokenize_steps(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            found += _tokenize_steps(value, f'{path}.{index}')
    return found


def runner_tokenize_steps(
        cfg: Union[Config, Mapping]) -> list[tuple[str, dict]]:
    """Every ``TokenizeConversation`` of the pipelines the runner builds
    (:data:`RUNNER_PIPELINE_KEYS`), with its dotted key
    (``'train_dataloader.dataset.pipeline.2'``).

    Args:
        cfg (Config | Mapping): A config, or its ``to_dict()``.

    Returns:
        list[tuple[str, dict]]: The dotted keys and the steps themselves
        (not copies: a change to a step changes ``cfg``).
    """
    found = []
    for key in RUNNER_PIPELINE_KEYS:
        if key in cfg:
            found += _tokenize_steps(cfg[key], key)
    return found
