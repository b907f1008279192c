"""Random-state isolation for weight loading."""
import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def rng_left_as_found() -> Iterator[None]:
    """Restore the CPU random state on exit.

    Loading pretrained weights draws no random numbers, except under
    DeepSpeed ZeRO-3: transformers then builds the model inside
    ``deepspeed.zero.Init``, which initialises every weight before the
    checkpoint overwrites it. Loading inside this context keeps what is
    built after it on the CPU (the projector's initialisation) the same in
    both. CUDA generators are left alone: touching them would start CUDA
    in processes that build on the CPU.
    """
    with torch.random.fork_rng(devices=[]):
        yield
