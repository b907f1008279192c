"""Validation and test generation with the CPU speed-ups."""
from contextlib import ExitStack
from typing import Optional

from mmengine.hooks import Hook

from mmllava.models.cpu_generation import fast_cpu_generation
from mmllava.models.packed_linears import release_packed_kernels
from mmllava.registry import HOOKS


@HOOKS.register_module()
class CPUGenerationHook(Hook):
    """Generate with :func:`~mmllava.models.cpu_generation.
    fast_cpu_generation` during each validation and test epoch: on CPU, the
    model's float32 linear layers on oneDNN-packed weights where those are
    faster on this machine, and the LLM's decoding with the lean loop where
    it supports the LLM (docs/inference.md).

    The packed copies are made at the first epoch and dropped after each
    validation epoch, as training changes the weights (a test run keeps them
    to its end). ``tools/test.py`` adds this hook; a training config may
    list it in ``custom_hooks`` to validate faster.
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._inside: Optional[ExitStack] = None

    def _enter(self, runner) -> None:
        self._inside = ExitStack()
        self._inside.enter_context(fast_cpu_generation(runner.model))

    def _leave(self) -> None:
        if self._inside is not None:
            self._inside.close()
            self._inside = None

    def before_val_epoch(self, runner) -> None:
        self._enter(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._leave()
        release_packed_kernels(runner.model)

    def before_test_epoch(self, runner) -> None:
        self._enter(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._leave()
