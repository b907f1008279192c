"""``tools/train.py`` across processes on the CPU (gloo): DDP, DeepSpeed
ZeRO-2 and ZeRO-3 (``--strategy``), resume under DeepSpeed, bf16 AMP, and
ZeRO checkpoints consolidated for ``get_model``.

Every run trains the demo's stage 1 with the LLM unfrozen for 2 steps of a
global batch of 4 (2 epochs of one batch, constant learning rate). The
reference is one process with a batch of 4. Data-parallel ranks each take
the mean loss over their own tokens, and their gradients are averaged; that
equals the one-process gradient when every sample has as many supervised
tokens, so captions are truncated to one length (``max_length``). Then
every run must end with the one-process weights, up to float summation
order.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mmllava  # noqa: F401  (lets torch.load(weights_only=True) read them)
from mmllava.apis import get_model
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.converters.deepspeed_checkpoint import \
    consolidate_deepspeed_checkpoint
from mmllava.utils.plot import find_scalars_file, load_scalars

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / 'tools/train.py'
CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
GLOBAL_BATCH = 4
# 36 image rows and 8 text tokens: every caption is cut to 7 supervised
# tokens (the shortest of the 4 has 9).
MAX_LENGTH = 44
OPTIONS = (
    'model.freeze_llm=False',
    f'train_dataloader.dataset.indices={GLOBAL_BATCH}',
    f'train_dataloader.dataset.pipeline.2.max_length={MAX_LENGTH}',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'param_scheduler=None',
    'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=1')
TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start(cwd: Path, work_dir: str, processes: int, epochs: int,
          *args: str) -> subprocess.Popen:
    """Start tools/train.py on ``processes`` processes (torchrun beyond
    one), each with a batch of ``GLOBAL_BATCH / processes``."""
    launcher = [sys.executable, str(TRAIN)] if processes == 1 else [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={processes}', f'--master_port={free_port()}',
        str(TRAIN), '--launcher', 'pytorch']
    command = [*launcher, str(CONFIG), '--work-dir', work_dir, *args,
               '--cfg-options', *OPTIONS, f'train_cfg.max_epochs={epochs}',
               f'train_dataloader.batch_size={GLOBAL_BATCH // processes}']
    env = dict(os.environ, OMP_NUM_THREADS='1', DS_ACCELERATOR='cpu')
    return subprocess.Popen(command, cwd=cwd, env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for a :func:`start` ed run; its output."""
    output, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, (
        f'{" ".join(process.args)} exited {process.returncode}:\n'
        f'{output[-4000:]}')
    return output


def train(*args, **kwargs) -> str:
    """:func:`start` and :func:`finish`."""
    return finish(start(*args, **kwargs))


def last_checkpoint(work_dir: Path) -> str:
    return (work_dir / 'last_checkpoint').read_text().strip()


def final_weights(work_dir: Path) -> dict:
    path = last_checkpoint(work_dir)
    if Path(path).is_dir():
        return consolidate_deepspeed_checkpoint(path)['state_dict']
    return torch.load(path, map_location='cpu',
                      weights_only=True)['state_dict']


def assert_same_weights(weights: dict, reference: dict) -> None:
    """Equal up to float summation order. AdamW's first steps move a weight
    by about the learning rate (1e-3) whatever the gradient's size, and
    amplify rounding in near-zero gradients to ~4e-6; a step on other data,
    or a missing step, moves weights by ~1e-3."""
    assert set(weights) == set(reference)
    for key, value in reference.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=2e-5,
                                   msg=key)


def scalars(work_dir: Path, name: str) -> list:
    with open(find_scalars_file(work_dir)) as file:
        return [record[name] for record in map(json.loads, file)
                if name in record]


def losses(work_dir: Path) -> list:
    return load_scalars(find_scalars_file(work_dir))[1]


@pytest.fixture(scope='module')
def workspace(demo_workspace) -> Path:
    return demo_workspace


@pytest.fixture(scope='module')
def one_process(workspace) -> Path:
    """The reference run; the bf16 one beside it (one process each, so the
    two share the machine's cores)."""
    runs = [start(workspace, 'dist_single', 1, 2),
            start(workspace, 'dist_amp', 1, 2, '--amp')]
    for run in runs:
        finish(run)
    return workspace / 'dist_single'


