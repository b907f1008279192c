"""ScienceQA (``problems.json`` + ``pid_splits.json``) to LLaVA's formats.

Two outputs, both in the layouts LLaVA uses:

* training records in the ``QCM-LEA`` format of LLaVA's
  ``scripts/convert_sqa_to_llava.py``: the human turn is the question, the
  context (``N/A`` when there is none) and the options inline, ``(A) ...
  (B) ...``, followed by ``\\n<image>`` when the problem has an image; the
  answer is the lecture and the solution, then ``The answer is X.``;
* test questions in the ``CQM-A`` layout of LLaVA-1.5's
  ``llava_test_CQM-A.json``: ``Context: <hint>`` (only when there is a hint),
  the question, then one ``A. <choice>`` line per option. The answer
  instruction (``Answer with the option's letter from the given choices
  directly.``) is not part of the text: test configs pass it as
  ``prompt_suffix``, as LLaVA's ``--single-pred-prompt`` adds it.

Images are referenced as ``<pid>/image.png``, relative to the split's image
folder (``images/<split>``).
"""
import json
import os
import os.path as osp
from typing import Optional

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.datasets.records import read_json

#: The option letters of ScienceQA (at most five choices).
OPTION_LETTERS = ('A', 'B', 'C', 'D', 'E')


def check_problem(pid: str, problem: object, problems_file: str) -> None:
    """Check the fields the conversion reads; the error names the problem."""

    def fail(reason: str):
        raise ValueError(f'{problems_file}: problem {pid!r}: {reason}')

    if not isinstance(problem, dict):
        fail(f'expected an object, got {type(problem).__name__}')
    for key in ('question', 'hint', 'lecture', 'solution', 'subject'):
        if not isinstance(problem.get(key), str):
            fail(f'"{key}" must be a string, got {problem.get(key)!r:.80}')
    image = problem.get('image')
    if image is not None and not isinstance(image, str):
        fail(f'"image" must be a file name or null, got {image!r}')
    choices = problem.get('choices')
    if not isinstance(choices, list) or not choices or \
            len(choices) > len(OPTION_LETTERS) or \
            not all(isinstance(choice, str) for choice in choices):
        fail(f'"choices" must be a list of 1 to {len(OPTION_LETTERS)} '
             f'strings, got {choices!r:.120}')
    answer = problem.get('answer')
    if not isinstance(answer, int) or isinstance(answer, bool) or \
            not 0 <= answer < len(choices):
        fail(f'"answer" must be the index of one of the {len(choices)} '
             f'choices, got {answer!r}')


def answer_letter(problem: dict) -> str:
    """The correct option's letter (``problem['answer']`` is an index)."""
    return OPTION_LETTERS[problem['answer']]


def load_split(problems_file: str, pid_splits_file: str,
               split: str) -> list[tuple[str, dict]]:
    """The checked problems of one split, in ``pid_splits.json`` order.

    Args:
        problems_file (str): ScienceQA's ``problems.json``.
        pid_splits_file (str): ScienceQA's ``pid_splits.json``.
        split (str): A key of ``pid_splits.json`` (``train``, ``val``,
            ``test``, ...).
    """
    splits = read_json(pid_splits_file, 'ScienceQA pid splits file')
    problems = read_json(problems_file, 'ScienceQA problems file')
    if not isinstance(splits, dict) or not isinstance(problems, dict):
        raise ValueError(f'{pid_splits_file} and {problems_file} must each '
                         'hold a json object')
    if split not in splits:
        raise ValueError(f'{pid_splits_file}: no split {split!r}; it has '
                         f'{", ".join(sorted(splits))}')
    loaded = []
    for pid in splits[split]:
        pid = str(pid)
        if pid not in problems:
            raise ValueError(f'{pid_splits_file}: problem {pid!r} of split '
                             f'{split!r} is not in {problems_file}')
        check_problem(pid, problems[pid], problems_file)
        loaded.append((pid, problems[pid]))
    return loaded


def image_path(pid: str, problem: dict) -> Optional[str]:
    """The image relative to the split's image folder, or None."""
    return f'{pid}/{problem["image"]}' if problem['image'] else None


def to_llava_record(pid: str, problem: dict) -> dict:
    """A training record in LLaVA's ``QCM-LEA`` format."""
    context = problem['hint'].strip() or 'N/A'
    options = ' '.join(f'({letter}) {choice}' for letter, choice in zip(
        OPTION_LETTERS, problem['choices']))
    question = (f'Question: {problem["question"]}\nContext: {context}\n'
                f'Options: {options}\n')
    answer = (f'Answer: {problem["lecture"]} {problem["solution"]} '
              f'The answer is {answer_letter(problem)}.')
    # As the official converter: one pass that halves runs of spaces, then
    # the "Question: " / "Answer: " prefixes removed.
    question = question.replace('  ', ' ').strip().removeprefix('Question: ')
    answer = answer.replace('  ', ' ').strip().removeprefix('Answer: ')
    record = dict(id=pid)
    image = image_path(pid, problem)
    if image is not None:
        record['image'] = image
        question = f'{question}\n{IMAGE_PLACEHOLDER}'
    record['conversations'] = [{'from': 'human', 'value': question},
                               {'from': 'gpt', 'value': answer}]
    return record


def to_question_record(pid: str, problem: dict) -> dict:
    """A test question in the ``CQM-A`` layout, with its ground truth."""
    context = f'Context: {problem["hint"]}\n' if problem['hint'] else ''
    options = '\n'.join(f'{letter}. {choice}' for letter, choice in zip(
        OPTION_LETTERS, problem['choices']))
    record = dict(question_id=pid)
    image = image_path(pid, problem)
    if image is not None:
        record['image'] = image
    record.update(
        text=f'{context}{problem["question"]}\n{options}',
        category=problem['subject'],
        answer=answer_letter(problem),
        num_choices=len(problem['choices']))
    return record


def _open_for_writing(path: str):
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    return open(path, 'w', encoding='utf-8')


def convert_scienceqa(problems_file: str,
                      pid_splits_file: str,
                      split: str,
                      out_train: Optional[str] = None,
                      out_questions: Optional[str] = None) -> dict:
    """Write one split as LLaVA training json and/or a test question jsonl.

    Args:
        problems_file (str): ScienceQA's ``problems.json``.
        pid_splits_file (str): ScienceQA's ``pid_splits.json``.
        split (str): The split to convert.
        out_train (str, optional): Where to write the ``QCM-LEA`` json list.
        out_questions (str, optional): Where to write the question jsonl.

    Returns:
        dict: ``num_problems`` and ``num_with_image`` of the split.
    """
    if out_train is None and out_questions is None:
        raise ValueError('Nothing to write: give out_train and/or '
                         'out_questions.')
    problems = load_split(problems_file, pid_splits_file, split)
    if out_train is not None:
        with _open_for_writing(out_train) as file:
            json.dump([to_llava_record(pid, problem)
                       for pid, problem in problems], file, indent=2)
    if out_questions is not None:
        with _open_for_writing(out_questions) as file:
            for pid, problem in problems:
                file.write(json.dumps(to_question_record(pid, problem)) +
                           '\n')
    return dict(num_problems=len(problems),
                num_with_image=sum(bool(problem['image'])
                                   for _, problem in problems))
