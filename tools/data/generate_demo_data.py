"""Generate the synthetic-shapes dataset of the embedded demo.

Example::

    python tools/data/generate_demo_data.py --out-dir data/demo
"""
import argparse
import shutil
import time
from pathlib import Path

from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset

#: What a run writes, removed first by ``--force`` so that no image of a
#: larger earlier run is left behind.
OUTPUTS = ('images', 'scenes.json', 'pretrain.json', 'instruct.json',
           'eval.json', 'corpus.txt')


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default='data/demo',
                        help='where to write the images and json files')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='train scenes')
    parser.add_argument('--num-eval', type=int, default=200,
                        help='held-out scenes')
    parser.add_argument('--image-size', type=int, default=64,
                        help='side of the square images in pixels (>= 32)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='replace a dataset already in --out-dir')
    return parser.parse_args()


def main() -> None:
    """Generate the dataset and say what was written."""
    args = parse_args()
    out_dir = Path(args.out_dir)
    existing = [name for name in OUTPUTS if (out_dir / name).exists()]
    if existing and not args.force:
        raise SystemExit(f'error: {out_dir} already holds '
                         f'{", ".join(existing)}; pass --force to replace '
                         'them')
    for name in existing:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    start = time.perf_counter()
    written = generate_demo_dataset(
        out_dir,
        num_train=args.num_train,
        num_eval=args.num_eval,
        image_size=args.image_size,
        seed=args.seed)
    seconds = time.perf_counter() - start
    print(f'wrote {written["num_images"]} images to {out_dir / "images"} in '
          f'{seconds:.1f} s')
    for name, count in (('scenes', 'num_images'),
                        ('pretrain', 'num_pretrain_records'),
                        ('instruct', 'num_instruct_records'),
                        ('eval', 'num_eval_records'),
                        ('corpus', 'num_corpus_lines')):
        print(f'{written[f"{name}_file"]}: {written[count]}')
    print(f'({written["num_text_only_records"]} of the instruct records '
          'are text-only)')


if __name__ == '__main__':
    main()
