"""LLaVA-Bench review: a judge model scores a model's answers against
reference answers.

For each question the judge sees the image's context (captions, boxes), the
question, the reference answer as Assistant 1 and the model's answer as
Assistant 2, and replies with the two 1-10 scores on its first line, then
its reasons. The relative score of a category is
``mean(model scores) / mean(reference scores) * 100``.

Input files are jsonl, as LLaVA-Bench ships them: questions
(``question_id``, ``image``, ``text``, ``category``), contexts (``image``,
``caption`` (a string or a list), optional ``instances`` of ``{"category",
"bbox"}``), and two answer files (``question_id``, ``text``).
"""
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Optional

from mmllava.datagen.client import ChatClient
from mmllava.datagen.output import AppendOnlyJsonl
from mmllava.datagen.parsing import ParseError
from mmllava.datagen.pool import run_pool
from mmllava.datagen.prompts import with_instructions
from mmllava.datagen.runner import Failure, ask_parsed
from mmllava.datasets.records import read_json_lines

JUDGE_SYSTEM_PROMPT = (
    'You judge answers of AI assistants to questions about an image. You '
    'cannot see the image; you are given what is known about it: captions, '
    'and objects with bounding boxes as "category: [x1, y1, x2, y2]" with '
    'coordinates from 0 to 1. Judge each answer on its helpfulness, '
    'relevance, accuracy and level of detail, against what the image '
    'information supports.')

JUDGE_TASK = (
    'Score each assistant from 1 to 10, higher being better. On the first '
    'line write only the two scores, Assistant 1 first, separated by a '
    'space. From the second line on, explain your scores, without letting '
    'the order of the answers or their length sway you.')

_SCORES = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*[ ,]\s*(\d+(?:\.\d+)?)\s*$')


@dataclass
class ReviewItem:
    """One question to judge."""
    question_id: str
    category: str
    context: str
    question: str
    reference: str
    answer: str


def format_bench_context(record: dict) -> str:
    """A LLaVA-Bench context record as captions, a blank line, boxes."""
    captions = record.get('caption', [])
    lines = [captions] if isinstance(captions, str) else list(captions)
    instances = record.get('instances') or []
    if instances:
        lines.append('')
        lines += [f'{inst["category"]}: '
                  f'[{", ".join(f"{v:.3f}" for v in inst["bbox"])}]'
                  for inst in instances]
    return '\n'.join(lines)


def load_review_items(questions_file: str, contexts_file: str,
                      references_file: str,
                      answers_file: str) -> list[ReviewItem]:
    """Join the four files by question id and image; errors name the file
    and the question."""
    contexts = {record['image']: record
                for record in read_json_lines(contexts_file, 'Context file')}
    references = _answers(references_file, 'Reference answer file')
    answers = _answers(answers_file, 'Answer file')
    items = []
    for index, question in enumerate(
            read_json_lines(questions_file, 'Question file')):
        missing = [key for key in ('question_id', 'image', 'text',
                                   'category') if key not in question]
        if missing:
            raise ValueError(f'{questions_file}: question {index} misses '
                             f'{missing}')
        qid = str(question['question_id'])
        for table, path, what in ((contexts, contexts_file, 'context'),
                                  (references, references_file, 'answer'),
                                  (answers, answers_file, 'answer')):
            key = question['image'] if what == 'context' else qid
            if key not in table:
                raise ValueError(f'{path}: no {what} for question {qid} '
                                 f'(image {question["image"]!r})')
        items.append(ReviewItem(qid, question['category'],
                                format_bench_context(
                                    contexts[question['image']]),
                                question['text'], references[qid],
                                answers[qid]))
    return items


def _answers(path: str, what: str) -> dict[str, str]:
    answers = {}
    for index, record in enumerate(read_json_lines(path, what)):
        if 'question_id' not in record or \
                not isinstance(record.get('text'), str):
            raise ValueError(f'{path}: line {index + 1} needs "question_id" '
                             'and a "text" string')
        answers[str(record['question_id'])] = record['text']
    return answers


