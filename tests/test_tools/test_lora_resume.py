"""A LoRA run of the demo's stage 2 (``tools/train.py``) saves its adapters
in mmengine checkpoints, and a run resumed from its first checkpoint ends
with the same weights and optimizer state, bit for bit, as the run that went
on uninterrupted.

4 iterations (one epoch of 4 batches of 2), a checkpoint every 2, LoRA
dropout high enough that the result depends on the restored random state,
and the projector at a tenth of the adapters' learning rate (the recipe's
per-part rate, which must survive the resume too).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmllava.testing.timeouts import scaled_timeout


REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / 'tools/train.py'
NUM_ITERS, INTERVAL, LR = 4, 2, 1e-3
OPTIONS = (
    'train_dataloader.dataset.indices=8', 'train_dataloader.batch_size=2',
    'train_dataloader.sampler.batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
    'train_cfg.val_begin=100', 'param_scheduler.0.end=0.5',
    'param_scheduler.1.begin=0.5', 'randomness.deterministic=True',
    'model.projector_pretrained=None', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.by_epoch=False',
    f'default_hooks.checkpoint.interval={INTERVAL}',
    'default_hooks.checkpoint.max_keep_ckpts=2')


def write_config(folder: Path) -> Path:
    """The demo's stage 2 with LoRA and the projector at lr / 10, without
    the sample answers (generation that would only cost time)."""
    path = folder / 'lora_demo.py'
    base = REPO / 'configs/llava/llava-tiny_demo_ft.py'
    path.write_text(
        f'_base_ = [{str(base)!r}]\n'
        "model = dict(lora=dict(r=8, alpha=16, dropout=0.3))\n"
        f'optim_wrapper = dict(optimizer=dict(lr={LR}), paramwise_cfg=dict('
        "custom_keys={'projector': dict(lr_mult=0.1)}))\n"
        "custom_hooks = [dict(type='NonFiniteLossHook')]\n")
    return path


def train(cwd: Path, config: Path, work_dir: str, *args: str) -> str:
    command = [sys.executable, str(TRAIN), str(config), '--work-dir',
               work_dir, *args, '--cfg-options', *OPTIONS]
    run = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         timeout=scaled_timeout(300),
                         env=dict(os.environ, OMP_NUM_THREADS='1',
                                  MKL_NUM_THREADS='1'))
    assert run.returncode == 0, f'{work_dir}:\n{run.stdout[-4000:]}'
    return run.stdout


def load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.slow
def test_lora_run_resumes_bit_exact(demo_workspace, tmp_path,
                                    differing_tensors):
    config = write_config(tmp_path)
    train(demo_workspace, config, 'lora_full')
    full = demo_workspace / 'lora_full'
    expected = load(full / f'iter_{NUM_ITERS}.pth')

    # The checkpoint holds the adapters and the frozen base weights, which
    # did not move; the optimizer only knows what trains.
    state = expected['state_dict']
    lora = [key for key in state if '.lora_' in key]
    assert len(lora) == 2 * 7 * 4  # A and B of 7 layers in 4 blocks
    base = load_file(demo_workspace / 'checkpoints/demo/llm/model.safetensors')
    for key, value in base.items():
        saved = state.get('llm.' + key,
                          state.get('llm.' + key.replace(
                              '.weight', '.base_layer.weight')))
        assert saved is not None and torch.equal(saved, value), key
    assert len(expected['optimizer']['state']) == len(lora) + 4
    # The 4 projector tensors start at a tenth of the rate.
    initial = [group['initial_lr']
               for group in expected['optimizer']['param_groups']]
    assert sorted(set(initial)) == [LR * 0.1, LR]
    assert initial.count(LR * 0.1) == 4

    # The same run, stopped after its first checkpoint and resumed.
    resumed = demo_workspace / 'lora_resumed'
    resumed.mkdir()
    first = f'iter_{INTERVAL}.pth'
    shutil.copy(full / first, resumed / first)
    (resumed / 'last_checkpoint').write_text(str(resumed / first))
    output = train(demo_workspace, config, resumed.name, '--resume')
    assert f'Load checkpoint from {resumed / first}' in output
    actual = load(resumed / f'iter_{NUM_ITERS}.pth')
    for part in ('state_dict', 'optimizer'):
        assert not differing_tensors(expected[part], actual[part]), part
    assert actual['optimizer']['param_groups'] == \
        expected['optimizer']['param_groups']
    # The adapters learned: B starts at zero.
    assert any(state[key].abs().sum() > 0 for key in lora
               if '.lora_B.' in key)
