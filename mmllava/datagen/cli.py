"""Command-line pieces the data tools share: the client options and the
progress bar."""
import argparse
import os
import sys
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Callable, Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from mmllava.datagen.client import ChatClient
from mmllava.datagen.output import AppendOnlyJsonl


def add_client_arguments(parser: argparse.ArgumentParser,
                         required: bool = True) -> argparse._ArgumentGroup:
    """The endpoint options, in a group returned for a tool's own
    additions; ``required=False`` for a tool where the endpoint is one mode
    of several. There is deliberately no option for the key: command lines
    show up in process lists and shell histories."""
    group = parser.add_argument_group('endpoint (OpenAI-compatible)')
    group.add_argument('--base-url', required=required,
                       help='API root, e.g. https://api.openai.com/v1 or '
                       'http://127.0.0.1:8000/v1')
    group.add_argument('--model', required=required, help='model name')
    group.add_argument('--api-key-env', default='OPENAI_API_KEY',
                       help='environment variable holding the API key '
                       '(default: %(default)s); unset sends no key')
    group.add_argument('--concurrency', type=int, default=8,
                       help='requests in flight (default: %(default)s)')
    group.add_argument('--rpm', type=float,
                       help='cap on requests per minute, retries included')
    group.add_argument('--max-retries', type=int, default=5,
                       help='tries after the first on 429, 5xx, timeouts '
                       'and connection errors (default: %(default)s)')
    group.add_argument('--timeout', type=float, default=120.0,
                       help='seconds per request (default: %(default)s)')
    group.add_argument('--temperature', type=float,
                       help="sampling temperature (default: the endpoint's)")
    group.add_argument('--max-tokens', type=int,
                       help='longest reply; a reply cut there is rejected')
    group.add_argument('--no-system-role', action='store_true',
                       help='put the instructions at the top of the first '
                       'user turn, for endpoints that refuse system '
                       'messages (tools/serve.py)')
    return group


def build_client(args: argparse.Namespace) -> ChatClient:
    """A client from :func:`add_client_arguments` options."""
    if not os.environ.get(args.api_key_env):
        print(f'note: ${args.api_key_env} is not set, so no API key is sent',
              file=sys.stderr)
    return ChatClient(args.base_url, args.model,
                      api_key_env=args.api_key_env,
                      max_concurrency=args.concurrency,
                      requests_per_minute=args.rpm,
                      max_retries=args.max_retries, timeout=args.timeout)


@asynccontextmanager
async def endpoint_client(args: argparse.Namespace
                          ) -> AsyncIterator[ChatClient]:
    """:func:`build_client`, closed when the block ends."""
    client = build_client(args)
    try:
        yield client
    finally:
        await client.aclose()


def note_torn_line(writer: AppendOnlyJsonl, redone: str) -> None:
    """Say that a killed run's torn last line was cut off, and that its
    item (``redone``, e.g. 'its image is asked again') is done again."""
    if writer.torn_line is not None:
        print(f'{writer.path}: cut off a torn last line (a killed run); '
              f'{redone}', file=sys.stderr)


def request_params(args: argparse.Namespace) -> dict:
    """The request fields the options set."""
    params = dict(temperature=args.temperature, max_tokens=args.max_tokens)
    return {key: value for key, value in params.items() if value is not None}


@contextmanager
def progress_bar(description: str, total: int,
                 enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yields a function that advances a rich progress bar by one."""
    if not enabled:
        yield lambda: None
        return
    with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
