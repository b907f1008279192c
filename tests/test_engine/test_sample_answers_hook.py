"""``mmllava/engine/hooks/sample_answers_hook.py``: fixed questions answered
into the log at intervals, without disturbing training."""
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmllava.registry import HOOKS, MODELS

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'


@pytest.fixture(scope='module')
def config_and_model(demo_workspace):
    cwd = os.getcwd()
    os.chdir(demo_workspace)
    try:
        cfg = Config.fromfile(str(CONFIG))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        pipeline = cfg.test_pipeline
        # The pipeline reads the tokenizer and processor from relative paths.
        hook = HOOKS.build(dict(
            type='SampleAnswersHook', pipeline=pipeline, interval=5,
            max_new_tokens=3, samples=[
                dict(image='data/demo/images/eval_00000.png',
                     question='What colour is the shape?'),
                dict(image=None, question='What is a triangle?')]))
    finally:
        os.chdir(cwd)
    return demo_workspace, model, hook


class Capture(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def fake_runner(model, iteration):
    logger = MMLogger.get_instance('sample_answers_test')
    capture = Capture()
    logger.addHandler(capture)
    return SimpleNamespace(model=model, iter=iteration, logger=logger), capture


def test_answers_are_logged_at_the_interval_only(config_and_model,
                                                 monkeypatch):
    root, model, hook = config_and_model
    monkeypatch.chdir(root)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner, capture = fake_runner(model, iteration=3)
    hook.after_train_iter(runner, batch_idx=3)  # the 4th iteration
    assert capture.messages == []
    runner, capture = fake_runner(model, iteration=4)
    hook.after_train_iter(runner, batch_idx=4)  # the 5th iteration
    message, = capture.messages
    assert message.startswith('Sample answers after 5 iterations:')
    assert 'Q: What colour is the shape?' in message
    assert '[None] Q: What is a triangle?' in message
    assert message.count('\n    A: ') == 2
    # The untrained model ends no answer within its budget: each says so.
    assert message.count(' [cut at max_new_tokens=') == 2
    # Back in train mode, weights untouched.
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_untrained_answers_before_training(config_and_model, monkeypatch):
    root, model, hook = config_and_model
    monkeypatch.chdir(root)
    runner, capture = fake_runner(model, iteration=0)
    hook.before_train(runner)
    message, = capture.messages
    assert message.startswith('Sample answers after 0 iterations:')


def test_samples_must_name_a_question():
    with pytest.raises(ValueError, match='sample 0 must be'):
        HOOKS.build(dict(type='SampleAnswersHook', pipeline=[],
                         samples=[dict(image='x.png')]))
