"""``mmllava/engine/atomic_file_backend.py`` and
``mmllava/engine/checkpoint_hook.py``: checkpoints are written atomically,
and a kill during a save leaves ``last_checkpoint`` naming a complete one.

The unit tests use the backend directly and a toy model in a real Runner;
the last test SIGKILLs ``tools/train.py`` on the demo in the middle of
writing a checkpoint and resumes it.
"""
import os
import signal
import subprocess
import sys
from itertools import count
from pathlib import Path
from typing import Optional

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmllava.engine.atomic_file_backend import (TEMP_SUFFIX,
                                                AtomicLocalBackend,
                                                remove_temp_files)
from mmllava.registry import HOOKS, MODELS
from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / 'tests/test_tools/kill_plugins'
RUN_NAMES = count()


def temp_files(folder: Path) -> list:
    return sorted(folder.glob(f'.*{TEMP_SUFFIX}'))


def test_selected_by_backend_args(tmp_path):
    backend = get_file_backend(str(tmp_path),
                               backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    target = tmp_path / 'new/folder/file.bin'
    backend.put(b'first', target)
    backend.put(b'second', target)
    assert target.read_bytes() == b'second'
    backend.put_text('text \u00e9', tmp_path / 'pointer')
    assert (tmp_path / 'pointer').read_text(encoding='utf-8') == 'text \u00e9'
    assert not temp_files(tmp_path) and not temp_files(target.parent)


class Recorder:
    """A file that records the chunks it is given."""

    def __init__(self):
        self.chunks = []

    def write(self, chunk):
        self.chunks.append(chunk)


def test_writes_views_in_chunks():
    data = bytes(range(10))
    recorder = Recorder()
    AtomicLocalBackend(chunk_size=4)._write_chunks(recorder,
                                                   memoryview(data))
    assert [bytes(chunk) for chunk in recorder.chunks] == [
        data[0:4], data[4:8], data[8:10]]
    # Slices of the caller's buffer, not copies of it.
    assert all(isinstance(chunk, memoryview) for chunk in recorder.chunks)


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match='chunk_size'):
        AtomicLocalBackend(chunk_size=0)


class FailingBackend(AtomicLocalBackend):
    """Fails (as a full disk would) after writing the first chunk."""

    def _write_chunks(self, file, data):
        file.write(data[:self.chunk_size])
        raise OSError('No space left on device')


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / 'iter_1.pth'
    target.write_bytes(b'old checkpoint')
    with pytest.raises(OSError, match='No space'):
        FailingBackend(chunk_size=2).put(b'new checkpoint', target)
    assert target.read_bytes() == b'old checkpoint'
    assert not temp_files(tmp_path)


def test_remove_temp_files_removes_only_those(tmp_path):
    left = tmp_path / f'.iter_2.pth.0123456789ab{TEMP_SUFFIX}'
    left.write_bytes(b'part')
    for name in ('iter_1.pth', 'last_checkpoint', f'visible{TEMP_SUFFIX}'):
        (tmp_path / name).write_bytes(b'keep')
    assert remove_temp_files(tmp_path) == [str(left)]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        'iter_1.pth', 'last_checkpoint', f'visible{TEMP_SUFFIX}']


# The save order, in a real Runner: what a kill during a write would find.

class Numbers(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index)]))


class Line(BaseModel):

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=((torch.stack(inputs) * self.weight - 1)**2).mean())


class SaveProbe(Hook):
    """At each save, before the checkpoint is written (where a kill during
    the write would stop): the checkpoint ``last_checkpoint`` names, and
    whether that file exists."""

    priority = 'LOWEST'

    def __init__(self):
        self.seen = []

    def before_save_checkpoint(self, runner, checkpoint):
        pointer = Path(runner.work_dir) / 'last_checkpoint'
        if pointer.exists():
            named = Path(pointer.read_text())
            self.seen.append((named.name, named.is_file()))


@pytest.fixture(scope='module', autouse=True)
def registered():
    MODELS.register_module('AtomicTestLine', module=Line, force=True)


