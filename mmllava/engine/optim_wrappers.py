"""Optimizer wrappers that refuse an update from a gradient that carries
nothing to learn (all zero) or would corrupt the weights (NaN or inf)."""
import math
from typing import List, Union

import torch
import torch.distributed as dist
from mmengine.device import get_device
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmllava.registry import OPTIM_WRAPPERS

#: The message hub's runtime-info key counting the steps skipped so far.
SKIPPED_STEPS_KEY = 'skipped_steps'


def sharded_total_norm(gradients: List[torch.Tensor]) -> float | None:
    """The L2 norm of the gradient whose shards the ranks hold (this
    rank's are ``gradients``), or None if no rank holds any. A collective:
    every rank must call it."""
    device = gradients[0].device if gradients else torch.device(get_device())
    # One norm on the device (no host sync per tensor), squared to sum.
    squares = torch.nn.utils.get_total_norm(gradients).double()**2 \
        if gradients else torch.zeros((), dtype=torch.float64, device=device)
    squares_and_count = torch.stack([
        squares.to(device),
        torch.tensor(len(gradients), dtype=torch.float64, device=device)])
    dist.all_reduce(squares_and_count)
    squares, count = squares_and_count.tolist()
    return math.sqrt(squares) if count else None


class SkipBadStepMixin:
    """Checks the accumulated gradient before each optimizer step and skips
    the step when its norm is zero or not finite.

    - Zero: every label of the batch (or of the whole accumulation window)
      was masked, or no trainable weight got a gradient. An AdamW step would
      still move the weights (momentum, weight decay) on a batch that holds
      no supervision.
    - NaN or inf: applying it would corrupt every weight it touches.

    The check reads gradients after backward, where DDP has already
    averaged them over the ranks, so every rank takes the same decision
    without another collective. Under FSDP each rank holds a shard of the
    gradient: the strategy sets :attr:`sharded_gradients` and the norm is
    summed over the ranks, so they still decide alike (a rank that skipped
    alone would leave the others waiting in the clipping's collective). A
    non-finite micro-batch in an accumulation
    window poisons the window's sum, so the whole window is skipped. Under
    AMP with an active loss scaler, a non-finite scaled gradient is an
    overflow the scaler must see (it skips the step itself and lowers the
    scale), so only the zero case is handled here.
    """

    #: Whether each rank's gradients are a shard of the whole (FSDP).
    sharded_gradients: bool = False

    def step(self, **kwargs) -> None:
        reason = self._reason_to_skip()
        if reason is None:
            super().step(**kwargs)
            return
        message_hub = MessageHub.get_current_instance()
        skipped = message_hub.get_info(SKIPPED_STEPS_KEY, 0) + 1
        message_hub.update_info(SKIPPED_STEPS_KEY, skipped)
        # The runner counts this iteration only after its hooks ran.
        iteration = message_hub.get_info('iter', -1) + 1
        MMLogger.get_current_instance().warning(
            f'Skipped the optimizer step at iteration {iteration}: {reason} '
            f'({skipped} skipped so far).')

    def _reason_to_skip(self) -> str | None:
        gradients = self._gradients()
        if self.sharded_gradients:
            norm = sharded_total_norm(gradients)
        elif gradients:
            norm = torch.nn.utils.get_total_norm(gradients).item()
        else:
            norm = None
        if norm is None:
            return 'no trainable weight has a gradient'
        if norm == 0:
            return 'the gradient is zero (no supervised token)'
        if not math.isfinite(norm) and not self._scaler_handles_overflow():
            return f'the gradient norm is {norm}'
        return None

    def _gradients(self) -> List[torch.Tensor]:
        return [param.grad for group in self.optimizer.param_groups
                for param in group['params'] if param.grad is not None]

    def _scaler_handles_overflow(self) -> bool:
        scaler = getattr(self, 'loss_scaler', None)
        return scaler is not None and scaler.is_enabled()


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(SkipBadStepMixin, OptimWrapper):
    """mmengine's :class:`OptimWrapper` that skips an optimizer step whose
    gradient is all zero or not finite (see :class:`SkipBadStepMixin`),
    logging the iteration and counting the skips in the message hub's
    ``skipped_steps`` runtime info.

    Takes :class:`OptimWrapper`'s arguments (``optimizer``, ``clip_grad``,
    ``accumulative_counts``).
    """


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(SkipBadStepMixin, AmpOptimWrapper):
    """mmengine's :class:`AmpOptimWrapper` with the same guard as
    :class:`GuardedOptimWrapper`; overflows of fp16 loss scaling stay with
    the loss scaler.

    On an accelerator it is mmengine's wrapper unchanged. On the CPU, where
    mmengine 0.10.7's wrapper refuses to start (it asserts a GPU, NPU, MLU
    or MUSA device), it autocasts to bfloat16 without loss scaling: bf16
    has fp32's exponent range, so gradients do not underflow, and the
    scaler stays disabled (state and checkpoints carry no scale). The guard
    then also skips non-finite steps itself.

    Args:
        loss_scale (float or str or dict): As in :class:`AmpOptimWrapper`
            (on an accelerator); unused on the CPU. Defaults to
            ``'dynamic'``.
        dtype (str or torch.dtype, optional): The autocast dtype. On the CPU
            only ``'bfloat16'`` (the default there). Defaults to None
            (mmengine's default on an accelerator).
        use_fsdp (bool): As in :class:`AmpOptimWrapper` (a sharded loss
            scaler for FSDP); unused on the CPU. Defaults to False.
        **kwargs: :class:`OptimWrapper` arguments (``optimizer``,
            ``clip_grad``, ``accumulative_counts``).

    Raises:
        ValueError: On the CPU, if ``dtype`` is not bfloat16.
    """

    def __init__(self, loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None,
                 use_fsdp: bool = False, **kwargs) -> None:
        if get_device() != 'cpu':
            super().__init__(loss_scale=loss_scale, dtype=dtype,
                             use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(
                f'Mixed precision on the CPU computes in bfloat16 only, got '
                f'dtype={dtype!r} (mmengine 0.10.7 autocasts the CPU to '
                'bfloat16 only); use --amp-dtype bfloat16, or a GPU for '
                'float16.')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16
