"""``mmllava/engine/resume.py``: ``--resume`` without a path takes the
newest checkpoint that can be read, names each one it skips and why, and
copes with a deleted or empty ``last_checkpoint``."""
import os
import time

import pytest
import torch

from mmllava.engine.resume import (checkpoints_of_earlier_run,
                                   resume_checkpoint)


def save(path, step: int):
    torch.save(dict(state_dict=dict(w=torch.full((64, ), float(step))),
                    meta=dict(iter=step)), path)
    # Distinct modification times, in save order.
    os.utime(path, ns=(time.time_ns(), 1_000_000_000 * step))


@pytest.fixture
def work_dir(tmp_path):
    for step in (1, 2, 3):
        save(tmp_path / f'iter_{step}.pth', step)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_3.pth'))
    return tmp_path


def resume(work_dir):
    warnings = []
    return resume_checkpoint(str(work_dir), warnings.append), warnings


def test_the_pointer_names_the_checkpoint(work_dir):
    assert resume(work_dir) == (str(work_dir / 'iter_3.pth'), [])


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(
        work_dir):
    data = (work_dir / 'iter_3.pth').read_bytes()
    (work_dir / 'iter_3.pth').write_bytes(data[:len(data) // 2])
    checkpoint, warnings = resume(work_dir)
    assert checkpoint == str(work_dir / 'iter_2.pth')
    assert len(warnings) == 1
    assert warnings[0].startswith(f'Skipped {work_dir / "iter_3.pth"}: the '
                                  'file is truncated')


def test_garbage_and_empty_files_are_skipped_each_named(work_dir):
    (work_dir / 'iter_3.pth').write_bytes(os.urandom(4096))
    (work_dir / 'iter_2.pth').write_bytes(b'')
    checkpoint, warnings = resume(work_dir)
    assert checkpoint == str(work_dir / 'iter_1.pth')
    assert 'iter_3.pth: the file is not a torch checkpoint' in warnings[0]
    assert 'iter_2.pth: the file is empty' in warnings[1]


def test_a_deleted_pointer_finds_the_newest_checkpoint(work_dir):
    (work_dir / 'last_checkpoint').unlink()
    checkpoint, warnings = resume(work_dir)
    assert checkpoint == str(work_dir / 'iter_3.pth')
    assert 'has no last_checkpoint file' in warnings[0]


def test_an_empty_pointer_says_so_and_finds_the_newest(work_dir):
    (work_dir / 'last_checkpoint').write_text('')
    checkpoint, warnings = resume(work_dir)
    assert checkpoint == str(work_dir / 'iter_3.pth')
    assert warnings[0].startswith(f'{work_dir / "last_checkpoint"} is empty')


def test_a_pointer_to_a_deleted_file_falls_back(work_dir):
    (work_dir / 'iter_3.pth').unlink()
    checkpoint, warnings = resume(work_dir)
    assert checkpoint == str(work_dir / 'iter_2.pth')
    assert 'iter_3.pth: it does not exist' in warnings[0]


def test_a_moved_work_dir_still_resumes(work_dir, tmp_path_factory):
    moved = tmp_path_factory.mktemp('moved') / 'run'
    work_dir.rename(moved)
    assert resume(moved)[0] == str(moved / 'iter_3.pth')


def test_no_readable_checkpoint_stops_listing_each(work_dir):
    for step in (1, 2, 3):
        (work_dir / f'iter_{step}.pth').write_bytes(b'x' * 10)
    with pytest.raises(RuntimeError) as error:
        resume(work_dir)
    message = str(error.value)
    assert f'No checkpoint in {work_dir} can be resumed from' in message
    assert all(f'iter_{step}.pth: the file is not a torch checkpoint'
               in message for step in (1, 2, 3))


def test_an_empty_work_dir_starts_from_scratch(tmp_path):
    assert resume(tmp_path) == (None, [])


def test_checkpoints_a_new_run_would_overwrite(work_dir, tmp_path_factory):
    (work_dir / 'iter_x.pth').write_bytes(b'')
    assert checkpoints_of_earlier_run(str(work_dir)) == [
        'iter_1.pth', 'iter_2.pth', 'iter_3.pth']
    assert checkpoints_of_earlier_run(
        str(tmp_path_factory.mktemp('empty'))) == []
