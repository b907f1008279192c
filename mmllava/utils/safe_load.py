"""Loading torch pickle files without running code from them.

Every ``.pth`` / ``.bin`` that mmllava reads, and every local checkpoint
mmengine's runner reads (``load_from``, ``--resume``; see
``mmllava/engine/checkpoint_loader.py``), goes through
:func:`load_torch_file`: ``torch.load(weights_only=True)``, which unpickles
tensors, plain containers and the allow-listed mmengine and numpy types of
:func:`allow_checkpoint_types` only. A file that needs anything else could run
arbitrary code when unpickled, so it is refused, with an error naming the
opt-in: ``--allow-unsafe-pickle`` on the tools, ``allow_unsafe_pickle=True``
in the python API, or the environment variable below (which the tools' flag
sets, so that every process of a distributed run sees it).
"""
import contextlib
import contextvars
import functools
import os
import pickle
import warnings
import zipfile
from typing import Any, Iterator, Optional

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

from mmllava.utils.runner_args import (ALLOW_UNSAFE_PICKLE_ENV,
                                       UNSAFE_PICKLE_FLAG)

#: Set by :func:`unsafe_pickle_scope` for the loads inside it (thread- and
#: task-local, unlike the environment).
_allowed_in_scope: contextvars.ContextVar[Optional[bool]] = \
    contextvars.ContextVar('allow_unsafe_pickle', default=None)


class UnsafePickleError(pickle.UnpicklingError):
    """A file needs arbitrary unpickling and nobody allowed it."""


class UnreadableCheckpointError(RuntimeError):
    """A weight file is empty, truncated or not a torch file at all."""


#: The first bytes of a torch zip archive, and of torch's legacy (before
#: 1.6) format: a pickle protocol 2 stream.
ZIP_MAGIC = b'PK\x03\x04'
LEGACY_TORCH_MAGIC = b'\x80\x02'


def unreadable_reason(path: str) -> Optional[str]:
    """Why ``path`` cannot be a torch file, or None if it may be one.

    Cheap: reads the first bytes and, for a zip archive, its central
    directory at the end, which a truncated write or copy lacks.
    """
    size = os.path.getsize(path)
    if size == 0:
        return 'the file is empty'
    with open(path, 'rb') as file:
        head = file.read(4)
    if head == ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            return (f'the file is truncated ({size} bytes): it starts as '
                    "a torch zip archive but lacks the archive's end (an "
                    'interrupted save or copy)')
        return None
    if head.startswith(LEGACY_TORCH_MAGIC):
        return None
    return (f'the file is not a torch checkpoint (it starts with '
            f'{head!r}, neither a zip archive nor a legacy torch file)')


def unsafe_pickle_allowed(allow: Optional[bool] = None) -> bool:
    """``allow`` if given, else the enclosing :func:`unsafe_pickle_scope`'s
    setting, else whether the environment opts in."""
    for setting in (allow, _allowed_in_scope.get()):
        if setting is not None:
            return setting
    return os.environ.get(ALLOW_UNSAFE_PICKLE_ENV, '') == '1'


@contextlib.contextmanager
def unsafe_pickle_scope(allow: Optional[bool]) -> Iterator[None]:
    """Every :func:`load_torch_file` inside (however deep, e.g. a
    converter reading ``.bin`` shards) follows ``allow``; None leaves the
    decision to the environment."""
    token = _allowed_in_scope.set(allow)
    try:
        yield
    finally:
        _allowed_in_scope.reset(token)


@functools.cache
def allow_checkpoint_types() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints.

    mmengine 0.10.7 checkpoints hold the message hub's ``HistoryBuffer`` and
    numpy scalars and arrays, which the safe unpickler refuses. Allow-listing
    just these types (and mmengine's ``ConfigDict``, a dict) keeps the
    safety: no arbitrary code runs on load. :func:`load_torch_file` calls it;
    ``register_all_modules`` too, for code that calls ``torch.load``
    itself.
    """
    # numpy 2 pickles arrays through numpy._core (numpy.core is deprecated).
    numpy_types = [np.ndarray, np.dtype, np._core.multiarray._reconstruct,
                   np._core.multiarray.scalar]
    numpy_types += [type(np.dtype(name)) for name in (
        'float64', 'float32', 'float16', 'int64', 'int32', 'bool')]
    # DeepSpeed checkpoints (mmengine 0.10.7's DeepSpeedStrategy) store
    # DeepSpeed's config, built from the strategy's ConfigDicts.
    torch.serialization.add_safe_globals([HistoryBuffer, ConfigDict,
                                          *numpy_types])


def load_torch_file(path: str, map_location: Any = 'cpu', mmap: bool = False,
                    allow_unsafe_pickle: Optional[bool] = None) -> Any:
    """``torch.load`` with ``weights_only=True``, refusing files that need
    more.

    Args:
        path (str): The file.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.
        mmap (bool): Memory-map the tensors instead of reading them.
        allow_unsafe_pickle (bool, optional): Load a file that needs full
            unpickling anyway (only for files whose source you trust).
            Defaults to None: an enclosing :func:`unsafe_pickle_scope`, else
            the environment decides (off unless
            ``MMLLAVA_ALLOW_UNSAFE_PICKLE=1``).

    Raises:
        UnreadableCheckpointError: The file is empty, truncated, corrupt or
            not a torch file; the message names it and says which.
        UnsafePickleError: The file needs full unpickling and it was not
            allowed. The message names the file, what torch refused and how
            to opt in.
    """
    allow_checkpoint_types()
    reason = unreadable_reason(path)
    if reason is not None:
        raise UnreadableCheckpointError(f'Cannot load {path}: {reason}.')
    try:
        return torch.load(path, map_location=map_location, mmap=mmap,
                          weights_only=True)
    except (RuntimeError, EOFError, KeyError, zipfile.BadZipFile) as error:
        # What torch raises for an archive damaged inside (a bad record, a
        # missing tensor file); its messages do not name the file. Other
        # RuntimeErrors (a CUDA map_location on a CPU machine) pass as they
        # are.
        if isinstance(error, RuntimeError) and \
                'PytorchStreamReader' not in str(error):
            raise
        raise UnreadableCheckpointError(
            f'Cannot load {path}: the file is corrupt ({type(error).__name__}'
            f': {str(error).splitlines()[0] if str(error) else "no detail"})'
            '.') from error
    except pickle.UnpicklingError as error:
        refused = _refused_global(error)
        if not unsafe_pickle_allowed(allow_unsafe_pickle):
            raise UnsafePickleError(
                f'{path} needs arbitrary unpickling to load ({refused}), '
                'which can run code hidden in the file. Load it only if you '
                f'trust where it came from: {UNSAFE_PICKLE_FLAG} on the '
                'tools, allow_unsafe_pickle=True in the python API, or '
                f'{ALLOW_UNSAFE_PICKLE_ENV}=1. Better: convert it once to '
                'safetensors.') from None
    warnings.warn(f'Loading {path} with full unpickling ({refused}), as '
                  'allowed.')
    return torch.load(path, map_location=map_location, mmap=mmap,
                      weights_only=False)


def _refused_global(error: pickle.UnpicklingError) -> str:
    """The line of torch's message that says what the safe unpickler met."""
    for line in str(error).splitlines():
        if 'GLOBAL' in line or 'Unsupported' in line:
            return line.strip()
    return str(error).splitlines()[0]
