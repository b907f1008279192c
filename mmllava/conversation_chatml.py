"""ChatML, the chat format of Qwen-1.5 chat models: LLaVA-NeXT's ``qwen_1_5``.

A generation prompt renders and tokenizes as every template does
(:func:`mmllava.conversation.build_generation_prompt`), which gives
LLaVA-NeXT's inference prompt (``conv_qwen`` rendered by
``Conversation.get_prompt`` and tokenized by ``tokenizer_image_token``)::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n<image>\\nWhat is this?<|im_end|>\\n
    <|im_start|>assistant\\n

Training samples are tokenized by :func:`tokenize_chatml_training` (the
template itself is data, in :mod:`mmllava.templates.chatml`), which
gives the ids and labels of LLaVA-NeXT's ``preprocess_qwen`` as it stood for
the 2024-05 recipes (``llava/train/train.py`` before the LLaVA-OneVision
rewrite of 2024-08). Three things differ from the prompt above, on purpose,
because the official code does them:

- Every piece of a turn is tokenized on its own: ``<|im_start|>`` + role, the
  newline, the message, ``<|im_end|>``, the newline. A message that starts
  with blanks therefore does not merge with the newline before it.
- An image turn is the role line, the image, a newline, then the message
  after ``<image>``; the message keeps its own ``\\n``, so two newline tokens
  follow the image where the inference prompt has one.
- Framing tokens are supervised in every turn, the system and user turns
  included: ``<|im_start|>``, ``<|im_end|>`` and the newline after it. In an
  assistant turn the answer is supervised too; the role name and its newline
  are not.

As for every template, a special-token string inside a message stays text
unless ``special_tokens_in_content='special'``; a message without one is
tokenized as the official code does.
"""
from typing import Optional, Sequence

from mmllava.constants import (IGNORE_INDEX, IMAGE_PLACEHOLDER,
                               IMAGE_TOKEN_INDEX)
from mmllava.content_specials import (encode_keeping_text,
                                      holds_special_string, keeps_text)
from mmllava.templates import (GPT, HUMAN, IM_END, IM_START, QWEN_SYSTEM,
                               ChatTemplate)
from mmllava.templates.placeholders import (image_first_once,
                                            move_image_to_front)
from mmllava.templates.turns import checked_turns

ROLES = {HUMAN: 'user', GPT: 'assistant'}


def chatml_token_ids(tokenizer) -> tuple[int, int]:
    """``<|im_start|>`` and ``<|im_end|>`` ids; a tokenizer without them
    (not a Qwen / ChatML one) is an error."""
    ids = tokenizer.convert_tokens_to_ids([IM_START, IM_END])
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError(
            f'Template qwen_1_5 needs a ChatML tokenizer with {IM_START} and '
            f'{IM_END} tokens; {type(tokenizer).__name__} '
            f'({tokenizer.name_or_path!r}) has no such tokens.')
    return ids[0], ids[1]


def image_first(message: str) -> str:
    """LLaVA-NeXT's ``preprocess_multimodal``: a message that starts with
    ``<image>`` stays as it is; in any other the image moves to the front
    as ``<image>\\n``."""
    if message.startswith(IMAGE_PLACEHOLDER):
        return message
    return move_image_to_front(message)


def tokenize_chatml_training(conversations: Sequence[dict],
                             template: ChatTemplate,
                             tokenizer,
                             has_image: bool,
                             sample_id: Optional[object] = None,
                             special_tokens_in_content: str = 'text',
                             num_images: int = 1
                             ) -> tuple[list[int], list[int]]:
    """Tokenize a training conversation as LLaVA-NeXT's ``preprocess_qwen``.

    A record with several images (LLaVA-NeXT-Interleave) is tokenized as the
    interleave release's ``preprocess_qwen`` does: a message's lone
    ``<image>`` moves to its front, several stay in place, and every
    ``<image>`` becomes the image and a newline between the message's text
    pieces, each tokenized on its own.

    Args:
        conversations (Sequence[dict]): The record's turns.
        template (ChatTemplate): The ChatML template (its turn checks apply).
        tokenizer: A Qwen (ChatML) tokenizer; Qwen adds no BOS.
        has_image (bool): Whether the record has an image.
        sample_id: Named in errors.
        special_tokens_in_content (str): ``'text'`` (special-token strings
            in messages become ordinary sub-word ids) or ``'special'`` (they
            become special tokens, as in the official code). Defaults to
            ``'text'``.
        num_images (int): How many images the record has, when it has any.
            Defaults to 1.

    Returns:
        tuple[list[int], list[int]]: ``input_ids`` and ``labels``.
    """
    # Turn order, empty turns and where <image> may stand are checked as for
    # every template.
    turns = checked_turns(conversations, template, has_image,
                          sample_id=sample_id, num_images=num_images)
    im_start, im_end = chatml_token_ids(tokenizer)
    as_text = keeps_text(special_tokens_in_content)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)['input_ids']

    def encode_message(message: str) -> list[int]:
        # Every special-token string of a message is the message's own.
        if as_text and holds_special_string(tokenizer, message,
                                            [(0, len(message))]):
            return encode_keeping_text(tokenizer, message, [],
                                       add_special_tokens=False,
                                       sample_id=sample_id)[0]
        return encode(message)

    newline = encode('\n')
    input_ids: list[int] = []
    labels: list[int] = []

    def add(ids: list[int], supervised: bool) -> None:
        input_ids.extend(ids)
        labels.extend(ids if supervised else [IGNORE_INDEX] * len(ids))

    def add_turn(role: str, pieces: list[tuple[list[int], bool]]) -> None:
        add([im_start], True)
        add(encode(role) + newline, False)
        for ids, supervised in pieces:
            add(ids, supervised)
        add([im_end] + newline, True)

    add_turn('system', [(encode(QWEN_SYSTEM), False)])
    for turn in turns:
        message = turn['value']
        if turn['from'] == GPT:
            add_turn(ROLES[GPT], [(encode_message(message), True)])
            continue
        chunks = [message]
        if has_image and IMAGE_PLACEHOLDER in message:
            chunks = (image_first_once(message) if num_images > 1
                      else image_first(message)).split(IMAGE_PLACEHOLDER)
            if num_images == 1 and len(chunks) > 2:
                raise ValueError(
                    f'Sample {sample_id!r}: a message starting with '
                    f'{IMAGE_PLACEHOLDER} holds another one; template '
                    f'{template.name!r} takes one image per message in a '
                    'record with one image.')
        pieces = [(encode_message(chunks[0]), False)]
        for chunk in chunks[1:]:
            pieces += [([IMAGE_TOKEN_INDEX] + newline, False),
                       (encode_message(chunk), False)]
        add_turn(ROLES[HUMAN], pieces)
    return input_ids, labels
