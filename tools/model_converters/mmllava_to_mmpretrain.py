"""Export an mmllava model as mmpretrain's LLaVA files: the LLM file
(model.lang_encoder.* keys, what its llava-delta2mmpre.py writes) and,
with --vision-tower-out, its CLIP ViT checkpoint (backbone.* keys).

    python tools/model_converters/mmllava_to_mmpretrain.py CONFIG \
        [CHECKPOINT] LLAVA.pth [--vision-tower-out TOWER.pth]

mmpretrain's Llava then loads LLAVA.pth as its checkpoint and TOWER.pth as
vision_encoder.pretrained. Only LLaVA v1 / v1.5 models (a linear or MLP
projector, a CLIP tower) have this layout. Both files are whole-model
torch files, so the model's weights are held in memory at once.
"""
import argparse
from pathlib import Path

from mmllava.utils.runner_args import (add_unsafe_pickle_arg,
                                       apply_unsafe_pickle_arg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file or model name')
    parser.add_argument('paths', nargs='+', metavar='[CHECKPOINT] OUT')
    parser.add_argument('--vision-tower-out', help='also write the tower as '
                        "mmpretrain's VisionTransformer checkpoint here")
    add_unsafe_pickle_arg(parser)
    args = parser.parse_args()
    apply_unsafe_pickle_arg(args)
    if len(args.paths) > 2:
        parser.error('give CONFIG [CHECKPOINT] OUT')
    return args


def convert(args: argparse.Namespace) -> None:
    # Imported once the arguments are parsed (torch and transformers take
    # seconds), so that --help answers at once.
    import torch

    from mmllava.converters.cli import progress_logger
    from mmllava.converters.mmpretrain import to_mmpretrain_states
    from mmllava.converters.native import read_weights
    from mmllava.model_index import load_config
    from mmllava.setup_env import register_all_modules
    register_all_modules()
    checkpoint = args.paths[0] if len(args.paths) == 2 else None
    out = args.paths[-1]
    log = progress_logger()
    cfg = load_config(args.config)
    encoder = cfg.model.get('vision_encoder', {}).get('type')
    if encoder != 'CLIPVisionEncoder':
        raise ValueError(f'{args.config}: mmpretrain\'s LLaVA runs a CLIP '
                         f'tower; this config builds {encoder!r}.')
    llm, tower = to_mmpretrain_states(read_weights(cfg, checkpoint))
    for path, state in ((out, llm), (args.vision_tower_out, tower)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, path)
            log(f'wrote {path}: {len(state)} tensors')


def main() -> None:
    args = parse_args()
    from mmllava.converters.cli import run
    run(lambda: convert(args))


if __name__ == '__main__':
    main()
