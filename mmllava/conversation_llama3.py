"""Llama-3's chat format as LLaVA-NeXT trains it: ``llava_llama_3``.

A generation prompt renders and tokenizes as every template does
(:func:`mmllava.conversation.build_generation_prompt`); the template itself
is data, in :mod:`mmllava.templates.llama3`.

Training samples are tokenized by :func:`tokenize_llama3_training`, which
gives the ids and labels of LLaVA-NeXT's ``preprocess_llama3``
(``llava/train/train.py``): the system message and every turn rendered by
Llama-3's chat template on its own (messages ``trim``-med), joined behind
one ``<|begin_of_text|>``. Its labels differ from a plain render's, on
purpose, because the official code does it:

- ``<|begin_of_text|>``, ``<|start_header_id|>``, ``<|end_header_id|>`` and
  ``<|eot_id|>`` are learnt wherever they stand, in the system message and
  the questions too (its ``unmask_tokens``; the ``"\\n\\n"`` it also lists is
  no token name of a byte-level vocabulary, so it unmasks nothing);
- an assistant message is learnt whole, the ``assistant`` role name and the
  ``\\n\\n`` after its header included.

LLaVA-NeXT's ``preprocess_multimodal`` puts a message's only ``<image>`` at
its front as ``<image>\\n`` unless it starts with it; a message with several
keeps them where they stand. As for every template, a special-token string
inside a message stays text unless ``special_tokens_in_content='special'``.

LLaVA-NeXT's inference prompt (``conv_llava_llama_3.get_prompt()`` tokenized
by ``tokenizer_image_token``) starts with two ``<|begin_of_text|>``: the
chat template writes one and the tokenizer adds one. Ours has one, as in
training.
"""
from typing import Optional, Sequence

from mmllava.constants import (IGNORE_INDEX, IMAGE_PLACEHOLDER,
                               IMAGE_TOKEN_INDEX)
from mmllava.content_specials import (encode_keeping_text,
                                      holds_special_string, keeps_text,
                                      special_string_spans)
from mmllava.templates import GPT, ChatTemplate
from mmllava.templates.llama3 import (BEGIN_OF_TEXT, END_HEADER, EOT,
                                      START_HEADER)
from mmllava.templates.placeholders import image_first_once
from mmllava.templates.turns import checked_turns

#: The tokens ``preprocess_llama3`` learns wherever they stand.
FRAMING_TOKENS = (BEGIN_OF_TEXT, START_HEADER, END_HEADER, EOT)


def llama3_token_ids(tokenizer) -> list[int]:
    """The ids of :data:`FRAMING_TOKENS`; a tokenizer without them is an
    error."""
    ids = tokenizer.convert_tokens_to_ids(list(FRAMING_TOKENS))
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(
            f'Template llava_llama_3 needs a Llama-3 tokenizer with the '
            f'tokens {FRAMING_TOKENS}; {type(tokenizer).__name__} '
            f'({tokenizer.name_or_path!r}) lacks some.')
    if tokenizer.bos_token_id != ids[0]:
        raise ValueError(
            f'Template llava_llama_3 needs {BEGIN_OF_TEXT} as the BOS token; '
            f'the tokenizer has {tokenizer.bos_token!r}.')
    return ids


def tokenize_llama3_training(conversations: Sequence[dict],
                             template: ChatTemplate,
                             tokenizer,
                             has_image: bool,
                             sample_id: Optional[object] = None,
                             special_tokens_in_content: str = 'text',
                             num_images: int = 1
                             ) -> tuple[list[int], list[int]]:
    """Tokenize a training conversation as LLaVA-NeXT's
    ``preprocess_llama3``.

    Args:
        conversations (Sequence[dict]): The record's turns.
        template (ChatTemplate): The Llama-3 template (its turn checks
            apply).
        tokenizer: A Llama-3 tokenizer (``<|begin_of_text|>`` its BOS).
        has_image (bool): Whether the record has an image.
        sample_id: Named in errors.
        special_tokens_in_content (str): ``'text'`` (special-token strings
            in messages become ordinary sub-word ids) or ``'special'`` (they
            become special tokens, as in the official code). Defaults to
            ``'text'``.
        num_images (int): How many images the record has, when it has any
            (the placement is LLaVA-NeXT's either way). Defaults to 1.

    Returns:
        tuple[list[int], list[int]]: ``input_ids`` and ``labels``.
    """
    turns = checked_turns(conversations, template, has_image,
                          sample_id=sample_id, num_images=num_images)
    framing = set(llama3_token_ids(tokenizer))
    as_text = keeps_text(special_tokens_in_content)

    def encode(text: str, content: tuple[int, int]) -> list[int]:
        """One message's ids, every chunk between images on its own."""
        ids: list[int] = []
        start = 0
        chunks = text.split(IMAGE_PLACEHOLDER) if has_image else [text]
        for index, chunk in enumerate(chunks):
            if index > 0:
                ids.append(IMAGE_TOKEN_INDEX)
            # The chunk's part of the message, in the chunk's characters.
            inside = (content[0] - start, content[1] - start)
            if as_text and holds_special_string(tokenizer, chunk, [inside]):
                kept = [(s, e) for s, e in special_string_spans(tokenizer,
                                                                  chunk)
                        if not (s < inside[1] and inside[0] < e)]
                ids += encode_keeping_text(tokenizer, chunk, kept,
                                           add_special_tokens=False,
                                           sample_id=sample_id)[0]
            else:
                ids += tokenizer(chunk, add_special_tokens=False).input_ids
            start += len(chunk) + len(IMAGE_PLACEHOLDER)
        return ids

    input_ids = [tokenizer.bos_token_id]
    labels = [tokenizer.bos_token_id]
    system = encode(template.system, (0, 0))
    input_ids += system
    labels += [IGNORE_INDEX] * len(system)
    for turn in turns:
        message = turn['value']
        if has_image:
            message = image_first_once(message)
        message = message.strip()
        if turn['from'] == GPT:
            head, tail = template.assistant_prefix, \
                template.assistant.replace('{content}', '')
        else:
            head, tail = template.user.split('{content}')
        ids = encode(head + message + tail,
                     (len(head), len(head) + len(message)))
        input_ids += ids
        labels += ids if turn['from'] == GPT else [IGNORE_INDEX] * len(ids)
    labels = [token if token in framing else label
              for token, label in zip(input_ids, labels)]
    labels = [IGNORE_INDEX if token == IMAGE_TOKEN_INDEX else label
              for token, label in zip(input_ids, labels)]
    return input_ids, labels
