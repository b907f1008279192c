"""``mmllava/utils/launch.py``'s ``apply_strategy`` and ``apply_amp``: the
recipes' training settings become DeepSpeed's, and ``--amp`` picks the
right precision switch, on the real recipes and strategy files."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmllava.utils.launch import adapt_to_machine, apply_amp, apply_strategy

REPO = Path(__file__).resolve().parents[2]
STRATEGIES = REPO / 'configs/llava/_base_/strategies'


def recipe(name: str, strategy: str = None) -> Config:
    cfg = Config.fromfile(str(REPO / 'configs/llava' / name))
    if strategy is not None:
        cfg.merge_from_dict(
            Config.fromfile(str(STRATEGIES / f'{strategy}.py')).to_dict())
    return cfg


def test_deepspeed_takes_over_clipping_accumulation_and_micro_batch():
    cfg = recipe('llava-1.5-7b_pretrain.py', 'deepspeed_zero2')
    cfg.optim_wrapper.accumulative_counts = 2
    cfg = apply_strategy(cfg)
    assert cfg.runner_type == 'mmllava.LLaVAFlexibleRunner'
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'
    assert 'clip_grad' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.strategy.gradient_clipping == 1.0
    assert cfg.strategy.gradient_accumulation_steps == 2
    assert cfg.strategy.train_micro_batch_size_per_gpu == \
        cfg.train_dataloader.batch_size
    assert cfg.strategy.zero_optimization.stage == 2


def test_offloaded_optimizer_runs_deepspeed_cpu_adam():
    cfg = apply_strategy(recipe('llava-1.5-7b_ft.py',
                                'deepspeed_zero3_offload'))
    zero = cfg.strategy.zero_optimization
    assert zero.stage == 3 and zero.offload_optimizer.device == 'cpu'
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'DeepSpeedCPUAdam' and optimizer.adamw_mode
    assert optimizer.lr == 2e-5


def test_deepspeed_refuses_what_it_cannot_take_over():
    cfg = recipe('llava-1.5-7b_ft.py', 'deepspeed_zero3')
    cfg.optim_wrapper.clip_grad = dict(max_norm=1.0, norm_type=1)
    with pytest.raises(ValueError, match='global L2 norm'):
        apply_strategy(cfg)
    cfg = recipe('llava-1.5-7b_ft.py', 'deepspeed_zero3')
    cfg.optim_wrapper.loss_scale = 'dynamic'
    with pytest.raises(ValueError, match=r"\['loss_scale'\].*--amp"):
        apply_strategy(cfg)


def test_amp_under_deepspeed_is_deepspeed_bf16_or_fp16():
    cfg = apply_strategy(apply_amp(
        recipe('llava-1.5-7b_ft.py', 'deepspeed_zero3'), 'bfloat16'))
    assert cfg.strategy.bf16 == dict(enabled=True)
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'
    cfg = apply_amp(recipe('llava-1.5-7b_ft.py', 'deepspeed_zero2'),
                    'float16')
    # loss_scale 0: DeepSpeed's dynamic loss scaling.
    assert cfg.strategy.fp16 == dict(enabled=True, loss_scale=0)


def test_amp_without_a_strategy_keeps_the_guard():
    cfg = apply_amp(recipe('llava-1.5-7b_ft.py'), 'float16')
    assert cfg.optim_wrapper.type == 'GuardedAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = apply_amp(recipe('llava-1.5-7b_ft.py'), 'bfloat16')
    assert 'loss_scale' not in cfg.optim_wrapper


def test_plain_configs_are_left_alone():
    cfg = recipe('llava-1.5-7b_ft.py')
    assert apply_strategy(cfg).optim_wrapper.type == 'GuardedOptimWrapper'


def test_fsdp_runs_on_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    cfg = recipe('llava-1.5-7b_ft.py', 'fsdp')
    cfg.launcher = 'pytorch'
    cfg = adapt_to_machine(cfg)
    assert cfg.strategy.model_wrapper.device_id == 'cpu'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert 'model_wrapper_cfg' not in cfg
