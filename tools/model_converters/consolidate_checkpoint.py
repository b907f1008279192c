"""Turn a DeepSpeed ZeRO checkpoint folder into an mmllava checkpoint.

    python tools/model_converters/consolidate_checkpoint.py CKPT OUT.pth

CKPT is a checkpoint folder of a ``--strategy deepspeed_*`` run (e.g.
work_dirs/RUN/iter_1000.pth) or the run's work dir (its latest). OUT.pth
holds the fp32 weights and the run's meta, as a plain Runner saves them:
tools/test.py, get_model(checkpoint=OUT.pth) and the other converters read
it. It cannot resume training; resume from the folder itself.
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint',
                        help='DeepSpeed checkpoint folder, or a work dir')
    parser.add_argument('out', help='output .pth file')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and DeepSpeed take
    # seconds), so that --help answers at once.
    from mmllava.converters.cli import progress_logger
    from mmllava.converters.deepspeed_checkpoint import \
        consolidate_deepspeed_checkpoint_file
    from mmllava.setup_env import register_all_modules
    from mmllava.utils.files import resolve_checkpoint
    register_all_modules()
    consolidate_deepspeed_checkpoint_file(
        resolve_checkpoint(args.checkpoint), args.out, progress_logger())


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
