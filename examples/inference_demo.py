"""Ask the trained demo model about a held-out demo image: a short answer, a
caption, and a two-turn chat streamed as it is written.

Run from the repository root after the demo has trained its model:

    python tools/run_demo.py
    python examples/inference_demo.py [--index 0] [--device cpu]
"""
import argparse
import json
import sys
from pathlib import Path

from mmllava.apis import ChatSession, get_model, inference_model
from mmllava.testing.demo.eval_files import question_text

WORK_DIR = Path('work_dirs/llava-tiny_demo_ft')
DATA_DIR = Path('data/demo')
WEIGHTS_DIR = Path('checkpoints/demo')


def check_demo_files() -> None:
    """Exit with a clear message when the demo has not been run here."""
    needed = [WORK_DIR / 'last_checkpoint', DATA_DIR / 'eval.json',
              WEIGHTS_DIR / 'llm', WEIGHTS_DIR / 'vision_encoder']
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        sys.exit(f'Missing {", ".join(missing)} (in {Path.cwd()}).\n'
                 'This example uses the model the demo trains: run '
                 '`python tools/run_demo.py` first, then run this example '
                 'from the same folder.')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--index', type=int, default=0,
                        help='which held-out question to ask')
    parser.add_argument('--device', help='defaults to cuda when available')
    args = parser.parse_args()
    check_demo_files()

    records = json.loads((DATA_DIR / 'eval.json').read_text())
    record = [r for r in records if r['type'] != 'caption'][args.index]
    image = str(DATA_DIR / record['image'])
    question = question_text(record)

    # A short answer: the config appends the short-answer prompt.
    model = get_model('llava-tiny_demo_vqa', pretrained=str(WORK_DIR),
                      device=args.device)
    result = inference_model(model, image, question)
    print(f'Image: {image}\nQ: {question}\n'
          f'A: {result["pred_answer"]} (reference: {record["answer"]})')

    # A caption with the same weights, under the caption recipe's prompt.
    captioner = get_model('llava-tiny_demo_caption',
                          pretrained=str(WORK_DIR), device=args.device)
    print(f'Caption: {inference_model(captioner, image)["pred_caption"]}')

    # A chat: each answer streams as it is written and joins the history.
    session = ChatSession(model, image)
    for turn in ('What do you see in the image?', 'What colour is it?'):
        print(f'USER: {turn}\nASSISTANT: ', end='', flush=True)
        session.ask(turn, streamer=lambda text: print(text, end='',
                                                      flush=True))
        print()


if __name__ == '__main__':
    main()
