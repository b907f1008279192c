"""Random-state isolation for weight loading."""
import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def rng_left_as_found() -> Iterator[None]:
    """Restore the CPU (and current CUDA device's) random state on exit.

    Loading pretrained weights draws no random numbers, except under
    DeepSpeed ZeRO-3: transformers then builds the model inside
    ``deepspeed.zero.Init``, which initialises every weight before the
    checkpoint overwrites it. Loading inside this context keeps what is
    built after (the projector's initialisation) the same in both.
    """
    devices = [torch.cuda.current_device()] \
        if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield
