"""Which checkpoint ``tools/train.py --resume`` continues from.

mmengine resumes from the file that the work dir's ``last_checkpoint``
names and knows no other: a deleted or empty pointer restarts the run at
iteration 1 beside the old checkpoints (which it then overwrites), and a
truncated newest checkpoint stops the run with torch's reader error. Here the
pointer is the first choice, every ``iter_N.pth`` / ``epoch_N.pth`` of the
work dir the next ones, newest first, and a file that cannot be read is
skipped with a warning that names it and says why.
"""
import re
from pathlib import Path
from typing import Callable, Optional

from mmllava.utils.files import is_deepspeed_checkpoint
from mmllava.utils.safe_load import unreadable_reason

#: The names mmengine's CheckpointHook gives checkpoints.
CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def saved_checkpoints(folder: str) -> list[Path]:
    """The checkpoints (files, or DeepSpeed folders) in ``folder``, newest
    first: by modification time, then by step."""
    found = [path for path in Path(folder).glob('*_*.pth')
             if CHECKPOINT_NAME.match(path.name)]
    return sorted(found, reverse=True, key=lambda path: (
        path.stat().st_mtime_ns,
        int(CHECKPOINT_NAME.match(path.name).group(2))))


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None."""
    if not path.exists():
        return 'it does not exist'
    if path.is_dir():
        return None if is_deepspeed_checkpoint(str(path)) else \
            'it is a folder but not a complete DeepSpeed checkpoint'
    return unreadable_reason(str(path))


def pointed_checkpoint(work_dir: str, warn: Callable[[str], None]
                       ) -> Optional[Path]:
    """The checkpoint ``last_checkpoint`` names, or None (said why)."""
    pointer = Path(work_dir) / 'last_checkpoint'
    if not pointer.is_file():
        return None
    named = pointer.read_text().strip()
    if not named:
        warn(f'{pointer} is empty (a save was interrupted); looking for the '
             f'newest checkpoint in {work_dir} instead.')
        return None
    path = Path(named)
    if not path.exists() and (Path(work_dir) / path.name).exists():
        # The work dir was moved or copied since.
        path = Path(work_dir) / path.name
    return path


def resume_checkpoint(work_dir: str, warn: Callable[[str], None]
                      ) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that can be read.

    Args:
        work_dir (str): The run's work dir.
        warn (Callable): Called with each message about a skipped file or
            a missing or empty ``last_checkpoint``.

    Returns:
        str | None: The checkpoint to resume from; None when ``work_dir``
        holds none (the run starts from the beginning).

    Raises:
        RuntimeError: Checkpoints are there but none can be read; the
            message lists each with its fault.
    """
    pointed = pointed_checkpoint(work_dir, warn)
    candidates = [pointed] if pointed is not None else []
    folders = [Path(work_dir)]
    if pointed is not None and pointed.parent != Path(work_dir):
        # A CheckpointHook out_dir other than the work dir.
        folders.append(pointed.parent)
    for folder in folders:
        candidates += [path for path in saved_checkpoints(str(folder))
                       if path not in candidates]
    if candidates and not (Path(work_dir) / 'last_checkpoint').exists():
        warn(f'{work_dir} has no last_checkpoint file; resuming from the '
             'newest checkpoint found there.')
    skipped = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        skipped.append(f'{path}: {problem}')
        warn(f'Skipped {path}: {problem}; trying the next newest '
             'checkpoint.')
    if skipped:
        raise RuntimeError(
            f'No checkpoint in {work_dir} can be resumed from:\n  ' +
            '\n  '.join(skipped) + '\nRemove them to start over, or give '
            'a checkpoint to --resume.')
    return None


def checkpoints_of_earlier_run(folder: str) -> list[str]:
    """Names of the checkpoints a new run in ``folder`` could overwrite."""
    return sorted(path.name for path in saved_checkpoints(folder))
