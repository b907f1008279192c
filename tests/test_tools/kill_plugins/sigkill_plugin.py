"""Test-only plugins that SIGKILL the training process they run in, at a
chosen moment, as a crash, an OOM kill or a preempted node would.

Imported by the child processes of the kill tests through a config's
``custom_imports`` (with this folder on PYTHONPATH); never part of mmllava.
"""
import os
import signal

from mmengine.fileio import register_backend
from mmengine.hooks import Hook

from mmllava.engine.atomic_file_backend import AtomicLocalBackend
from mmllava.registry import HOOKS


def kill_this_process() -> None:
    """SIGKILL: no exception, no ``finally``, no atexit handler runs."""
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class SigkillHook(Hook):
    """Kill the run just before it trains iteration ``at_iter + 1`` (when
    ``at_iter`` iterations are done).

    Args:
        at_iter (int): Iterations done when the process dies.
    """

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if runner.iter == self.at_iter:
            print(f'SigkillHook: killing the run at iteration {runner.iter}',
                  flush=True)
            kill_this_process()


@register_backend('atomic_local_killed_in_write')
class KilledInWriteBackend(AtomicLocalBackend):
    """:class:`AtomicLocalBackend` that dies in its ``kill_in_write``-th
    ``put`` of the process, after writing and flushing the first chunk.

    Args:
        kill_in_write (int): Which write (1-based) is interrupted.
        chunk_size (int): Bytes per chunk.
    """

    #: Writes so far in this process; mmengine builds a backend per save.
    writes = 0

    def __init__(self, kill_in_write: int, chunk_size: int) -> None:
        super().__init__(chunk_size=chunk_size)
        self.kill_in_write = kill_in_write

    def _write_chunks(self, file, data: memoryview) -> None:
        KilledInWriteBackend.writes += 1
        if KilledInWriteBackend.writes < self.kill_in_write:
            super()._write_chunks(file, data)
            return
        file.write(data[:self.chunk_size])
        file.flush()
        print(f'KilledInWriteBackend: killing the run in write '
              f'{self.writes}, {self.chunk_size} of {len(data)} bytes '
              f'written to {file.name}', flush=True)
        kill_this_process()
