"""``mmllava/engine/schedule_checks.py``: warm-ups that an epoch's length
rounds too short are lengthened, schedules that end before the run are
warned about; as pure functions and through the train loop in a real
Runner."""
import logging
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmllava.engine.schedule_checks import (check_param_schedulers,
                                            early_end_message,
                                            fit_to_iterations)
from mmllava.registry import MODELS

RECIPE = (Path(__file__).resolve().parents[2]
          / 'configs/llava/_base_/schedules/pretrain_1e.py')
LR = 1e-3


def recipe_schedulers() -> list:
    """The recipes' warm-up (3% of an epoch) and cosine, as ConfigDicts."""
    return Config.fromfile(str(RECIPE)).param_scheduler


def cosine(**kwargs) -> dict:
    return dict(type='CosineAnnealingLR', eta_min=0.0, **kwargs)


def as_iterations(scheduler: dict, iters_per_epoch: int) -> tuple:
    """The (begin, end) mmengine builds from a converted config."""
    return (int(scheduler['begin'] * iters_per_epoch),
            int(scheduler['end'] * iters_per_epoch))


# The pure functions.

def test_a_warmup_rounded_to_nothing_is_lengthened_and_the_cosine_follows():
    schedulers = recipe_schedulers()
    fitted, messages = fit_to_iterations(schedulers, iters_per_epoch=10,
                                         max_epochs=1)
    # A LinearLR needs two iterations: one at start_factor, one at the peak.
    assert as_iterations(fitted[0], 10) == (0, 2)
    assert as_iterations(fitted[1], 10) == (2, 10)
    assert isinstance(fitted[0], ConfigDict)
    message, = messages
    assert '10 iterations per epoch' in message
    assert 'LinearLR' in message
    assert 'epochs 0 to 0.03' in message
    assert 'iterations 0 to 0' in message
    assert 'iterations 0 to 2' in message
    assert 'param_scheduler[0].end' in message
    assert 'param_scheduler[1].begin moved with it' in message
    # The config is left as written.
    assert schedulers[0]['end'] == schedulers[1]['begin'] == 0.03


def test_a_one_iteration_warmup_is_lengthened_too():
    # int(0.03 * 50) == 1: mmengine would train the whole run at
    # lr * start_factor, without an error.
    fitted, messages = fit_to_iterations(recipe_schedulers(), 50, 1)
    assert as_iterations(fitted[0], 50) == (0, 2)
    assert as_iterations(fitted[1], 50) == (2, 50)
    assert len(messages) == 1


def test_a_cosine_needs_one_iteration_only():
    fitted, messages = fit_to_iterations(
        [cosine(by_epoch=True, begin=0.5, end=0.55,
                convert_to_iter_based=True)], 10, 1)
    assert as_iterations(fitted[0], 10) == (5, 6)
    assert 'param_scheduler[0].end' in messages[0]


@pytest.mark.parametrize('iters_per_epoch', [67, 100, 1000, 5197])
def test_long_enough_schedules_are_left_alone(iters_per_epoch):
    # int(0.03 * 67) == 2, the fewest a LinearLR works with.
    schedulers = recipe_schedulers()
    fitted, messages = fit_to_iterations(schedulers, iters_per_epoch, 1)
    assert fitted == schedulers
    assert messages == []


def test_a_run_shorter_than_the_warmup_stops():
    with pytest.raises(ValueError) as error:
        fit_to_iterations(recipe_schedulers(), iters_per_epoch=1,
                          max_epochs=1)
    assert '1 iterations per epoch' in str(error.value)
    assert 'param_scheduler[0].end' in str(error.value)
    assert 'train_cfg.max_epochs' in str(error.value)


def test_a_schedule_pushed_past_the_run_says_it_never_acts():
    # Two iterations: the warm-up takes both, the cosine comes after the
    # run; mmengine must still be given an end after its begin.
    fitted, messages = fit_to_iterations(recipe_schedulers(), 2, 1)
    assert as_iterations(fitted[0], 2) == (0, 2)
    assert as_iterations(fitted[1], 2) == (2, 3)
    assert 'param_scheduler[1]' in messages[1]
    assert 'never acts' in messages[1]


def test_the_forms_of_param_scheduler_keep_their_shape_and_keys():
    warmup = recipe_schedulers()[0]
    fitted, messages = check_param_schedulers(warmup, 10, 1)
    assert isinstance(fitted, dict)
    assert as_iterations(fitted, 10) == (0, 2)
    assert 'param_scheduler.end' in messages[0]

    per_optimizer = ConfigDict(projector=recipe_schedulers(),
                               llm=cosine(by_epoch=False, end=5))
    fitted, messages = check_param_schedulers(per_optimizer, 10, 1)
    assert isinstance(fitted, ConfigDict)
    assert as_iterations(fitted['projector'][1], 10) == (2, 10)
    assert fitted['llm'] == per_optimizer['llm']
    assert 'param_scheduler.projector[0].end' in messages[0]
    assert 'param_scheduler.llm.end' in messages[1]


