"""Make LLaVA v0/v1 delta weights: ``delta = target - base``.

    python tools/model_converters/make_delta.py BASE TARGET OUT [--exact]

The inverse of apply_delta.py. By default the delta keeps the target's dtype
(as the official tool; the round trip may then be off by one unit in the
last place for a few elements); ``--exact`` stores the differences in
float64, which makes apply_delta give the target back bit for bit.
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('base', help='base LLM folder (transformers layout)')
    parser.add_argument('target', help='trained LLaVA folder (official '
                        'layout)')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--exact', action='store_true',
                        help='store differences in float64 (exact round '
                        'trip)')
    parser.add_argument('--max-shard-size', default='2GB')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    import torch

    from mmllava.converters.cli import progress_logger
    from mmllava.converters.delta import make_delta
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    make_delta(args.base, args.target, args.out,
               dtype=torch.float64 if args.exact else None,
               max_shard_size=args.max_shard_size, log=progress_logger())


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
