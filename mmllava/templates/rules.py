"""The rules of a valid LLaVA conversation record, written once.

:func:`conversation_problems` walks a conversation and yields every rule it
breaks, as a :class:`BrokenRule`; :func:`record_problems` does so for a
record of a data file (its fields too). Rendering raises the first
(:func:`mmllava.templates.turns.checked_turns`); the data checker reports
them all (:mod:`mmllava.datasets.checks`).
"""
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.templates.base import GPT, HUMAN, ChatTemplate
from mmllava.templates.placeholders import place_images

@dataclass(frozen=True)
class BrokenRule:
    """One rule a conversation breaks.

    Args:
        code (str): Which rule, as the data checker counts them:
            ``'malformed_fields'``, ``'roles_out_of_order'``,
            ``'unpaired_turn'``, ``'empty_answer'``, ``'empty_question'``,
            ``'image_count_mismatch'``, ``'nested_placeholder'``,
            ``'placeholders_merged'`` (merged as training does: a warning)
            or ``'template_mismatch'``.
        message (str): What is wrong, naming the turn, e.g. ``"turn 1 is
            empty (gpt)"``.
        sample_id: The record's id.
        turn (int, optional): The turn's position in the record's
            ``conversations``; None where the rule is not one turn's.
    """

    code: str
    message: str
    sample_id: object = None
    turn: Optional[int] = None

    def __str__(self) -> str:
        return f'Sample {self.sample_id!r}: {self.message}'


def rendered_turns(conversations: Sequence[dict]) -> list[dict]:
    """The turns rendering keeps: all but a leading ``gpt`` turn, which the
    official preprocessing drops."""
    turns = list(conversations)
    return turns[1:] if turns and turns[0]['from'] == GPT else turns


def _is_turn(turn: object) -> bool:
    return isinstance(turn, dict) and turn.get('from') in (HUMAN, GPT) \
        and isinstance(turn.get('value'), str)


def _malformed_turns(conversations: object, sample_id: object,
                     record_rules: bool) -> list[BrokenRule]:
    """The faults that leave no conversation to check further: a turn that
    is not ``{"from": "human"|"gpt", "value": str}`` and, with
    ``record_rules``, no turns or no answer to learn."""

    def malformed(message: str, turn: Optional[int] = None) -> BrokenRule:
        return BrokenRule('malformed_fields', message, sample_id, turn)

    if record_rules and (not isinstance(conversations, list)
                         or not conversations):
        return [malformed('"conversations" must be a non-empty list')]
    faults = [malformed(f'turn {position} must be {{"from": "human"|"gpt", '
                        f'"value": str}}, got {turn!r:.200}', position)
              for position, turn in enumerate(conversations)
              if not _is_turn(turn)]
    if not faults and record_rules and not any(
            turn['from'] == GPT for turn in rendered_turns(conversations)):
        faults.append(malformed('no "gpt" turn after a "human" turn, so '
                                'nothing to learn'))
    return faults


def _placeholder_problems(value: str, count: int, position: int,
                          sample_id: object) -> Iterator[BrokenRule]:
    """A human turn holding ``count`` ``<image>``, in a record with one
    image: a nested tag that the official preprocessing turns into a second
    ``<image>`` (a fault), or several it merges into one (a warning)."""
    # The preprocessing removes every <image> and puts one in front, so what
    # the removal leaves (a nested <im<image>age>) adds to that one.
    rendered = 1 + value.replace(IMAGE_PLACEHOLDER, '').count(
        IMAGE_PLACEHOLDER)
    if rendered != 1:
        yield BrokenRule(
            'nested_placeholder',
            f'turn {position} ({value!r:.60}) holds {rendered} '
            f'{IMAGE_PLACEHOLDER} once every {IMAGE_PLACEHOLDER} is removed '
            'and one put in front, as training does (a nested tag such as '
            f'<im{IMAGE_PLACEHOLDER}age> forms one again); the record has 1 '
            'image', sample_id, position)
    elif count > 1:
        yield BrokenRule(
            'placeholders_merged',
            f'turn {position} holds {count} {IMAGE_PLACEHOLDER}; training '
            "keeps one, at the front of the turn, for the record's 1 image "
            '(as the official preprocessing does)', sample_id, position)


