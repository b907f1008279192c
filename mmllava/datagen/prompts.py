"""System prompts, few-shot examples and the detailed-description
instructions of the three LLaVA instruction types.

A request is the type's system prompt, then each few-shot example as a user
turn (its context) and an assistant turn (its reply), then the image's
context as the last user turn.

Few-shot examples live in a folder with one subfolder per type
(``conv/``, ``detail/``, ``complex/``), one ``.json`` file per example,
``{"context": str, "response": str}``, used in file-name order. The
package's own are in ``mmllava/datagen/fewshot``; a folder of the user's
replaces them for each type it has a subfolder for. Every example's
response must parse (:mod:`mmllava.datagen.parsing`) as its type, so the
examples cannot teach a format the parser rejects.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mmllava.datagen.parsing import TYPES, ParseError, parse_reply

DEFAULT_FEWSHOT_DIR = Path(__file__).parent / 'fewshot'

# The detailed-description instructions of the LLaVA paper's appendix; each
# 'detail' record asks one of them, drawn per image.
DETAIL_INSTRUCTIONS = (
    'Describe the following image in detail.',
    'Provide a detailed description of the given image.',
    'Give an elaborate explanation of the image you see.',
    'Share a comprehensive rundown of the presented image.',
    'Offer a thorough analysis of the image.',
    'Explain the various aspects of the image before you.',
    'Clarify the contents of the displayed image with great detail.',
    'Characterize the image using a well-detailed description.',
    'Break down the elements of the image in a detailed manner.',
    'Walk through the important details of the image.',
    'Portray the image with a rich, descriptive narrative.',
    'Narrate the contents of the image with precision.',
    'Analyze the image in a comprehensive and detailed manner.',
    'Illustrate the image through a descriptive explanation.',
    'Examine the image closely and share its details.',
    'Write an exhaustive depiction of the given image.',
)

_SEEING = (
    'You are writing training data for an assistant that sees images. You '
    'cannot see the image yourself. Instead you are told what is known '
    'about it: a few captions, each written by a different person about '
    'the same image, then, after a blank line, the objects in it, one per '
    'line as "category: [x1, y1, x2, y2]", a bounding box with coordinates '
    'from 0 to 1 where (0, 0) is the top-left corner. Write as if you were '
    'looking at the image: never mention captions, boxes or coordinates '
    'and never quote the numbers; use them only to work out what is where, '
    'how many there are and how things relate.\n\n')

SYSTEM_PROMPTS = {
    'conv': _SEEING + (
        'Write a conversation between a person asking about the image and '
        'an assistant answering. Ask about what can be seen: which objects '
        'there are, how many, what they look like, what people or animals '
        'are doing, where things are relative to each other, the setting. '
        'Ask only questions the image settles for certain. Answers are '
        'friendly and clear, one to three sentences. Write 3 to 5 '
        'exchanges.\n\nReply format: each question on a new line starting '
        'with "Q:", each answer on a new line starting with "A:", and '
        'nothing else.'),
    'detail': _SEEING + (
        'Describe the image in rich detail as one or two paragraphs of '
        'prose: the scene as a whole, then the main objects, what they look '
        'like, where they are and how they relate. Mention only what the '
        'information supports.\n\nReply format: the description alone, with '
        'no title, no list, no "Q:" or "A:" lines.'),
    'complex': _SEEING + (
        'Write one question about the image that takes reasoning beyond '
        'naming what is there: why something is happening, what may happen '
        'next, what someone should be careful about, what the scene says '
        'about the time, place or people. Then answer it in detail, '
        'reasoning step by step from what can be seen.\n\nReply format: '
        'one line starting with "Q:" holding the question, then the answer '
        'starting with "A:" (it may run over several lines), and nothing '
        'else.'),
}


@dataclass
class FewShotExample:
    """One worked example: a context and the reply it should get."""
    context: str
    response: str


def load_fewshot(folder: Optional[str] = None
                 ) -> dict[str, list[FewShotExample]]:
    """Few-shot examples per type.

    Args:
        folder (str, optional): The user's folder; each type subfolder it
            has replaces the package's examples of that type.

    Raises:
        ValueError: An example that is not ``{"context": str, "response":
            str}`` or whose response does not parse; names the file.
    """
    examples = {kind: _load_type(DEFAULT_FEWSHOT_DIR / kind, kind)
                for kind in TYPES}
    if folder is not None:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f'few-shot folder not found: {folder}')
        for kind in TYPES:
            if (Path(folder) / kind).is_dir():
                examples[kind] = _load_type(Path(folder) / kind, kind)
    return examples


def _load_type(folder: Path, kind: str) -> list[FewShotExample]:
    examples = []
    for path in sorted(folder.glob('*.json')):
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
        except json.JSONDecodeError as error:
            raise ValueError(f'{path}: not valid json ({error})') from None
        if not isinstance(data, dict) or \
                not isinstance(data.get('context'), str) or \
                not isinstance(data.get('response'), str):
            raise ValueError(f'{path}: a few-shot example must be '
                             '{"context": str, "response": str}')
        try:
            parse_reply(kind, data['response'], DETAIL_INSTRUCTIONS[0])
        except ParseError as error:
            raise ValueError(f'{path}: the response is not a valid {kind!r} '
                             f'reply: {error}') from None
        examples.append(FewShotExample(data['context'], data['response']))
    if not examples:
        raise ValueError(f'{folder}: no few-shot examples (*.json) for '
                         f'{kind!r}')
    return examples


def build_messages(kind: str, context: str,
                   examples: list[FewShotExample],
                   system_role: bool = True) -> list[dict]:
    """The chat messages asking for one image's ``kind`` reply.

    Args:
        kind (str): The type.
        context (str): The image's context.
        examples (list[FewShotExample]): The type's few-shot examples.
        system_role (bool): Send the instructions as a system message; if
            False, put them at the top of the first user turn, for
            endpoints that refuse system messages (``tools/serve.py``).
    """
    turns = []
    for example in examples:
        turns.append(dict(role='user', content=example.context))
        turns.append(dict(role='assistant', content=example.response))
    turns.append(dict(role='user', content=context))
    return with_instructions(SYSTEM_PROMPTS[kind], turns, system_role)


def with_instructions(instructions: str, turns: list[dict],
                      system_role: bool = True) -> list[dict]:
    """``turns`` led by ``instructions``: as a system message, or (for
    endpoints that refuse system messages, such as ``tools/serve.py``) at
    the top of the first user turn."""
    if system_role:
        return [dict(role='system', content=instructions)] + turns
    first = dict(turns[0], content=f'{instructions}\n\n{turns[0]["content"]}')
    return [first] + turns[1:]