def build_judge_messages(item: ReviewItem,
                         system_role: bool = True) -> list[dict]:
    """The judge's request for one question; ``system_role`` as in
    :func:`~mmllava.datagen.prompts.with_instructions`."""
    user = (f'[Image information]\n{item.context}\n\n'
            f'[Question]\n{item.question}\n\n'
            f'[Assistant 1]\n{item.reference}\n[End of Assistant 1]\n\n'
            f'[Assistant 2]\n{item.answer}\n[End of Assistant 2]\n\n'
            f'[Task]\n{JUDGE_TASK}')
    return with_instructions(JUDGE_SYSTEM_PROMPT,
                             [dict(role='user', content=user)], system_role)


def parse_scores(text: str) -> tuple[float, float]:
    """The two scores on a judge reply's first line.

    Raises:
        ParseError: The first line is not two numbers from 1 to 10.
    """
    first = text.strip().split('\n', 1)[0] if text.strip() else ''
    match = _SCORES.match(first)
    if not match:
        raise ParseError(f'the first line is not two scores: {first!r:.80}')
    scores = float(match.group(1)), float(match.group(2))
    if not all(1 <= score <= 10 for score in scores):
        raise ParseError(f'scores must be from 1 to 10, got {scores}')
    return scores


async def review_answers(
        items: list[ReviewItem],
        client: ChatClient,
        writer: AppendOnlyJsonl,
        parse_retries: int = 2,
        request_params: Optional[dict] = None,
        on_done: Optional[Callable[[], None]] = None,
        on_failure: Optional[Callable[[Failure], None]] = None,
        system_role: bool = True) -> list[Failure]:
    """Judge each question ``writer`` (keyed by ``question_id``) does not
    hold yet; a review is ``{"question_id", "category", "reference_score",
    "model_score", "review"}``. Returns the questions left unjudged.
    ``system_role=False`` puts the judge's instructions in the user turn."""
    done = writer.done
    failures = []

    async def judge(item: ReviewItem) -> None:
        label = f'question {item.question_id}'
        reply = {}

        def parse(text: str) -> tuple[float, float]:
            reply['text'] = text
            return parse_scores(text)

        scores, reason = await ask_parsed(
            client, build_judge_messages(item, system_role), label, parse,
            parse_retries, request_params)
        if scores is None:
            failures.append(Failure(item.question_id, item.category, reason))
            if on_failure is not None:
                on_failure(failures[-1])
            return
        writer.append(dict(question_id=item.question_id,
                           category=item.category,
                           reference_score=scores[0], model_score=scores[1],
                           review=reply['text']))

    pending = [item for item in items if item.question_id not in done]
    await run_pool(pending, judge, client.max_concurrency, on_done)
    return failures


def relative_scores(reviews: list[dict]) -> dict[str, dict]:
    """Per category and ``'overall'``: ``count``, mean ``reference`` and
    ``model`` scores and ``relative`` (model / reference, in percent)."""
    groups = defaultdict(list)
    for review in reviews:
        groups[review['category']].append(review)
    groups = dict(sorted(groups.items()))
    if reviews:
        groups['overall'] = list(reviews)
    table = {}
    for name, group in groups.items():
        reference = sum(r['reference_score'] for r in group) / len(group)
        model = sum(r['model_score'] for r in group) / len(group)
        table[name] = dict(count=len(group), reference=reference,
                           model=model, relative=100 * model / reference)
    return table


def format_scores(table: dict[str, dict]) -> str:
    """The relative-score table as text."""
    lines = [f'{"category":<12} {"n":>4} {"relative":>9} {"model":>7} '
             f'{"reference":>9}']
    for name, row in table.items():
        lines.append(f'{name:<12} {row["count"]:>4} '
                     f'{row["relative"]:>8.1f}% {row["model"]:>7.2f} '
                     f'{row["reference"]:>9.2f}')
    return '\n'.join(lines)
