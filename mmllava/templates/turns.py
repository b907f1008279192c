"""The turns a template renders: which records it takes (the rules of
:mod:`mmllava.templates.rules`; where the image placeholders go is
:mod:`mmllava.templates.placeholders`)."""
from typing import Sequence

from mmllava.templates.rules import conversation_problems, rendered_turns
from mmllava.templates.base import ChatTemplate


def checked_turns(conversations: Sequence[dict],
                  template: ChatTemplate,
                  has_image: bool,
                  add_generation_prompt: bool = False,
                  sample_id: object = None,
                  num_images: int = 1) -> list[dict]:
    """The turns a template renders, checked by
    :func:`~mmllava.templates.rules.conversation_problems`: each turn
    ``{"from": "human"|"gpt", "value": str}``, a leading assistant turn
    dropped, then human and gpt alternating, no message empty, and in a
    record with an image ``<image>`` only in human turns (in a record
    without one it is text, as in the official code).

    Args:
        conversations (Sequence[dict]): The record's turns.
        template (ChatTemplate): The template (``plain`` takes one image
            question and its answer).
        has_image (bool): Whether the record has an image.
        add_generation_prompt (bool): Whether the turns end with the
            question to answer. Defaults to False.
        sample_id: Named in errors.
        num_images (int): How many images the record has, when it has any
            (a template that takes one image, ``plain``, refuses several).
            Defaults to 1.

    Returns:
        list[dict]: The turns to render.

    Raises:
        ValueError: The first broken rule, naming the sample and the turn.
    """
    broken = next(conversation_problems(conversations, has_image, template,
                                        add_generation_prompt, sample_id,
                                        num_images=num_images),
                  None)
    if broken is not None:
        raise ValueError(f'{broken}.')
    return rendered_turns(conversations)
