"""The turns a template renders: which records it takes, and where the
image placeholder goes."""
from typing import Sequence

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.templates.base import GPT, HUMAN, ChatTemplate


def move_image_to_front(message: str) -> str:
    """Put a message's image placeholder first, as ``<image>\\n``.

    This is the official ``preprocess_multimodal``: every ``<image>`` is
    removed from the message and one is placed at its front.
    """
    if IMAGE_PLACEHOLDER not in message:
        return message
    text = message.replace(IMAGE_PLACEHOLDER, '').strip()
    return (IMAGE_PLACEHOLDER + '\n' + text).strip()


def checked_turns(conversations: Sequence[dict],
                  template: ChatTemplate,
                  has_image: bool,
                  add_generation_prompt: bool = False,
                  sample_id: object = None) -> list[dict]:
    """The turns a template renders, checked: a leading assistant turn
    dropped, then human and gpt alternating, each a non-empty string, and in
    a record with an image ``<image>`` only in human turns (in a record
    without one it is text, as in the official code).

    Args:
        conversations (Sequence[dict]): The record's turns.
        template (ChatTemplate): The template (``plain`` takes one image
            question and its answer).
        has_image (bool): Whether the record has an image.
        add_generation_prompt (bool): Whether the turns end with the
            question to answer. Defaults to False.
        sample_id: Named in errors.

    Raises:
        ValueError: Naming the sample and the turn that breaks a rule.
    """
    turns = list(conversations)
    # The official preprocessing drops a leading assistant turn.
    if turns and turns[0].get('from') == GPT:
        turns = turns[1:]
    for index, turn in enumerate(turns):
        expected = HUMAN if index % 2 == 0 else GPT
        if turn.get('from') != expected:
            raise ValueError(
                f'Sample {sample_id!r}: turn {index} is from '
                f'{turn.get("from")!r}, expected {expected!r} (turns must '
                'alternate human, gpt).')
        if not isinstance(turn.get('value'), str):
            raise ValueError(f'Sample {sample_id!r}: turn {index} has no '
                             'string "value".')
        if not turn['value']:
            raise ValueError(f'Sample {sample_id!r}: turn {index} is empty.')
        if has_image and turn['from'] == GPT and \
                IMAGE_PLACEHOLDER in turn['value']:
            raise ValueError(f'Sample {sample_id!r}: turn {index} holds '
                             f'{IMAGE_PLACEHOLDER} in an answer.')
    if template.single_turn_with_image:
        num_turns = 1 if add_generation_prompt else 2
        if not has_image or len(turns) != num_turns or \
                IMAGE_PLACEHOLDER not in turns[0]['value']:
            raise ValueError(
                f'Sample {sample_id!r}: template {template.name!r} needs one '
                f'image and a human turn with {IMAGE_PLACEHOLDER}, then one answer '
                f'(got {len(turns)} turns, image={has_image}).')
    return turns
