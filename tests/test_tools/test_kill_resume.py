"""A run SIGKILLed at a random iteration and resumed with ``--resume`` ends
with the same weights and optimizer state, bit for bit, as a run that was
never interrupted: stage 1 and stage 2 of the demo.

Each stage trains 6 iterations (2 epochs of 3 batches of 2) with dropout in
the LLM's attention, so that the result depends on the random streams and
not only on the data order. Stage 1 saves every 3 iterations and loads data
in a worker process, so its resume starts at an epoch boundary; stage 2
saves every 2 iterations and loads in the main process, so its resume starts
mid-epoch. A resume from the same checkpoint without its RNG states shows
that restoring them is what makes the weights equal.

The child processes run two at a time (one thread each, the same in every
run of a stage: the thread count can change floating-point sums).
"""
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmllava.testing.timeouts import scaled_timeout


REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / 'tools/train.py'
PLUGINS = Path(__file__).resolve().parent / 'kill_plugins'
NUM_ITERS = 6
TIMEOUT = 300
# 2 epochs of 3 batches of 2; warmup in half an epoch (the configs' fraction
# rounds to zero iterations on so short an epoch); no validation, which
# would only cost time; deterministic algorithms; dropout in the LLM.
COMMON_OPTIONS = (
    'train_dataloader.dataset.indices=6', 'train_dataloader.batch_size=2',
    'train_cfg.max_epochs=2', 'train_cfg.val_begin=100',
    'param_scheduler.0.end=0.5', 'param_scheduler.1.begin=0.5',
    'randomness.deterministic=True', 'model.llm.attention_dropout=0.2',
    'default_hooks.logger.interval=1', 'default_hooks.checkpoint.by_epoch=False')
STAGES = {
    'stage1': dict(
        config='llava-tiny_demo_pretrain.py', interval=3,
        options=('train_dataloader.num_workers=1',
                 'train_dataloader.persistent_workers=False')),
    'stage2': dict(
        config='llava-tiny_demo_ft.py', interval=2,
        options=('train_dataloader.num_workers=0',
                 'train_dataloader.persistent_workers=False',
                 'train_dataloader.sampler.batch_size=2',
                 'model.projector_pretrained=None')),
}


def write_config(folder: Path, stage: str) -> Path:
    """The stage's demo config, importing the kill plugins, without the
    sample answers (generation that would only cost time)."""
    path = folder / f'kill_{stage}.py'
    base = REPO / 'configs/llava' / STAGES[stage]['config']
    path.write_text(
        f'_base_ = [{str(base)!r}]\n'
        "custom_imports = dict(imports=['sigkill_plugin'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='NonFiniteLossHook')]\n")
    return path


def start(cwd: Path, config: Path, work_dir: str, *args: str,
          options: tuple = ()) -> subprocess.Popen:
    """Start tools/train.py; its output goes to ``<work_dir>.log``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [str(PLUGINS), os.environ.get('PYTHONPATH', '')]))
    command = [sys.executable, str(TRAIN), str(config), '--work-dir',
               work_dir, *args, '--cfg-options', *options]
    # A file, not a pipe: the killed run's orphaned dataloader worker would
    # hold a pipe open until it notices.
    with open(cwd / f'{work_dir}.log', 'w') as log:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def finish(cwd: Path, process: subprocess.Popen, work_dir: str,
           returncode: int = 0) -> str:
    """Wait for ``process``; check its exit status; return its output."""
    process.wait(timeout=scaled_timeout(TIMEOUT))
    output = (cwd / f'{work_dir}.log').read_text()
    assert process.returncode == returncode, (
        f'{work_dir}: exit status {process.returncode}, expected '
        f'{returncode}:\n{output[-4000:]}')
    return output


def final_checkpoint(work_dir: Path) -> dict:
    return torch.load(work_dir / f'iter_{NUM_ITERS}.pth', map_location='cpu',
                      weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize('stage', sorted(STAGES))
def test_killed_and_resumed_run_ends_bit_exact(demo_workspace, tmp_path,
                                               stage, differing_tensors):
    setup = STAGES[stage]
    interval = setup['interval']
    options = (*COMMON_OPTIONS, *setup['options'],
               f'default_hooks.checkpoint.interval={interval}')
    config = write_config(tmp_path, stage)
    # After the first checkpoint, before the last iteration.
    at_iter = random.Random(stage).randrange(interval + 1, NUM_ITERS)
    resumed_from = at_iter // interval * interval
    full, killed = f'{stage}_full', f'{stage}_killed'
    runs = [start(demo_workspace, config, full, options=options),
            start(demo_workspace, config, killed, options=(
                *options, 'default_hooks.sigkill.type=SigkillHook',
                f'default_hooks.sigkill.at_iter={at_iter}'))]
    finish(demo_workspace, runs[0], full)
    output = finish(demo_workspace, runs[1], killed, -signal.SIGKILL)
    assert f'killing the run at iteration {at_iter}' in output

    # The same killed run resumed twice: from its checkpoint, and from a
    # copy of the checkpoint without the RNG states.
    no_rng = f'{stage}_killed_no_rng'
    shutil.copytree(demo_workspace / killed, demo_workspace / no_rng)
    copy = demo_workspace / no_rng / f'iter_{resumed_from}.pth'
    saved = torch.load(copy, map_location='cpu', weights_only=True)
    del saved['rng_state']
    torch.save(saved, copy)
    (demo_workspace / no_rng / 'last_checkpoint').write_text(str(copy))
    runs = [start(demo_workspace, config, killed, '--resume',
                  options=options),
            start(demo_workspace, config, no_rng, '--resume',
                  options=options)]
    output = finish(demo_workspace, runs[0], killed)
    assert 'The checkpoint has no RNG states' in finish(
        demo_workspace, runs[1], no_rng)
    checkpoint = demo_workspace / killed / f'iter_{resumed_from}.pth'
    assert f'Load checkpoint from {checkpoint}' in output
    assert ('Restored the RNG states saved at iteration '
            f'{resumed_from}') in output

    expected = final_checkpoint(demo_workspace / full)
    resumed = final_checkpoint(demo_workspace / killed)
    for part in ('state_dict', 'optimizer', 'param_schedulers'):
        assert not differing_tensors(expected[part], resumed[part]), part
    assert resumed['optimizer']['param_groups'] == \
        expected['optimizer']['param_groups']
    assert resumed['param_schedulers'] == expected['param_schedulers']
    assert resumed['meta']['iter'] == NUM_ITERS
    # Without the RNG states the dropout masks after the resume differ.
    without = final_checkpoint(demo_workspace / no_rng)
    assert differing_tensors(expected['state_dict'], without['state_dict'])
