"""mmengine's loader for local checkpoint files, replaced by one that
refuses files needing arbitrary unpickling (:mod:`mmllava.utils.safe_load`).

:func:`register_checkpoint_loader` puts it in place;
``register_all_modules`` calls it.
"""
from mmengine.runner import CheckpointLoader

from mmllava.converters.layouts import read_checkpoint


def register_checkpoint_loader() -> None:
    """Make :func:`~mmllava.converters.layouts.read_checkpoint` mmengine's
    loader for local paths (``load_from``, resume,
    :func:`mmengine.runner.load_checkpoint`; ``force``: it replaces
    mmengine's own)."""
    CheckpointLoader.register_scheme(prefixes='', loader=read_checkpoint,
                                     force=True)
