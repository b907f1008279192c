"""Fixes for the pinned stack, each naming the version it works around."""
import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer


def _history_buffer_state(self: HistoryBuffer) -> dict:
    """``HistoryBuffer.__getstate__`` without the statistics methods.

    mmengine 0.10.7 pickles the class-level statistics methods with each
    buffer; pickle stores them through ``builtins.getattr``, which
    ``weights_only`` loading rightly refuses. They are registered again on
    import, and ``__setstate__`` already accepts a state without them.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints.

    torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
    0.10.7 checkpoints hold the message hub's ``HistoryBuffer`` and numpy
    scalars and arrays, which the safe unpickler refuses. Allow-listing just
    these types (and mmengine's ``ConfigDict``, a dict) keeps the safety
    (no arbitrary code runs on load).
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


def skip_set_device_without_cuda() -> None:
    """Make ``torch.cuda.set_device`` a no-op on a machine without CUDA.

    mmengine 0.10.7's pytorch launcher calls it unconditionally, which fails
    on a CPU build of torch (``torch._C has no attribute
    '_cuda_setDevice'``) before gloo could run the processes on the CPU.
    """
    if not torch.cuda.is_available():
        torch.cuda.set_device = lambda device: None


HistoryBuffer.__getstate__ = _history_buffer_state
allow_mmengine_checkpoint_globals()
skip_set_device_without_cuda()