def train(work_dir: Path, checkpoint: dict, max_epochs: int = 1,
          resume: bool = False, probe: Optional[Hook] = None) -> Runner:
    """Train the toy model, saving every iteration (2 per epoch)."""
    runner = Runner(
        model=dict(type='AtomicTestLine'),
        work_dir=str(work_dir),
        experiment_name=f'atomic_backend_{next(RUN_NAMES)}',
        train_dataloader=dict(
            dataset=Numbers(), batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(type='ResumableEpochBasedTrainLoop',
                       max_epochs=max_epochs),
        default_hooks=dict(logger=None, checkpoint=dict(
            interval=1, by_epoch=False, max_keep_ckpts=1, **checkpoint)),
        custom_hooks=[] if probe is None else [probe],
        resume=resume,
        default_scope='mmllava')
    runner.train()
    return runner


ATOMIC = dict(type='AtomicCheckpointHook',
              backend_args=dict(backend='atomic_local'))


def test_previous_checkpoint_survives_until_the_new_one_is_named(tmp_path):
    probe = SaveProbe()
    train(tmp_path, ATOMIC, max_epochs=2, probe=probe)
    assert probe.seen == [('iter_1.pth', True), ('iter_2.pth', True),
                          ('iter_3.pth', True)]
    # And max_keep_ckpts still holds once the pointer moved.
    assert sorted(path.name for path in tmp_path.glob('*.pth')) == [
        'iter_4.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_4.pth')


def test_mmengine_hook_deletes_it_before_writing(tmp_path):
    """Why the hook exists: with mmengine's own order, a kill during the
    write leaves a pointer to a deleted file."""
    probe = SaveProbe()
    train(tmp_path, dict(type='CheckpointHook'), probe=probe)
    assert probe.seen == [('iter_1.pth', False)]


def test_retired_checkpoint_left_by_a_kill_goes_on_resume(tmp_path):
    train(tmp_path, ATOMIC)
    # As if killed after the pointer moved to iter_2, before deleting
    # iter_1; and in the middle of a later write.
    (tmp_path / 'iter_1.pth').write_bytes(b'stale')
    partial = tmp_path / f'.iter_3.pth.0123456789ab{TEMP_SUFFIX}'
    partial.write_bytes(b'part')
    train(tmp_path, ATOMIC, max_epochs=2, resume=True)
    assert sorted(path.name for path in tmp_path.glob('*.pth')) == [
        'iter_4.pth']
    assert not temp_files(tmp_path)


def test_hook_is_registered():
    assert HOOKS.get('AtomicCheckpointHook') is not None


# The kill in the middle of a checkpoint write, end to end.

NUM_ITERS = 3
CHUNK_SIZE = 1 << 20
OPTIONS = ('train_dataloader.dataset.indices=6',
           'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False',
           'train_cfg.max_epochs=1', 'param_scheduler.0.end=0.5',
           'param_scheduler.1.begin=0.5',
           'default_hooks.checkpoint.by_epoch=False',
           'default_hooks.checkpoint.interval=1')
KILL_OPTIONS = (
    'default_hooks.checkpoint.backend_args.backend='
    'atomic_local_killed_in_write',
    'default_hooks.checkpoint.backend_args.kill_in_write=2',
    f'default_hooks.checkpoint.backend_args.chunk_size={CHUNK_SIZE}')


def train_demo(cwd: Path, config: Path, work_dir: str, *args: str,
               options: tuple = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PLUGINS), os.environ.get('PYTHONPATH', '')]))
    command = [sys.executable, str(REPO / 'tools/train.py'), str(config),
               '--work-dir', work_dir, *args, '--cfg-options', *OPTIONS,
               *options]
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=scaled_timeout(300))


@pytest.mark.slow
def test_kill_during_a_save_leaves_the_previous_checkpoint(demo_workspace,
                                                           tmp_path):
    config = tmp_path / 'kill_in_save.py'
    base = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
    config.write_text(
        f'_base_ = [{str(base)!r}]\n'
        "custom_imports = dict(imports=['sigkill_plugin'], "
        'allow_failed_imports=False)\n')
    work_dir = demo_workspace / 'killed_in_save'
    run = train_demo(demo_workspace, config, work_dir.name,
                     options=KILL_OPTIONS)
    assert run.returncode == -signal.SIGKILL, run.stdout[-4000:]
    assert 'killing the run in write 2' in run.stdout

    # The write of iter_2 stopped after its first chunk: the temporary file
    # is a truncated checkpoint, and iter_2.pth does not exist.
    previous = work_dir / 'iter_1.pth'
    [partial] = temp_files(work_dir)
    assert partial.name.startswith('.iter_2.pth.')
    assert partial.stat().st_size == CHUNK_SIZE < previous.stat().st_size
    with pytest.raises(Exception):
        torch.load(partial, weights_only=True)
    assert not (work_dir / 'iter_2.pth').exists()
    # The pointer names the previous checkpoint, which is complete (with
    # max_keep_ckpts=1, mmengine would have deleted it before the write).
    assert (work_dir / 'last_checkpoint').read_text() == str(previous)
    assert torch.load(previous, weights_only=True)['meta']['iter'] == 1

    run = train_demo(demo_workspace, config, work_dir.name, '--resume')
    assert run.returncode == 0, run.stdout[-4000:]
    assert f'Load checkpoint from {previous}' in run.stdout
    assert f'Removed {partial}' in run.stdout
    last = Path((work_dir / 'last_checkpoint').read_text())
    assert last == work_dir / f'iter_{NUM_ITERS}.pth'
    assert torch.load(last, weights_only=True)['meta']['iter'] == NUM_ITERS
    assert sorted(path.name for path in work_dir.glob('*.pth')) == [last.name]
    assert not temp_files(work_dir)
