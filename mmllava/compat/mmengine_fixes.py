"""Fixes for mmengine 0.10.7 that every run needs (see
:mod:`mmllava.compat`)."""
import torch
from mmengine.logging import HistoryBuffer


def _history_buffer_state(self: HistoryBuffer) -> dict:
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def pickle_history_buffers_without_methods() -> None:
    """``HistoryBuffer.__getstate__`` without the statistics methods.

    mmengine 0.10.7 pickles the class-level statistics methods with each
    buffer; pickle stores them through ``builtins.getattr``, which
    ``weights_only`` loading rightly refuses. They are registered again on
    import, and ``__setstate__`` already accepts a state without them.
    """
    HistoryBuffer.__getstate__ = _history_buffer_state


def skip_set_device_without_cuda() -> None:
    """Make ``torch.cuda.set_device`` a no-op on a machine without CUDA.

    mmengine 0.10.7's pytorch launcher calls it unconditionally, which fails
    on a CPU build of torch (``torch._C has no attribute
    '_cuda_setDevice'``) before gloo could run the processes on the CPU.
    """
    if not torch.cuda.is_available():
        torch.cuda.set_device = lambda device: None
