"""Checks on the local files a config names."""
from pathlib import Path
from typing import Optional

from mmengine.runner import find_latest_checkpoint


def require_local_folder(path: str, what: str) -> str:
    """Return ``path`` if it is a folder, else fail naming it.

    mmllava loads weights only from local folders (no download at run time),
    so a missing folder is a clear error rather than a hub lookup.

    Args:
        path (str): The folder a config names.
        what (str): What the folder should hold, for the message.
    """
    if not Path(path).is_dir():
        raise FileNotFoundError(
            f'{what} folder not found: {path!r}. mmllava loads weights from '
            'local folders: put the files there (e.g. a symlink under '
            'checkpoints/) or point the config key at them.')
    return path


def latest_checkpoint(work_dir: str) -> str:
    """The checkpoint a work dir's ``last_checkpoint`` file names.

    Args:
        work_dir (str): A training run's work dir.
    """
    checkpoint = find_latest_checkpoint(work_dir)
    if checkpoint is None:
        raise FileNotFoundError(
            f'{work_dir} is a folder without a last_checkpoint file; give a '
            'checkpoint file or the work dir of a finished run.')
    return checkpoint


#: Data-parallel rank 0's model states in a DeepSpeed checkpoint folder:
#: ZeRO-1/2, ZeRO-3.
DEEPSPEED_MODEL_STATES_FILES = ('mp_rank_00_model_states.pt',
                                'zero_pp_rank_0_mp_rank_00_model_states.pt')


def deepspeed_model_states_file(folder: str) -> Optional[str]:
    """The rank-0 model states file of a DeepSpeed checkpoint folder, or
    None if ``folder`` is not one."""
    for name in DEEPSPEED_MODEL_STATES_FILES:
        if (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    return None


def is_deepspeed_checkpoint(path: str) -> bool:
    """Whether ``path`` is a DeepSpeed checkpoint folder (``iter_N.pth/``
    of a ``--strategy deepspeed_*`` run)."""
    return deepspeed_model_states_file(path) is not None


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file or DeepSpeed checkpoint folder, or a work dir's
    latest checkpoint; a missing path fails naming it.

    Args:
        path (str): A checkpoint file, a DeepSpeed checkpoint folder or a
            training run's work dir.
    """
    if is_deepspeed_checkpoint(path):
        return path
    if Path(path).is_dir():
        return latest_checkpoint(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f'Checkpoint not found: {path!r} (give a '
                                'checkpoint file or a training work dir).')
    return path
