"""Import mmpretrain's LLaVA file (what its llava-delta2mmpre.py writes) as
an mmllava checkpoint for a config.

    python tools/model_converters/mmpretrain_to_mmllava.py CONFIG \
        LLAVA.pth OUT.pth [--vision-tower TOWER]

LLAVA.pth holds the official LLaVA keys under model.lang_encoder. (the
merged LLM and model.mm_projector.*); OUT.pth is an mmllava checkpoint
(state_dict in the keys of the model CONFIG builds) that get_model(CONFIG,
pretrained=OUT.pth) and tools/test.py CONFIG OUT.pth load. Rows of the
embedding and LM head past the config's vocabulary (tokens mmpretrain's
Llava added, such as <im_patch>) are dropped with a warning. The tower
comes from --vision-tower (a transformers CLIP folder, or mmpretrain's CLIP
ViT checkpoint with backbone.* keys), else from the file, else from the
tower folder the config names. The model is not built.
"""
import argparse
import warnings
from pathlib import Path

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or model name')
    parser.add_argument('source', help="mmpretrain's LLaVA .pth")
    parser.add_argument('out', help='output mmllava checkpoint (.pth)')
    parser.add_argument('--vision-tower', help='transformers CLIP folder or '
                        "mmpretrain CLIP ViT checkpoint (default: the file's"
                        ' tower, else the config\'s tower folder)')
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    import torch

    from mmllava.converters.cli import progress_logger
    from mmllava.converters.mmpretrain import to_mmllava_state, vocab_size_of
    from mmllava.model_index import load_config
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    log = progress_logger()
    cfg = load_config(args.config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        state = to_mmllava_state(
            args.source, vocab_size_of(cfg), args.vision_tower,
            cfg.model.vision_encoder.get('pretrained'))
    for warning in caught:
        log(f'note: {warning.message}')
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(state_dict=state, meta=dict(source=args.source)),
               args.out)
    log(f'wrote {args.out}: {len(state)} tensors')


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
