"""``tools/train.py`` on the demo configs: stage 1, resume, stage 2 from the
stage-1 projector, and a config key that does not exist.

Each run is a subprocess, the way a user starts it, in a folder holding small
demo assets (24 training scenes, a random-init LLM instead of the language
pretraining), since the demo configs name their data and weights relative to
the current directory.
"""
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mmengine
import pytest
import torch
from safetensors.torch import load_file

from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.plot import find_scalars_file, load_scalars

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / 'tools/train.py'
STAGE1_CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
STAGE2_CONFIG = REPO / 'configs/llava/llava-tiny_demo_ft.py'
NUM_TRAIN = 24  # the demo_workspace fixture's train scenes
ITERS_PER_EPOCH = math.ceil(NUM_TRAIN / mmengine.Config.fromfile(
    str(STAGE1_CONFIG)).train_dataloader.batch_size)
# Stage 2 trains the whole LLM: two batches of 4 of its records keep it cheap.
STAGE2_ITERS, STAGE2_BATCH = 2, 4
STAGE2_OPTIONS = (
    f'train_dataloader.dataset.indices={STAGE2_ITERS * STAGE2_BATCH}',
    f'train_dataloader.batch_size={STAGE2_BATCH}',
    f'train_dataloader.sampler.batch_size={STAGE2_BATCH}')
# Loading in the main process costs less than a worker for a few batches.
# The configs' warmup (a fraction of an epoch) would round to zero
# iterations on so short an epoch, which mmengine rejects ("end should be
# larger than begin"): half an epoch of warmup here.
OPTIONS = ('train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False',
           'param_scheduler.0.end=0.5', 'param_scheduler.1.begin=0.5')
TIMEOUT = 300


def train(cwd: Path, config: Path, work_dir: str, *args: str,
          options: tuple = ()) -> subprocess.CompletedProcess:
    """Run tools/train.py as a user would; stdout and stderr together."""
    command = [sys.executable, str(TRAIN), str(config), '--work-dir',
               work_dir, *args, '--cfg-options', *OPTIONS, *options]
    return subprocess.run(command, cwd=cwd, env=dict(os.environ),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=scaled_timeout(TIMEOUT))


def check_exit(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, (f'{" ".join(run.args)} exited '
                                 f'{run.returncode}:\n{run.stdout[-4000:]}')


def last_checkpoint(work_dir: Path) -> dict:
    pointer = work_dir / 'last_checkpoint'
    assert pointer.is_file(), f'no last_checkpoint in {work_dir}'
    return torch.load(pointer.read_text().strip(), map_location='cpu',
                      weights_only=True)


def part(state_dict: dict, prefix: str) -> dict:
    """The entries under ``prefix`` with the prefix cut off."""
    return {key[len(prefix):]: value for key, value in state_dict.items()
            if key.startswith(prefix)}


@pytest.fixture(scope='module')
def workspace(demo_workspace) -> Path:
    return demo_workspace


@pytest.fixture(scope='module')
def stage1(workspace) -> subprocess.CompletedProcess:
    return train(workspace, STAGE1_CONFIG, 'w1',
                 options=('train_cfg.max_epochs=1', ))


def llm_weights(workspace: Path) -> dict:
    return load_file(workspace / 'checkpoints/demo/llm/model.safetensors')


@pytest.mark.slow
def test_stage1_saves_a_resumable_checkpoint(workspace, stage1):
    check_exit(stage1)
    checkpoint = last_checkpoint(workspace / 'w1')
    assert {'meta', 'state_dict', 'optimizer', 'message_hub'} <= set(
        checkpoint)
    assert checkpoint['meta']['iter'] == ITERS_PER_EPOCH
    assert set(part(checkpoint['state_dict'], 'projector.')) == {
        '0.weight', '0.bias', '2.weight', '2.bias'}
    # The optimizer holds state only for what learns: the 4 projector
    # tensors of the frozen-LLM stage.
    assert len(checkpoint['optimizer']['state']) == 4


@pytest.mark.slow
def test_stage1_leaves_the_llm_unchanged(workspace, stage1):
    check_exit(stage1)
    saved = part(last_checkpoint(workspace / 'w1')['state_dict'], 'llm.')
    for key, value in llm_weights(workspace).items():
        assert torch.equal(saved[key], value), f'stage 1 changed llm.{key}'


@pytest.mark.slow
def test_stage1_resumes_for_one_more_epoch(workspace, stage1):
    check_exit(stage1)
    # A copy, so that the stage-2 test still finds the stage-1 result.
    work_dir = workspace / 'w1_resumed'
    shutil.copytree(workspace / 'w1', work_dir)
    name = Path((work_dir / 'last_checkpoint').read_text().strip()).name
    (work_dir / 'last_checkpoint').write_text(str(work_dir / name))

    run = train(workspace, STAGE1_CONFIG, work_dir.name, '--resume',
                options=('train_cfg.max_epochs=2', ))
    check_exit(run)
    assert f'Load checkpoint from {work_dir / name}' in run.stdout
    # The demo saves at the end of each epoch: the checkpoint closed epoch
    # 1, so the run starts at epoch 2 (no batch to skip) and trains it only,
    # ending at the full iteration count.
    assert 'skipping the' not in run.stdout
    meta = last_checkpoint(work_dir)['meta']
    assert meta['iter'] == 2 * ITERS_PER_EPOCH
    # The resumed launch logs only the new epoch.
    _, losses = load_scalars(find_scalars_file(work_dir))
    assert len(losses) == 1


@pytest.mark.slow
def test_stage2_starts_from_the_stage1_projector(workspace, stage1):
    check_exit(stage1)
    # Another seed than stage 1's: a projector that was not loaded would
    # start from another random init, far from the stage-1 weights.
    run = train(workspace, STAGE2_CONFIG, 'w2', options=(
        'model.projector_pretrained=w1', 'train_cfg.max_epochs=1',
        'randomness.seed=7', *STAGE2_OPTIONS))
    check_exit(run)
    stage1_state = last_checkpoint(workspace / 'w1')['state_dict']
    stage2_state = last_checkpoint(workspace / 'w2')['state_dict']
    # An AdamW step moves a weight by about the learning rate (at most
    # ~1.4 times it in the second step); two random inits differ by ~0.1.
    lr = mmengine.Config.fromfile(
        str(STAGE2_CONFIG)).optim_wrapper.optimizer.lr
    for key, value in part(stage1_state, 'projector.').items():
        moved = (stage2_state['projector.' + key] - value).abs().max()
        assert moved < 2 * lr * STAGE2_ITERS, \
            f'projector.{key} is {moved} from stage 1'
    # Stage 2 trains the LLM.
    llm = part(stage2_state, 'llm.')
    changed = [key for key, value in llm_weights(workspace).items()
               if not torch.equal(llm[key], value)]
    assert changed, 'stage 2 left every LLM weight unchanged'
    _, losses = load_scalars(find_scalars_file(workspace / 'w2'))
    assert losses and all(math.isfinite(loss) for loss in losses)


@pytest.mark.slow
def test_unknown_config_key_fails_loudly(workspace):
    run = train(workspace, STAGE1_CONFIG, 'w_bad',
                options=('model.not_a_key=1', ))
    assert run.returncode != 0
    # The config dump names the key too: look at the exception's line.
    error = run.stdout.strip().splitlines()[-1]
    assert 'not_a_key' in error, run.stdout[-4000:]
