"""Leftover locks of torch's C++ extension builds.

DeepSpeed compiles some ops (CPU Adam for optimizer offload) on first use,
through ``torch.utils.cpp_extension``. A build holds a ``lock`` file in the
op's build folder; a build that was killed leaves it behind, and every
later process then waits for it forever, printing nothing.
"""
import os
import time
from pathlib import Path

from torch.utils.cpp_extension import get_default_build_root


def extension_build_roots() -> list[Path]:
    """Where torch builds extensions: ``TORCH_EXTENSIONS_DIR`` as it is,
    else each ``py*_*`` folder of the default root."""
    configured = os.environ.get('TORCH_EXTENSIONS_DIR')
    if configured:
        return [Path(configured)]
    return sorted(Path(get_default_build_root()).glob('py*_*'))


def build_lock_warning(op_name: str) -> str | None:
    """A warning naming the lock file that makes building ``op_name`` wait,
    or None where there is none."""
    for root in extension_build_roots():
        lock = root / op_name / 'lock'
        if lock.exists():
            minutes = (time.time() - lock.stat().st_mtime) / 60
            return (f'{lock} exists (made {minutes:.0f} min ago): torch waits '
                    f'for it to go before it builds or loads {op_name!r}. If '
                    'no other process is compiling it now (a killed build '
                    'leaves its lock behind), delete the file.')
    return None
