"""Export an mmllava model in the official LLaVA layout
(LlavaLlamaForCausalLM folder), or its projector as a stage-1
mm_projector.bin.

    python tools/model_converters/mmllava_to_official.py CONFIG [CHECKPOINT] OUT \
        [--vision-tower openai/clip-vit-large-patch14-336] [--no-vision-tower]
    python tools/model_converters/mmllava_to_official.py CONFIG CHECKPOINT \
        OUT/mm_projector.bin --projector-only
"""
import argparse

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or model name')
    parser.add_argument('paths', nargs='+', metavar='[CHECKPOINT] OUT')
    parser.add_argument('--vision-tower', help='mm_vision_tower to write '
                        '(default: the tower folder the config names)')
    parser.add_argument('--no-vision-tower', action='store_true',
                        help='leave the (frozen) tower weights out, as the '
                        'official checkpoints do')
    parser.add_argument('--projector-only', action='store_true',
                        help='write only the stage-1 mm_projector.bin')
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
    from mmllava.converters.native import read_weights
    from mmllava.converters.official import (convert_mmllava_to_official,
                                             write_projector_bin)
    from mmllava.model_index import load_config
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    checkpoint = args.paths[0] if len(args.paths) == 2 else None
    out = args.paths[-1]
    log = progress_logger()
    if args.projector_only:
        state = write_projector_bin(
            read_weights(load_config(args.config), checkpoint), out)
        log(f'wrote {out}: {sorted(state)}')
        return
    convert_mmllava_to_official(
        args.config, checkpoint, out, args.vision_tower,
        include_vision_tower=not args.no_vision_tower,
        max_shard_size=args.max_shard_size, log=log)


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
