"""Parameter sizes that hold also for parameters DeepSpeed ZeRO-3 keeps
partitioned (their local tensor is empty; the whole size is ``ds_numel``)."""
from typing import Iterable

from torch import nn


def is_partitioned(param: nn.Parameter) -> bool:
    """Whether DeepSpeed ZeRO-3 manages ``param`` (built inside
    ``zero.Init`` or partitioned by ``deepspeed.initialize``)."""
    return hasattr(param, 'ds_id')


def full_numel(param: nn.Parameter) -> int:
    """The parameter's whole element count, partitioned or not."""
    return getattr(param, 'ds_numel', param.numel())


def local_numel(param: nn.Parameter) -> int:
    """Elements this process holds: its ZeRO-3 partition, or the whole."""
    partition = getattr(param, 'ds_tensor', None)
    return param.numel() if partition is None else partition.numel()


def held_share(params: Iterable[nn.Parameter]) -> tuple[int, int]:
    """``(held, whole)``: elements this process holds, of all of them."""
    held = whole = 0
    for param in params:
        held += local_numel(param)
        whole += full_numel(param)
    return held, whole
