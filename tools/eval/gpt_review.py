"""Score a model's LLaVA-Bench answers against the reference answers with a
judge model, and report the relative scores.

Example::

    export OPENAI_API_KEY=...   # read from the environment only
    python tools/eval/gpt_review.py \\
        --questions llava-bench-coco/questions.jsonl \\
        --contexts llava-bench-coco/context.jsonl \\
        --references llava-bench-coco/answers_gpt4.jsonl \\
        --answers work_dirs/llava_bench_answers.jsonl \\
        --base-url https://api.openai.com/v1 --model gpt-4o \\
        --output work_dirs/llava_bench_reviews.jsonl

Reviews are appended to ``--output`` as they come (a rerun judges only the
questions not there yet); the relative score per category and overall,
``mean(model) / mean(reference) * 100``, is printed and saved as json next
to it (``<output>.scores.json``). Exit status: 0 when every question was
judged, 1 when some failed, 2 when the run could not start.
"""
import argparse
import asyncio
import json
import sys
from typing import Optional

from mmllava.datagen.cli import (add_client_arguments, endpoint_client,
                                 progress_bar, request_params)
from mmllava.datagen.client import ChatError
from mmllava.datagen.output import AppendOnlyJsonl


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--questions', required=True,
                        help='jsonl: question_id, image, text, category')
    parser.add_argument('--contexts', required=True,
                        help='jsonl: image, caption, instances')
    parser.add_argument('--references', required=True,
                        help='reference answers jsonl: question_id, text')
    parser.add_argument('--answers', required=True,
                        help="the model's answers jsonl: question_id, text")
    parser.add_argument('--output', required=True,
                        help='the .jsonl reviews are appended to')
    parser.add_argument('--parse-retries', type=int, default=2,
                        help='new requests after a reply without two scores '
                        'on its first line (default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar')
    add_client_arguments(parser)
    args = parser.parse_args(argv)
    if not args.output.endswith('.jsonl'):
        parser.error('--output must be a .jsonl file')
    return args


async def run(args: argparse.Namespace) -> int:
    """Judge, then report; return the exit status."""
    # Imports mmllava's datasets (seconds): not for --help.
    from mmllava.datagen.review import (format_scores, load_review_items,
                                        relative_scores, review_answers)
    try:
        items = load_review_items(args.questions, args.contexts,
                                  args.references, args.answers)
        writer = AppendOnlyJsonl(args.output, key='question_id')
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    pending = len({item.question_id for item in items} - writer.done)
    print(f'{len(items)} questions, {pending} to judge with {args.model}',
          flush=True)

    def report(failure) -> None:
        print(f'failed: {failure.reason}', file=sys.stderr, flush=True)

    try:
        async with endpoint_client(args) as client:
            with writer, progress_bar('reviewing', pending,
                                      not args.no_progress) as advance:
                failures = await review_answers(
                    items, client, writer, parse_retries=args.parse_retries,
                    request_params=request_params(args), on_done=advance,
                    on_failure=report, system_role=not args.no_system_role)
    except ChatError as error:
        print(f'error: the endpoint refused the run: {error}',
              file=sys.stderr)
        return 2
    wanted = {item.question_id for item in items}
    table = relative_scores([review for review in writer.records
                             if review['question_id'] in wanted])
    print(format_scores(table))
    scores_path = args.output[:-len('.jsonl')] + '.scores.json'
    with open(scores_path, 'w', encoding='utf-8') as file:
        json.dump(table, file, indent=2)
    print(f'{len(failures)} questions failed; usage: {client.usage}; '
          f'scores saved to {scores_path}')
    return 1 if failures else 0


def main() -> None:
    """Run the tool."""
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == '__main__':
    main()
