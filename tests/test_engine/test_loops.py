"""``mmllava/engine/loops.py``: validation every N iterations inside an
epoch, besides mmengine's per-epoch schedule, in a real Runner."""
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmllava.registry import LOOPS, METRICS, MODELS

NUM_SAMPLES, BATCH_SIZE = 12, 2  # 6 iterations per epoch


class Numbers(Dataset):

    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index)]))


class Line(BaseModel):
    """Records whether it was in train mode at each training step."""

    train_modes: list[bool] = []

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = torch.stack(inputs)
        if mode == 'loss':
            Line.train_modes.append(self.training)
            return dict(loss=((inputs * self.weight - 1)**2).mean())
        return [dict(training=self.training)] * len(inputs)


class ValidationLog(BaseMetric):
    """Records, per validation, how many iterations had been trained."""

    runs: list[int] = []

    def process(self, data_batch, data_samples):
        self.results.append(data_samples[0]['training'])

    def compute_metrics(self, results):
        ValidationLog.runs.append(self.iterations_trained())
        assert not any(results), 'validated in train mode'
        return dict(count=len(ValidationLog.runs))

    @staticmethod
    def iterations_trained():
        # The hub holds the 0-based index of the last training iteration.
        return MessageHub.get_current_instance().get_info('iter') + 1


@pytest.fixture(autouse=True)
def registered():
    MODELS.register_module('LoopTestLine', module=Line, force=True)
    METRICS.register_module('LoopTestValidationLog', module=ValidationLog,
                            force=True)
    ValidationLog.runs = []
    Line.train_modes = []


def train(tmp_path, max_epochs, val_interval, val_iter_interval):
    loader = dict(dataset=Numbers(), batch_size=BATCH_SIZE,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='pseudo_collate'))
    runner = Runner(
        model=dict(type='LoopTestLine'),
        work_dir=str(tmp_path),
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=dict(type='LoopTestValidationLog'),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(type='ResumableEpochBasedTrainLoop',
                       max_epochs=max_epochs, val_interval=val_interval,
                       val_iter_interval=val_iter_interval),
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmllava')
    runner.train()
    return runner


def test_validates_every_n_iterations_and_at_epoch_ends(tmp_path):
    train(tmp_path, max_epochs=2, val_interval=1, val_iter_interval=4)
    # Iterations 4 and 8 by count; the ends of epochs 1 and 2 (iterations
    # 6 and 12) by mmengine's per-epoch schedule, never twice.
    assert ValidationLog.runs == [4, 6, 8, 12]
    # Training goes on in train mode after a validation mid-epoch.
    assert Line.train_modes == [True] * 12


def test_without_an_iteration_interval_validates_per_epoch(tmp_path):
    train(tmp_path, max_epochs=2, val_interval=1, val_iter_interval=None)
    assert ValidationLog.runs == [6, 12]


def test_iteration_interval_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match='val_iter_interval'):
        train(tmp_path, max_epochs=1, val_interval=1, val_iter_interval=0)


def test_loop_is_registered():
    assert LOOPS.get('ResumableEpochBasedTrainLoop') is not None
