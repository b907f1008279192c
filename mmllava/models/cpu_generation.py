"""The CPU generation speed-ups, together: oneDNN-packed linear weights
and the lean decoding loop, each where it applies."""
from contextlib import contextmanager
from typing import Iterator, NamedTuple

from torch import nn

from mmllava.models.decode_loop import lean_decoding
from mmllava.models.packed_linears import packed_cpu_kernels


class CPUGeneration(NamedTuple):
    """What :func:`fast_cpu_generation` switched on.

    Args:
        packed_layers (int): Linear layers running on packed weights.
        lean_loop (bool): Whether the LLM decodes with the lean loop.
    """

    packed_layers: int
    lean_loop: bool


@contextmanager
def fast_cpu_generation(model: nn.Module,
                        only_if_faster: bool = True
                        ) -> Iterator[CPUGeneration]:
    """Inside the block, ``model`` generates with
    :func:`~mmllava.models.packed_linears.packed_cpu_kernels` and
    :func:`~mmllava.models.decode_loop.lean_decoding`: on CPU, its linear
    layers on packed weights where those are faster on this machine, and
    its LLM's ``generate`` with the lean loop where the LLM is one it
    supports. Elsewhere (GPUs, other LLMs) both step aside and say why.

    Args:
        model (nn.Module): A LLaVA model or a transformers causal LM.
        only_if_faster (bool): Passed to ``packed_cpu_kernels``.
    """
    with packed_cpu_kernels(model, only_if_faster) as packed_layers, \
            lean_decoding(model) as lean_loop:
        yield CPUGeneration(packed_layers, lean_loop)
