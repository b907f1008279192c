"""``mmllava/engine/hooks/rng_state_hook.py``: the generators' states go
into checkpoints, and a resumed run draws what an uninterrupted one draws.

The runs are real mmengine Runners on a toy model whose loss goes through
dropout, so every iteration's update depends on torch's generator.
"""
import random
from itertools import count

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmllava.engine.hooks.rng_state_hook import (RNGStateHook, get_rng_state,
                                                 set_rng_state)
from mmllava.registry import HOOKS, METRICS, MODELS

NUM_SAMPLES, BATCH_SIZE = 6, 2  # 3 iterations per epoch
MAX_EPOCHS = 2
RUN_NAMES = count()


class Vectors(Dataset):

    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, index):
        return dict(inputs=torch.linspace(-1, 1, 8) * (index + 1))


class DropoutLine(BaseModel):

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(8))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = torch.stack(inputs)  # (B, 8)
        dropped = F.dropout(inputs * self.weight, p=0.5,
                            training=self.training)
        if mode == 'loss':
            return dict(loss=((dropped.sum(-1) - 1)**2).mean())
        return [dict(output=value) for value in dropped.sum(-1)]


class Count(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(count=len(results))


@pytest.fixture(scope='module', autouse=True)
def registered():
    MODELS.register_module('RNGTestDropoutLine', module=DropoutLine,
                           force=True)
    METRICS.register_module('RNGTestCount', module=Count, force=True)


def train(work_dir, resume_from=None, rng_hook=True,
          val_iter_interval=None) -> torch.Tensor:
    """Train the toy model for 2 epochs, saving every iteration; return
    the final weight."""
    loader = dict(dataset=Vectors(), batch_size=BATCH_SIZE,
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  collate_fn=dict(type='pseudo_collate'))
    default_hooks = dict(
        logger=None,
        checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                        by_epoch=False,
                        backend_args=dict(backend='atomic_local')))
    if rng_hook:
        default_hooks['rng_state'] = dict(type='RNGStateHook')
    validation = {}
    if val_iter_interval is not None:
        validation = dict(val_dataloader=loader, val_cfg=dict(),
                          val_evaluator=dict(type='RNGTestCount'))
    runner = Runner(
        model=dict(type='RNGTestDropoutLine'),
        work_dir=str(work_dir),
        experiment_name=f'rng_state_hook_{next(RUN_NAMES)}',
        train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(type='ResumableEpochBasedTrainLoop',
                       max_epochs=MAX_EPOCHS, val_begin=MAX_EPOCHS + 1,
                       val_iter_interval=val_iter_interval),
        default_hooks=default_hooks,
        randomness=dict(seed=0),
        load_from=None if resume_from is None else str(resume_from),
        resume=resume_from is not None,
        default_scope='mmllava',
        **validation)
    runner.train()
    return runner.model.weight.detach().clone()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """The final weight of an uninterrupted run, and its work dir."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    return train(work_dir), work_dir


def draw() -> tuple:
    return (random.random(), np.random.rand(3).tolist(),
            torch.rand(3).tolist())


def test_state_round_trips_through_a_safe_load(tmp_path):
    state = get_rng_state()
    expected = draw()
    torch.save(dict(rng_state=state), tmp_path / 'state.pth')
    loaded = torch.load(tmp_path / 'state.pth', weights_only=True)
    draw()
    set_rng_state(loaded['rng_state'])
    assert draw() == expected


def test_cuda_states_need_as_many_devices():
    state = get_rng_state()
    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    state['cuda'] = [torch.get_rng_state()] * (devices + 1)
    with pytest.raises(ValueError, match=f'{devices + 1} CUDA devices'):
        set_rng_state(state)


def test_checkpoints_hold_the_states(uninterrupted):
    _, work_dir = uninterrupted
    checkpoint = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    assert set(checkpoint['rng_state']) >= {'python', 'numpy', 'torch'}


@pytest.mark.parametrize('iteration', [2, 3, 4],
                         ids=['mid-epoch', 'epoch-end', 'second-epoch'])
def test_resumed_run_ends_bit_exact(uninterrupted, tmp_path, iteration):
    expected, work_dir = uninterrupted
    resumed = train(tmp_path, resume_from=work_dir / f'iter_{iteration}.pth')
    assert torch.equal(resumed, expected)


def test_without_the_states_the_resumed_run_differs(uninterrupted, tmp_path):
    """The toy draws enough for the hook to matter (not vacuous)."""
    expected, work_dir = uninterrupted
    resumed = train(tmp_path, resume_from=work_dir / 'iter_2.pth',
                    rng_hook=False)
    assert not torch.equal(resumed, expected)


def test_validation_does_not_change_training_draws(uninterrupted, tmp_path):
    expected, _ = uninterrupted
    assert torch.equal(train(tmp_path / 'hook', val_iter_interval=2),
                       expected)
    # Without the hook, creating the validation dataloader's iterator alone
    # draws from torch's generator.
    assert not torch.equal(
        train(tmp_path / 'no_hook', rng_hook=False, val_iter_interval=2),
        expected)


def test_hook_is_registered():
    assert HOOKS.get('RNGStateHook') is RNGStateHook
