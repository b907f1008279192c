"""Linear probes of the demo vision tower's features, per question kind.

    python tools/analysis/probe_vision_features.py [CONFIG]
        [--vision-encoder DIR] [--layer -2] [--num-train 3000]

Draws the demo's train and held-out scenes (the generator's own seeds),
runs them through the tower of CONFIG (default: the demo's) at the selected
layer, and fits one linear classifier per target of each question kind on the
train scenes' flattened patch features (see
mmllava/testing/demo/feature_probe.py).
Prints the held-out accuracy per kind beside the majority-class rate, and
the same probe on the raw pixels as a reference.
"""
import argparse
import time

from mmengine.config import Config

from mmllava.registry import MODELS
from mmllava.testing.demo.scenes import draw_scene

DEMO_CONFIG = 'configs/llava/llava-tiny_demo_pretrain.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEMO_CONFIG)
    parser.add_argument('--vision-encoder',
                        help='tower folder (default: the config\'s)')
    parser.add_argument('--layer', type=int,
                        help='hidden state to probe (default: the config\'s '
                        'select_layer)')
    parser.add_argument('--num-train', type=int, default=3000)
    parser.add_argument('--num-eval', type=int, default=200)
    return parser.parse_args()


def tower_features(encoder, processor, scenes, batch_size: int = 256):
    """``(N, N_patches * C)`` features and ``(N, 3 * H * W)`` pixels."""
    import torch
    features, pixels = [], []
    for start in range(0, len(scenes), batch_size):
        images = [draw_scene(scene) for scene in
                  scenes[start:start + batch_size]]
        values = processor(images, return_tensors='pt')['pixel_values']
        with torch.no_grad():
            features.append(encoder(values).flatten(1))
        pixels.append(values.flatten(1))
    return torch.cat(features), torch.cat(pixels)


def majority_rates(train_targets, test_targets, heads) -> dict[str, float]:
    """Accuracy of always answering each head's most common train class."""
    from mmllava.testing.demo.feature_probe import IGNORE, scored
    hits: dict[str, list[float]] = {}
    for i, head in enumerate(heads):
        known = train_targets[:, i][train_targets[:, i] != IGNORE]
        if not len(known):
            continue
        # Attribute heads are scored on occupied cells: their majority is
        # the commonest non-'none' class.
        if head.kind in ('colour', 'shape', 'size'):
            known = known[known != 0]
        majority = int(known.mode().values)
        right = [float(int(target) == majority)
                 for target in test_targets[:, i]
                 if scored(head, int(target))]
        if head.balanced:
            # Scored as the probes are, one accuracy per class present: the
            # majority class all right, the others all wrong.
            right = [float(value == majority) for value in
                     {int(target) for target in test_targets[:, i]
                      if scored(head, int(target))}]
        hits.setdefault(head.kind, []).extend(right)
    return {kind: 100 * sum(v) / len(v) for kind, v in hits.items()}


def main() -> None:
    args = parse_args()
    # torch and transformers take seconds to import: only once parsed.
    import torch
    from transformers import AutoImageProcessor

    from mmllava.testing.demo.feature_probe import (demo_scenes, fit_probes,
                                                    probe_heads,
                                                    scene_targets)
    cfg = Config.fromfile(args.config)
    encoder_cfg = dict(cfg.model.vision_encoder)
    if args.vision_encoder:
        encoder_cfg['pretrained'] = args.vision_encoder
    if args.layer is not None:
        encoder_cfg['select_layer'] = args.layer
    encoder = MODELS.build(encoder_cfg).eval()
    processor = AutoImageProcessor.from_pretrained(encoder_cfg['pretrained'])
    size = encoder.model.config.image_size
    heads = probe_heads()
    start = time.time()
    splits = {}
    for split, number in (('train', args.num_train), ('eval', args.num_eval)):
        scenes = demo_scenes(split, number, cfg.demo['image_size'])
        targets = torch.tensor([scene_targets(scene, heads)
                                for scene in scenes])
        splits[split] = (*tower_features(encoder, processor, scenes),
                         targets)
    (train_f, train_p, train_t), (test_f, test_p, test_t) = \
        splits['train'], splits['eval']
    probe = fit_probes(train_f, train_t, test_f, test_t, heads)
    pixels = fit_probes(train_p, train_t, test_p, test_t, heads)
    majority = majority_rates(train_t, test_t, heads)
    print(f'Linear probes of {encoder_cfg["pretrained"]} (layer '
          f'{encoder_cfg.get("select_layer", -2)}, {size} px), '
          f'{args.num_train} train / {args.num_eval} held-out scenes, '
          f'{time.time() - start:.0f} s; accuracy %')
    print(f'{"kind":<13}{"features":>9}{"pixels":>8}{"majority":>9}')
    for kind in probe:
        print(f'{kind:<13}{probe[kind]:>9.1f}{pixels[kind]:>8.1f}'
              f'{majority[kind]:>9.1f}')


if __name__ == '__main__':
    main()