def test_the_reference_run_trains(workspace, one_process, monkeypatch):
    """The weights move: equal weights below mean equal training."""
    monkeypatch.chdir(workspace)
    start = get_model(str(CONFIG), device='cpu').state_dict()
    trained = final_weights(one_process)
    assert not torch.equal(trained['llm.model.norm.weight'],
                           start['llm.model.norm.weight'])


def test_ddp_on_two_processes_equals_one_process(workspace, one_process):
    train(workspace, 'dist_ddp', 2, 2)
    # Adam hardly sees a gradient's scale (and clipping hides it too): the
    # logged norms of the averaged gradients show it is the global batch's.
    norms = scalars(workspace / 'dist_ddp', 'grad_norm')
    assert norms == pytest.approx(scalars(one_process, 'grad_norm'),
                                  rel=1e-5)
    assert_same_weights(final_weights(workspace / 'dist_ddp'),
                        final_weights(one_process))


def test_bf16_amp_losses_are_close_to_fp32(workspace, one_process):
    """``--amp`` on the CPU: bf16 autocast, losses within bf16 rounding."""
    amp, fp32 = losses(workspace / 'dist_amp'), losses(one_process)
    assert len(amp) == len(fp32) == 2
    # Same weights at the first step: only bf16 rounding differs (~3
    # significant digits in each matmul).
    assert amp[0] != fp32[0]
    assert amp == pytest.approx(fp32, rel=1e-2)


def train_and_resume(workspace: Path, stage: str) -> tuple:
    """One step, then a resumed run for the second; the work dir and the
    resumed run."""
    work_dir = workspace / f'dist_{stage}'
    train(workspace, work_dir.name, 2, 1, '--strategy', stage)
    assert Path(last_checkpoint(work_dir)).is_dir()
    return work_dir, train(workspace, work_dir.name, 2, 2, '--strategy',
                           stage, '--resume')


@pytest.fixture(scope='module')
def zero2(workspace) -> tuple:
    return train_and_resume(workspace, 'deepspeed_zero2')


@pytest.fixture(scope='module')
def zero3(workspace) -> tuple:
    return train_and_resume(workspace, 'deepspeed_zero3')


@pytest.mark.parametrize('stage', ['zero2', 'zero3'])
def test_deepspeed_trains_and_resumes_as_one_process(request, one_process,
                                                     stage):
    """The resumed ZeRO run ends where the uninterrupted one-process run
    does, so the optimizer state, the step count and the data position came
    back."""
    work_dir, resumed = request.getfixturevalue(stage)
    assert 'Resume checkpoint from' in resumed
    # mmengine's DeepSpeed strategy ran no checkpoint hooks before the fix.
    assert 'Restored the RNG states saved at iteration 1' in resumed
    assert_same_weights(final_weights(work_dir), final_weights(one_process))


def test_consolidated_zero_checkpoint_gives_the_training_logits(
        workspace, zero2, monkeypatch):
    """ZeRO-2 keeps the whole module on every rank: its saved module state
    is the training-time model. The consolidated checkpoint must load in
    get_model and give its logits exactly."""
    work_dir, _ = zero2
    folder = Path(last_checkpoint(work_dir))
    training_state = torch.load(folder / 'mp_rank_00_model_states.pt',
                                map_location='cpu',
                                weights_only=False)['module']
    out = workspace / 'zero2_consolidated.pth'
    subprocess.run(
        [sys.executable,
         str(REPO / 'tools/model_converters/consolidate_checkpoint.py'),
         str(work_dir), str(out)], check=True, cwd=workspace)
    monkeypatch.chdir(workspace)
    model = get_model(str(CONFIG), pretrained=str(out), device='cpu')
    reference = get_model(str(CONFIG), device='cpu')
    assert not torch.equal(
        reference.state_dict()['llm.model.norm.weight'],
        training_state['llm.model.norm.weight'])
    reference.load_state_dict(training_state)
    batch = dict(
        input_ids=torch.tensor([[1, IMAGE_TOKEN_INDEX, 415, 3469, 302, 2]]),
        attention_mask=torch.ones(1, 6, dtype=torch.long),
        pixel_values=torch.randn(1, 3, 48, 48,
                                 generator=torch.Generator().manual_seed(0)),
        num_images=[1])
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
        expected = reference(**batch, mode='tensor')
    assert torch.equal(logits, expected)
