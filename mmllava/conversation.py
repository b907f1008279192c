"""The one routine that renders and tokenizes conversations with a chat
template (the templates are data, in :mod:`mmllava.templates`).

:func:`tokenize_conversation` renders a
conversation turn by turn, remembers which characters belong to supervised
text, tokenizes the rendered prompt the way the official LLaVA code does
(``tokenizer_image_token``: the prompt split at each ``<image>``, every chunk
tokenized on its own) and labels every token by the characters it came from.
Ids and labels are built from the same rendered text, so they cannot disagree.

One departure from the official code: the string of a special token inside a
message (``</s>``, ``<|im_end|>``) stays text, unless
``special_tokens_in_content='special'`` asks for the official special token
(see :mod:`mmllava.content_specials`). In a sample without image, ``<image>``
is text, as in the official code.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from mmllava.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX
from mmllava.content_specials import (encode_keeping_text,
                                      holds_special_string, keeps_text,
                                      special_string_spans)
from mmllava.conversation_chatml import tokenize_chatml_training
from mmllava.conversation_llama3 import tokenize_llama3_training
from mmllava.templates import HUMAN, ChatTemplate
from mmllava.templates.llama3 import LLAVA_LLAMA_3
from mmllava.templates.placeholders import place_images
from mmllava.templates.turns import checked_turns


@dataclass
class Segment:
    """A piece of rendered prompt text and whether the loss learns it.

    Args:
        text (str): The text.
        supervised (bool): Whether the loss learns it.
        content (tuple[int, int], optional): The characters of ``text`` that
            are a message (``{content}`` of the template), as ``(start,
            end)``; None where all of it is the template's. Defaults to None.
    """

    text: str
    supervised: bool
    content: Optional[tuple[int, int]] = None


def _fill(template_text: str, message: str, supervised: bool) -> Segment:
    """A template string with ``{content}`` replaced by ``message``,
    remembering where the message stands."""
    before, field, after = template_text.partition('{content}')
    if not field:
        return Segment(template_text, supervised)
    return Segment(before + message + after, supervised,
                   (len(before), len(before) + len(message)))


def render_conversation(conversations: Sequence[dict],
                        template: ChatTemplate,
                        has_image: bool,
                        add_generation_prompt: bool = False,
                        sample_id: object = None,
                        num_images: int = 1) -> list[Segment]:
    """Render LLaVA turns (``{'from': 'human'|'gpt', 'value': str}``).

    Args:
        conversations (Sequence[dict]): The record's turns.
        template (ChatTemplate): How to render them.
        has_image (bool): Whether the record has an image; in the text of a
            record without one ``<image>`` is text.
        add_generation_prompt (bool): End with the assistant prefix, for
            generation. Defaults to False.
        sample_id: Named in errors.
        num_images (int): How many images the record has, when it has any:
            with one, a human turn's ``<image>`` moves to its front
            (LLaVA-1.5); with several, they stay where the text puts them
            unless a turn has only one (LLaVA-NeXT-Interleave; see
            :func:`~mmllava.templates.placeholders.place_images`).
            Defaults to 1.

    Returns:
        list[Segment]: The prompt, piece by piece, each message's place
        in it remembered.
    """
    turns = checked_turns(conversations, template, has_image,
                          add_generation_prompt, sample_id, num_images)
    segments = [Segment(template.system, False)]
    for index, turn in enumerate(turns):
        message = place_images(turn['value'], num_images) if has_image \
            else turn['value']
        if template.strip_messages:
            message = message.strip()
        if turn['from'] == HUMAN:
            user = template.first_user if index == 0 and \
                template.first_user is not None else template.user
            segments.append(_fill(user, message, False))
        else:
            segments.append(Segment(template.assistant_prefix, False))
            segments.append(_fill(template.assistant, message, True))
    if add_generation_prompt:
        segments.append(Segment(template.assistant_prefix, False))
    return [segment for segment in segments if segment.text]


def _supervised_chars_before(segments: Sequence[Segment]) -> np.ndarray:
    """``counts[i]``: how many of the text's first ``i`` characters are
    supervised (so ``counts[end] > counts[start]`` says some character of
    ``text[start:end]`` is)."""
    flags = np.repeat([segment.supervised for segment in segments],
                      [len(segment.text) for segment in segments])
    return np.concatenate(([0], np.cumsum(flags)))


def _content_spans(segments: Sequence[Segment]) -> list[tuple[int, int]]:
    """Where the messages stand in the joined text."""
    spans, start = [], 0
    for segment in segments:
        if segment.content is not None:
            spans.append((start + segment.content[0],
                          start + segment.content[1]))
        start += len(segment.text)
    return spans


def _encode_chunk(chunk: str, chunk_start: int, tokenizer,
                  content_spans: Optional[list[tuple[int, int]]],
                  sample_id: object) -> tuple[list, list]:
    """Ids and character offsets of one chunk of the prompt.

    With ``content_spans`` given, special-token strings that touch a message
    stay text; a chunk where none does takes the official whole-chunk call.
    """
    if content_spans:
        specials = special_string_spans(tokenizer, chunk)
        in_content = [
            any(start + chunk_start < content_end
                and content_start < end + chunk_start
                for content_start, content_end in content_spans)
            for start, end in specials]
        if any(in_content):
            return encode_keeping_text(
                tokenizer, chunk,
                [span for span, inside in zip(specials, in_content)
                 if not inside], sample_id=sample_id)
    encoded = tokenizer(chunk, return_offsets_mapping=True)
    return encoded['input_ids'], encoded['offset_mapping']


def tokenize_segments(segments: Sequence[Segment],
                      tokenizer,
                      has_image: bool,
                      special_tokens_in_content: str = 'text',
                      sample_id: object = None
                      ) -> tuple[list[int], list[int]]:
    """Tokenize rendered segments into ``input_ids`` and ``labels``.

    With an image, the text is split at each ``<image>``; every chunk is
    tokenized on its own (so it gets the tokenizer's leading-space handling,
    as in the official code), the first chunk keeps the BOS token and later
    chunks drop it, and :data:`IMAGE_TOKEN_INDEX` stands between chunks.
    Without an image the text is one chunk. A token is supervised when the
    characters it came from are supervised; tokens the tokenizer adds (BOS)
    come from no character and are not.

    Args:
        segments (Sequence[Segment]): Output of :func:`render_conversation`.
        tokenizer: A transformers fast tokenizer (offsets are needed).
        has_image (bool): Whether ``<image>`` in the text stands for an
            image.
        special_tokens_in_content (str): What a special-token string inside
            a message becomes: ``'text'`` (ordinary sub-word ids) or
            ``'special'`` (the special token, as the official code does).
            The template's own special tokens stay special either way.
            Defaults to ``'text'``.
        sample_id: Named in errors.

    Returns:
        tuple[list[int], list[int]]: ``input_ids`` and ``labels``; labels are
        :data:`IGNORE_INDEX` where not supervised.
    """
    text = ''.join(segment.text for segment in segments)
    supervised_before = _supervised_chars_before(segments)
    content_spans = None
    if keeps_text(special_tokens_in_content):
        # Prompts whose messages hold no special-token string, nearly all,
        # are tokenized exactly as the official code does.
        spans = _content_spans(segments)
        if holds_special_string(tokenizer, text, spans):
            content_spans = spans
    input_ids: list[int] = []
    labels: list[int] = []
    drop_bos = False
    chunk_start = 0
    chunks = text.split(IMAGE_PLACEHOLDER) if has_image else [text]
    for chunk_index, chunk in enumerate(chunks):
        if chunk_index > 0:
            input_ids.append(IMAGE_TOKEN_INDEX)
            labels.append(IGNORE_INDEX)
        ids, offsets = _encode_chunk(chunk, chunk_start, tokenizer,
                                     content_spans, sample_id)
        if chunk_index == 0:
            drop_bos = bool(ids) and ids[0] == tokenizer.bos_token_id
        elif drop_bos and ids and ids[0] == tokenizer.bos_token_id:
            ids, offsets = ids[1:], offsets[1:]
        if ids:
            spans = chunk_start + np.asarray(offsets).reshape(-1, 2)
            supervised = supervised_before[spans[:, 1]] > \
                supervised_before[spans[:, 0]]
            input_ids += ids
            labels += np.where(supervised, ids, IGNORE_INDEX).tolist()
        chunk_start += len(chunk) + len(IMAGE_PLACEHOLDER)
    return input_ids, labels


def tokenize_conversation(conversations: Sequence[dict],
                          template: ChatTemplate,
                          tokenizer,
                          has_image: bool,
                          sample_id: Optional[object] = None,
                          special_tokens_in_content: str = 'text',
                          num_images: int = 1
                          ) -> tuple[list[int], list[int]]:
    """Render and tokenize a LLaVA conversation for training.

    ``special_tokens_in_content`` is :func:`tokenize_segments`',
    ``num_images`` :func:`render_conversation`'s.

    Returns:
        tuple[list[int], list[int]]: ``input_ids`` and ``labels``.
    """
    if template.turn_by_turn:
        tokenize_turns = tokenize_llama3_training \
            if template.name == LLAVA_LLAMA_3.name else \
            tokenize_chatml_training
        return tokenize_turns(
            conversations, template, tokenizer, has_image,
            sample_id=sample_id,
            special_tokens_in_content=special_tokens_in_content,
            num_images=num_images)
    segments = render_conversation(conversations, template, has_image,
                                   sample_id=sample_id, num_images=num_images)
    return tokenize_segments(segments, tokenizer, has_image,
                             special_tokens_in_content, sample_id)


def build_generation_prompt(conversations: Sequence[dict],
                            template: ChatTemplate,
                            tokenizer,
                            has_image: bool,
                            sample_id: Optional[object] = None,
                            special_tokens_in_content: str = 'text',
                            num_images: int = 1
                            ) -> list[int]:
    """Tokenize a conversation that ends with a question, for generation.

    ``special_tokens_in_content`` is :func:`tokenize_segments`'; keep the
    default for text from untrusted users (a server's clients).
    ``num_images`` is :func:`render_conversation`'s.
    """
    segments = render_conversation(
        conversations, template, has_image, add_generation_prompt=True,
        sample_id=sample_id, num_images=num_images)
    return tokenize_segments(segments, tokenizer, has_image,
                             special_tokens_in_content, sample_id)[0]

