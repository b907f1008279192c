"""Chat with a LLaVA model about an image, or several; answers stream as
they are written.

    python tools/chat.py CONFIG_OR_NAME CHECKPOINT --image PATH
        [--image PATH ...] [--device cuda|cpu] [--max-new-tokens N]

Every ``--image`` goes with the first question. Commands: ``/image PATH`` (a
new image and a new conversation), ``/add PATH`` (one more image, which goes
with the next question), ``/reset`` (a new conversation about the same
images), ``/quit`` (or end of input). Questions may also come from a pipe:
``echo "What is this?" | python tools/chat.py ...``.
"""
import argparse
import sys
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING, Optional

from mmengine.logging import MMLogger
from PIL import Image

from mmllava.utils.runner_args import add_unsafe_pickle_arg

if TYPE_CHECKING:
    from mmllava.apis import ChatSession

COMMANDS = '/image PATH, /add PATH, /reset, /quit'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Chat with a LLaVA model about an image, or several')
    parser.add_argument('model', help='a name from list_models() or a config')
    parser.add_argument('checkpoint',
                        help='an mmllava checkpoint or a training work dir')
    parser.add_argument(
        '--image', required=True, action='append',
        help='the image to discuss; give it again for several images, '
        'which all go with the first question')
    parser.add_argument('--device', help='defaults to cuda when available')
    parser.add_argument('--max-new-tokens', type=int,
                        help="longest answer (default: the config's)")
    add_unsafe_pickle_arg(parser)
    return parser.parse_args()


def stream_answer(session: 'ChatSession', question: str, **kwargs) -> str:
    """Print the answer while it is generated (generation runs in a thread
    that feeds the streamer) and return it."""
    from transformers import TextIteratorStreamer
    streamer = TextIteratorStreamer(session.model.tokenizer, skip_prompt=True,
                                    skip_special_tokens=True)
    result: dict = {}

    def run() -> None:
        try:
            result['answer'] = session.ask(question, streamer=streamer,
                                           **kwargs)
        except BaseException as error:  # re-raised in the main thread
            result['error'] = error
            streamer.end()

    thread = Thread(target=run)
    thread.start()
    print('ASSISTANT: ', end='', flush=True)
    for piece in streamer:
        print(piece, end='', flush=True)
    thread.join()
    print(flush=True)
    if 'error' in result:
        raise result['error']
    if result['answer'].cut:
        print('(the answer reached --max-new-tokens before its end and is '
              'cut; raise --max-new-tokens to let answers finish)',
              flush=True)
    return result['answer']


def read_question(interactive: bool) -> Optional[str]:
    """The next line, or None at the end of input. Piped lines are echoed
    so that the transcript reads as a conversation."""
    try:
        line = input('USER: ' if interactive else '')
    except EOFError:
        return None
    if not interactive:
        print(f'USER: {line}')
    return line.strip()


def check_image(path: str) -> bool:
    """Whether ``path`` is an image PIL reads; if not, say why."""
    if not Path(path).is_file():
        print(f'Image not found: {path}')
        return False
    try:
        with Image.open(path) as image:
            image.verify()
    except Image.DecompressionBombError:
        print(f'Image too large: {path} (PIL refuses it as a possible '
              'decompression bomb).')
        return False
    except (OSError, ValueError, SyntaxError, EOFError):
        print(f'Not an image PIL can read: {path}')
        return False
    return True


def main() -> None:
    args = parse_args()
    if not all(check_image(path) for path in args.image):
        sys.exit(1)
    # Seconds to import (torch, transformers): only once parsed.
    from mmllava.apis import ChatSession, get_model
    # Model-building logs would interleave with the transcript on stdout.
    MMLogger.get_instance('chat', log_level='WARNING')
    model = get_model(args.model, pretrained=args.checkpoint,
                      device=args.device,
                      allow_unsafe_pickle=args.allow_unsafe_pickle)
    kwargs = {} if args.max_new_tokens is None \
        else dict(max_new_tokens=args.max_new_tokens)
    session = ChatSession(model, args.image)
    interactive = sys.stdin.isatty()
    print(f'Chatting about {", ".join(args.image)}. Commands: {COMMANDS}.')
    while (line := read_question(interactive)) is not None:
        command = line.split()[0] if line else ''
        if command == '/quit':
            break
        if command == '/reset':
            session.reset(session.images)
            print('New conversation.')
        elif command in ('/image', '/add'):
            path = line[len(command):].strip()
            if not check_image(path):
                continue
            if command == '/image':
                session.reset(path)
                print(f'New conversation about {path}.')
            else:
                session.add_image(path)
                print(f'Added {path}; it goes with the next question.')
        elif command.startswith('/'):
            print(f'Unknown command {command}; commands: {COMMANDS}.')
        elif line:
            try:
                stream_answer(session, line, **kwargs)
            except ValueError as error:  # e.g. <image> and images disagree
                print(f'Not asked: {error}')


if __name__ == '__main__':
    main()
