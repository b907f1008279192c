"""Merge the LoRA adapters of an mmllava LoRA run into plain weights.

    python tools/model_converters/merge_mmllava_lora.py CONFIG CHECKPOINT OUT

CONFIG is the run's config (with model.lora), CHECKPOINT its checkpoint or
work dir. OUT gets model.pth (the keys of the model without LoRA) and
config.py (CONFIG without model.lora): get_model, tools/test.py and the other
converters take them as any mmllava result, e.g.

    python tools/model_converters/mmllava_to_hf.py OUT/config.py \
        OUT/model.pth llava-hf-out

(An official LLaVA LoRA folder is merged by merge_lora.py instead.)
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the LoRA run\'s config')
    parser.add_argument('checkpoint', help='its checkpoint or work dir')
    parser.add_argument('out', help='output folder')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    from mmllava.converters.cli import progress_logger
    from mmllava.converters.mmllava_lora import merge_lora_checkpoint
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    merge_lora_checkpoint(args.config, args.checkpoint, args.out,
                          progress_logger())


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
