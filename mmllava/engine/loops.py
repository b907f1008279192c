"""An epoch-based training loop that resumes in the middle of an epoch,
can validate every N iterations and fits the parameter schedulers to the
length of the run."""
from typing import Optional

from mmengine.runner import EpochBasedTrainLoop

from mmllava.engine.schedule_checks import check_param_schedulers
from mmllava.registry import LOOPS


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch loop, resumable from a checkpoint saved mid-epoch.

    LLaVA's recipes train one long epoch and save every N iterations.
    mmengine's epoch loop restarts an unfinished epoch from its first batch
    on resume, so it trains those batches twice and overshoots its
    iteration count. This loop skips the batches the checkpoint already
    trained on. The sampler is seeded by epoch, so the rest of the epoch is
    the same batches in the same order as without the interruption. Skipped
    batches are still loaded (as mmengine's iteration loop does).

    One long epoch also means mmengine's per-epoch validation comes once, at
    the end; ``val_iter_interval`` validates every N iterations as well.

    The runner builds this loop before its parameter schedulers, so the loop
    fits their configs to the length of the dataloader first: a warm-up
    that rounds to too few iterations is lengthened, and a schedule that
    ends before ``max_epochs`` is warned about (see
    :mod:`mmllava.engine.schedule_checks`).

    Args:
        runner: The runner.
        dataloader: The training dataloader or its config.
        max_epochs (int): Epochs to train.
        val_iter_interval (int, optional): Also run the validation loop
            every this many iterations. Defaults to None (per epoch only,
            every ``val_interval`` epochs).
        **kwargs: Other :class:`EpochBasedTrainLoop` arguments.
    """

    def __init__(self, runner, dataloader, max_epochs: int,
                 val_iter_interval: Optional[int] = None, **kwargs) -> None:
        super().__init__(runner, dataloader, max_epochs, **kwargs)
        if val_iter_interval is not None and val_iter_interval < 1:
            raise ValueError('val_iter_interval must be a positive number '
                             f'of iterations, got {val_iter_interval}')
        self.val_iter_interval = val_iter_interval
        # Still configs: Runner.train() builds the schedulers after the loop.
        if runner.param_schedulers is not None:
            runner.param_schedulers, messages = check_param_schedulers(
                runner.param_schedulers, len(self.dataloader), max_epochs)
            for message in messages:
                runner.logger.warning(message)

    def run_epoch(self) -> None:
        """Iterate one epoch, skipping batches already trained."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        num_done = self._iter - self._epoch * len(self.dataloader)
        if num_done > 0:
            self.runner.logger.info(
                f'Resuming epoch {self._epoch + 1}: skipping the {num_done} '
                'batches trained before the checkpoint.')
        for index, data_batch in enumerate(self.dataloader):
            if index >= num_done:
                self.run_iter(index, data_batch)
                self._validate_at_iteration()
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _validate_at_iteration(self) -> None:
        """Validate when ``val_iter_interval`` iterations have passed (not at
        an epoch's end, which the per-epoch schedule covers)."""
        if (self.val_iter_interval is None or self.runner.val_loop is None
                or self._iter % self.val_iter_interval != 0
                or self._iter % len(self.dataloader) == 0):
            return
        self.runner.val_loop.run()
        self.runner.model.train()
