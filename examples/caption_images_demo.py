"""Caption the demo's images into stage-1 records, end to end.

Run from the repository root:

    python examples/caption_images_demo.py [--limit 8]

By default the captions come from a local replay server (no network, no key,
no cost: each caption is made from the pixels the server receives, so it
shows that the image arrived). The demo's scenes are generated into
data/demo when they are absent. With the demo's trained model instead:

    python tools/run_demo.py
    python examples/caption_images_demo.py --local-model

To use a real vision endpoint, set the key in the environment and name it:

    export OPENAI_API_KEY=...
    python examples/caption_images_demo.py \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini

It runs tools/data/caption_images.py, checks the records with
tools/data/check_dataset.py's checks and prints one.
"""
import argparse
import base64
import io
import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from PIL import Image

from mmllava.datasets.checks import check_data_file
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset
from mmllava.testing.replay_server import ReplayServer, Reply

TOOL = Path(__file__).resolve().parents[1] / 'tools/data/caption_images.py'
IMAGES = Path('data/demo/images')
DEMO_MODEL = Path('work_dirs/llava-tiny_demo_ft')


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/caption_demo',
                        help='folder for the records')
    parser.add_argument('--limit', type=int, default=8,
                        help='caption the first N images (default: '
                        '%(default)s)')
    parser.add_argument('--local-model', action='store_true',
                        help="the demo's trained model (run "
                        'tools/run_demo.py first)')
    parser.add_argument('--base-url',
                        help='a real endpoint (default: a local replay '
                        'server)')
    parser.add_argument('--model', default='replay',
                        help='model name at --base-url')
    return parser.parse_args()


def pixel_caption(body: dict, index: int) -> Reply:
    """A caption of what the replay server received: size and colours."""
    url = body['messages'][-1]['content'][0]['image_url']['url']
    data = base64.b64decode(url.split(',', 1)[1])
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
    height, width = pixels.shape[:2]
    red, green, blue = pixels.reshape(-1, 3).mean(0).round().astype(int)
    return Reply(f'A {width} x {height} picture of simple shapes on a plain '
                 f'background; its average colour is RGB ({red}, {green}, '
                 f'{blue}).')


def main() -> None:
    """Caption, check, show a record."""
    args = parse_args()
    if args.local_model and not (DEMO_MODEL / 'last_checkpoint').exists():
        sys.exit(f'{DEMO_MODEL} holds no trained model (in {Path.cwd()}): run '
                 '`python tools/run_demo.py` first, from this folder.')
    if not IMAGES.is_dir():
        print(f'generating demo scenes in {IMAGES.parent}')
        generate_demo_dataset(IMAGES.parent, num_train=args.limit,
                              num_eval=0)
    out = Path(args.out)
    records_file = out / 'captions.json'
    command = [sys.executable, str(TOOL), str(IMAGES),
               '--out', str(records_file), '--limit', str(args.limit),
               '--no-progress']
    server = nullcontext()
    if args.local_model:
        command += ['--local-model', 'llava-tiny_demo_caption',
                    '--checkpoint', str(DEMO_MODEL), '--batch-size', '4']
    else:
        server = nullcontext() if args.base_url else \
            ReplayServer(pixel_caption)
    with server:
        if not args.local_model:
            base_url = args.base_url or server.base_url
            command += ['--base-url', base_url, '--model', args.model,
                        '--concurrency', '4']
        status = subprocess.call(command)
    if status == 2 or not records_file.exists():
        sys.exit(f'captioning failed (exit status {status})')
    report = check_data_file(str(records_file), str(IMAGES))
    print(f'{report.num_records} records, {len(report.problems)} problems '
          'found by the data checks')
    print(json.dumps(json.loads(records_file.read_text())[0], indent=1))


if __name__ == '__main__':
    main()
