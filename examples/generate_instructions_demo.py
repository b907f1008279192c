"""Generate LLaVA instruction data end to end, for three invented images.

Run from the repository root:

    python examples/generate_instructions_demo.py [--out DIR]

By default it answers from a local replay server (no network, no key, no
cost: the replies are templated from the captions). To use a real
OpenAI-compatible endpoint, set the key in the environment and name the
endpoint:

    export OPENAI_API_KEY=...
    python examples/generate_instructions_demo.py \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini

It writes the contexts, runs tools/data/generate_instructions.py on them,
checks the records with tools/data/check_dataset.py's checks and prints one.
"""
import argparse
import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from PIL import Image

from mmllava.datasets.checks import check_data_file
from mmllava.testing.replay_server import ReplayServer, demo_reply

TOOL = Path(__file__).resolve().parents[1] / \
    'tools/data/generate_instructions.py'

SCENES = [
    dict(id='demo-0', image='demo-0.png',
         captions=['A yellow taxi waits at a red traffic light.',
                   'A city crossing with a taxi and a cyclist.'],
         boxes=[dict(category='car', bbox=[0.12, 0.41, 0.58, 0.83]),
                dict(category='bicycle', bbox=[0.66, 0.47, 0.81, 0.86]),
                dict(category='traffic light',
                     bbox=[0.05, 0.02, 0.11, 0.31])]),
    dict(id='demo-1', image='demo-1.png',
         captions=['Two children build a sandcastle at the beach.'],
         boxes=[dict(category='person', bbox=[0.21, 0.35, 0.44, 0.92]),
                dict(category='person', bbox=[0.52, 0.38, 0.73, 0.95])]),
    dict(id='demo-2', image='demo-2.png',
         captions=['A plate of pancakes with berries on a wooden table.',
                   'Breakfast served next to a cup of coffee.'],
         boxes=[dict(category='dining table', bbox=[0.0, 0.3, 1.0, 1.0]),
                dict(category='cup', bbox=[0.71, 0.22, 0.9, 0.51])]),
]


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/datagen_demo',
                        help='folder for the contexts, images and records')
    parser.add_argument('--base-url',
                        help='a real endpoint (default: a local replay '
                        'server)')
    parser.add_argument('--model', default='replay',
                        help='model name at --base-url')
    return parser.parse_args()


def write_inputs(out: Path) -> Path:
    """The contexts file and a placeholder image per scene."""
    (out / 'images').mkdir(parents=True, exist_ok=True)
    for index, scene in enumerate(SCENES):
        Image.new('RGB', (64, 48), (60 * index, 120, 180)).save(
            out / 'images' / scene['image'])
    contexts = out / 'contexts.json'
    contexts.write_text(json.dumps(SCENES, indent=1))
    return contexts


def main() -> None:
    """Write the inputs, generate, check, show a record."""
    args = parse_args()
    out = Path(args.out)
    contexts = write_inputs(out)
    server = nullcontext() if args.base_url else ReplayServer(demo_reply)
    with server:
        base_url = args.base_url or server.base_url
        print(f'asking {args.model} at {base_url}')
        status = subprocess.call([
            sys.executable, str(TOOL), '--contexts', str(contexts),
            '--output', str(out / 'instruct.jsonl'), '--format', 'json',
            '--base-url', base_url, '--model', args.model,
            '--concurrency', '2', '--no-progress'])
    records_file = out / 'instruct.json'
    if status == 2 or not records_file.exists():
        sys.exit(f'generation failed (exit status {status})')
    report = check_data_file(str(records_file), str(out / 'images'))
    print(f'{report.num_records} records, {len(report.problems)} problems '
          f'found by the data checks')
    records = json.loads(records_file.read_text())
    print(json.dumps(records[0], indent=1))


if __name__ == '__main__':
    main()
