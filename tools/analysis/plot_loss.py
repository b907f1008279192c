"""Plot the training loss of one or more mmengine work dirs to a PNG.

Example::

    python tools/analysis/plot_loss.py work_dirs/stage1 work_dirs/stage2 \
        --out loss.png
"""
import argparse

from mmllava.utils.plot import find_scalars_file, plot_loss_curves


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'work_dirs', nargs='+',
        help='mmengine work dirs (the newest <timestamp>/vis_data/'
        'scalars.json in each is read) or scalars.json files')
    parser.add_argument('--out', default='loss.png', help='the PNG to write')
    parser.add_argument('--key', default='loss', help='the scalar to plot')
    return parser.parse_args()


def main() -> None:
    """Find each run's scalars, plot them and say what was read."""
    args = parse_args()
    try:
        scalar_files = [find_scalars_file(path) for path in args.work_dirs]
        out_file = plot_loss_curves(scalar_files, args.out, key=args.key)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f'error: {error}') from error
    for scalar_file in scalar_files:
        print(f'read {scalar_file}')
    print(f'wrote {out_file}')


if __name__ == '__main__':
    main()
