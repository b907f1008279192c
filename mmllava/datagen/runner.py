"""The generation loop: one LLaVA record per image, resumable.

Each image's type (and, for ``detail``, its instruction) is drawn from a
random generator seeded by the run's seed and the image id alone, so the
draw does not depend on which requests finish first or on what an earlier,
killed run already wrote.
"""
import posixpath
import random
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, TypeVar

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.datagen.client import ChatClient, ChatError, Usage
from mmllava.datagen.context import ImageContext, format_context
from mmllava.datagen.output import AppendOnlyJsonl
from mmllava.datagen.parsing import TYPES, ParseError, parse_reply
from mmllava.datagen.pool import run_pool
from mmllava.datagen.prompts import (DETAIL_INSTRUCTIONS, FewShotExample,
                                     build_messages)
from mmllava.templates import GPT, HUMAN

Parsed = TypeVar('Parsed')

# Statuses that every later request would get too: stop the run.
FATAL_STATUSES = frozenset({401, 403, 404})


@dataclass
class Plan:
    """What to ask for one image: its type, and the question a ``detail``
    record asks."""
    kind: str
    instruction: Optional[str] = None


def plan_image(image_id: str, seed: int, types: Sequence[str]) -> Plan:
    """The image's draw, from ``seed`` and ``image_id`` only."""
    rng = random.Random(f'{seed}:{image_id}')
    kind = rng.choice(list(types))
    instruction = rng.choice(DETAIL_INSTRUCTIONS) if kind == 'detail' \
        else None
    return Plan(kind, instruction)


def to_record(context: ImageContext, kind: str,
              pairs: list[tuple[str, str]], image_prefix: str = '') -> dict:
    """A LLaVA record; the first question holds the image placeholder."""
    conversations = []
    for index, (question, answer) in enumerate(pairs):
        if index == 0:
            question = f'{IMAGE_PLACEHOLDER}\n{question}'
        conversations += [{'from': HUMAN, 'value': question},
                          {'from': GPT, 'value': answer}]
    image = posixpath.join(image_prefix, context.image) if image_prefix \
        else context.image
    return dict(id=context.image_id, image=image, type=kind,
                conversations=conversations)


@dataclass
class Failure:
    """An image that got no record, and why."""
    image_id: str
    kind: str
    reason: str


@dataclass
class Summary:
    """What a run did.

    Args:
        written (int): Records written by this run.
        skipped (int): Images an earlier run had done.
        failures (list[Failure]): Images left without a record.
        usage (Usage): The client's request and token totals.
    """
    written: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


async def generate_instructions(
        contexts: Sequence[ImageContext],
        client: ChatClient,
        writer: AppendOnlyJsonl,
        examples: dict[str, list[FewShotExample]],
        types: Sequence[str] = TYPES,
        seed: int = 0,
        image_prefix: str = '',
        parse_retries: int = 2,
        request_params: Optional[dict] = None,
        system_role: bool = True,
        on_done: Optional[Callable[[], None]] = None,
        on_failure: Optional[Callable[[Failure], None]] = None) -> Summary:
    """Ask for a record for each image ``writer`` does not hold yet.

    Args:
        contexts: The images.
        client: The chat client; ``client.max_concurrency`` images are
            worked on at once.
        writer: Where records go; its keys are the images already done.
        examples: Few-shot examples per type.
        types: The types to draw from.
        seed: Seeds each image's draw.
        image_prefix: Put before each image path in the records.
        parse_retries: Requests again after a reply that does not parse
            before the image is reported as failed.
        request_params: Extra request fields (``temperature``, ...).
        system_role: Send the instructions as a system message (see
            :func:`~mmllava.datagen.prompts.build_messages`).
        on_done: Called after each image, written or failed.
        on_failure: Called with each failure as it happens.

    Raises:
        ChatError: The endpoint refuses every request (401, 403, 404).
    """
    unknown = set(types) - set(TYPES)
    if unknown or not types:
        raise ValueError(f'types must be some of {TYPES}, got {types}')
    done = writer.done
    pending = [context for context in contexts
               if context.image_id not in done]
    summary = Summary(skipped=len(contexts) - len(pending),
                      usage=client.usage)

    async def work_on(context: ImageContext) -> None:
        plan = plan_image(context.image_id, seed, types)
        messages = build_messages(plan.kind, format_context(context),
                                  examples[plan.kind], system_role)
        item = f'image {context.image_id!r} ({plan.kind})'
        pairs, reason = await ask_parsed(
            client, messages, item,
            lambda text: parse_reply(plan.kind, text, plan.instruction),
            parse_retries, request_params)
        if pairs is not None:
            writer.append(to_record(context, plan.kind, pairs,
                                    image_prefix))
            summary.written += 1
            return
        failure = Failure(context.image_id, plan.kind, reason)
        summary.failures.append(failure)
        if on_failure is not None:
            on_failure(failure)

    await run_pool(pending, work_on, client.max_concurrency, on_done)
    return summary


async def ask_parsed(client: ChatClient, messages: list[dict], item: str,
                     parse: Callable[[str], Parsed], parse_retries: int,
                     request_params: Optional[dict] = None
                     ) -> tuple[Optional[Parsed], Optional[str]]:
    """Ask until a reply parses: ``(parsed, None)``, or ``(None, reason)``
    after ``parse_retries`` more tries or a failed request.

    A reply cut at ``max_tokens`` counts as one that does not parse.

    Raises:
        ChatError: The endpoint refuses every request (401, 403, 404).
    """
    reason = None
    for _ in range(parse_retries + 1):
        try:
            reply = await client.complete(messages, item,
                                          **(request_params or {}))
        except ChatError as error:
            if error.status in FATAL_STATUSES:
                raise
            return None, str(error)
        try:
            if reply.finish_reason == 'length':
                raise ParseError('the reply was cut at max_tokens')
            return parse(reply.content), None
        except ParseError as error:
            reason = f'{item}: the reply does not parse: {error}'
    return None, reason
