"""The command-line options that tools/train.py and tools/test.py share.

Light on purpose (no torch, no runner): the tools parse their arguments
before they import the rest, so that ``--help`` answers at once.
"""
import argparse
import os

from mmengine.config import DictAction

#: Set to ``1`` to let files that need full unpickling load.
ALLOW_UNSAFE_PICKLE_ENV = 'MMLLAVA_ALLOW_UNSAFE_PICKLE'
UNSAFE_PICKLE_FLAG = '--allow-unsafe-pickle'


def add_runner_args(parser: argparse.ArgumentParser,
                    work_dir_help: str, cfg_options_example: str) -> None:
    """``--work-dir``, ``--cfg-options``, ``--allow-partial-load``,
    ``--launcher`` and the launchers' ``--local-rank``."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help=f'override config keys, e.g. {cfg_options_example}')
    parser.add_argument(
        '--allow-partial-load', action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mis-shaped keys), leaving what does not fit at its '
        'initial values; without it such a load stops the run, listing the '
        'keys')
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
        # The environment, so that every process of a distributed run
        # sees it.
        os.environ[ALLOW_UNSAFE_PICKLE_ENV] = '1'


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, give the launcher's local rank to the environment, and apply
    ``--allow-unsafe-pickle``."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    apply_unsafe_pickle_arg(args)
    return args
