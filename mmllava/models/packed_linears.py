"""oneDNN-packed ``nn.Linear`` weights for generation on CPU.

Decoding runs every linear layer on one row per sample and step: a
matrix-vector product bound by reading the weight. torch's float32 CPU
``nn.Linear`` goes through its BLAS (MKL), which on the project machine read
weights well below the memory's speed for such shapes; oneDNN's kernels, on
a copy of the weight reordered once into its blocked layout, ran them 3-4x
faster (docs/inference.md). The results differ from torch's kernels only in
float rounding (about 1e-6 relative), as results of two BLAS libraries do.

Not every CPU gains: where torch's BLAS already reads those weights fast
(an Intel Xeon with AVX-512 ran the packed weights about 13% slower at batch
1), packing costs time. So :func:`packed_cpu_kernels` first times one row
through the model's largest weight shapes both ways, once per process and
shape set (:func:`packing_is_faster`), and packs only where it is faster.

The model classes know nothing of this: the places that generate (the
inference API, the server, ``tools/test.py`` through
:class:`~mmllava.engine.hooks.CPUGenerationHook`, the benchmark) opt in with
:func:`packed_cpu_kernels`.
"""
import logging
import threading
import time
import weakref
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import nn

from mmllava.utils.parameters import is_partitioned


def onednn_available() -> bool:
    """Whether this torch build can pack and run oneDNN linear weights."""
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, '_reorder_linear_weight')
            and hasattr(torch.ops.mkldnn, '_linear_pointwise'))


def is_packable(module: nn.Module) -> bool:
    """A plain float32 CPU ``nn.Linear``: not a subclass with a forward of
    its own (quantized layers), not hooked through an instance ``forward``
    (accelerate), not a DeepSpeed ZeRO-3 partition."""
    if not isinstance(module, nn.Linear) or \
            type(module).forward is not nn.Linear.forward or \
            'forward' in vars(module):
        return False
    tensors = [module.weight] + ([module.bias] if module.bias is not None
                                 else [])
    return all(type(t) in (torch.Tensor, nn.Parameter)
               and not is_partitioned(t) and t.device.type == 'cpu'
               and t.dtype == torch.float32 and t.layout == torch.strided
               and t.numel() > 0 for t in tensors)


def packed_forward(linear: nn.Linear, packed_weight: torch.Tensor,
                   inputs: torch.Tensor) -> torch.Tensor:
    """``linear(inputs)`` on the packed weight; torch's own kernel where
    autograd or autocast needs it, or the input is not float32."""
    if inputs.dtype != torch.float32 or inputs.device.type != 'cpu' or \
            torch.is_autocast_enabled('cpu') or \
            (torch.is_grad_enabled() and
             (inputs.requires_grad or linear.weight.requires_grad)):
        return F.linear(inputs, linear.weight, linear.bias)
    return torch.ops.mkldnn._linear_pointwise(inputs, packed_weight,
                                              linear.bias, 'none', [], '')


class PackedLinears:
    """oneDNN-packed copies of a model's float32 CPU linear weights, made on
    first use and kept while the weights stay as they are.

    A packed copy is remade when its weight changed in place (optimizer
    steps, ``load_state_dict``) or was replaced; :meth:`clear` drops them
    all. The copies are not part of the model's state: copying or pickling
    the model carries none of them. One instance serves one model; threads
    may generate with it at once.
    """

    def __init__(self) -> None:
        #: ``id(linear)`` -> (the layer, its weight's identity and version
        #: when packed, the packed weight). The layer is held weakly and
        #: checked, as a freed layer's id may be reused.
        self._packed: dict[int, tuple] = {}
        self._lock = threading.Lock()
        #: Blocks inside :meth:`applied` now, and the layers they run.
        self._users = 0
        self._linears: list[nn.Linear] = []

    def __len__(self) -> int:
        return len(self._packed)

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def clear(self) -> None:
        self._packed.clear()

    def packed_weight(self, linear: nn.Linear) -> torch.Tensor:
        weight = linear.weight
        version = (weight.data_ptr(), weight._version, tuple(weight.shape))
        entry = self._packed.get(id(linear))
        if entry is None or entry[0]() is not linear or entry[1] != version:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(
                    weight.detach())
            entry = (weakref.ref(linear), version, packed)
            self._packed[id(linear)] = entry
        return entry[2]

    @contextmanager
    def applied(self, module: nn.Module) -> Iterator[int]:
        """Run ``module``'s packable linear layers on packed weights inside
        the block; yields how many there are. The first block to enter
        installs them and the last to leave takes them out."""
        with self._lock:
            if not self._users:
                self._install(module)
            self._users += 1
        try:
            yield len(self._linears)
        finally:
            with self._lock:
                self._users -= 1
                if not self._users:
                    for linear in self._linears:
                        del linear.forward
                    self._linears = []

    def _install(self, module: nn.Module) -> None:
        linears = [m for m in module.modules() if is_packable(m)]
        # Entries of layers no longer in the model (replaced) would keep
        # their weights' copies alive.
        current = {id(linear) for linear in linears}
        for key in [key for key in self._packed if key not in current]:
            del self._packed[key]
        # Every weight is packed before any layer changes, so a failure
        # leaves the model as it was.
        forwards = [partial(packed_forward, linear, self.packed_weight(linear))
                    for linear in linears]
        for linear, forward in zip(linears, forwards):
            linear.forward = forward
        self._linears = linears


