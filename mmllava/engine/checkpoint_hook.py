"""mmengine's CheckpointHook, reordered so that a kill at any instant leaves
``last_checkpoint`` naming a complete checkpoint."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmllava.engine.atomic_file_backend import (AtomicLocalBackend,
                                                remove_temp_files)
from mmllava.engine.resume import checkpoints_of_earlier_run
from mmllava.registry import HOOKS


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """A :class:`CheckpointHook` whose saves are safe against kills.

    mmengine 0.10.7 saves in this order: delete the oldest checkpoint (when
    ``max_keep_ckpts`` are kept), write the new one, then rewrite the
    ``last_checkpoint`` pointer in place with ``open(..., 'w')``. With
    ``max_keep_ckpts=1`` the pointer names a deleted file for the whole
    write, and a kill while the pointer is rewritten leaves it empty; either
    way ``--resume`` finds nothing to load. This hook writes the new
    checkpoint, then moves the pointer atomically, and only then deletes.

    A kill after the pointer moved but before the deletion leaves the old
    file behind; the new checkpoint still lists it in ``keep_ckpt_ids``, so
    mmengine's ``before_train`` deletes it on resume. Temporary files of
    interrupted atomic writes are removed there too.

    Give it ``backend_args=dict(backend='atomic_local')`` so that the
    checkpoint itself is written atomically (see
    :class:`AtomicLocalBackend`); the pointer, a local file in the work dir
    as in mmengine, is always written atomically.

    A run that starts from its first iteration in a folder that already
    holds checkpoints stops before training: it would overwrite them by
    name (``tools/train.py --resume`` continues that run instead).

    Args:
        **kwargs: :class:`mmengine.hooks.CheckpointHook` arguments
            (``interval``, ``by_epoch``, ``max_keep_ckpts``, ``save_last``,
            ``backend_args``, ...), with the same meaning.
    """

    def before_train(self, runner) -> None:
        """Set up as mmengine does, refuse to overwrite another run's
        checkpoints, then clear interrupted writes' files."""
        super().before_train(runner)
        if runner.iter == 0 and runner.epoch == 0 and \
                self.file_backend.isdir(self.out_dir):
            earlier = checkpoints_of_earlier_run(self.out_dir)
            if earlier:
                raise FileExistsError(
                    f'{self.out_dir} already holds checkpoints of an earlier '
                    f'run ({", ".join(earlier)}), which this run, starting '
                    'at iteration 1, would overwrite. Continue that run with '
                    'tools/train.py --resume, or give another --work-dir, or '
                    'remove them to start over.')
        if is_main_process() and isinstance(self.file_backend,
                                            AtomicLocalBackend):
            for path in remove_temp_files(self.out_dir):
                runner.logger.info(
                    f'Removed {path}, left by an interrupted checkpoint save.')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save checkpoint ``step``; retire the oldest only once the pointer
        names the new one."""
        retired = []
        # _save_checkpoint and _save_best_checkpoint may both save one step.
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                retired.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            # Saved in the new checkpoint: a run resumed from it deletes the
            # retired file if this one was killed before deleting it.
            runner.message_hub.update_info(
                'keep_ckpt_ids', retired + list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)

        if retired:
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        # Model-parallel saves gather shards from every rank; only the main
        # process writes files.
        if not is_main_process():
            return
        AtomicLocalBackend().put_text(
            self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        for old_step in retired:
            self._remove_checkpoint(old_step)

    def _remove_checkpoint(self, step: int) -> None:
        """Delete checkpoint ``step`` (a DeepSpeed one is a folder)."""
        path = self.file_backend.join_path(self.out_dir,
                                           self.filename_tmpl.format(step))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)
