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

from mmllava.converters.cli import parse_args, progress_logger, run
from mmllava.converters.llava_hf import convert_mmllava_to_hf
from mmllava.setup_env import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or model name')
    parser.add_argument('paths', nargs='+', metavar='[CHECKPOINT] OUT')
    parser.add_argument('--max-shard-size', default='2GB')
    args = parse_args(parser)
    register_all_modules()
    if len(args.paths) > 2:
        parser.error('give CONFIG [CHECKPOINT] OUT')
    checkpoint = args.paths[0] if len(args.paths) == 2 else None
    convert_mmllava_to_hf(args.config, checkpoint, args.paths[-1],
                          max_shard_size=args.max_shard_size,
                          log=progress_logger())


if __name__ == '__main__':
    run(main)
