"""Turn a model's reply into question/answer pairs, strictly.

The prompts (:mod:`mmllava.datagen.prompts`) ask for this reply format:

- ``conv``: turns, each starting on its own line with ``Q:`` (the question)
  or ``A:`` (the answer); a turn may run over several lines. Questions and
  answers alternate, starting with a question and ending with an answer.
- ``complex``: exactly one ``Q:`` and one ``A:``.
- ``detail``: the description itself, no markers.

Any reply that does not fit raises :class:`ParseError` with the reason;
nothing is guessed or repaired.
"""
import re
from typing import Optional

TYPES = ('conv', 'detail', 'complex')

_MARKER = re.compile(r'^\s*(Q|A):[ \t]*(.*)$')
# A normalised box as the context writes it: the image does not show these
# numbers, so a reply that quotes them would teach the model to invent them.
_BOX = re.compile(r'\[\s*[01]\.\d+\s*,\s*[01]\.\d+\s*,')


class ParseError(ValueError):
    """A reply that does not fit the format; the message says why."""


def parse_reply(kind: str, text: str,
                instruction: Optional[str] = None) -> list[tuple[str, str]]:
    """``(question, answer)`` pairs of one reply.

    Args:
        kind (str): ``'conv'``, ``'detail'`` or ``'complex'``.
        text (str): The reply.
        instruction (str, optional): For ``'detail'``: the question the
            description answers.

    Raises:
        ParseError: The reply does not fit; the message says why.
    """
    if kind not in TYPES:
        raise ValueError(f'unknown type {kind!r}, expected one of {TYPES}')
    if not text.strip():
        raise ParseError('the reply is empty')
    if _BOX.search(text):
        raise ParseError('the reply quotes box coordinates')
    if kind == 'detail':
        if instruction is None:
            raise ValueError("a 'detail' reply needs its instruction")
        if any(_MARKER.match(line) for line in text.splitlines()):
            raise ParseError('a description was asked for, but the reply '
                             'has Q:/A: turns')
        return [(instruction, text.strip())]
    pairs = _parse_turns(text)
    if kind == 'complex' and len(pairs) != 1:
        raise ParseError(f'expected one question and one answer, got '
                         f'{len(pairs)} pairs')
    return pairs


def _parse_turns(text: str) -> list[tuple[str, str]]:
    """Alternating ``Q:``/``A:`` turns -> pairs."""
    turns = []  # [marker, lines]
    for line in text.strip().splitlines():
        match = _MARKER.match(line)
        if match:
            turns.append([match.group(1), [match.group(2)]])
        elif not turns:
            raise ParseError(f'text before the first "Q:": {line!r:.80}')
        else:
            turns[-1][1].append(line)
    for index, (marker, lines) in enumerate(turns):
        expected = 'QA'[index % 2]
        if marker != expected:
            raise ParseError(f'turn {index + 1} is "{marker}:", expected '
                             f'"{expected}:" (questions and answers '
                             'alternate, starting with "Q:")')
        if not '\n'.join(lines).strip():
            raise ParseError(f'turn {index + 1} ("{marker}:") is empty')
    if len(turns) % 2:
        raise ParseError(f'the last question (turn {len(turns)}) has no '
                         'answer')
    values = ['\n'.join(lines).strip() for _, lines in turns]
    return list(zip(values[::2], values[1::2]))
