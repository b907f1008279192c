"""Import an official LLaVA model (LlavaLlamaForCausalLM folder) or a
stage-1 mm_projector.bin into mmllava.

    python tools/model_converters/official_to_mmllava.py OFFICIAL_DIR OUT \
        [--vision-tower TOWER_DIR]
    python tools/model_converters/official_to_mmllava.py mm_projector.bin \
        OUT/projector.safetensors

A folder becomes OUT/{vision_encoder,llm,tokenizer}/, OUT/projector.safetensors
and OUT/llava_config.py; the tower comes from the checkpoint when it holds
one, else from mm_vision_tower (or --vision-tower), which must be local.
A mm_projector.bin becomes a safetensors file of projector.* keys (what
``projector_pretrained`` reads).
"""
import argparse
from pathlib import Path

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('source', help='official folder or mm_projector.bin')
    parser.add_argument('out', help='output folder (or .safetensors file '
                        'for a mm_projector.bin)')
    parser.add_argument('--vision-tower', help='local tower folder '
                        '(default: the config\'s mm_vision_tower)')
    parser.add_argument('--template', default='vicuna_v1',
                        help='chat template the model was trained with')
    parser.add_argument('--max-shard-size', default='2GB')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    from safetensors.torch import save_file

    from mmllava.converters.cli import progress_logger
    from mmllava.converters.official import (convert_official_to_mmllava,
                                             read_projector_bin)
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    log = progress_logger()
    if Path(args.source).is_file():
        state = read_projector_bin(args.source)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_file({key: value.contiguous() for key, value in state.items()},
                  args.out, metadata={'format': 'pt'})
        log(f'wrote {args.out}: {sorted(state)}')
        return
    config = convert_official_to_mmllava(
        args.source, args.out, args.vision_tower, args.template,
        max_shard_size=args.max_shard_size, log=log)
    print(f'config: {config}')


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
