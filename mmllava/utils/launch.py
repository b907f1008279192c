"""What tools/train.py and tools/test.py share: the runner's command-line
options, and settings that depend on the machine the run starts on."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.utils import import_modules_from_strings

from mmllava.utils.safe_load import (UNSAFE_PICKLE_FLAG,
                                     allow_unsafe_pickle_for_this_run)


def add_runner_args(parser: argparse.ArgumentParser,
                    work_dir_help: str, cfg_options_example: str) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher`` and the launchers'
    ``--local-rank``."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help=f'override config keys, e.g. {cfg_options_example}')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_unsafe_pickle_arg(parser)


def add_unsafe_pickle_arg(parser: argparse.ArgumentParser) -> None:
    """``--allow-unsafe-pickle``; :func:`apply_unsafe_pickle_arg` acts on
    it."""
    parser.add_argument(
        UNSAFE_PICKLE_FLAG, action='store_true',
        help='load weight files that need full unpickling (it can run code '
        'hidden in the file): only for files you trust. Off by default: '
        'such files are refused')


def apply_unsafe_pickle_arg(args: argparse.Namespace) -> None:
    if args.allow_unsafe_pickle:
        allow_unsafe_pickle_for_this_run()


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, give the launcher's local rank to the environment, and apply
    ``--allow-unsafe-pickle``."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    apply_unsafe_pickle_arg(args)
    return args


def apply_runner_args(cfg: Config, args: argparse.Namespace) -> Config:
    """The launcher, ``--cfg-options``, and the work dir (default
    ``work_dirs/<config name>``)."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
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
    return cfg


def adapt_to_machine(cfg: Config) -> Config:
    """Let a distributed run start on a machine without CUDA.

    The configs name NCCL and CUDA device ids, right for GPU clusters; on a
    CPU-only machine processes talk through gloo and DDP takes no device
    ids. GPU runs are left as configured.
    """
    if cfg.get('launcher', 'none') != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                     device_ids=None)
    return cfg
