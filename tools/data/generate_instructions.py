"""Generate LLaVA instruction data from image captions and boxes with a
text-only language model (the LLaVA-Instruct pipeline).

Example::

    export OPENAI_API_KEY=...   # read from the environment only
    python tools/data/generate_instructions.py \\
        --coco-captions data/coco/annotations/captions_train2017.json \\
        --coco-instances data/coco/annotations/instances_train2017.json \\
        --image-prefix coco/train2017 \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini \\
        --concurrency 16 --rpm 500 --output data/llava_instruct.jsonl

Each image gets one record of a type drawn from ``--types`` (seeded per
image). Records are appended to ``--output`` as they come; a rerun skips the
images already there, so a killed run resumes. Images whose replies never
parse, or whose requests fail, are listed in ``<output>.failures.jsonl`` and
retried by the next run. Exit status: 0 when every image has a record, 1
when some failed, 2 when the run could not start or the endpoint refused it.
See docs/data_generation.md.
"""
import argparse
import asyncio
import sys
from pathlib import Path
from typing import Optional

from mmllava.datagen.cli import (add_client_arguments, endpoint_client,
                                 note_torn_line, progress_bar,
                                 request_params)
from mmllava.datagen.client import ChatError
from mmllava.datagen.output import (AppendOnlyJsonl, export_json,
                                    write_failures)
from mmllava.datagen.parsing import TYPES
from mmllava.datagen.prompts import load_fewshot


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_argument_group('images (one source)')
    source.add_argument('--coco-captions',
                        help='COCO captions json (images + captions)')
    source.add_argument('--coco-instances',
                        help='COCO instances json of the same images '
                        '(boxes); optional')
    source.add_argument('--contexts',
                        help='json list or jsonl of {"id", "image", '
                        '"captions", "boxes"} (boxes normalised)')
    parser.add_argument('--output', required=True,
                        help='the .jsonl the records are appended to')
    parser.add_argument('--format', choices=('jsonl', 'json'),
                        default='jsonl',
                        help='json also writes the records, in image order, '
                        'as a json list next to --output at the end')
    parser.add_argument('--image-prefix', default='',
                        help='put before each image file name in records')
    parser.add_argument('--types', nargs='+', choices=TYPES,
                        default=list(TYPES),
                        help='types to draw from (default: all)')
    parser.add_argument('--fewshot-dir',
                        help='your few-shot examples: {conv,detail,complex}/'
                        '*.json, each replacing that type\'s defaults')
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the per-image draws (default: '
                        '%(default)s)')
    parser.add_argument('--parse-retries', type=int, default=2,
                        help='new requests after a reply that does not parse '
                        '(default: %(default)s)')
    parser.add_argument('--limit', type=int,
                        help='only the first N images')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    add_client_arguments(parser)
    args = parser.parse_args(argv)
    if (args.coco_captions is None) == (args.contexts is None):
        parser.error('give either --coco-captions or --contexts')
    if not args.output.endswith('.jsonl'):
        parser.error('--output must be a .jsonl file')
    return args


async def run(args: argparse.Namespace) -> int:
    """Generate; return the exit status."""
    # Imports mmllava's datasets (seconds): not for --help.
    from mmllava.datagen.context import (load_coco_contexts,
                                         load_simple_contexts)
    from mmllava.datagen.runner import generate_instructions
    try:
        contexts = (load_coco_contexts(args.coco_captions,
                                       args.coco_instances)
                    if args.coco_captions else
                    load_simple_contexts(args.contexts))
        examples = load_fewshot(args.fewshot_dir)
        writer = AppendOnlyJsonl(args.output)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    contexts = contexts[:args.limit]
    note_torn_line(writer, 'its image is asked again')
    failures_path = Path(f'{args.output[:-len(".jsonl")]}.failures.jsonl')
    pending = len(contexts) - len(writer.done & {c.image_id
                                                 for c in contexts})
    print(f'{len(contexts)} images, {len(contexts) - pending} done before, '
          f'{pending} to ask {args.model} for', flush=True)

    def report(failure) -> None:
        print(f'failed: {failure.reason}', file=sys.stderr, flush=True)

    try:
        async with endpoint_client(args) as client:
            with writer, progress_bar('generating', pending,
                                      not args.no_progress) as advance:
                summary = await generate_instructions(
                    contexts, client, writer, examples, types=args.types,
                    seed=args.seed, image_prefix=args.image_prefix,
                    parse_retries=args.parse_retries,
                    request_params=request_params(args),
                    system_role=not args.no_system_role, on_done=advance,
                    on_failure=report)
    except ChatError as error:
        print(f'error: the endpoint refused the run: {error}',
              file=sys.stderr)
        return 2
    write_failures(summary.failures, failures_path)
    print(f'{summary.written} written, {summary.skipped} done before, '
          f'{len(summary.failures)} failed (listed in {failures_path}); '
          f'usage: {summary.usage}')
    if args.format == 'json':
        json_path = args.output[:-len('.jsonl')] + '.json'
        records = writer.records_for(c.image_id for c in contexts)
        export_json(records, json_path)
        print(f'wrote {len(records)} records to {json_path}')
    return 1 if summary.failures else 0


def main() -> None:
    """Run the tool."""
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == '__main__':
    main()