#: Each model's packed copies, kept while the model lives (held weakly: the
#: entry goes with the model).
_PACKED_BY_MODEL: 'weakref.WeakKeyDictionary[nn.Module, PackedLinears]' = \
    weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def _best_seconds(run: Callable[[], object], calls: int,
                  repeats: int) -> float:
    """The fastest of ``repeats`` timings of ``calls`` runs (one run first,
    untimed)."""
    run()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, time.perf_counter() - start)
    return best


def time_both_kernels(linears: list[nn.Linear], calls: int = 5,
                      repeats: int = 3) -> tuple[float, float]:
    """Seconds for one row through one layer of each of the (up to three)
    largest weight shapes among ``linears``, on torch's kernels and on
    packed weights (best of ``repeats`` timings of ``calls`` runs each)."""
    by_shape = {tuple(linear.weight.shape): linear for linear in linears}
    largest = sorted(by_shape.items(), key=lambda item: -item[0][0] *
                     item[0][1])[:3]
    torch_seconds = packed_seconds = 0.0
    with torch.no_grad():
        for (_, in_features), linear in largest:
            row = torch.randn(1, in_features)
            packed = torch.ops.mkldnn._reorder_linear_weight(
                linear.weight.detach())
            torch_seconds += _best_seconds(
                partial(F.linear, row, linear.weight, linear.bias), calls,
                repeats)
            packed_seconds += _best_seconds(
                partial(packed_forward, linear, packed, row), calls, repeats)
    return torch_seconds, packed_seconds


#: :func:`packing_is_faster`'s answers, by weight shapes and thread count.
_FASTER_BY_SHAPES: dict[tuple, bool] = {}


def packing_is_faster(linears: list[nn.Linear]) -> bool:
    """Whether packed weights run ``linears``' decoding products at least
    5% faster on this machine than torch's kernels
    (:func:`time_both_kernels`). Measured once per process for each set of
    weight shapes and thread count, and logged."""
    shapes = tuple(sorted({tuple(linear.weight.shape)
                           for linear in linears}))
    key = (shapes, torch.get_num_threads())
    with _REGISTRY_LOCK:
        if key not in _FASTER_BY_SHAPES:
            torch_seconds, packed_seconds = time_both_kernels(linears)
            faster = packed_seconds < 0.95 * torch_seconds
            _FASTER_BY_SHAPES[key] = faster
            print_log(
                f'oneDNN-packed linear weights: {packed_seconds * 1e3:.2f} '
                f'ms against {torch_seconds * 1e3:.2f} ms on torch\'s '
                'kernels for one row through the largest layers; '
                + ('generating on packed weights.' if faster else
                   'generating on torch\'s kernels (packing would not pay '
                   'off on this machine).'),
                logger='current', level=logging.INFO)
        return _FASTER_BY_SHAPES[key]


#: Each model's answer of :func:`packing_is_faster`, so that a generation
#: does not walk the model's modules again to ask (held weakly).
_PAYS_OFF_BY_MODEL: 'weakref.WeakKeyDictionary[nn.Module, bool]' = \
    weakref.WeakKeyDictionary()


def _packing_pays_off(model: nn.Module) -> bool:
    """Whether ``model`` has packable layers that run faster packed here,
    decided at the model's first generation and kept."""
    pays_off = _PAYS_OFF_BY_MODEL.get(model)
    if pays_off is None:
        linears = [m for m in model.modules() if is_packable(m)]
        pays_off = bool(linears) and packing_is_faster(linears)
        _PAYS_OFF_BY_MODEL[model] = pays_off
    return pays_off


@contextmanager
def packed_cpu_kernels(model: nn.Module,
                       only_if_faster: bool = True) -> Iterator[int]:
    """Run ``model``'s plain float32 CPU linear layers on oneDNN-packed
    copies of their weights inside the block (see :func:`is_packable` for
    which layers; the others, and anything that needs a gradient, run on
    torch's kernels).

    The copies are made at the first use and kept for the model's next
    blocks, one more copy of those weights in memory, until
    :func:`release_packed_kernels`; a weight changed in place or replaced
    since is packed again before it runs.

    Args:
        model (nn.Module): The model.
        only_if_faster (bool): Pack only where :func:`packing_is_faster`
            says it pays off on this machine (asked at the model's first
            block and kept); False packs wherever oneDNN can. Defaults to
            True.

    Yields:
        int: How many layers run packed (0 where this torch build has no
        oneDNN or packing would not pay off).
    """
    if not onednn_available():
        yield 0
        return
    if only_if_faster and not _packing_pays_off(model):
        yield 0
        return
    with _REGISTRY_LOCK:
        packed = _PACKED_BY_MODEL.get(model)
        if packed is None:
            packed = _PACKED_BY_MODEL[model] = PackedLinears()
    with packed.applied(model) as count:
        yield count


def release_packed_kernels(model: nn.Module) -> None:
    """Drop the packed copies :func:`packed_cpu_kernels` keeps for
    ``model`` (e.g. when it goes back to training)."""
    with _REGISTRY_LOCK:
        packed = _PACKED_BY_MODEL.pop(model, None)
    if packed is not None:
        packed.clear()
