"""Merge a base LLaMA folder and a LLaVA v0/v1 delta into a full model.

    python tools/model_converters/apply_delta.py BASE DELTA OUT

Every delta tensor gets the base tensor added (into the first rows for the
input embedding and the LM head, which the delta grew for added tokens).
Shard by shard; the output is sharded safetensors with an index, plus the
delta's config and tokenizer files.
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('base', help='base LLM folder (transformers layout)')
    parser.add_argument('delta', help='LLaVA delta folder')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--dtype', choices=['float16', 'bfloat16', 'float32'],
                        help='output dtype (default: the delta\'s; a '
                        'float64 delta gives the base\'s)')
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
    from mmllava.converters.delta import apply_delta
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    apply_delta(args.base, args.delta, args.out,
                dtype=getattr(torch, args.dtype) if args.dtype else None,
                max_shard_size=args.max_shard_size, log=progress_logger())


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
