"""``tools/train.py`` across processes on the CPU (gloo): DDP, DeepSpeed
ZeRO-2, ZeRO-3 and ZeRO-3 with CPU offload, and FSDP (``--strategy``), ZeRO-3
building the model partitioned, resume under DeepSpeed and FSDP, bf16 AMP (also
DeepSpeed's, with LoRA), and ZeRO checkpoints consolidated or loaded
directly.

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
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

import mmengine
import pytest
import torch
from safetensors.torch import load_file

from mmllava.apis import get_model
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.converters.deepspeed_checkpoint import \
    consolidate_deepspeed_checkpoint
from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.image_token_counts import rows_per_tile
from mmllava.utils.plot import find_scalars_file, load_scalars

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / 'tools/train.py'
CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
GLOBAL_BATCH = 4
# The image rows and 8 text tokens: every caption is cut to 7 supervised
# tokens (the shortest of the 4 has 9), so that each process's mean loss
# weighs its tokens as the one-process run does.
MAX_LENGTH = rows_per_tile(
    mmengine.Config.fromfile(str(CONFIG)).demo.vision_config) + 8
OPTIONS = (
    'model.freeze_llm=False',
    f'train_dataloader.dataset.indices={GLOBAL_BATCH}',
    f'train_dataloader.dataset.pipeline.2.max_length={MAX_LENGTH}',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'param_scheduler=None',
    'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=1')
pytestmark = pytest.mark.distributed

TIMEOUT = 300


def start(cwd: Path, work_dir: str, processes: int, epochs: int,
          *args: str, config: Path = CONFIG,
          extra_env: Optional[dict] = None) -> subprocess.Popen:
    """Start tools/train.py on ``processes`` processes (torchrun beyond
    one), each with a batch of ``GLOBAL_BATCH / processes``, in a session
    of its own (so that a run that overstays is killed whole)."""
    launcher = [sys.executable, str(TRAIN)] if processes == 1 else [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={processes}', '--standalone',  # a free port
        str(TRAIN), '--launcher', 'pytorch']
    command = [*launcher, str(config), '--work-dir', work_dir, *args,
               '--cfg-options', *OPTIONS, f'train_cfg.max_epochs={epochs}',
               f'train_dataloader.batch_size={GLOBAL_BATCH // processes}']
    env = dict(os.environ, OMP_NUM_THREADS='1', DS_ACCELERATOR='cpu',
               **(extra_env or {}))
    return subprocess.Popen(command, cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for a :func:`start` ed run; its output. A run past its time is
    killed with its workers, so that none goes on eating the machine."""
    try:
        output, _ = process.communicate(timeout=scaled_timeout(TIMEOUT))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f'{" ".join(process.args)} ran past '
                             f'{scaled_timeout(TIMEOUT):.0f} s:\n'
                             f'{output[-4000:]}') from None
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
    # DeepSpeed saves a folder of shards, FSDP ('full') one file.
    assert Path(last_checkpoint(work_dir)).is_dir() == (stage != 'fsdp')
    return work_dir, train(workspace, work_dir.name, 2, 2, '--strategy',
                           stage, '--resume')


@pytest.fixture(scope='module')
def zero2(workspace) -> tuple:
    return train_and_resume(workspace, 'deepspeed_zero2')


@pytest.fixture(scope='module')
def zero3(workspace) -> tuple:
    return train_and_resume(workspace, 'deepspeed_zero3')


@pytest.fixture(scope='module')
def fsdp(workspace) -> tuple:
    return train_and_resume(workspace, 'fsdp')


@pytest.mark.parametrize('stage', ['zero2', 'zero3', 'fsdp'])
def test_sharded_run_trains_and_resumes_as_one_process(request, one_process,
                                                       stage):
    """The resumed sharded run ends where the uninterrupted one-process run
    does, so the optimizer state, the step count and the data position came
    back. Under FSDP the clipping (max_norm 1) must see the whole
    gradient's norm, not each rank's shard's."""
    work_dir, resumed = request.getfixturevalue(stage)
    assert 'Resume checkpoint from' in resumed
    # mmengine's DeepSpeed strategy ran no checkpoint hooks before the fix.
    assert 'Restored the RNG states saved at iteration 1' in resumed
    assert_same_weights(final_weights(work_dir), final_weights(one_process))


def test_fsdp_checkpoint_loads_in_get_model(workspace, fsdp, monkeypatch):
    """FSDP's 'full' checkpoint is one file with the model's own keys: the
    work dir loads as a plain run's does."""
    work_dir, _ = fsdp
    monkeypatch.chdir(workspace)
    state = get_model(str(CONFIG), pretrained=str(work_dir),
                      device='cpu').state_dict()
    for key, value in final_weights(work_dir).items():
        assert torch.equal(state[key], value), key


def test_zero3_offload_trains_as_one_process(workspace, one_process,
                                            tmp_path):
    """Weights and optimizer states on the CPU; the recipe's AdamW becomes
    DeepSpeed's CPU Adam (its C++ op is compiled on first use, here into a
    folder of the test's own: a lock left in the shared one by a killed
    build would make it wait forever), which must step as torch's AdamW
    does."""
    output = train(workspace, 'dist_zero3_offload', 2, 2, '--strategy',
                   'deepspeed_zero3_offload',
                   extra_env={'TORCH_EXTENSIONS_DIR': str(tmp_path)})
    # The config as the run used it (dumped beside its checkpoints).
    used = (workspace / 'dist_zero3_offload' / CONFIG.name).read_text()
    assert "type='DeepSpeedCPUAdam'" in used, output[-3000:]
    assert_same_weights(final_weights(workspace / 'dist_zero3_offload'),
                        final_weights(one_process))