def conversation_problems(conversations: Sequence[dict],
                          has_image: bool,
                          template: Optional[ChatTemplate] = None,
                          add_generation_prompt: bool = False,
                          sample_id: object = None,
                          record_rules: bool = False,
                          num_images: int = 1
                          ) -> Iterator[BrokenRule]:
    """Every rule a conversation breaks, turn by turn, then those of the
    conversation as a whole.

    Every turn must be ``{"from": "human"|"gpt", "value": str}`` (if one is
    not, nothing else is checked). Once a leading ``gpt`` turn is dropped,
    turns alternate human, gpt (the first break is reported), no message is
    empty, and in a record with an image no answer holds ``<image>`` (in a
    record without one it is text, as in the official code). A template
    that takes one image question and its answer (``plain``) gets just that.

    Args:
        conversations (Sequence[dict]): The record's turns.
        has_image (bool): Whether the record has an image.
        template (ChatTemplate, optional): The template that renders them;
            None: no template's rules. Defaults to None.
        add_generation_prompt (bool): Whether the turns end with the
            question to answer. Defaults to False.
        sample_id: Named in the problems.
        record_rules (bool): Also the rules of a record of a data file,
            which rendering alone does not need: at least one turn and one
            answer to learn, no blank message, no last question without its
            answer, and with one image exactly one human turn holding
            ``<image>``, once ``<image>`` only after the official
            preprocessing (which removes every ``<image>`` of a turn and puts
            one in front); with several images, one ``<image>`` per image
            in the human turns, counted where rendering places them
            (:func:`~mmllava.templates.placeholders.place_images`).
            Defaults to False.
        num_images (int): How many images the record has, when it has any.
            Defaults to 1.

    Returns:
        Iterator[BrokenRule]: The broken rules, in the order of the turns
        they are found in.
    """
    malformed = _malformed_turns(conversations, sample_id, record_rules)
    if malformed:
        yield from malformed
        return
    turns = rendered_turns(conversations)
    first = len(conversations) - len(turns)
    in_order = True
    with_placeholder = []
    # Several images: the placeholders each human turn renders, by turn.
    placed = {}
    for position, turn in enumerate(turns, first):
        role, value = turn['from'], turn['value']
        expected = HUMAN if (position - first) % 2 == 0 else GPT
        if in_order and role != expected:
            in_order = False
            yield BrokenRule(
                'roles_out_of_order', f'turn {position} is from {role!r}, '
                f'expected {expected!r} (turns must alternate human, gpt)',
                sample_id, position)
        if not value or (record_rules and not value.strip()):
            yield BrokenRule(
                'empty_answer' if role == GPT else 'empty_question',
                f'turn {position} is {"blank" if value else "empty"} '
                f'({role})', sample_id, position)
        count = value.count(IMAGE_PLACEHOLDER) if has_image else 0
        if count and role == GPT:
            yield BrokenRule('image_count_mismatch', f'turn {position} holds '
                             f'{IMAGE_PLACEHOLDER} in an answer', sample_id,
                             position)
        elif count and record_rules and num_images > 1:
            placed[position] = place_images(value, num_images).count(
                IMAGE_PLACEHOLDER)
        elif count and record_rules:
            with_placeholder.append(position)
            yield from _placeholder_problems(value, count, position,
                                             sample_id)
    if record_rules and in_order and turns[-1]['from'] == HUMAN:
        yield BrokenRule('unpaired_turn', f'turn {len(conversations) - 1} '
                         '(human) has no answer after it', sample_id,
                         len(conversations) - 1)
    if record_rules and has_image and num_images > 1 and \
            sum(placed.values()) != num_images:
        where = ', '.join(f'turn {position}: {count}'
                          for position, count in placed.items())
        yield BrokenRule(
            'image_count_mismatch', f'the human turns hold '
            f'{sum(placed.values())} {IMAGE_PLACEHOLDER} where rendering '
            f'places them{f" ({where})" if where else ""}, the record has '
            f'{num_images} images (one {IMAGE_PLACEHOLDER} per image)',
            sample_id)
    elif record_rules and has_image and num_images == 1 and \
            len(with_placeholder) != 1:
        where = f' (turns {with_placeholder})' if with_placeholder else ''
        yield BrokenRule(
            'image_count_mismatch', f'{len(with_placeholder)} human turns '
            f'hold {IMAGE_PLACEHOLDER}{where}, the record has 1 image',
            sample_id)
    if template is not None and template.single_turn_with_image:
        num_turns = 1 if add_generation_prompt else 2
        if not has_image or num_images != 1 or len(turns) != num_turns or \
                IMAGE_PLACEHOLDER not in turns[0]['value']:
            images = f', {num_images} images' if has_image and \
                num_images != 1 else ''
            yield BrokenRule(
                'template_mismatch', f'template {template.name!r} needs one '
                f'image and a human turn with {IMAGE_PLACEHOLDER}, then one '
                f'answer (got {len(turns)} turns, image={has_image}'
                f'{images})', sample_id)


def is_image_field(image: object) -> bool:
    """Whether a record's ``image`` is a path string or a non-empty list of
    them (several images, in the order of their ``<image>``)."""
    if isinstance(image, list):
        return bool(image) and all(isinstance(path, str) for path in image)
    return isinstance(image, str)


def record_images(record: dict) -> int:
    """How many images a well-formed record has: 0, 1 for an ``image``
    path, the length of an ``image`` list."""
    image = record.get('image')
    if image is None:
        return 0
    return len(image) if isinstance(image, list) else 1


def record_problems(record: object,
                    template: Optional[ChatTemplate] = None
                    ) -> Iterator[BrokenRule]:
    """Every rule a record of a LLaVA data file breaks: its fields (an
    object; ``id`` a string or an integer, ``image`` a path string or a
    non-empty list of them, if given), then :func:`conversation_problems`
    of its ``conversations`` with the record rules. A record with malformed
    fields or turns is not checked further.

    Args:
        record (object): One record as read from the file.
        template (ChatTemplate, optional): The template that will render
            it; None: no template's rules. Defaults to None.

    Returns:
        Iterator[BrokenRule]: The broken rules, fields first.
    """
    if not isinstance(record, dict):
        yield BrokenRule('malformed_fields', 'expected an object, got '
                         f'{type(record).__name__}')
        return
    sample_id = record.get('id')
    malformed = []
    if 'id' in record and not isinstance(sample_id, (str, int)):
        malformed.append(BrokenRule(
            'malformed_fields', '"id" must be a string or an integer, got '
            f'{type(sample_id).__name__}', sample_id))
    if 'image' in record and not is_image_field(record['image']):
        malformed.append(BrokenRule(
            'malformed_fields', '"image" must be a path string or a '
            'non-empty list of path strings', sample_id))
    conversations = record.get('conversations')
    malformed += _malformed_turns(conversations, sample_id,
                                  record_rules=True)
    if malformed:
        yield from malformed
        return
    yield from conversation_problems(conversations, 'image' in record,
                                     template, sample_id=sample_id,
                                     record_rules=True,
                                     num_images=record_images(record))
