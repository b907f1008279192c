"""Merge an official LLaVA LoRA checkpoint into its base LLM.

    python tools/model_converters/merge_lora.py LORA_DIR BASE_LLM_DIR OUT \
        [--max-shard-size 2GB]

OUT is an official-layout folder (LlavaLlamaForCausalLM: merged LLM weights,
the projector from non_lora_trainables.bin, config.json and tokenizer), which
get_model(pretrained=OUT) loads and the other converters read (e.g.
mmllava_to_hf.py after official_to_mmllava.py).
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('lora_dir', help='the LoRA run\'s output folder')
    parser.add_argument('base_llm_dir', help='the LLM it was trained on')
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
    from mmllava.converters.lora import merge_lora
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    merge_lora(args.lora_dir, args.base_llm_dir, args.out,
               args.max_shard_size, progress_logger())


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
