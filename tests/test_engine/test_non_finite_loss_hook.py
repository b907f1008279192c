"""``mmllava/engine/hooks/non_finite_loss_hook.py``: a NaN loss stops a real
Runner, naming the iteration and the batch's sample ids."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[2]
NAN_AT_ITERATION, BATCH_SIZE = 3, 2


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


def make_runner(work_dir, nan_at):
    return Runner(
        model=Line(nan_at), work_dir=str(work_dir), default_scope='mmllava',
        train_dataloader=dict(
            dataset=Numbers(), batch_size=BATCH_SIZE, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=False, max_iters=5),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[dict(type='NonFiniteLossHook')],
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


def test_finite_losses_train_to_the_end(tmp_path):
    runner = make_runner(tmp_path, nan_at=-1)
    runner.train()
    assert runner.iter == 5


@pytest.mark.parametrize('config', [
    'configs/llava/llava-tiny_demo_pretrain.py',
    'configs/llava/llava-tiny_demo_ft.py',
])
def test_recipes_keep_the_hook(config):
    hooks = Config.fromfile(str(REPO / config)).custom_hooks
    assert 'NonFiniteLossHook' in [hook['type'] for hook in hooks]
