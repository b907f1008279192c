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

import torch

from mmllava.model_index import load_config
from mmllava.converters.cli import parse_args, progress_logger, run
from mmllava.converters.mmpretrain import to_mmllava_state, vocab_size_of
from mmllava.setup_env import register_all_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or model name')
    parser.add_argument('source', help="mmpretrain's LLaVA .pth")
    parser.add_argument('out', help='output mmllava checkpoint (.pth)')
    parser.add_argument('--vision-tower', help='transformers CLIP folder or '
                        "mmpretrain CLIP ViT checkpoint (default: the file's"
                        ' tower, else the config\'s tower folder)')
    args = parse_args(parser)
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


if __name__ == '__main__':
    run(main)
