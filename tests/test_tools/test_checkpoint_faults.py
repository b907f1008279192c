"""Checkpoint faults met through the tools, run as a user runs them: a test
checkpoint that does not fit its config, a truncated newest checkpoint with
``last_checkpoint`` deleted, and a new run started where another one saved.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
STAGE1_CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
VQA_CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'
# Loading in the main process; half an epoch of warmup on the 24 scenes
# (see test_train.py); two checkpoints kept.
OPTIONS = ('train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False',
           'param_scheduler.0.end=0.5', 'param_scheduler.1.begin=0.5',
           'default_hooks.checkpoint.max_keep_ckpts=2')
TIMEOUT = 300


def run_tool(cwd: Path, tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'tools' / tool), *args],
                          cwd=cwd, env=dict(os.environ),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=scaled_timeout(TIMEOUT))


def train(cwd: Path, work_dir: str, max_epochs: int, *args: str):
    return run_tool(cwd, 'train.py', str(STAGE1_CONFIG), '--work-dir',
                    work_dir, *args, '--cfg-options', *OPTIONS,
                    f'train_cfg.max_epochs={max_epochs}')


def explain(run: subprocess.CompletedProcess) -> str:
    return f'exit {run.returncode}:\n{run.stdout[-4000:]}'


@pytest.fixture(scope='module')
def two_epochs(demo_workspace) -> Path:
    """A stage-1 work dir with epoch_1.pth and epoch_2.pth."""
    run = train(demo_workspace, 'faults_two_epochs', 2)
    assert run.returncode == 0, explain(run)
    return demo_workspace / 'faults_two_epochs'


@pytest.mark.slow
def test_a_new_run_does_not_overwrite_an_earlier_run(demo_workspace,
                                                     two_epochs):
    before = {path.name: path.read_bytes()
              for path in two_epochs.glob('epoch_*.pth')}
    run = train(demo_workspace, two_epochs.name, 2)
    assert run.returncode != 0
    assert (f'{two_epochs.name} already holds checkpoints of an earlier '
            'run (epoch_1.pth, epoch_2.pth)') in run.stdout
    assert 'tools/train.py --resume' in run.stdout
    assert {path.name: path.read_bytes()
            for path in two_epochs.glob('epoch_*.pth')} == before


@pytest.mark.slow
def test_resume_skips_a_truncated_checkpoint_without_last_checkpoint(
        demo_workspace, two_epochs):
    work_dir = demo_workspace / 'faults_truncated'
    shutil.copytree(two_epochs, work_dir)
    newest = work_dir / 'epoch_2.pth'
    newest.write_bytes(newest.read_bytes()[:100_000])
    (work_dir / 'last_checkpoint').unlink()
    run = train(demo_workspace, work_dir.name, 3, '--resume')
    assert run.returncode == 0, explain(run)
    log = run.stdout.replace('\n', ' ')
    # Paths as given: relative to the workspace.
    assert 'faults_truncated has no last_checkpoint file' in log
    assert ('Skipped faults_truncated/epoch_2.pth: the file is truncated '
            '(100000 bytes)') in log
    assert 'Load checkpoint from faults_truncated/epoch_1.pth' in log
    # Epochs 2 and 3 trained again; the truncated file was replaced.
    final = torch.load((work_dir / 'last_checkpoint').read_text().strip(),
                       weights_only=True)
    assert final['meta']['epoch'] == 3
    assert torch.load(newest, weights_only=True)['meta']['epoch'] == 2


def lora_like(checkpoint: str, out: Path) -> Path:
    """``checkpoint`` with the LLM's attention projections under the names a
    LoRA run saves them (``base_layer`` plus ``lora_A``/``lora_B``)."""
    # The shared random model is saved as a bare state dict.
    state = torch.load(checkpoint, weights_only=True)
    renamed = {}
    for key, value in state.items():
        if key.startswith('llm.') and key.endswith('.self_attn.q_proj.weight'):
            stem = key[:-len('.weight')]
            renamed[f'{stem}.base_layer.weight'] = value
            renamed[f'{stem}.lora_A.default.weight'] = torch.zeros(8, 128)
            renamed[f'{stem}.lora_B.default.weight'] = torch.zeros(128, 8)
        else:
            renamed[key] = value
    torch.save(dict(state_dict=renamed), out)
    return out


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_the_test_config_stops_the_test(
        demo_workspace, demo_vqa_checkpoint, tmp_path):
    checkpoint = lora_like(demo_vqa_checkpoint, tmp_path / 'lora_run.pth')
    run = run_tool(demo_workspace, 'test.py', str(VQA_CONFIG),
                   str(checkpoint), '--work-dir', 'faults_lora_test')
    assert run.returncode != 0
    assert 'PartialLoadError' in run.stdout
    assert f'{checkpoint} does not fit the model' in run.stdout
    assert ('4 missing from the checkpoint: '
            'llm.model.layers.0.self_attn.q_proj.weight') in run.stdout
    assert ('12 unexpected (not in the model): '
            'llm.model.layers.0.self_attn.q_proj.base_layer.weight') \
        in run.stdout
    assert '--allow-partial-load' in run.stdout
    assert not list((demo_workspace / 'faults_lora_test').glob('*.jsonl'))
