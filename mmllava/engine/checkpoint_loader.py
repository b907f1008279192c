"""mmengine's loader for local checkpoint files, replaced by one that
refuses files needing arbitrary unpickling (:mod:`mmllava.utils.safe_load`).

:func:`register_checkpoint_loader` puts it in place;
``register_all_modules`` calls it.
"""
import os
from typing import Any

from mmengine.logging import print_log
from mmengine.runner import CheckpointLoader

from mmllava.converters.deepspeed_checkpoint import \
    consolidate_deepspeed_checkpoint
from mmllava.utils.files import is_deepspeed_checkpoint, resolve_checkpoint
from mmllava.utils.safe_load import load_torch_file


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local paths (``load_from``, resume,
    :func:`mmengine.runner.load_checkpoint`), through
    :func:`load_torch_file`.

    A training run's work dir stands for its latest checkpoint, so a
    recipe's ``load_from`` can name the previous stage's work dir. A
    DeepSpeed checkpoint folder is consolidated in memory into the weights
    a plain run saves (it cannot be resumed by a plain run: resume it under
    its ``--strategy``).
    """
    filename = resolve_checkpoint(os.path.expanduser(filename))
    if is_deepspeed_checkpoint(filename):
        return consolidate_deepspeed_checkpoint(
            filename, lambda line: print_log(line, logger='current'))
    return load_torch_file(filename, map_location=map_location)


def register_checkpoint_loader() -> None:
    """Make :func:`load_local_checkpoint` mmengine's loader for local paths
    (``force``: it replaces mmengine's own)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint,
                                     force=True)
