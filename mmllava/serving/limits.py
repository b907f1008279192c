"""A request's sampling settings and token budget, from what it asks, the
model's ``generation_cfg`` and the server's caps."""
from typing import Optional

from mmllava.serving.engine import Sampling
from mmllava.serving.errors import APIError
from mmllava.serving.schema import ChatCompletionRequest


def sampling_for(request: ChatCompletionRequest, generation_cfg: dict,
                 request_id: str = '') -> Sampling:
    """Sampling settings; without ``temperature`` the model's
    ``generation_cfg`` decides (greedy unless it sets ``do_sample``).

    A seeded sampling request gets its own batch group (``request_id``):
    its answers must not depend on what else is generated with them.
    """
    temperature = request.temperature
    if temperature is None:
        temperature = generation_cfg.get('temperature', 1.0) \
            if generation_cfg.get('do_sample') else 0.0
    shaping = dict(frequency_penalty=request.frequency_penalty,
                   presence_penalty=request.presence_penalty,
                   min_tokens=request.min_tokens)
    if temperature == 0:
        # top_p, top_k and the seed do not change greedy decoding; one key
        # lets all greedy requests share batches.
        return Sampling(**shaping)
    top_p = request.top_p if request.top_p is not None \
        else generation_cfg.get('top_p', 1.0)
    return Sampling(temperature=temperature, top_p=top_p,
                    top_k=max(request.top_k, 0), seed=request.seed,
                    group=request_id if request.seed is not None else None,
                    **shaping)


def max_tokens_for(request: ChatCompletionRequest, generation_cfg: dict,
                   cap: int, prompt_tokens: int,
                   context_length: Optional[int]) -> int:
    """The most tokens to generate.

    Without a limit in the request: the model's ``max_new_tokens``, within
    the cap and what the context leaves.

    Raises:
        APIError: 400 when the request asks for more than the cap or than
            the context leaves, or the prompt alone fills the context.
    """
    room = None if context_length is None else context_length - prompt_tokens
    if room is not None and room < 1:
        raise APIError(400, f'The prompt takes {prompt_tokens} tokens (the '
                       'image counted as its feature rows); the model\'s '
                       f'context holds {context_length}.', param='messages',
                       code='context_length_exceeded')
    requested = request.token_limit
    param = 'max_completion_tokens' if request.max_completion_tokens \
        else 'max_tokens'
    if requested is None:
        default = min(generation_cfg.get('max_new_tokens', cap), cap)
        return default if room is None else min(default, room)
    if requested > cap:
        raise APIError(400, f'{param} is {requested}; this server generates '
                       f'at most {cap} tokens per request.', param=param,
                       code='max_tokens_exceeded')
    if room is not None and requested > room:
        raise APIError(400, f'{param} is {requested}, but the prompt takes '
                       f'{prompt_tokens} of the model\'s {context_length} '
                       f'context tokens, leaving {room}.', param=param,
                       code='context_length_exceeded')
    return requested
