"""A judge model behind an OpenAI-compatible endpoint, with every reply kept.

Benchmarks that need a language model to read or grade an answer (MMBench's
answer matching when the letter cannot be read, MM-Vet's grader) send their
prompts through :class:`~mmllava.datagen.client.ChatClient`. Every reply is
appended to a jsonl cache, keyed by the judge model, the prompt (which holds
the question and the answer) and the attempt, before it is used: a rerun, or
a run after a kill, asks only what is not there yet.
"""
import asyncio
import hashlib
import json
from typing import Optional

from mmllava.datagen.client import ChatClient, ChatError
from mmllava.datagen.output import AppendOnlyJsonl

JUDGE_KEYS = ('base_url', 'model', 'cache_file', 'api_key_env',
              'max_concurrency', 'temperature', 'max_tokens', 'max_retries',
              'timeout')


def check_judge(judge: Optional[dict], owner: str) -> None:
    """Fail at build time on a judge config with missing or unknown keys."""
    if judge is None:
        return
    if not isinstance(judge, dict):
        raise TypeError(f'{owner}: judge must be a dict, got {judge!r}')
    unknown = sorted(set(judge) - set(JUDGE_KEYS))
    missing = [key for key in ('base_url', 'model', 'cache_file')
               if not judge.get(key)]
    if unknown or missing:
        raise ValueError(f'{owner}: judge needs base_url, model and '
                         f'cache_file (optional: {", ".join(JUDGE_KEYS[3:])})'
                         f'; missing {missing}, unknown {unknown}')


def cache_key(model: str, prompt: str, attempt: int = 0,
              params: Optional[dict] = None) -> str:
    """The cache key of one request."""
    text = f'{model}\n{attempt}\n{json.dumps(params or {}, sort_keys=True)}' \
        f'\n{prompt}'
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def ask_judge(judge: dict, prompts: dict) -> dict:
    """The judge's reply to each prompt, from the cache or asked now.

    Args:
        judge (dict): ``base_url``, ``model``, ``cache_file`` (a ``.jsonl``)
            and optionally ``api_key_env`` (``'OPENAI_API_KEY'``),
            ``max_concurrency`` (8), ``temperature`` (0),
            ``max_tokens``, ``max_retries`` (5), ``timeout`` (120).
        prompts (dict): ``{key: (prompt, attempt)}`` or ``{key: (prompt,
            attempt, params)}`` with request fields of that request
            (``temperature``, ``max_tokens``) over the judge's; the key is
            the caller's own.

    Returns:
        dict: ``{key: reply text}``.

    Raises:
        RuntimeError: Some requests failed for good (after the client's
            retries). The replies that came are in the cache, so a rerun
            asks only the rest.
    """
    return asyncio.run(_ask(judge, prompts))


async def _ask(judge: dict, prompts: dict) -> dict:
    model = judge['model']
    writer = AppendOnlyJsonl(judge['cache_file'], key='key')
    cached = {record['key']: record['reply'] for record in writer.records}
    replies = {}
    pending = {}
    base_params = dict(temperature=judge.get('temperature', 0))
    if judge.get('max_tokens') is not None:
        base_params['max_tokens'] = judge['max_tokens']
    for key, (prompt, attempt, *extra) in prompts.items():
        params = {**base_params, **(extra[0] if extra else {})}
        request_key = cache_key(model, prompt, attempt, params)
        if request_key in cached:
            replies[key] = cached[request_key]
        else:
            pending[key] = (prompt, attempt, params, request_key)
    client = ChatClient(judge['base_url'], model,
                        api_key_env=judge.get('api_key_env',
                                              'OPENAI_API_KEY'),
                        max_concurrency=judge.get('max_concurrency', 8),
                        max_retries=judge.get('max_retries', 5),
                        timeout=judge.get('timeout', 120.0))

    async def one(key, prompt, attempt, params, request_key):
        try:
            reply = await client.complete(
                [dict(role='user', content=prompt)], item=f'judge {key}',
                **params)
        except ChatError as error:
            failures.append(str(error))
            return
        writer.append(dict(key=request_key, model=model, attempt=attempt,
                           params=params, prompt=prompt,
                           reply=reply.content))
        replies[key] = reply.content

    failures = []
    try:
        with writer:
            await asyncio.gather(*(one(key, *request)
                                   for key, request in pending.items()))
    finally:
        await client.aclose()
    if failures:
        raise RuntimeError(
            f'{len(failures)} of {len(pending)} judge requests failed (first:'
            f' {failures[0]}); the {len(pending) - len(failures)} replies '
            f'that came are kept in {judge["cache_file"]}: rerun to ask only '
            'the rest')
    return replies
