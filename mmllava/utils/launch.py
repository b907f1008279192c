"""What tools/train.py and tools/test.py share: the runner's command-line
options, settings that depend on the machine the run starts on, and how a
recipe is run under mixed precision or a sharding strategy (DeepSpeed,
FSDP)."""
import argparse
import importlib.util
import logging
import os.path as osp
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import barrier, is_distributed
from mmengine.logging import print_log
from mmengine.utils import import_modules_from_strings

from mmllava.utils.config_checks import (check_option_types,
                                         check_settings_agree,
                                         warn_unknown_top_level_keys)
from mmllava.utils.extension_locks import build_lock_warning
from mmllava.utils.image_token_counts import fill_image_token_counts


def close_process_groups() -> None:
    """End a distributed run in order: every rank waits for the others, then
    destroys its process groups.

    Left to interpreter exit, a rank that finishes first closes its sockets
    while the other still tears its connections down, and that rank can abort
    ('terminate called without an active exception', seen once in about ten
    2-process ZeRO-3 runs on gloo). Call it only after a run that succeeded on
    every rank: the barrier waits for all of them.
    """
    if is_distributed():
        barrier()
        dist.destroy_process_group()


def apply_runner_args(cfg: Config, args: argparse.Namespace) -> Config:
    """The launcher, ``--cfg-options`` (type-checked), the work dir
    (default ``work_dirs/<config name>``) and the strict-load check
    (``--allow-partial-load``); warns about misspelled top-level keys,
    gives the pipelines the image-token count of the model's tower
    (:func:`fill_image_token_counts`) and refuses a model and pipelines
    that disagree."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        check_option_types(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
        # mmengine imports a config file's custom_imports when it reads the
        # file, not those that come from the command line.
        if any(key.split('.')[0] == 'custom_imports'
               for key in args.cfg_options):
            import_modules_from_strings(**cfg.custom_imports)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    # Also for configs that do not start from default_runtime.py.
    hooks = dict(cfg.get('default_hooks') or {})
    hooks.setdefault('strict_load', dict(type='StrictLoadHook'))
    if args.allow_partial_load:
        hooks['strict_load'] = dict(hooks['strict_load'], allow_partial=True)
    cfg.default_hooks = hooks
    warn_unknown_top_level_keys(cfg)
    fill_image_token_counts(cfg)
    check_settings_agree(cfg)
    return cfg


#: ``--vis-backend`` names, mmengine's backends, and the package each needs.
VIS_BACKENDS = dict(tensorboard=('TensorboardVisBackend', 'tensorboard'),
                    wandb=('WandbVisBackend', 'wandb'))


def apply_vis_backends(cfg: Config, names: list[str]) -> Config:
    """Log the run's scalars to TensorBoard or Weights & Biases too
    (``--vis-backend``), beside the local ``vis_data/scalars.json``.

    Raises:
        ImportError: The backend's package is not installed, naming how to
            install it.
    """
    visualizer = cfg.setdefault('visualizer', dict(type='Visualizer'))
    backends = list(visualizer.get('vis_backends') or
                    [dict(type='LocalVisBackend')])
    for name in names:
        backend, package = VIS_BACKENDS[name]
        if importlib.util.find_spec(package) is None:
            raise ImportError(
                f'--vis-backend {name} needs the {package} package: pip '
                f'install {package}'
                + (' (or pip install -e ".[logging]")'
                   if name == 'tensorboard' else ''))
        backends.append(dict(type=backend))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer
    return cfg


#: FSDP's ``state_dict_cfg='full'`` (whole weights and optimizer state,
#: on rank 0) without the offload to the CPU.
CPU_FULL_STATE_DICT_CFG = dict(
    state_dict_type='FULL_STATE_DICT',
    state_dict_config=dict(type='FullStateDictConfig', rank0_only=True,
                           offload_to_cpu=False),
    optim_state_dict_config=dict(type='FullOptimStateDictConfig',
                                 rank0_only=True, offload_to_cpu=False))


def adapt_to_machine(cfg: Config) -> Config:
    """Let a distributed run start on a machine without CUDA.

    The configs name NCCL and CUDA device ids, right for GPU clusters; on a
    CPU-only machine processes talk through gloo, DDP takes no device ids
    and FSDP's device is the CPU. FSDP's ``'full'`` state dicts then skip
    the offload to the CPU they are already on: with it, torch 2.13 clones
    the gathered weights from freed memory and the save segfaults. GPU runs
    are left as configured.
    """
    if cfg.get('launcher', 'none') != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        strategy = cfg.get('strategy') or {}
        if strategy.get('type') == 'FSDPStrategy':
            strategy.setdefault('model_wrapper', {})['device_id'] = 'cpu'
            if strategy.get('state_dict_cfg') == 'full':
                strategy.state_dict_cfg = CPU_FULL_STATE_DICT_CFG
        elif not strategy:
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                         device_ids=None)
    return cfg


#: ``--amp`` turns a guarded wrapper into its AMP twin; other wrappers
#: become mmengine's ``AmpOptimWrapper``.
AMP_WRAPPERS = {'GuardedOptimWrapper': 'GuardedAmpOptimWrapper',
                'GuardedAmpOptimWrapper': 'GuardedAmpOptimWrapper'}


def default_amp_dtype() -> str:
    """bfloat16 where the machine computes in it (CPUs, Ampere and newer
    GPUs), else float16."""
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return 'float16'
    return 'bfloat16'


def apply_amp(cfg: Config, dtype: Optional[str] = None) -> Config:
    """Train in mixed precision: ``dtype`` (default
    :func:`default_amp_dtype`) autocast with fp32 weights, and dynamic loss
    scaling for float16.

    Under a DeepSpeed strategy, DeepSpeed's own ``bf16`` or ``fp16`` mode
    is turned on instead (bf16 weights and activations, fp32 master weights
    in the optimizer).
    """
    dtype = dtype or default_amp_dtype()
    if dtype not in ('bfloat16', 'float16'):
        raise ValueError(
            f'--amp-dtype must be bfloat16 or float16, got {dtype!r}')
    strategy = cfg.get('strategy') or {}
    if strategy.get('type') == 'DeepSpeedStrategy':
        # fp16's loss_scale=0 is DeepSpeed's dynamic loss scaling.
        strategy[dict(bfloat16='bf16', float16='fp16')[dtype]] = dict(
            enabled=True) if dtype == 'bfloat16' else dict(
                enabled=True, loss_scale=0)
        return cfg
    wrapper = cfg.optim_wrapper
    wrapper.type = AMP_WRAPPERS.get(wrapper.get('type', 'OptimWrapper'),
                                    'AmpOptimWrapper')
    wrapper.dtype = dtype
    if dtype == 'float16':
        wrapper.setdefault('loss_scale', 'dynamic')
    return cfg


#: Optimizer wrapper keys that DeepSpeed's config takes over; the others
#: (``type`` aside) are the optimizer's construction.
DEEPSPEED_WRAPPER_KEYS = ('type', 'optimizer', 'clip_grad',
                          'accumulative_counts', 'paramwise_cfg',
                          'constructor')


def apply_strategy(cfg: Config) -> Config:
    """Hand the recipe's training settings to its ``strategy`` (a no-op
    for configs without one, which the plain Runner runs).

    DeepSpeed steps the optimizer itself, so the optimizer wrapper becomes
    mmengine's ``DeepSpeedOptimWrapper`` and its ``clip_grad.max_norm`` and
    ``accumulative_counts`` become DeepSpeed's ``gradient_clipping`` and
    ``gradient_accumulation_steps``; the dataloader's batch size is the
    micro batch per process. An offloaded optimizer runs DeepSpeed's CPU
    Adam in place of torch's AdamW. Values the strategy sets itself win.

    Raises:
        ValueError: If the optimizer wrapper has a setting DeepSpeed cannot
            take over (a clipping other than by the global L2 norm, an AMP
            wrapper's keys: use ``--amp``).
    """
    strategy = cfg.get('strategy')
    if not strategy or strategy.get('type') != 'DeepSpeedStrategy':
        return cfg
    wrapper = cfg.optim_wrapper
    unknown = sorted(set(wrapper) - set(DEEPSPEED_WRAPPER_KEYS))
    if unknown:
        raise ValueError(
            f'optim_wrapper keys {unknown} have no DeepSpeed equivalent '
            '(mixed precision: use --amp, which sets DeepSpeed\'s bf16/fp16)')
    clip_grad = wrapper.pop('clip_grad', None)
    if clip_grad:
        if (clip_grad.get('type', 'norm') != 'norm'
                or clip_grad.get('norm_type', 2) != 2
                or set(clip_grad) - {'type', 'max_norm', 'norm_type'}):
            raise ValueError(
                'DeepSpeed clips by the global L2 norm only; optim_wrapper.'
                f'clip_grad is {dict(clip_grad)}')
        strategy.setdefault('gradient_clipping', clip_grad['max_norm'])
    strategy.setdefault('gradient_accumulation_steps',
                        wrapper.pop('accumulative_counts', 1))
    strategy.setdefault('train_micro_batch_size_per_gpu',
                        cfg.train_dataloader.batch_size)
    if (strategy.get('zero_optimization', {}).get('offload_optimizer')
            and wrapper.optimizer.type == 'AdamW'):
        wrapper.optimizer.type = 'DeepSpeedCPUAdam'
        wrapper.optimizer.adamw_mode = True
        lock_warning = build_lock_warning('cpu_adam')
        if lock_warning:
            print_log(lock_warning, logger='current', level=logging.WARNING)
    wrapper.type = 'DeepSpeedOptimWrapper'
    return cfg
