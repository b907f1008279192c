"""OpenAI chat messages -> LLaVA turns (``{'from': 'human'|'gpt', 'value'}``)
with ``<image>`` where each image part was, and the images' URLs."""
from dataclasses import dataclass, field
from typing import Optional

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.serving.errors import APIError
from mmllava.serving.schema import ImagePart, Message
from mmllava.templates import GPT, HUMAN

ROLES = {'user': HUMAN, 'assistant': GPT}


@dataclass
class Conversation:
    """A request's conversation in LLaVA's format.

    Attributes:
        turns (list[dict]): Alternating human and gpt turns, ending with a
            human turn.
        image_urls (list[str]): The URLs of the conversation's images, in
            order.
        image_params (list[str]): Where each image was in the request
            (named in errors about it).
        system (str, optional): The system and developer messages, joined
            by newlines: the prompt's system prompt in place of the
            template's.
    """

    turns: list[dict]
    image_urls: list[str] = field(default_factory=list)
    image_params: list[str] = field(default_factory=list)
    system: Optional[str] = None


def message_text(message: Message, param: str, conversation: Conversation,
                 max_images: int) -> str:
    """A message's parts joined by newlines, ``<image>`` for each image."""
    if isinstance(message.content, str):
        parts = [message.content]
    else:
        parts = []
        for index, part in enumerate(message.content):
            part_param = f'{param}.content[{index}]'
            if not isinstance(part, ImagePart):
                parts.append(part.text)
                continue
            if message.role != 'user':
                raise APIError(400, f'{part_param}: only user messages may '
                               'hold images.', param=part_param,
                               code='invalid_value')
            if len(conversation.image_urls) >= max_images:
                raise APIError(
                    400, f'{part_param}: this server takes at most '
                    f'{max_images} image(s) per conversation.',
                    param=part_param, code='too_many_images')
            conversation.image_urls.append(part.image_url.url)
            conversation.image_params.append(f'{part_param}.image_url.url')
            parts.append(IMAGE_PLACEHOLDER)
    for text in parts:
        # Literal placeholders in text would count as images.
        if text != IMAGE_PLACEHOLDER and IMAGE_PLACEHOLDER in text:
            raise APIError(400, f'{param}.content: the text holds '
                           f'{IMAGE_PLACEHOLDER}; send images as image_url '
                           'parts.', param=f'{param}.content',
                           code='invalid_value')
    text = '\n'.join(parts)
    if not text.strip():
        raise APIError(400, f'{param}.content is empty.',
                       param=f'{param}.content', code='invalid_value')
    return text


def to_conversation(messages: list[Message],
                    max_images: int = 1) -> Conversation:
    """Turn OpenAI messages into LLaVA turns.

    System (and developer, their newer name) messages come first; their
    text replaces the template's system prompt. User and assistant
    messages then alternate, starting and ending with a user message.
    User messages may hold images, ``max_images`` in all; the template
    places them as in training (a conversation with several keeps a
    message's several ``<image>`` where their parts were, see
    :func:`~mmllava.templates.placeholders.place_images`).

    Raises:
        APIError: 400, naming the message at fault.
    """
    conversation = Conversation(turns=[])
    system = []
    for index, message in enumerate(messages):
        param = f'messages[{index}]'
        if message.role in ('system', 'developer'):
            if conversation.turns:
                raise APIError(400, f'{param}: {message.role} messages must '
                               'come before the first user message.',
                               param=f'{param}.role', code='invalid_value')
            system.append(message_text(message, param, conversation,
                                       max_images))
            continue
        expected = 'user' if len(conversation.turns) % 2 == 0 \
            else 'assistant'
        if message.role != expected:
            raise APIError(400, f'{param}: expected a {expected} message '
                           '(messages alternate user, assistant, starting '
                           f'with user), got {message.role}.',
                           param=f'{param}.role', code='invalid_value')
        conversation.turns.append({
            'from': ROLES[message.role],
            'value': message_text(message, param, conversation,
                                  max_images)})
    if not conversation.turns or conversation.turns[-1]['from'] != HUMAN:
        raise APIError(400, 'The last message must be a user message.',
                       param=f'messages[{len(messages) - 1}].role',
                       code='invalid_value')
    if system:
        conversation.system = '\n'.join(system)
    return conversation