def test_an_early_end_names_both_keys():
    schedulers = recipe_schedulers()
    message = early_end_message(schedulers, 10, max_epochs=3)
    assert 'epoch 1' in message
    assert 'train_cfg.max_epochs=3' in message
    assert 'last 20 iterations' in message
    assert 'param_scheduler[1].end and train_cfg.max_epochs' in message
    assert early_end_message(schedulers, 10, max_epochs=1) is None


def test_an_early_end_counts_iteration_based_schedulers_in_iterations():
    message = early_end_message([cosine(by_epoch=False, end=25)], 10, 3)
    assert 'iteration 25' in message
    assert 'last 5 iterations' in message
    assert early_end_message([cosine(by_epoch=False, end=30)], 10, 3) is None


@pytest.mark.parametrize('open_ended', [
    dict(type='ConstantLR', factor=1.0),  # the runner's default end
    dict(type='ConstantLR', factor=1.0, end=int(1e9)),  # mmengine's INF
])
def test_a_schedule_that_runs_to_the_end_is_not_an_early_end(open_ended):
    schedulers = recipe_schedulers() + [open_ended]
    assert early_end_message(schedulers, 10, max_epochs=3) is None


# Through the train loop, in a real Runner.

class Numbers(Dataset):

    def __init__(self, size: int):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index + 1)]))


class Line(BaseModel):

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = torch.stack(inputs)
        return dict(loss=((inputs * self.weight - 1)**2).mean())


class Records(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        # Ours only: mmengine warns about the toy's registry scope too.
        if 'param_scheduler' in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def registered():
    MODELS.register_module('ScheduleCheckLine', module=Line, force=True)


def train(tmp_path, param_scheduler, num_batches: int,
          max_epochs: int) -> tuple[Runner, list[str]]:
    runner = Runner(
        model=dict(type='ScheduleCheckLine'),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=Numbers(2 * num_batches), batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=LR)),
        param_scheduler=param_scheduler,
        train_cfg=dict(type='ResumableEpochBasedTrainLoop',
                       max_epochs=max_epochs),
        default_hooks=dict(checkpoint=None, logger=None),
        default_scope='mmllava',
        # Its own message hub: runners started in the same second would
        # share one, and its learning rates.
        experiment_name=tmp_path.name)
    records = Records()
    runner.logger.addHandler(records)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(records)
    return runner, records.messages


def learning_rates(runner: Runner) -> list[float]:
    """The learning rate of each iteration, as the runtime info hook
    recorded it before the iteration."""
    values, _ = runner.message_hub.get_scalar('train/lr').data
    return list(values)


def test_the_recipe_schedule_trains_on_a_few_batches(tmp_path):
    runner, messages = train(tmp_path, recipe_schedulers(), num_batches=5,
                             max_epochs=1)
    assert runner.iter == 5
    lrs = learning_rates(runner)
    assert len(lrs) == 5
    assert lrs[0] == pytest.approx(LR * 1e-3)
    # The peak after the first iteration (the warm-up's last, and the
    # cosine's first), then the cosine's decay.
    assert lrs[1] == lrs[2] == pytest.approx(LR)
    assert lrs[2] > lrs[3] > lrs[4] > 0
    assert len(messages) == 1
    assert '5 iterations per epoch' in messages[0]


def test_a_schedule_ending_before_max_epochs_is_warned_once(tmp_path):
    schedule = [cosine(by_epoch=True, begin=0, end=1,
                       convert_to_iter_based=True)]
    runner, messages = train(tmp_path, schedule, num_batches=2,
                             max_epochs=3)
    early = [message for message in messages
             if 'param_scheduler[0].end and train_cfg.max_epochs' in message]
    assert len(early) == 1
    assert 'train_cfg.max_epochs=3' in early[0]
    # The last two epochs trained at the value the cosine ended on.
    lrs = learning_rates(runner)
    assert lrs[0] > lrs[1]
    assert lrs[2:] == [lrs[1]] * 4


def test_a_schedule_that_covers_the_run_trains_without_a_warning(tmp_path):
    schedule = [cosine(by_epoch=True, begin=0, end=3,
                       convert_to_iter_based=True)]
    runner, messages = train(tmp_path, schedule, num_batches=2,
                             max_epochs=3)
    assert runner.iter == 6
    assert messages == []
