"""mmllava's runners keep mmengine's start-up dumps (environment, config,
hook table) in the log file and off the console."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import MODELS, RUNNERS

from mmllava.engine.runners import LLaVARunner


@MODELS.register_module(force=True)
class QuietStartToy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, *args, mode='tensor'):
        return self.linear(torch.zeros(1, 2))


@pytest.mark.parametrize('runner_type', ['mmllava.LLaVARunner', None])
def test_the_console_gets_one_line_the_file_everything(
        tmp_path, capsys, runner_type):
    # mmllava's scope, as every runner the tests build (the latest runner's
    # scope is the current one).
    cfg = Config(dict(model=dict(type='QuietStartToy'), work_dir=str(tmp_path),
                      default_scope='mmllava',
                      experiment_name=f'quiet_{runner_type is None}',
                      env_cfg=dict(dist_cfg=dict(backend='gloo'))))
    if runner_type:
        cfg.runner_type = runner_type
    runner = RUNNERS.build(cfg)
    console = capsys.readouterr().out
    log_file = Path(runner.log_dir) / f'{runner.timestamp}.log'
    written = log_file.read_text()
    for dump in ('System environment:', 'Hooks will be executed'):
        assert dump in written
        # mmengine's own Runner prints them; ours does not.
        assert (dump in console) == (runner_type is None)
    if runner_type:
        assert isinstance(runner, LLaVARunner)
        assert f'Environment, config and hook order: {log_file}' in console
        assert len(console.splitlines()) < 10
