"""An epoch-based training loop that resumes in the middle of an epoch."""
from mmengine.runner import EpochBasedTrainLoop

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

    Args:
        runner: The runner.
        dataloader: The training dataloader or its config.
        max_epochs (int): Epochs to train.
        **kwargs: Other :class:`EpochBasedTrainLoop` arguments.
    """

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
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
