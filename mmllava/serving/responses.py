"""OpenAI response bodies: ``chat.completion``, ``chat.completion.chunk``
and server-sent events."""
import json
import time
import uuid
from typing import Optional, Sequence

from mmllava.serving.streaming import RowResult


def new_completion_id() -> str:
    return f'chatcmpl-{uuid.uuid4().hex}'


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return dict(prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens)


def choice_logprobs(result: RowResult) -> Optional[dict]:
    return None if result.logprobs is None else {'content': result.logprobs,
                                                 'refusal': None}


def completion_body(completion_id: str, model: str, created: int,
                    results: Sequence[RowResult], prompt_tokens: int) -> dict:
    """A whole ``chat.completion``, one choice per result; the prompt is
    counted once, as OpenAI counts it for ``n`` choices."""
    return {
        'id': completion_id, 'object': 'chat.completion', 'created': created,
        'model': model,
        'choices': [{'index': index,
                     'message': {'role': 'assistant', 'content': result.text},
                     'logprobs': choice_logprobs(result),
                     'finish_reason': result.finish_reason}
                    for index, result in enumerate(results)],
        'usage': usage(prompt_tokens, sum(result.completion_tokens
                                          for result in results)),
    }


def chunk_body(completion_id: str, model: str, created: int, delta: dict,
               finish_reason: Optional[str] = None,
               usage_counts: Optional[dict] = None, index: int = 0,
               logprobs: Optional[dict] = None) -> dict:
    """A ``chat.completion.chunk`` of choice ``index``; with
    ``usage_counts`` it is the final usage chunk, which has no choices."""
    chunk = {'id': completion_id, 'object': 'chat.completion.chunk',
             'created': created, 'model': model}
    if usage_counts is not None:
        chunk.update(choices=[], usage=usage_counts)
    else:
        chunk['choices'] = [{'index': index, 'delta': delta,
                             'logprobs': logprobs,
                             'finish_reason': finish_reason}]
    return chunk


def sse(data) -> str:
    """One server-sent event; ``data`` is a dict (sent as JSON) or the
    closing ``[DONE]``."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f'data: {payload}\n\n'


def now() -> int:
    return int(time.time())
