"""Ask a running ``tools/serve.py`` about a photo, with the official
``openai`` client: one whole answer, then a follow-up streamed as it is
written. Starts nothing itself.

    python tools/serve.py llava-tiny_demo_vqa work_dirs/llava-tiny_demo_ft &
    python examples/serve_client.py [--url http://127.0.0.1:8000]
        [--image PATH] [--api-key-env NAME]

Without ``--image`` it sends scikit-image's astronaut photo. With
``--api-key-env`` the key is read from that environment variable.
"""
import argparse
import base64
import io
import os
import sys

import openai
from PIL import Image


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--url', default='http://127.0.0.1:8000')
    parser.add_argument('--image', help="a photo (default: scikit-image's "
                        'astronaut)')
    parser.add_argument('--api-key-env', metavar='NAME',
                        help='environment variable holding the API key')
    parser.add_argument('--max-tokens', type=int, default=48)
    return parser.parse_args()


def image_data_url(path) -> str:
    """The image as a base64 PNG data URL (what the server accepts by
    default; http(s) URLs need --allow-remote-images on the server)."""
    if path is None:
        from skimage import data as photos
        image = Image.fromarray(photos.astronaut())
    else:
        image = Image.open(path).convert('RGB')
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return 'data:image/png;base64,' + base64.b64encode(
        buffer.getvalue()).decode()


def main() -> None:
    args = parse_args()
    api_key = os.environ.get(args.api_key_env, '') if args.api_key_env \
        else 'none'
    client = openai.OpenAI(base_url=args.url.rstrip('/') + '/v1',
                           api_key=api_key, max_retries=1)
    try:
        model = client.models.list().data[0].id
    except openai.APIConnectionError:
        sys.exit(f'No server at {args.url}: start one with tools/serve.py.')
    question = 'What is in the image?'
    messages = [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': image_data_url(
            args.image)}},
        {'type': 'text', 'text': question}]}]
    answer = client.chat.completions.create(
        model=model, messages=messages, temperature=0,
        max_tokens=args.max_tokens)
    print(f'Model: {model}\nUSER: {question}\n'
          f'ASSISTANT: {answer.choices[0].message.content}\n'
          f'({answer.usage.prompt_tokens} prompt tokens, '
          f'{answer.usage.completion_tokens} generated, finish: '
          f'{answer.choices[0].finish_reason})')

    follow_up = 'Tell me more.'
    messages += [{'role': 'assistant',
                  'content': answer.choices[0].message.content},
                 {'role': 'user', 'content': follow_up}]
    print(f'USER: {follow_up}\nASSISTANT: ', end='', flush=True)
    for chunk in client.chat.completions.create(
            model=model, messages=messages, temperature=0,
            max_tokens=args.max_tokens, stream=True):
        print(chunk.choices[0].delta.content or '', end='', flush=True)
    print()


if __name__ == '__main__':
    main()
