"""OpenAI chat messages -> LLaVA turns (``{'from': 'human'|'gpt', 'value'}``)
with ``<image>`` where the image part was, and the image's URL."""
from dataclasses import dataclass
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
        image_url (str, optional): The URL of the conversation's image.
        image_param (str, optional): Where the image was in the request
            (named in errors about it).
    """

    turns: list[dict]
    image_url: Optional[str] = None
    image_param: Optional[str] = None


def message_text(message: Message, param: str,
                 conversation: Conversation) -> str:
    """A message's parts joined by newlines, ``<image>`` for the image."""
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
            if conversation.image_url is not None:
                raise APIError(
                    400, f'{part_param}: the model takes one image per '
                    f'conversation; the first is at '
                    f'{conversation.image_param}.', param=part_param,
                    code='too_many_images')
            conversation.image_url = part.image_url.url
            conversation.image_param = f'{part_param}.image_url.url'
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


def to_conversation(messages: list[Message]) -> Conversation:
    """Turn OpenAI messages into LLaVA turns.

    The model's chat template has its own system prompt, so system
    messages are refused; user and assistant messages must alternate,
    starting and ending with a user message.

    Raises:
        APIError: 400, naming the message at fault.
    """
    conversation = Conversation(turns=[])
    for index, message in enumerate(messages):
        param = f'messages[{index}]'
        expected = 'user' if index % 2 == 0 else 'assistant'
        if message.role in ('system', 'developer'):
            raise APIError(400, f'{param}: {message.role} messages are not '
                           "supported; the model's chat template sets the "
                           'system prompt.', param=f'{param}.role',
                           code='unsupported_role')
        if message.role != expected:
            raise APIError(400, f'{param}: expected a {expected} message '
                           '(messages alternate user, assistant, starting '
                           f'with user), got {message.role}.',
                           param=f'{param}.role', code='invalid_value')
        conversation.turns.append({
            'from': ROLES[message.role],
            'value': message_text(message, param, conversation)})
    if conversation.turns[-1]['from'] != HUMAN:
        raise APIError(400, 'The last message must be a user message.',
                       param=f'messages[{len(messages) - 1}].role',
                       code='invalid_value')
    return conversation
