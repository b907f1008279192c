"""``mmllava/utils/safe_load.py``: checkpoints load without running code
from them; a file that would run code is refused, naming the opt-in, and
loads (running it) only when allowed."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint

from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.runner_args import add_runner_args, parse_runner_args
from mmllava.utils.safe_load import (ALLOW_UNSAFE_PICKLE_ENV,
                                     UnreadableCheckpointError,
                                     UnsafePickleError, load_torch_file,
                                     unsafe_pickle_scope)

REPO = Path(__file__).resolve().parents[2]


class MakesADirectory:
    """Unpickling it creates a folder: proof of whether code ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path, )


@pytest.fixture(autouse=True)
def no_opt_in(monkeypatch):
    monkeypatch.delenv(ALLOW_UNSAFE_PICKLE_ENV, raising=False)


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    """A checkpoint whose unpickling would create ``marker``."""
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'hostile.pth'
    torch.save(dict(state_dict=dict(weight=torch.ones(2, 2)),
                    meta=MakesADirectory(str(marker))), path)
    return path, marker


def test_mmengine_checkpoints_load(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    path = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict=dict(weight=torch.ones(3)),
                    meta=dict(iter=2, seed=42),
                    message_hub=dict(log_scalars={'train/loss': buffer})),
               path)
    checkpoint = load_torch_file(str(path))
    assert torch.equal(checkpoint['state_dict']['weight'], torch.ones(3))
    assert checkpoint['message_hub']['log_scalars']['train/loss'].current() \
        == 1.5


def test_a_file_that_runs_code_is_refused_naming_the_opt_in(hostile):
    path, marker = hostile
    with pytest.raises(UnsafePickleError) as info:
        load_torch_file(str(path))
    message = str(info.value)
    assert str(path) in message and 'posix.mkdir' in message
    assert '--allow-unsafe-pickle' in message
    assert 'allow_unsafe_pickle=True' in message
    assert ALLOW_UNSAFE_PICKLE_ENV in message
    assert not marker.exists()


def test_allowed_it_loads_and_the_code_runs(hostile):
    path, marker = hostile
    with pytest.warns(UserWarning, match='full unpickling'):
        checkpoint = load_torch_file(str(path), allow_unsafe_pickle=True)
    assert torch.equal(checkpoint['state_dict']['weight'], torch.ones(2, 2))
    # Why it is off by default.
    assert marker.is_dir()


def test_scope_and_environment_opt_in(hostile, monkeypatch):
    path, marker = hostile
    with unsafe_pickle_scope(True), pytest.warns(UserWarning):
        load_torch_file(str(path))
    assert marker.is_dir()
    marker.rmdir()
    with unsafe_pickle_scope(None), pytest.raises(UnsafePickleError):
        load_torch_file(str(path))
    monkeypatch.setenv(ALLOW_UNSAFE_PICKLE_ENV, '1')
    with pytest.warns(UserWarning):
        load_torch_file(str(path))
    # An explicit refusal wins over the environment.
    with pytest.raises(UnsafePickleError):
        load_torch_file(str(path), allow_unsafe_pickle=False)


def test_mmengine_loading_goes_through_the_safe_loader(hostile):
    """``load_from``, ``--resume`` and ``load_checkpoint`` use mmengine's
    loader for local files, which mmllava replaces."""
    path, marker = hostile
    with pytest.raises(UnsafePickleError):
        load_checkpoint(torch.nn.Linear(2, 2), str(path))
    assert not marker.exists()


def test_tools_flag_opts_in_every_process(monkeypatch):
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_runner_args(parser, 'work dir', 'a=1')
    monkeypatch.setattr(sys, 'argv', ['train.py', 'x.py'])
    parse_runner_args(parser)
    assert ALLOW_UNSAFE_PICKLE_ENV not in os.environ
    monkeypatch.setattr(sys, 'argv',
                        ['train.py', 'x.py', '--allow-unsafe-pickle'])
    parse_runner_args(parser)
    assert os.environ[ALLOW_UNSAFE_PICKLE_ENV] == '1'


@pytest.mark.slow
def test_converter_refuses_in_one_line(hostile, tmp_path):
    path, marker = hostile
    run = subprocess.run(
        [sys.executable,
         str(REPO / 'tools/model_converters/mmllava_to_official.py'),
         'llava-tiny_demo_vqa', str(path), str(tmp_path / 'out'),
         '--projector-only'],
        cwd=REPO, capture_output=True, text=True, timeout=scaled_timeout(120),
        env={key: value for key, value in os.environ.items()
             if key != ALLOW_UNSAFE_PICKLE_ENV})
    assert run.returncode == 1, run.stderr[-2000:]
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith('error: ') and '--allow-unsafe-pickle' in error
    assert not marker.exists()


def test_mmengine_loading_accepts_a_work_dir(tmp_path):
    """A work dir stands for the checkpoint its ``last_checkpoint`` names,
    so a recipe's ``load_from`` can be the previous stage's work dir."""
    older, newer = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    torch.save({'state_dict': older.state_dict()}, tmp_path / 'iter_1.pth')
    torch.save({'state_dict': newer.state_dict()}, tmp_path / 'iter_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    loaded = torch.nn.Linear(2, 2)
    load_checkpoint(loaded, str(tmp_path))
    assert torch.equal(loaded.weight, newer.weight)
    assert not torch.equal(loaded.weight, older.weight)
    (tmp_path / 'last_checkpoint').unlink()
    with pytest.raises(FileNotFoundError, match='without a last_checkpoint'):
        load_checkpoint(loaded, str(tmp_path))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint(loaded, str(tmp_path / 'missing.pth'))


@pytest.mark.parametrize('damage, reason', [
    (lambda data: data[:len(data) // 2], 'the file is truncated'),
    (lambda data: b'', 'the file is empty'),
    (lambda data: b'<html>not found</html>' * 40,
     "the file is not a torch checkpoint (it starts with b'<htm'"),
])
def test_a_damaged_file_is_named_with_its_fault(tmp_path, damage, reason):
    """Not torch's ``PytorchStreamReader ... central directory``, a bare
    ``EOFError``, or (for other bytes) a misleading unsafe-pickle refusal."""
    path = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(256))), path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UnreadableCheckpointError) as error:
        load_torch_file(str(path))
    assert str(error.value).startswith(f'Cannot load {path}: {reason}')
    with pytest.raises(UnreadableCheckpointError):
        load_checkpoint(torch.nn.Linear(2, 2), str(path))


def test_a_damaged_record_inside_the_archive_is_named(tmp_path):
    path = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(256))), path)
    data = path.read_bytes()
    # The pickle's record name in the local header and central directory.
    path.write_bytes(data.replace(b'data.pkl', b'data.pkx'))
    with pytest.raises(UnreadableCheckpointError,
                       match=f'Cannot load {path}: the file is corrupt'):
        load_torch_file(str(path))
