"""``mmllava/engine/hooks/non_finite_loss_hook.py``: a NaN loss stops a real
Runner, naming the iteration and the batch's sample ids, or is skipped; under
the guarded optimizer wrapper it never reaches the weights."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from mmllava.engine.hooks import NonFiniteLossHook

REPO = Path(__file__).resolve().parents[2]
NAN_AT_ITERATION, BATCH_SIZE, LEARNING_RATE, MAX_ITERS = 3, 2, 0.01, 5


class Numbers(Dataset):

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index)]),
                    data_samples=BaseDataElement(
                        metainfo=dict(sample_id=f'sample-{index}')))


class Line(BaseModel):
    """Its loss is NaN at one training iteration (1-based)."""

    def __init__(self, nan_at: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        loss = ((torch.stack(inputs) * self.weight - 1)**2).mean()
        if self.calls == self.nan_at:
            loss = loss * float('nan')
        return dict(loss=loss)


def make_runner(work_dir, nan_at, wrapper='OptimWrapper', **hook_args):
    return Runner(
        model=Line(nan_at), work_dir=str(work_dir), default_scope='mmllava',
        train_dataloader=dict(
            dataset=Numbers(), batch_size=BATCH_SIZE, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS),
        optim_wrapper=dict(type=wrapper,
                           optimizer=dict(type='SGD', lr=LEARNING_RATE)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[dict(type='NonFiniteLossHook', **hook_args)],
        log_level='WARNING')


def test_nan_loss_stops_naming_iteration_and_samples(tmp_path):
    runner = make_runner(tmp_path, NAN_AT_ITERATION)
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    message = str(info.value)
    assert f'iteration {NAN_AT_ITERATION} ' in message
    # Unshuffled batches of 2: iteration 3 holds samples 4 and 5.
    assert "['sample-4', 'sample-5']" in message
    assert runner.model.calls == NAN_AT_ITERATION
    assert 'already applied it to the weights' in message


def sgd_by_hand(iterations, skip=()):
    """The weight after SGD on ``mean((x * w - 1)^2)`` over the unshuffled
    batches, leaving out the (1-based) iterations in ``skip``."""
    weight = 0.0
    for iteration in range(1, iterations + 1):
        if iteration in skip:
            continue
        first = (iteration - 1) * BATCH_SIZE
        xs = [float(first + offset) for offset in range(BATCH_SIZE)]
        gradient = sum(2 * x * (x * weight - 1) for x in xs) / len(xs)
        weight -= LEARNING_RATE * gradient
    return weight


def test_guarded_stop_leaves_the_weights_of_the_last_good_step(tmp_path):
    runner = make_runner(tmp_path, NAN_AT_ITERATION, 'GuardedOptimWrapper')
    with pytest.raises(FloatingPointError, match='its update was skipped'):
        runner.train()
    assert runner.model.weight.item() == pytest.approx(
        sgd_by_hand(NAN_AT_ITERATION - 1), rel=1e-6)


def test_skip_trains_on_without_the_bad_batch(tmp_path):
    runner = make_runner(tmp_path, NAN_AT_ITERATION, 'GuardedOptimWrapper',
                         action='skip')
    runner.train()
    assert runner.iter == MAX_ITERS
    assert runner.model.weight.item() == pytest.approx(
        sgd_by_hand(MAX_ITERS, skip={NAN_AT_ITERATION}), rel=1e-6)
    # Non-vacuous: the skipped batch would have moved the weight.
    assert sgd_by_hand(MAX_ITERS) != pytest.approx(
        sgd_by_hand(MAX_ITERS, skip={NAN_AT_ITERATION}), rel=1e-6)


def test_skip_stops_past_max_skips(tmp_path):
    runner = make_runner(tmp_path, NAN_AT_ITERATION, 'GuardedOptimWrapper',
                         action='skip', max_skips=0)
    with pytest.raises(FloatingPointError, match='max_skips=0'):
        runner.train()


def test_skip_needs_the_guarded_wrapper(tmp_path):
    runner = make_runner(tmp_path, NAN_AT_ITERATION, action='skip')
    with pytest.raises(ValueError, match='GuardedOptimWrapper'):
        runner.train()
    assert runner.model.calls == 0


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="'ignore'"):
        NonFiniteLossHook(action='ignore')


def test_finite_losses_train_to_the_end(tmp_path):
    runner = make_runner(tmp_path, nan_at=-1)
    runner.train()
    assert runner.iter == 5


@pytest.mark.parametrize('config', [
    'configs/llava/llava-tiny_demo_pretrain.py',
    'configs/llava/llava-tiny_demo_ft.py',
])
def test_recipes_keep_the_hook_and_the_guard(config):
    config = Config.fromfile(str(REPO / config))
    assert 'NonFiniteLossHook' in [hook['type'] for hook in
                                   config.custom_hooks]
    assert config.optim_wrapper.type == 'GuardedOptimWrapper'
