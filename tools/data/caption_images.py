"""Caption images in detail into stage-1 LLaVA records (the ShareGPT4V
pipeline), with a vision endpoint or a local mmllava captioner.

Examples::

    export OPENAI_API_KEY=...   # read from the environment only
    python tools/data/caption_images.py data/my_images \\
        --out data/my_captions.json --base-url https://api.openai.com/v1 \\
        --model gpt-4o --concurrency 8 --rpm 300

    python tools/data/caption_images.py data/many_images.txt \\
        --out data/many_captions.jsonl --local-model llava-1.5-7b_caption \\
        --checkpoint work_dirs/my_captioner --batch-size 16

IMAGES is a folder (searched recursively) or a text file of image paths.
Records are appended to a .jsonl as they come (``--out`` itself, or for
``--format json`` the same name with ``.jsonl``, turned into the json list at
the end); a rerun skips the images already there, so a killed run resumes.
Images that get no record (not an image, a failed request, an empty caption)
are listed in ``<out>.failures.jsonl`` and tried again by the next run. Exit
status: 0 when every image has a record, 1 when some failed, 2 when the run
could not start or the endpoint refused it. See docs/captioning.md.
"""
import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from mmllava.datagen.caption_defaults import (CAPTION_INSTRUCTIONS,
                                              DEFAULT_MAX_SIDE, LOCAL_PROMPT)
from mmllava.datagen.cli import (add_client_arguments, endpoint_client,
                                 note_torn_line, progress_bar,
                                 request_params)
from mmllava.datagen.client import ChatError
from mmllava.datagen.output import (AppendOnlyJsonl, export_json,
                                    write_failures)

if TYPE_CHECKING:
    from mmllava.datagen.captioning import CaptionSummary, ImageEntry

#: Options of one mode only (argparse destinations).
ENDPOINT_ONLY = ('model', 'api_key_env', 'concurrency', 'rpm', 'max_retries',
                 'timeout', 'temperature', 'max_side')
LOCAL_ONLY = ('checkpoint', 'batch_size', 'device')


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('images', metavar='IMAGES',
                        help='a folder of images, or a text file with one '
                        'image path a line')
    parser.add_argument('--image-folder',
                        help='for a list file: the folder its paths (and '
                        "the records' image paths) are relative to "
                        "(default: the list file's folder)")
    parser.add_argument('--out', required=True,
                        help='the records: a .jsonl, or a .json with '
                        '--format json')
    parser.add_argument('--format', choices=('json', 'jsonl'),
                        help="default: --out's extension")
    parser.add_argument('--prompt',
                        help='what the captioner is asked (default: a '
                        'detailed-description prompt; for --local-model: '
                        f'{LOCAL_PROMPT!r})')
    parser.add_argument('--instructions', choices=sorted(
        CAPTION_INSTRUCTIONS), default='detailed',
                        help='the human turns of the records are drawn from '
                        'these (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the per-image instruction draw '
                        '(default: %(default)s)')
    parser.add_argument('--limit', type=int, help='only the first N images')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    parser.add_argument('--overwrite', action='store_true',
                        help='when --out holds captions by another captioner: '
                        'set that file aside (<out>.replaced) and caption '
                        'every image anew')

    # The endpoint's --max-tokens also caps the local captioner's answers.
    endpoint = add_client_arguments(parser, required=False)
    endpoint.add_argument('--max-side', type=int, default=DEFAULT_MAX_SIDE,
                          help='images with a longer side are downscaled '
                          'before sending (default: %(default)s)')

    local = parser.add_argument_group('local mmllava captioner')
    local.add_argument('--local-model', metavar='NAME_OR_CONFIG',
                       help='a model name or config file whose inference '
                       "task is 'caption'; paths in it are relative to the "
                       'working directory')
    local.add_argument('--checkpoint',
                       help='trained weights: a checkpoint, a work dir or a '
                       "converted folder (default: the config's)")
    local.add_argument('--batch-size', type=int, default=8,
                       help='images per batch (default: %(default)s)')
    local.add_argument('--device', help='default: cuda when available')

    args = parser.parse_args(argv)
    if (args.base_url is None) == (args.local_model is None):
        parser.error('give either --base-url (with --model) or '
                     '--local-model')
    if args.base_url is not None and args.model is None:
        parser.error('--base-url needs --model')
    # An option the chosen mode ignores is a mistake worth stopping for.
    ignored = LOCAL_ONLY if args.local_model is None else ENDPOINT_ONLY
    given = [f'--{name.replace("_", "-")}' for name in ignored
             if getattr(args, name) != parser.get_default(name)]
    if given:
        mode = '--base-url' if args.local_model is None else '--local-model'
        parser.error(f'{", ".join(given)} do nothing with {mode}')
    if args.format is None:
        args.format = 'json' if args.out.endswith('.json') else 'jsonl'
    if not args.out.endswith(f'.{args.format}'):
        parser.error(f'--out must be a .{args.format} file for --format '
                     f'{args.format}')
    return args


def records_path(args: argparse.Namespace) -> str:
    """The append-only .jsonl the run writes to."""
    return args.out if args.format == 'jsonl' else args.out + 'l'


