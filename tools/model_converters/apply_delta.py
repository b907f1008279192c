"""Merge a base LLaMA folder and a LLaVA v0/v1 delta into a full model.

    python tools/model_converters/apply_delta.py BASE DELTA OUT

Every delta tensor gets the base tensor added (into the first rows for the
input embedding and the LM head, which the delta grew for added tokens).
Shard by shard; the output is sharded safetensors with an index, plus the
delta's config and tokenizer files.
"""
import argparse

import torch

from mmllava.converters.cli import parse_args, progress_logger, run
from mmllava.converters.delta import apply_delta
from mmllava.setup_env import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('base', help='base LLM folder (transformers layout)')
    parser.add_argument('delta', help='LLaVA delta folder')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--dtype', choices=['float16', 'bfloat16', 'float32'],
                        help='output dtype (default: the delta\'s; a '
                        'float64 delta gives the base\'s)')
    parser.add_argument('--max-shard-size', default='2GB')
    args = parse_args(parser)
    register_all_modules()
    apply_delta(args.base, args.delta, args.out,
                dtype=getattr(torch, args.dtype) if args.dtype else None,
                max_shard_size=args.max_shard_size, log=progress_logger())


if __name__ == '__main__':
    run(main)
