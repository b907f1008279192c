"""Make LLaVA v0/v1 delta weights: ``delta = target - base``.

    python tools/model_converters/make_delta.py BASE TARGET OUT [--exact]

The inverse of apply_delta.py. By default the delta keeps the target's dtype
(as the official tool; the round trip may then be off by one unit in the
last place for a few elements); ``--exact`` stores the differences in
float64, which makes apply_delta give the target back bit for bit.
"""
import argparse

import torch

from mmllava.converters.cli import parse_args, progress_logger, run
from mmllava.converters.delta import make_delta
from mmllava.setup_env import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('base', help='base LLM folder (transformers layout)')
    parser.add_argument('target', help='trained LLaVA folder (official '
                        'layout)')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--exact', action='store_true',
                        help='store differences in float64 (exact round '
                        'trip)')
    parser.add_argument('--max-shard-size', default='2GB')
    args = parse_args(parser)
    register_all_modules()
    make_delta(args.base, args.target, args.out,
               dtype=torch.float64 if args.exact else None,
               max_shard_size=args.max_shard_size, log=progress_logger())


if __name__ == '__main__':
    run(main)
