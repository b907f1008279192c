"""Export an mmllava model as a llava-hf folder that
``transformers.LlavaForConditionalGeneration.from_pretrained`` and
``AutoProcessor.from_pretrained`` load as they are.

    python tools/model_converters/mmllava_to_hf.py CONFIG [CHECKPOINT] OUT

CONFIG is a config file or model name; CHECKPOINT an mmllava checkpoint or
a training work dir (left out: the weights of the folders the config names).
The model is not built: the checkpoint is read memory-mapped and written
shard by shard.
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or model name')
    parser.add_argument('paths', nargs='+', metavar='[CHECKPOINT] OUT')
    parser.add_argument('--max-shard-size', default='2GB')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    if len(args.paths) > 2:
        parser.error('give CONFIG [CHECKPOINT] OUT')
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    from mmllava.converters.cli import progress_logger
    from mmllava.converters.llava_hf import convert_mmllava_to_hf
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    checkpoint = args.paths[0] if len(args.paths) == 2 else None
    convert_mmllava_to_hf(args.config, checkpoint, args.paths[-1],
                          max_shard_size=args.max_shard_size,
                          log=progress_logger())


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
