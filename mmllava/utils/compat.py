"""Fixes for the pinned stack, each naming the version it works around."""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def allow_mmengine_checkpoint_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints.

    torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
    0.10.7 checkpoints hold the message hub's ``HistoryBuffer`` and numpy
    scalars and arrays, which the safe unpickler refuses. Allow-listing just
    these types keeps the safety (no arbitrary code runs on load).
    """
    # numpy 2 pickles arrays through numpy._core (numpy.core is deprecated).
    numpy_types = [np.ndarray, np.dtype, np._core.multiarray._reconstruct,
                   np._core.multiarray.scalar]
    numpy_types += [type(np.dtype(name)) for name in (
        'float64', 'float32', 'float16', 'int64', 'int32', 'bool')]
    torch.serialization.add_safe_globals([HistoryBuffer, *numpy_types])


allow_mmengine_checkpoint_globals()
