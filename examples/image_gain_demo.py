"""Does a trained model use its images? Measure a checkpoint's image gain:
its held-out loss with each sample's own image, with the images shuffled
among the samples, and with blank images, overall and per question kind.

Run from the repository root after the demo has trained its model:

    python tools/run_demo.py
    python examples/image_gain_demo.py [--work-dir work_dirs/llava-tiny_demo_ft]
        [--max-samples 200] [--zero-projector]

A model whose projector carries nothing from the images gains about 0
(``--zero-projector`` zeroes the projector's last layer, the control); the
trained demo gains clearly on captions and counting (docs/get_started.md).
The same measurement runs during training with ``ImageGainHook`` in a
config's ``custom_hooks`` (docs/evaluation.md).
"""
import argparse
import sys
from pathlib import Path

import torch
from mmengine.config import Config

from mmllava.apis import get_model
from mmllava.registry import HOOKS
from mmllava.utils.image_token_counts import fill_image_token_counts

CONFIG = Path('configs/llava/llava-tiny_demo_ft.py')
DATA_DIR = Path('data/demo')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/llava-tiny_demo_ft',
                        help='a trained stage-2 work dir or checkpoint')
    parser.add_argument('--max-samples', type=int, default=200)
    parser.add_argument('--zero-projector', action='store_true',
                        help='zero the projector\'s last layer first: image '
                        'features become 0, so the gain must be about 0')
    args = parser.parse_args()
    if not Path(args.work_dir).exists() or \
            not (DATA_DIR / 'eval.json').is_file():
        sys.exit(f'Missing {args.work_dir} or {DATA_DIR / "eval.json"} (in '
                 f'{Path.cwd()}): run `python tools/run_demo.py` first, '
                 'then this example from the same folder.')

    cfg = fill_image_token_counts(Config.fromfile(str(CONFIG)))
    model = get_model(cfg, pretrained=args.work_dir)
    if args.zero_projector:
        with torch.no_grad():
            model.projector[-1].weight.zero_()
            model.projector[-1].bias.zero_()
    hook = HOOKS.build(dict(
        type='ImageGainHook', data_file=str(DATA_DIR / 'eval.json'),
        image_folder=str(DATA_DIR),
        pipeline=cfg.train_dataloader.dataset.pipeline,
        max_samples=args.max_samples, batch_size=25))
    scalars, num_kept, _ = hook.compute(model)
    print(f'Held-out loss on {num_kept} samples (nats per answer token): '
          f'own images {scalars["val/loss_own"]:.3f}, shuffled '
          f'{scalars["val/loss_shuffled"]:.3f}, blank '
          f'{scalars["val/loss_blank"]:.3f}')
    print(f'{"kind":<13}{"vs shuffled":>12}{"vs blank":>10}')
    kinds = sorted(key[len('val/'):-len('/image_gain')] for key in scalars
                   if key.endswith('/image_gain') and key != 'val/image_gain')
    for kind, key in [('all', 'val/image_gain')] + [
            (kind, f'val/{kind}/image_gain') for kind in kinds]:
        print(f'{kind:<13}{scalars[key]:>12.3f}'
              f'{scalars[key + "_blank"]:>10.3f}')


if __name__ == '__main__':
    main()
