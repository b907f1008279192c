"""A local file backend whose writes are atomic: a reader (or a resumed run)
finds the previous file or the complete new one, never a part of one."""
import os
import os.path as osp
import uuid
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

#: Marks the temporary files; :func:`remove_temp_files` looks for it.
TEMP_SUFFIX = '.atomic-tmp'
#: 64 MiB per ``write`` call: few calls, and no second copy of the data.
DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024


def _fsync_folder(folder: str) -> None:
    """Persist a rename in ``folder`` (a directory entry) on POSIX; Windows
    cannot open folders and commits renames itself."""
    if os.name != 'posix':
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend with atomic ``put`` and ``put_text``.

    mmengine's :class:`LocalBackend` opens the target itself and writes into
    it, so a run killed during a save leaves a truncated checkpoint under
    the final name. Here the data goes to a hidden temporary file in the
    same folder (same file system, so the rename is atomic), is flushed and
    fsynced, and only then ``os.replace`` gives it the final name. A kill at
    any instant leaves either the old file or the new one, plus perhaps a
    temporary file that :func:`remove_temp_files` clears.

    Select it with ``backend_args=dict(backend='atomic_local')`` (e.g. in
    ``default_hooks.checkpoint``). Reading, listing and removing are
    :class:`LocalBackend`'s.

    Args:
        chunk_size (int): Bytes per ``write`` call. Written from a view of
            the caller's buffer, so a large checkpoint is not copied again.
            Defaults to 64 MiB.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(
                f'chunk_size must be a positive byte count, got {chunk_size}')
        self.chunk_size = chunk_size

    def put(self, obj: Union[bytes, bytearray, memoryview],
            filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (folders are created)."""
        target = osp.abspath(filepath)
        folder = osp.dirname(target)
        os.makedirs(folder, exist_ok=True)
        temp = osp.join(folder, f'.{osp.basename(target)}.'
                        f'{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}')
        try:
            with open(temp, 'xb') as file:
                self._write_chunks(file, memoryview(obj).cast('B'))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            # A failed write (disk full, interrupt) leaves no partial file;
            # only SIGKILL and power loss can, which remove_temp_files covers.
            if osp.exists(temp):
                os.remove(temp)
            raise
        _fsync_folder(folder)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically."""
        self.put(obj.encode(encoding), filepath)

    def _write_chunks(self, file, data: memoryview) -> None:
        """Write ``data`` in slices of ``chunk_size`` (views, not copies)."""
        for start in range(0, len(data), self.chunk_size):
            file.write(data[start:start + self.chunk_size])


def remove_temp_files(folder: Union[str, Path]) -> list:
    """Delete the temporary files an interrupted :class:`AtomicLocalBackend`
    write left in ``folder`` (not in its subfolders).

    Args:
        folder (str or Path): The folder to clear.

    Returns:
        list[str]: The paths removed.
    """
    if not osp.isdir(folder):
        return []
    removed = []
    for entry in os.scandir(folder):
        if (entry.name.startswith('.') and entry.name.endswith(TEMP_SUFFIX)
                and entry.is_file(follow_symlinks=False)):
            os.remove(entry.path)
            removed.append(entry.path)
    return removed
