"""Serve a LLaVA model with an OpenAI-compatible API and a chat page.

    python tools/serve.py CONFIG_OR_NAME [CHECKPOINT] [--host 127.0.0.1]
        [--port 8000] [--api-key-env NAME] [--batching continuous|static]
        [--max-batch-size 8]
        [--queue-size 64] [--max-tokens-cap 512]
        [--max-image-pixels 25000000] [--max-body-bytes 20971520]
        [--allow-remote-images] [--allow-host NAME] [--device cuda|cpu]

``POST /v1/chat/completions`` (streaming or not) and ``GET /v1/models``;
the chat page is at ``/``. The API key is read from the environment
variable ``--api-key-env`` names, never from the command line. Prints
``Serving MODEL at URL`` once it accepts requests, then one access-log line
per request on stderr. See docs/serving.md.
"""
import argparse
import asyncio
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

#: Options whose default is ServerSettings': None on the command line, and
#: read from ServerSettings once the arguments are parsed (importing the
#: server takes seconds: torch, transformers), so that --help answers at
#: once. --gather-window-ms is its gather_window_s in milliseconds.
SETTINGS_DEFAULTS = ('batching', 'max_batch_size', 'queue_size',
                     'max_tokens_cap', 'max_image_pixels', 'max_body_bytes',
                     'max_image_side', 'max_n', 'max_images',
                     'body_timeout_s')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Serve a LLaVA model with an OpenAI-compatible API')
    parser.add_argument('model', help='a name from list_models() or a config')
    parser.add_argument('checkpoint', nargs='?',
                        help='an mmllava checkpoint or work dir, an official '
                        "LLaVA or llava-hf folder (default: the config's "
                        'weights)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default 127.0.0.1: this '
                        'machine only)')
    parser.add_argument('--port', type=int, default=8000,
                        help='0 picks a free port')
    parser.add_argument('--api-key-env', metavar='NAME',
                        help='require the API key held in this environment '
                        'variable')
    parser.add_argument('--model-name',
                        help='the model id clients send (default: the name '
                        'or config file stem)')
    parser.add_argument('--batching', choices=('continuous', 'static'),
                        help='continuous: a request joins the running batch '
                        'at the next decoding step; static: batches run to '
                        'their end')
    parser.add_argument('--max-batch-size', type=int)
    parser.add_argument('--queue-size', type=int,
                        help='requests that may wait; more get 503')
    parser.add_argument('--gather-window-ms', type=float,
                        help='how long a batch waits for more requests')
    parser.add_argument('--max-tokens-cap', type=int)
    parser.add_argument('--max-image-pixels', type=int)
    parser.add_argument('--max-body-bytes', type=int)
    parser.add_argument('--allow-remote-images', action='store_true',
                        help='fetch http(s) image URLs (off: data URLs only)')
    parser.add_argument('--max-image-side', type=int)
    parser.add_argument('--max-in-flight', type=int,
                        help='chat requests being read, prepared, queued or '
                        'generated at once; more get 503 (default: '
                        'queue size + batch size)')
    parser.add_argument('--max-n', type=int,
                        help='most choices (n) per request')
    parser.add_argument('--max-images', type=int,
                        help='most images per conversation')
    parser.add_argument('--allow-host', action='append', metavar='NAME',
                        help='a Host header to answer (repeatable; "*" '
                        'answers any); default: the bound address, and '
                        'localhost names when bound to this machine')
    parser.add_argument('--header-timeout-s', type=float, default=10.0,
                        help='close connections whose request headers take '
                        'longer')
    parser.add_argument('--body-timeout-s', type=float,
                        help='answer 408 to bodies that take longer')
    parser.add_argument('--max-connections', type=int, default=256,
                        help='most open connections')
    parser.add_argument('--device', help='defaults to cuda when available')
    args = parser.parse_args(argv)
    from mmllava.serving import ServerSettings
    defaults = ServerSettings(model_name='')
    for name in SETTINGS_DEFAULTS:
        if getattr(args, name) is None:
            setattr(args, name, getattr(defaults, name))
    if args.gather_window_ms is None:
        args.gather_window_ms = defaults.gather_window_s * 1000
    return args


def read_api_key(variable: str) -> str:
    key = os.environ.get(variable, '').strip()
    if not key:
        sys.exit(f'--api-key-env {variable}: the environment variable is '
                 'unset or empty.')
    return key


def allowed_hosts(host: str, given) -> tuple:
    """The Host headers to answer: those given, else the bound address
    (with the localhost names for a loopback address); a wildcard address
    without ``--allow-host`` answers any (it has no one name)."""
    from mmllava.serving.app import LOCAL_HOSTS
    if given:
        return tuple(name.lower() for name in given)
    if host in ('localhost', ''):
        return LOCAL_HOSTS
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name, not an address
        return (host.lower(), )
    if address.is_unspecified:
        return ('*', )
    return tuple(dict.fromkeys(LOCAL_HOSTS + (host, ))) \
        if address.is_loopback else (host, )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; binding first tells us the port 0 picked."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


async def serve(server: uvicorn.Server, sock: socket.socket,
                announcement: str) -> None:
    """Run the server and print ``announcement`` once it has started."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        print(announcement, flush=True)
    await task


def main() -> None:
    args = parse_args()
    # Seconds to import (torch, transformers): only once parsed.
    from mmllava.apis import get_model
    from mmllava.serving import ServerSettings, build_app
    from mmllava.serving.server import uvicorn_config
    api_key = read_api_key(args.api_key_env) if args.api_key_env else None
    model_name = args.model_name or Path(args.model).stem
    settings = ServerSettings(
        model_name=model_name, api_key=api_key, batching=args.batching,
        max_batch_size=args.max_batch_size, queue_size=args.queue_size,
        gather_window_s=args.gather_window_ms / 1000,
        max_tokens_cap=args.max_tokens_cap,
        max_image_pixels=args.max_image_pixels,
        max_body_bytes=args.max_body_bytes,
        allow_remote_images=args.allow_remote_images,
        max_image_side=args.max_image_side, max_in_flight=args.max_in_flight,
        max_n=args.max_n, max_images=args.max_images,
        body_timeout_s=args.body_timeout_s,
        allowed_hosts=allowed_hosts(args.host, args.allow_host))
    model = get_model(args.model, pretrained=args.checkpoint,
                      device=args.device)
    app = build_app(model, settings)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url_host = f'[{host}]' if ':' in host else host
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    server = uvicorn.Server(uvicorn_config(
        app, header_timeout_s=args.header_timeout_s,
        max_connections=args.max_connections, log_level='warning'))
    asyncio.run(serve(server, sock,
                      f'Serving {model_name} at http://{url_host}:{port}'))


if __name__ == '__main__':
    main()
