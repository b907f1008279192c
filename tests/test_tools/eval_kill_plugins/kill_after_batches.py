"""A test-only hook that SIGKILLs its own process after the k-th test batch:
an interruption at a known point, as a preempted job or an OOM kill ends a
run (no cleanup, no flush). Load it with

    --cfg-options custom_imports.imports=[kill_after_batches]
        default_hooks.kill.type=KillAfterBatches default_hooks.kill.batches=K

with this folder on PYTHONPATH.
"""
import os
import signal

from mmengine.hooks import Hook

from mmllava.registry import HOOKS


@HOOKS.register_module()
class KillAfterBatches(Hook):
    """Kill the process once ``batches`` test batches are done.

    Args:
        batches (int): Test batches to finish before the kill.
    """

    def __init__(self, batches: int) -> None:
        self.batches = batches
        self.done = 0

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self.done += 1
        if self.done == self.batches:
            os.kill(os.getpid(), signal.SIGKILL)
