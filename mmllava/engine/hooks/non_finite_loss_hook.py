"""Stop training at the first NaN or inf loss, naming the batch."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmllava.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """After each training iteration, raise :class:`FloatingPointError` if
    the loss is NaN or inf, naming the iteration and the batch's sample ids.

    The check runs after the optimizer step (hooks see the outputs of
    ``train_step``), so the weights already hold that step's update; the
    run stops there instead of training on, and the sample ids say which
    records to inspect. Resume from the last checkpoint after fixing them.

    Takes no arguments: ``dict(type='NonFiniteLossHook')``.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().float().sum().item()
        if math.isfinite(loss):
            return
        samples = (data_batch or {}).get('data_samples') or []
        sample_ids = [sample.metainfo.get('sample_id') for sample in samples
                      if hasattr(sample, 'metainfo')]
        # runner.iter counts this iteration only after the hooks ran.
        raise FloatingPointError(
            f'Non-finite loss {loss} at iteration {runner.iter + 1} '
            f'(batch {batch_idx} of epoch {runner.epoch + 1}); sample ids of '
            f'the batch: {sample_ids}')

