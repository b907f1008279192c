"""Fixes for mmengine's DeepSpeed and FSDP strategies on the pinned stack,
each naming the version it works around; applied on import.

Imported by :mod:`mmllava.engine` rather than :mod:`mmllava.utils.compat`,
since it imports ``mmengine._strategy`` (and DeepSpeed, when installed),
whose cost the data tools should not pay. The CUDA ``set_device`` fix, which
every launcher needs, lives in :mod:`mmllava.utils.compat`.
"""
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Callable, Optional

from mmengine._strategy import DeepSpeedStrategy, FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel

#: The module mmengine 0.10.7 imports to register DeepSpeed's 1-bit
#: optimizers; deepspeed 0.19 removed it.
ONEBIT_MODULE = 'deepspeed.runtime.fp16.onebit'
ONEBIT_OPTIMIZERS = ('OnebitAdam', 'OnebitLamb', 'ZeroOneAdam')


def _removed_optimizer(name: str) -> type:
    """A class named ``name`` that fails when built."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError(
            f'{name} was removed from DeepSpeed (0.19 has no '
            f'{ONEBIT_MODULE}); choose another optimizer.')

    return type(name, (), dict(__init__=__init__))


class _OnebitStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Supplies :data:`ONEBIT_MODULE` when DeepSpeed has none.

    mmengine 0.10.7's ``DeepSpeedStrategy`` imports the 1-bit optimizers
    from there to register them, and fails (``No module named
    'deepspeed.runtime.fp16.onebit'``) with deepspeed >= 0.19. Placed last
    on ``sys.meta_path``, this finder answers only after the real finders
    found nothing, so a DeepSpeed that still has the module keeps it. The
    stand-in's optimizers fail when built, naming the removal.
    """

    def find_spec(self, fullname: str, path, target=None):
        if fullname != ONEBIT_MODULE:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        for name in ONEBIT_OPTIMIZERS:
            setattr(module, name, _removed_optimizer(name))
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Everything was set in :meth:`create_module`."""


def _save_with_hooks(save_checkpoint: Callable) -> Callable:
    """``DeepSpeedStrategy.save_checkpoint`` that calls its ``callback``.

    mmengine 0.10.7 ignores it ("not supported yet"), so the runner's
    ``before_save_checkpoint`` hooks never run: RNGStateHook saved no RNG
    states. The callback gets the extra state DeepSpeed stores as its
    client state, which is what resume hands back.
    """

    def save(self, filename: str, *, extra_ckpt: Optional[dict] = None,
             callback: Optional[Callable] = None, **kwargs) -> None:
        extra_ckpt = dict() if extra_ckpt is None else extra_ckpt
        if callback is not None:
            callback(extra_ckpt)
        save_checkpoint(self, filename, extra_ckpt=extra_ckpt, **kwargs)

    return save


def _load_with_hooks(load: Callable) -> Callable:
    """``DeepSpeedStrategy.resume`` / ``load_checkpoint`` that call their
    ``callback`` with the loaded client state (mmengine 0.10.7 ignores it,
    so ``after_load_checkpoint`` hooks never ran)."""

    def load_and_call(self, filename: str, *,
                      callback: Optional[Callable] = None, **kwargs) -> dict:
        checkpoint = load(self, filename, **kwargs)
        if callback is not None:
            callback(checkpoint)
        return checkpoint

    return load_and_call


def _load_fsdp_optim_state_dict(self, state_dict: dict) -> None:
    """``FSDPStrategy.load_optim_state_dict`` with the arguments in torch's
    order.

    mmengine 0.10.7 calls ``FSDP.optim_state_dict_to_load(state_dict,
    model, optimizer)``; torch >= 2.1 takes ``(model, optim,
    optim_state_dict)``, so resuming an FSDP run failed.
    """
    optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
        self.model, self.optim_wrapper.optimizer, state_dict)
    self.optim_wrapper.load_state_dict(optim_state_dict)


sys.meta_path.append(_OnebitStandIn())
DeepSpeedStrategy.save_checkpoint = _save_with_hooks(
    DeepSpeedStrategy.save_checkpoint)
DeepSpeedStrategy.resume = _load_with_hooks(DeepSpeedStrategy.resume)
DeepSpeedStrategy.load_checkpoint = _load_with_hooks(
    DeepSpeedStrategy.load_checkpoint)
FSDPStrategy.load_optim_state_dict = _load_fsdp_optim_state_dict
