"""OpenAI response bodies: ``chat.completion``, ``chat.completion.chunk``
and server-sent events."""
import json
import time
import uuid
from typing import Optional

from mmllava.serving.streaming import RowResult


def new_completion_id() -> str:
    return f'chatcmpl-{uuid.uuid4().hex}'


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return dict(prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens)


def completion_body(completion_id: str, model: str, created: int,
                    result: RowResult, prompt_tokens: int) -> dict:
    """A whole ``chat.completion``."""
    return {
        'id': completion_id, 'object': 'chat.completion', 'created': created,
        'model': model,
        'choices': [{'index': 0,
                     'message': {'role': 'assistant', 'content': result.text},
                     'logprobs': None,
                     'finish_reason': result.finish_reason}],
        'usage': usage(prompt_tokens, result.completion_tokens),
    }


def chunk_body(completion_id: str, model: str, created: int, delta: dict,
               finish_reason: Optional[str] = None,
               usage_counts: Optional[dict] = None) -> dict:
    """A ``chat.completion.chunk``; with ``usage_counts`` it is the final
    usage chunk, which has no choices."""
    chunk = {'id': completion_id, 'object': 'chat.completion.chunk',
             'created': created, 'model': model}
    if usage_counts is not None:
        chunk.update(choices=[], usage=usage_counts)
    else:
        chunk['choices'] = [{'index': 0, 'delta': delta, 'logprobs': None,
                             'finish_reason': finish_reason}]
    return chunk


def sse(data) -> str:
    """One server-sent event; ``data`` is a dict (sent as JSON) or the
    closing ``[DONE]``."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f'data: {payload}\n\n'


def now() -> int:
    return int(time.time())