def test_zero3_builds_the_model_partitioned(workspace, zero3, monkeypatch):
    """Each of the 2 ranks holds about half of the model from the start:
    the LLM and the tower were loaded inside ``deepspeed.zero.Init``, not
    built whole and partitioned afterwards."""
    _, resumed = zero3
    held, whole = partition_share(resumed)
    monkeypatch.chdir(workspace)
    model = get_model(str(CONFIG), device='cpu')
    assert whole == sum(param.numel() for param in model.parameters())
    # The projector (0.5%) is built whole and partitioned by
    # deepspeed.initialize.
    assert 0.49 < held / whole < 0.51


def partition_share(output: str) -> tuple[int, int]:
    """``(held, whole)`` from a ZeRO-3 run's partitioned-build log line."""
    match = re.search(r'ZeRO-3: built the model partitioned; this rank '
                      r'holds ([\d,]+) of its ([\d,]+) parameters', output)
    assert match, output[-3000:]
    held, whole = (int(group.replace(',', '')) for group in match.groups())
    return held, whole


def test_lora_under_zero3_with_bf16_trains_and_merges(workspace,
                                                      one_process):
    """LoRA adapters and the projector, built outside ``zero.Init``, join
    the partitioned bf16 model, the projector at a tenth of the learning
    rate; the DeepSpeed work dir then goes straight into the merge tool (no
    consolidation step)."""
    config = workspace / 'lora_zero3.py'
    config.write_text(
        f'_base_ = [{str(CONFIG)!r}]\n'
        'model = dict(freeze_llm=False, lora=dict(r=8, alpha=16))\n'
        'optim_wrapper = dict(paramwise_cfg=dict(\n'
        "    custom_keys={'projector': dict(lr_mult=0.1)}))\n")
    output = train(workspace, 'dist_lora_zero3', 2, 2, '--strategy',
                   'deepspeed_zero3', '--amp', config=config)
    held, whole = partition_share(output)
    assert 0.49 < held / whole < 0.53
    # B starts at zero: the first step's loss is the plain model's, up to
    # bf16 rounding.
    amp, fp32 = losses(workspace / 'dist_lora_zero3'), losses(one_process)
    assert amp[0] == pytest.approx(fp32[0], rel=1e-2) and amp[0] != fp32[0]
    # The per-part learning rates reached DeepSpeed's optimizer.
    folder = Path(last_checkpoint(workspace / 'dist_lora_zero3'))
    optimizer = torch.load(
        folder / 'bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt',
        map_location='cpu', weights_only=False)['optimizer_state_dict']
    learning_rates = {group['lr'] for group in optimizer[
        'optimizer_state_dict']['param_groups']}
    assert sorted(learning_rates) == pytest.approx([1e-4, 1e-3])
    weights = final_weights(workspace / 'dist_lora_zero3')
    lora_b = [key for key in weights if '.lora_B.' in key]
    assert len(lora_b) == 7 * 4  # 7 layers in each of 4 blocks
    assert all(weights[key].abs().sum() > 0 for key in lora_b)
    # The frozen base weights are DeepSpeed's bf16 copies of the loaded ones.
    base = load_file(str(workspace / 'checkpoints/demo/llm/model.safetensors'))
    for key in ('model.layers.0.self_attn.q_proj.weight',
                'model.layers.3.mlp.down_proj.weight'):
        stored = weights['llm.' + key.replace('.weight', '.base_layer.weight')]
        assert torch.equal(stored, base[key].to(torch.bfloat16).float())

    merged = workspace / 'lora_zero3_merged'
    result = subprocess.run(
        [sys.executable,
         str(REPO / 'tools/model_converters/merge_mmllava_lora.py'),
         str(config), 'dist_lora_zero3', str(merged)],
        cwd=workspace, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=scaled_timeout(TIMEOUT))
    assert result.returncode == 0, result.stdout[-3000:]
    state = torch.load(merged / 'model.pth', map_location='cpu',
                       weights_only=True)['state_dict']
    assert not any('lora_' in key for key in state)
    # W + B @ A * alpha / r, from the consolidated adapters.
    prefix = 'llm.model.layers.0.self_attn.q_proj'
    expected = weights[f'{prefix}.base_layer.weight'] + 16 / 8 * (
        weights[f'{prefix}.lora_B.default.weight']
        @ weights[f'{prefix}.lora_A.default.weight'])
    assert not torch.equal(expected, weights[f'{prefix}.base_layer.weight'])
    torch.testing.assert_close(state[f'{prefix}.weight'], expected,
                               rtol=0, atol=1e-6)


def test_consolidated_zero_checkpoint_gives_the_training_logits(
        workspace, zero2, monkeypatch):
    """ZeRO-2 keeps the whole module on every rank: its saved module state
    is the training-time model. The consolidated checkpoint, and the work
    dir itself, must load in get_model and give its logits exactly."""
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
    # The work dir loads directly too: its latest folder, consolidated in
    # memory.
    direct = get_model(str(CONFIG), pretrained=str(work_dir), device='cpu')
    with torch.no_grad():
        expected = reference(**batch, mode='tensor')
        assert torch.equal(model(**batch, mode='tensor'), expected)
        assert torch.equal(direct(**batch, mode='tensor'), expected)