def captioner_name(args: argparse.Namespace) -> str:
    """The captioner of this run, as its records' ``source`` names it."""
    if args.local_model is not None:
        weights = args.checkpoint or "its config's weights"
        return f'{args.local_model} ({weights})'
    return f'{args.model} at {args.base_url}'


def set_aside(path: Path) -> Path:
    """Rename ``path`` to the first free ``<path>.replaced[.N]``."""
    target, number = Path(f'{path}.replaced'), 1
    while target.exists():
        target, number = Path(f'{path}.replaced.{number}'), number + 1
    path.rename(target)
    return target


def report_failure(failure) -> None:
    print(f'failed ({failure.code}): {failure.message}', file=sys.stderr,
          flush=True)


async def caption_remotely(args: argparse.Namespace,
                           entries: list['ImageEntry'],
                           writer: AppendOnlyJsonl,
                           advance) -> 'CaptionSummary':
    """Caption through the endpoint the options name."""
    from mmllava.datagen.captioning import DEFAULT_PROMPT, caption_with_client
    async with endpoint_client(args) as client:
        return await caption_with_client(
            entries, client, writer, prompt=args.prompt or DEFAULT_PROMPT,
            max_side=args.max_side, seed=args.seed, style=args.instructions,
            request_params=request_params(args), on_done=advance,
            on_failure=report_failure, source=captioner_name(args))


def caption_locally(args: argparse.Namespace, entries: list['ImageEntry'],
                    writer: AppendOnlyJsonl, advance) -> 'CaptionSummary':
    """Caption with the local model the options name."""
    from mmllava.apis import batch_captioner, get_model
    from mmllava.datagen.captioning import caption_with_model
    model = get_model(args.local_model, pretrained=args.checkpoint,
                      device=args.device)
    generation = {} if args.max_tokens is None else dict(
        max_new_tokens=args.max_tokens)
    return caption_with_model(
        entries, batch_captioner(model, **generation), writer,
        batch_size=args.batch_size, prompt=args.prompt or LOCAL_PROMPT,
        seed=args.seed, style=args.instructions, on_done=advance,
        on_failure=report_failure, source=captioner_name(args))


def print_summary(summary: 'CaptionSummary', seconds: float,
                  failures_path: Path) -> None:
    """Counts, failures by reason, and usage."""
    from mmllava.datagen.captioning import CAPTION_REASONS
    from mmllava.datasets.checks import REASONS
    print(f'{summary.written} written, {summary.skipped} done before, '
          f'{len(summary.failures)} failed in {seconds:.1f} s')
    for code, count in summary.by_reason().items():
        meaning = CAPTION_REASONS.get(code) or REASONS.get(code, '')
        print(f'  {code:<24}{count:>8}  {meaning}')
    if summary.failures:
        print(f'failures listed in {failures_path}')
    if summary.usage is not None:
        print(f'usage: {summary.usage}')
    else:
        print(f'{summary.batches} batches')


def run(args: argparse.Namespace) -> int:
    """Caption; return the exit status."""
    # mmllava's datasets load torch and transformers (seconds): imported
    # once the arguments are parsed, so that --help answers at once.
    from mmllava.datagen.captioning import foreign_sources, list_images
    try:
        folder, entries = list_images(args.images, args.image_folder)
        writer = AppendOnlyJsonl(records_path(args))
    except (OSError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    entries = entries[:args.limit]
    note_torn_line(writer, 'its image is captioned again')
    captioner = captioner_name(args)
    # Captions of another captioner are never passed off as this one's.
    others = foreign_sources(writer.records, captioner)
    if others:
        writer.close()
        held = ', '.join(f'{count} by {name or "an unnamed captioner"}'
                         for name, count in others.items())
        if not args.overwrite:
            print(f'error: {writer.path} holds captions of another '
                  f'captioner ({held}); this run captions with {captioner}. '
                  'Give another --out, or --overwrite to set that file '
                  'aside and caption every image anew.', file=sys.stderr)
            return 2
        print(f'{writer.path} held {held}: set aside as '
              f'{set_aside(writer.path)}', flush=True)
        writer = AppendOnlyJsonl(records_path(args))
    pending = len({entry.image for entry in entries} - writer.done)
    print(f'{len(entries)} images in {folder}, {len(entries) - pending} done '
          f'before, {pending} to caption with {captioner}', flush=True)
    failures_path = Path(f'{records_path(args)[:-len(".jsonl")]}'
                         '.failures.jsonl')
    start = time.monotonic()
    try:
        with writer, progress_bar('captioning', pending,
                                  not args.no_progress) as advance:
            if args.base_url is not None:
                summary = asyncio.run(caption_remotely(args, entries, writer,
                                                       advance))
            else:
                summary = caption_locally(args, entries, writer, advance)
    except ChatError as error:
        print(f'error: the endpoint refused the run: {error}',
              file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    write_failures(summary.failures, failures_path)
    print_summary(summary, time.monotonic() - start, failures_path)
    if args.format == 'json':
        records = writer.records_for(entry.image for entry in entries)
        export_json(records, args.out)
        print(f'wrote {len(records)} records to {args.out}')
    return 1 if summary.failures else 0


def main(argv: Optional[list[str]] = None) -> int:
    """Run the tool."""
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
