"""Import a llava-hf folder as the folders an mmllava config loads from.

    python tools/model_converters/hf_to_mmllava.py HF_DIR OUT

Writes OUT/{vision_encoder,llm,tokenizer}/, OUT/projector.safetensors and
OUT/llava_config.py (use it with get_model, tools/test.py or as a _base_).
The vocabulary and tokenizer stay the folder's (with <image> and <pad>);
every weight is copied bit for bit.
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('hf_dir', help='llava-hf folder')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--max-shard-size', default='2GB')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    from mmllava.converters.cli import progress_logger
    from mmllava.converters.llava_hf import convert_hf_to_mmllava
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    config = convert_hf_to_mmllava(args.hf_dir, args.out,
                                   max_shard_size=args.max_shard_size,
                                   log=progress_logger())
    print(f'config: {config}')


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
