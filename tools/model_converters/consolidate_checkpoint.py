"""Turn a DeepSpeed ZeRO checkpoint folder into an mmllava checkpoint.

    python tools/model_converters/consolidate_checkpoint.py CKPT OUT.pth

CKPT is a checkpoint folder of a ``--strategy deepspeed_*`` run (e.g.
work_dirs/RUN/iter_1000.pth) or the run's work dir (its latest). OUT.pth
holds the fp32 weights and the run's meta, as a plain Runner saves them:
tools/test.py, get_model(checkpoint=OUT.pth) and the other converters read
it. It cannot resume training; resume from the folder itself.
"""
import argparse

from mmllava.converters.cli import parse_args, progress_logger, run
from mmllava.converters.deepspeed_checkpoint import \
    consolidate_deepspeed_checkpoint_file
from mmllava.setup_env import register_all_modules
from mmllava.utils.files import resolve_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint',
                        help='DeepSpeed checkpoint folder, or a work dir')
    parser.add_argument('out', help='output .pth file')
    args = parse_args(parser)
    register_all_modules()
    consolidate_deepspeed_checkpoint_file(
        resolve_checkpoint(args.checkpoint), args.out, progress_logger())


if __name__ == '__main__':
    run(main)
