"""Train a LLaVA model with an mmengine Runner.

    python tools/train.py configs/llava/llava-1.5-7b_ft.py [--work-dir DIR]
        [--resume [CKPT]] [--amp] [--cfg-options key=value ...]
        [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from mmengine.config import Config
from mmengine.runner import Runner

# Version fixes; loops, hooks and the safe checkpoint loader.
import mmllava.engine  # noqa: F401
from mmllava.utils.launch import (adapt_to_machine, add_runner_args,
                                  apply_runner_args, parse_runner_args)


#: ``--amp`` keeps a guarded wrapper guarded.
AMP_WRAPPERS = {'GuardedOptimWrapper': 'GuardedAmpOptimWrapper',
                'GuardedAmpOptimWrapper': 'GuardedAmpOptimWrapper'}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a LLaVA model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CKPT, or from the work dir\'s latest checkpoint '
        'when no path is given')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    add_runner_args(parser, 'where logs and checkpoints go',
                    'train_dataloader.batch_size=4')
    return parse_runner_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    cfg = apply_runner_args(cfg, args)
    if args.amp:
        cfg.optim_wrapper.type = AMP_WRAPPERS.get(cfg.optim_wrapper.type,
                                                  'AmpOptimWrapper')
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return adapt_to_machine(cfg)


def main() -> None:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
