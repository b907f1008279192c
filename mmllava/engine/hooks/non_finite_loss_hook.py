"""Stop training at a NaN or inf loss, or skip that batch, naming it."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict

from mmllava.engine.optim_wrappers import SkipBadStepMixin
from mmllava.registry import HOOKS

ACTIONS = ('stop', 'skip')


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """After each training iteration, act on a NaN or inf loss, naming the
    iteration and the batch's sample ids.

    Under :class:`~mmllava.engine.GuardedOptimWrapper` (the recipes' optimizer
    wrapper) a non-finite loss never reaches the weights: the wrapper skips
    the step before this hook runs. The hook then either stops the run
    (``'stop'``: fix the records, resume from the last checkpoint) or logs
    the batch and trains on (``'skip'``). Under a plain ``OptimWrapper`` the
    step has already been applied when the hook sees the loss, so only
    ``'stop'`` is allowed, and the error says the weights hold the update.

    Args:
        action (str): ``'stop'`` raises :class:`FloatingPointError`;
            ``'skip'`` logs a warning and goes on. Defaults to ``'stop'``.
        max_skips (int, optional): With ``'skip'``, stop anyway once this
            many batches were skipped in the run. Defaults to None (no
            limit).
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop',
                 max_skips: Optional[int] = None) -> None:
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteLossHook action must be one of '
                             f'{ACTIONS}, got {action!r}')
        if max_skips is not None and action != 'skip':
            raise ValueError('NonFiniteLossHook max_skips applies only to '
                             "action='skip'")
        self.action = action
        self.max_skips = max_skips
        self.num_skipped = 0
        self.guarded = False

    def before_train(self, runner) -> None:
        wrappers = runner.optim_wrapper
        wrappers = (wrappers.values() if isinstance(wrappers, OptimWrapperDict)
                    else [wrappers])
        self.guarded = all(isinstance(wrapper, SkipBadStepMixin)
                           for wrapper in wrappers)
        if self.action == 'skip' and not self.guarded:
            raise ValueError(
                "NonFiniteLossHook(action='skip') needs an optimizer wrapper "
                'that skips non-finite steps (GuardedOptimWrapper or '
                f'GuardedAmpOptimWrapper), got '
                f'{[type(wrapper).__name__ for wrapper in wrappers]}')

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
        where = (f'Non-finite loss {loss} at iteration {runner.iter + 1} '
                 f'(batch {batch_idx} of epoch {runner.epoch + 1}); sample '
                 f'ids of the batch: {sample_ids}')
        if self.action == 'skip':
            self.num_skipped += 1
            if self.max_skips is None or self.num_skipped <= self.max_skips:
                runner.logger.warning(
                    f'{where}. Skipped this batch ({self.num_skipped} '
                    'skipped so far).')
                return
            raise FloatingPointError(
                f'{where}. More than max_skips={self.max_skips} batches had '
                'a non-finite loss; stopping.')
        outcome = ('its update was skipped, so the weights hold no trace of '
                   'it' if self.guarded else
                   'the optimizer step already applied it to the weights: '
                   'resume from the last checkpoint')
        raise FloatingPointError(f'{where}; {outcome}.')
