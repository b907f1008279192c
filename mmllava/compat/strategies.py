"""Fixes for mmengine 0.10.7's DeepSpeed and FSDP strategies (see
:mod:`mmllava.compat`)."""
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Callable, Optional

import torch
from mmengine._strategy import DeepSpeedStrategy, FSDPStrategy
from mmengine.logging import print_log
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from mmllava.engine.optim_wrappers import SkipBadStepMixin
from mmllava.utils.parameters import held_share, is_partitioned

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


#: DeepSpeed's mixed-precision config keys and the dtypes they train in.
HALF_DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)


def _build_partitioned(build_model: Callable) -> Callable:
    """``DeepSpeedStrategy.build_model`` that builds a ZeRO-3 model
    partitioned.

    mmengine 0.10.7 builds the model before DeepSpeed sees it, so under
    ZeRO-3 every rank first materialised all of it (a 7B LLM in fp32 is 28
    GB a rank). transformers builds and loads its models inside
    ``deepspeed.zero.Init`` while an ``HfDeepSpeedConfig`` with stage 3 is
    alive, so each rank holds only its partition of the LLM and the vision
    tower from the start. The strategy keeps that config for the run
    (transformers reads it through a weak reference). The parts mmllava
    builds itself (the projector, LoRA adapters) are small;
    ``deepspeed.initialize`` partitions them. Under bf16 or fp16 they are
    cast to that dtype here: DeepSpeed casts a model's parameters only when
    none was built partitioned, and its ZeRO-3 optimizer fails on a mix.
    """

    def build(self, model) -> nn.Module:
        zero = self.config.get('zero_optimization') or {}
        if isinstance(model, nn.Module) or zero.get('stage') != 3:
            return build_model(self, model)
        from transformers.integrations import HfDeepSpeedConfig
        self.hf_deepspeed_config = HfDeepSpeedConfig(self.config)
        model = build_model(self, model)
        half = next((dtype for key, dtype in HALF_DTYPES.items()
                     if (self.config.get(key) or {}).get('enabled')), None)
        if half is not None:
            for param in model.parameters():
                if not is_partitioned(param):
                    param.data = param.data.to(half)
        held, whole = held_share(model.parameters())
        print_log(
            f'ZeRO-3: built the model partitioned; this rank holds '
            f'{held:,} of its {whole:,} parameters ({held / whole:.1%}).',
            logger='current')
        return model

    return build


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


def _build_sharded_optim_wrapper(build_optim_wrapper: Callable) -> Callable:
    """``FSDPStrategy.build_optim_wrapper`` whose wrapper sees that each
    rank holds a shard of the gradient.

    mmengine 0.10.7's optimizer wrapper clips by ``clip_grad_norm_`` over
    the rank's own parameters: under FSDP that is the norm of the rank's
    shard, so each rank scaled its shard by a different factor. Clipping
    goes through the FSDP root's ``clip_grad_norm_`` (the whole gradient's
    norm, which is also what is logged), and mmllava's bad-step guard sums
    its norm over the ranks.
    """

    def build(self, optim_wrapper, model=None):
        wrapper = build_optim_wrapper(self, optim_wrapper, model)
        if getattr(wrapper, 'clip_func', None) is \
                torch.nn.utils.clip_grad_norm_:
            wrapper.clip_func = _fsdp_clip(model)
        if isinstance(wrapper, SkipBadStepMixin):
            wrapper.sharded_gradients = True
        return wrapper

    return build


def _fsdp_clip(model: FullyShardedDataParallel) -> Callable:
    """A ``clip_grad_norm_`` that clips the FSDP ``model``'s whole
    gradient (the ranks' shards together)."""

    def clip(params, max_norm: float, norm_type: float = 2.0,
             **kwargs) -> torch.Tensor:
        return model.clip_grad_norm_(max_norm, norm_type)

    return clip


def supply_removed_onebit_module() -> None:
    """Answer mmengine's import of DeepSpeed's removed 1-bit optimizers
    (see :class:`_OnebitStandIn`)."""
    sys.meta_path.append(_OnebitStandIn())


def call_deepspeed_checkpoint_hooks() -> None:
    """Let DeepSpeed saves and loads call the runner's checkpoint hooks
    (see :func:`_save_with_hooks`, :func:`_load_with_hooks`)."""
    DeepSpeedStrategy.save_checkpoint = _save_with_hooks(
        DeepSpeedStrategy.save_checkpoint)
    DeepSpeedStrategy.resume = _load_with_hooks(DeepSpeedStrategy.resume)
    DeepSpeedStrategy.load_checkpoint = _load_with_hooks(
        DeepSpeedStrategy.load_checkpoint)


def build_zero3_models_partitioned() -> None:
    """See :func:`_build_partitioned`."""
    DeepSpeedStrategy.build_model = _build_partitioned(
        DeepSpeedStrategy.build_model)


def load_fsdp_optimizer_states() -> None:
    """See :func:`_load_fsdp_optim_state_dict`."""
    FSDPStrategy.load_optim_state_dict = _load_fsdp_optim_state_dict


def clip_fsdp_gradients_as_a_whole() -> None:
    """See :func:`_build_sharded_optim_wrapper`."""
    FSDPStrategy.build_optim_wrapper = _build_sharded_optim_wrapper(
        FSDPStrategy.build_optim_wrapper)
