"""Train a LLaVA model with an mmengine Runner.

    python tools/train.py configs/llava/llava-1.5-7b_ft.py [--work-dir DIR]
        [--resume [CKPT]] [--amp [--amp-dtype bfloat16|float16]]
        [--strategy deepspeed_zero2|deepspeed_zero3|deepspeed_zero3_offload
                    |fsdp|STRATEGY_CONFIG]
        [--vis-backend tensorboard|wandb] [--cfg-options key=value ...]
        [--allow-partial-load] [--launcher none|pytorch|slurm|mpi]

Without ``--strategy`` mmengine's Runner trains (one process, or DDP under
a launcher); with one, its FlexibleRunner does (see docs/distributed.md).

The arguments are parsed before mmllava, mmengine's runner and transformers
are imported (seconds), so that ``--help`` and argument errors answer at
once; ``main`` imports them.
"""
import argparse
from pathlib import Path

from mmllava.utils.runner_args import add_runner_args, parse_runner_args

#: ``--strategy NAME`` reads ``NAME.py`` here.
STRATEGY_DIR = Path(__file__).resolve().parents[1] / \
    'configs/llava/_base_/strategies'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a LLaVA model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or, when no path is given, from the work '
        'dir\'s newest checkpoint that can be read (unreadable ones are '
        'skipped, each named)')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--amp-dtype', choices=['bfloat16', 'float16'],
        help='--amp\'s compute dtype (default: bfloat16 where supported, '
        'else float16 with dynamic loss scaling; CPUs take bfloat16 only)')
    parser.add_argument(
        '--strategy',
        help='train through mmengine\'s FlexibleRunner with this strategy: '
        'a file name from configs/llava/_base_/strategies (e.g. '
        'deepspeed_zero2) or a config file that sets `strategy`')
    parser.add_argument(
        '--vis-backend', action='append', default=[],
        choices=['tensorboard', 'wandb'],
        help='also log scalars to TensorBoard (WORK_DIR/<time>/vis_data) '
        'or Weights & Biases; may be given twice')
    add_runner_args(parser, 'where logs and checkpoints go',
                    'train_dataloader.batch_size=4')
    args = parse_runner_args(parser)
    if args.amp_dtype is not None and not args.amp:
        parser.error('--amp-dtype needs --amp')
    if args.strategy is not None:
        strategy_file(args.strategy)
    return args


def strategy_file(name: str) -> Path:
    """The strategy file ``--strategy`` names (a name or a path)."""
    path = Path(name) if name.endswith('.py') else STRATEGY_DIR / f'{name}.py'
    if not path.is_file():
        known = sorted(p.stem for p in STRATEGY_DIR.glob('*.py'))
        raise FileNotFoundError(
            f'--strategy {name}: no file {path}; give one of {known} or a '
            'config file that sets `strategy`')
    return path


def main() -> None:
    args = parse_args()
    import logging

    from mmengine.config import Config
    from mmengine.logging import print_log
    from mmengine.registry import RUNNERS

    from mmllava.engine.resume import resume_checkpoint
    from mmllava.setup_env import register_all_modules
    from mmllava.utils.launch import (adapt_to_machine, apply_amp,
                                      apply_runner_args, apply_strategy,
                                      apply_vis_backends,
                                      close_process_groups)

    def warn(message: str) -> None:
        print_log(message, logger='current', level=logging.WARNING)

    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.strategy is not None:
        cfg.merge_from_dict(
            Config.fromfile(str(strategy_file(args.strategy))).to_dict())
    cfg = apply_runner_args(cfg, args)
    cfg = apply_vis_backends(cfg, args.vis_backend)
    if args.amp:
        cfg = apply_amp(cfg, args.amp_dtype)
    cfg = apply_strategy(cfg)
    if args.resume == 'auto':
        checkpoint = resume_checkpoint(cfg.work_dir, warn)
        if checkpoint is None:
            warn(f'--resume: {cfg.work_dir} holds no checkpoint; training '
                 'starts at iteration 1.')
        cfg.resume = checkpoint is not None
        cfg.load_from = checkpoint
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    cfg = adapt_to_machine(cfg)
    # The config's runner_type (mmllava's quiet Runner, or FlexibleRunner
    # with a strategy), mmengine's Runner where it names none.
    runner = RUNNERS.build(cfg)
    runner.train()
    close_process_groups()


if __name__ == '__main__':
    main()
