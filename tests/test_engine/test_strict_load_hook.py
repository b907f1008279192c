"""``mmllava/engine/hooks/strict_load_hook.py``: a checkpoint that does not
fit the model stops the run before any weight is loaded, for ``load_from``
and for a resume, unless a partial load is allowed.

The runs are real mmengine Runners on a toy model; the checkpoints come from
a toy model of another shape, saved by another Runner.
"""
from itertools import count

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmllava.registry import DATASETS, MODELS
from mmllava.utils.state_dicts import PartialLoadError

RUN_NAMES = count()


class Vectors(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((4, ), float(index)))


class TwoLayers(BaseModel):
    """``first`` (4 -> width) and ``second`` (width -> 1); ``extra`` adds a
    third layer that older checkpoints lack."""

    def __init__(self, width: int = 8, extra: bool = False):
        super().__init__()
        self.first = torch.nn.Linear(4, width)
        self.second = torch.nn.Linear(width, 1)
        self.extra = torch.nn.Linear(1, 1) if extra else None

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.second(self.first(torch.stack(inputs)))
        if self.extra is not None:
            out = self.extra(out)
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return [dict(output=value) for value in out]


@pytest.fixture(scope='module', autouse=True)
def registered():
    MODELS.register_module('StrictLoadTestTwoLayers', module=TwoLayers,
                           force=True)
    DATASETS.register_module('StrictLoadTestVectors', module=Vectors,
                             force=True)


def runner(work_dir, model: dict, max_epochs: int = 1, load_from=None,
           resume: bool = False, allow_partial: bool = False) -> Runner:
    # From a config, as the tools build it: the hook names cfg.load_from.
    return Runner.from_cfg(Config(dict(
        model=dict(type='StrictLoadTestTwoLayers', **model),
        work_dir=str(work_dir),
        experiment_name=f'strict_load_{next(RUN_NAMES)}',
        train_dataloader=dict(
            dataset=dict(type='StrictLoadTestVectors'), batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            logger=None,
            checkpoint=dict(type='AtomicCheckpointHook', interval=1),
            strict_load=dict(type='StrictLoadHook',
                             allow_partial=allow_partial)),
        load_from=None if load_from is None else str(load_from),
        resume=resume, default_scope='mmllava')))


@pytest.fixture(scope='module')
def narrow_checkpoint(tmp_path_factory):
    """A checkpoint of the width-8 model after one epoch."""
    work_dir = tmp_path_factory.mktemp('narrow')
    runner(work_dir, dict(width=8)).train()
    return work_dir / 'epoch_1.pth'


def test_load_from_another_width_stops_naming_the_keys(
        tmp_path, narrow_checkpoint):
    wide = runner(tmp_path, dict(width=16), load_from=narrow_checkpoint)
    initial = wide.model.first.weight.detach().clone()
    with pytest.raises(PartialLoadError) as error:
        wide.train()
    message = str(error.value)
    assert str(narrow_checkpoint) in message
    assert '3 with another shape' in message
    assert 'first.weight (checkpoint (8, 4), model (16, 4))' in message
    assert '--allow-partial-load' in message
    assert 'allow_partial=True' in message
    # Nothing was loaded, nothing was trained, nothing was saved.
    assert torch.equal(wide.model.first.weight, initial)
    assert not (tmp_path / 'epoch_1.pth').exists()


def test_load_from_into_a_model_with_more_layers_lists_the_missing(
        tmp_path, narrow_checkpoint):
    deeper = runner(tmp_path, dict(width=8, extra=True),
                    load_from=narrow_checkpoint)
    with pytest.raises(PartialLoadError,
                       match=r'2 missing from the checkpoint: extra.weight, '
                       r'extra.bias'):
        deeper.train()


def test_unexpected_keys_stop_the_load(tmp_path, narrow_checkpoint):
    checkpoint = torch.load(narrow_checkpoint, weights_only=False)
    for index in range(7):
        checkpoint['state_dict'][f'lora_A.{index}.weight'] = torch.zeros(1)
    renamed = tmp_path / 'with_lora.pth'
    torch.save(checkpoint, renamed)
    with pytest.raises(PartialLoadError) as error:
        runner(tmp_path / 'run', dict(width=8), load_from=renamed).train()
    assert ('7 unexpected (not in the model): lora_A.0.weight, '
            'lora_A.1.weight, lora_A.2.weight, lora_A.3.weight, '
            'lora_A.4.weight and 2 more') in str(error.value)


def test_a_partial_load_on_purpose_loads_what_fits(
        tmp_path, narrow_checkpoint):
    deeper = runner(tmp_path, dict(width=8, extra=True),
                    load_from=narrow_checkpoint, allow_partial=True)
    deeper.load_or_resume()
    saved = torch.load(narrow_checkpoint, weights_only=False)['state_dict']
    assert torch.equal(deeper.model.first.weight, saved['first.weight'])
    assert torch.equal(deeper.model.second.bias, saved['second.bias'])


def test_a_fitting_checkpoint_loads(tmp_path, narrow_checkpoint):
    same = runner(tmp_path, dict(width=8), load_from=narrow_checkpoint)
    same.load_or_resume()
    saved = torch.load(narrow_checkpoint, weights_only=False)['state_dict']
    assert torch.equal(same.model.first.weight, saved['first.weight'])


def test_resume_into_another_shape_stops_before_the_optimizer(
        tmp_path, narrow_checkpoint):
    wide = runner(tmp_path, dict(width=16), max_epochs=2,
                  load_from=narrow_checkpoint, resume=True)
    with pytest.raises(PartialLoadError, match='with another shape'):
        wide.train()
