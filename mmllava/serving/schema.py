"""The subset of OpenAI's chat-completions request that the server accepts,
validated with pydantic; a malformed request becomes an :class:`APIError`
(400 ``invalid_request_error``, as OpenAI and vLLM answer)."""
import logging
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmllava.serving.errors import APIError

logger = logging.getLogger(__name__)

#: Fields clients send that change nothing here: accepted and ignored.
IGNORED_FIELDS = ('user', 'metadata')
#: Unknown fields fail loudly (a field the server would ignore is a bug in
#: the client's request); JSON types are not coerced ("1" is not 1).
STRICT = ConfigDict(extra='forbid', strict=True)


class TextPart(BaseModel):
    model_config = STRICT
    type: Literal['text']
    text: str


class ImageURL(BaseModel):
    model_config = STRICT
    url: str
    # Accepted for compatibility: the model's image processor decides the
    # resolution.
    detail: Literal['auto', 'low', 'high'] = 'auto'


class ImagePart(BaseModel):
    model_config = STRICT
    type: Literal['image_url']
    image_url: ImageURL


ContentPart = Annotated[Union[TextPart, ImagePart],
                        Field(discriminator='type')]


class Message(BaseModel):
    model_config = STRICT
    role: Literal['system', 'developer', 'user', 'assistant']
    content: Union[str, list[ContentPart]]


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body.

    ``temperature`` None means the model's ``generation_cfg`` (greedy for
    the recipes here); ``max_tokens`` and ``max_completion_tokens`` are the
    same limit under its old and new name.
    """

    model_config = STRICT
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    stop: Union[str, list[str], None] = None
    n: int = Field(1, ge=1, le=128)
    seed: Optional[int] = None
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    # vLLM's extensions: -1 (vLLM's "off") and 0 keep every token.
    top_k: int = Field(0, ge=-1)
    min_tokens: int = Field(0, ge=0)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)
    # Accepted and ignored (see IGNORED_FIELDS).
    user: Optional[str] = None
    metadata: Optional[dict[str, str]] = None

    @property
    def stops(self) -> list[str]:
        """``stop`` as a list."""
        return [self.stop] if isinstance(self.stop, str) else self.stop or []

    @property
    def token_limit(self) -> Optional[int]:
        """The requested limit on generated tokens, under either name."""
        return self.max_completion_tokens or self.max_tokens


def field_path(location: tuple) -> str:
    """pydantic's error location as OpenAI names a param
    (``messages[0].content[1].image_url.url``).

    pydantic adds the union branch it tried (``str``, ``list[...]``) and,
    for a content part, the matched ``type`` tag; neither is a field.
    """
    path, after_part_index = '', False
    for index, part in enumerate(location):
        if isinstance(part, int):
            path += f'[{part}]'
            after_part_index = index > 0 and \
                str(location[index - 1]).startswith('list[tagged-union')
            continue
        if part in ('str', 'int', 'float') or '[' in part or after_part_index:
            after_part_index = False
            continue
        path += f'.{part}' if path else part
    return path


def describe_failure(error: ValidationError) -> tuple[str, str]:
    """The deepest failure (the branch the client most likely meant) as
    ``(param, message)``; failures of every branch at one place are
    joined."""
    failures: dict[str, list[str]] = {}
    depth: dict[str, int] = {}
    for item in error.errors(include_url=False):
        param = field_path(item['loc'])
        message = 'this server does not support this field' \
            if item['type'] == 'extra_forbidden' else item['msg']
        failures.setdefault(param, []).append(message)
        depth[param] = max(depth.get(param, 0), len(item['loc']))
    param = max(failures, key=lambda name: (name.count('.') + name.count('['),
                                            depth[name]))
    return param, ', or '.join(dict.fromkeys(failures[param]))


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Validate a request body.

    Raises:
        APIError: 400 for a body that is not JSON or does not match the
            schema (naming the field at fault).
    """
    try:
        request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            if item['type'] == 'json_invalid':
                raise APIError(400, f'The body is not valid JSON: '
                               f'{item["msg"]}', code='invalid_json') from None
        param, message = describe_failure(error)
        raise APIError(400, f'{param or "body"}: {message}',
                       param=param or None,
                       code='invalid_value') from None
    if len(request.stops) > 4 or not all(request.stops):
        raise APIError(400, 'stop: give at most 4 non-empty strings.',
                       param='stop', code='invalid_value')
    if request.max_tokens is not None and \
            request.max_completion_tokens is not None and \
            request.max_tokens != request.max_completion_tokens:
        raise APIError(400, 'max_tokens and max_completion_tokens differ; '
                       'give one of them.', param='max_tokens',
                       code='invalid_value')
    if request.stream_options is not None and not request.stream:
        raise APIError(400, 'stream_options: only allowed with "stream": '
                       'true.', param='stream_options', code='invalid_value')
    if request.top_logprobs is not None and not request.logprobs:
        raise APIError(400, 'top_logprobs: needs "logprobs": true.',
                       param='top_logprobs', code='invalid_value')
    for name in IGNORED_FIELDS:
        if getattr(request, name) is not None:
            logger.debug('Ignoring the request field %r.', name)
    return request
