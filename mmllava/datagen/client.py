"""An async client for OpenAI-compatible ``/chat/completions`` endpoints.

Every data tool talks to its language model through :class:`ChatClient`:

.. code-block:: python

    async with ChatClient('https://api.openai.com/v1', 'gpt-4o',
                          api_key_env='OPENAI_API_KEY', max_concurrency=8,
                          requests_per_minute=500) as client:
        reply = await client.complete(messages, item='image 42',
                                      temperature=0.2)
        print(reply.content, client.usage.total_tokens)

``messages`` are chat messages as the API takes them; a message's
``content`` may be a string or a list of parts, including images
(``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``).

The API key is read from an environment variable and goes only into the
``Authorization`` header: it is never an argument, and every error text this
module makes has it masked.
"""
import asyncio
import email.utils
import os
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

import httpx

# Statuses worth another try: rate limited, or the server's fault.
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class ChatError(RuntimeError):
    """A request that failed for good; the message names the item.

    Args:
        message (str): What failed.
        status (int, optional): The last HTTP status, if a reply came.
    """

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ChatReply:
    """One completion.

    Args:
        content (str): The assistant message's text.
        finish_reason (str): ``'stop'``, or ``'length'`` when ``max_tokens``
            cut the reply.
        prompt_tokens (int): Tokens billed for the request.
        completion_tokens (int): Tokens billed for the reply.
    """
    content: str
    finish_reason: Optional[str]
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Usage:
    """Running totals over all requests of one client."""
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __str__(self) -> str:
        return (f'{self.requests} requests ({self.retries} retried), '
                f'{self.prompt_tokens} prompt + {self.completion_tokens} '
                f'completion = {self.total_tokens} tokens')


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds
    apart, so no minute holds more than the cap (plus the one at its edge)
    and requests do not come in bursts.

    Args:
        requests_per_minute (float): The cap.
        clock (callable): Seconds, monotonic. Defaults to
            :func:`time.monotonic`.
        sleep (callable): Awaitable sleep. Defaults to :func:`asyncio.sleep`.
    """

    def __init__(self,
                 requests_per_minute: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable] = asyncio.sleep) -> None:
        if requests_per_minute <= 0:
            raise ValueError(f'requests_per_minute must be positive, got '
                             f'{requests_per_minute}')
        self.interval = 60.0 / requests_per_minute
        self.clock = clock
        self.sleep = sleep
        self._next_start = None

    async def acquire(self) -> None:
        """Wait for this request's slot. Slots are reserved before waiting
        (no lock needed in one event loop), so callers queue in order."""
        now = self.clock()
        start = now if self._next_start is None else max(
            now, self._next_start)
        self._next_start = start + self.interval
        if start > now:
            await self.sleep(start - now)


def retry_after_seconds(value: Optional[str],
                        now: Callable[[], float] = time.time
                        ) -> Optional[float]:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, date.timestamp() - now())


class ChatClient:
    """Chat completions with a concurrency limit, a requests-per-minute cap
    and retries.

    Retried: status 408, 429 and 5xx, timeouts and connection errors,
    after ``backoff_base * 2 ** attempt`` seconds (at most ``backoff_max``)
    scaled by a random factor in [0.5, 1] so that clients do not retry in
    step; a ``Retry-After`` header, when sent, sets the wait instead. Other
    statuses (a bad request, a wrong key) fail at once.

    Args:
        base_url (str): The API root, e.g. ``'https://api.openai.com/v1'``
            or ``'http://127.0.0.1:8000/v1'``; ``/chat/completions`` is
            appended.
        model (str): Model name sent with every request.
        api_key_env (str, optional): Environment variable holding the key.
            Unset or empty sends no ``Authorization`` header (local servers).
            Defaults to ``'OPENAI_API_KEY'``.
        max_concurrency (int): Requests in flight at once. Defaults to 8.
        requests_per_minute (float, optional): Cap on request starts,
            retries included. Defaults to no cap.
        max_retries (int): Tries after the first. Defaults to 5.
        timeout (float): Seconds for one request. Defaults to 120.
        backoff_base (float): First backoff in seconds. Defaults to 1.
        backoff_max (float): Longest backoff in seconds. Defaults to 60.
        seed (int, optional): Seeds the backoff jitter.
        sleep (callable): Awaitable sleep, replaceable in tests. Defaults to
            :func:`asyncio.sleep`.
        transport (httpx.AsyncBaseTransport, optional): For tests.
    """

    def __init__(self,
                 base_url: str,
                 model: str,
                 api_key_env: Optional[str] = 'OPENAI_API_KEY',
                 max_concurrency: int = 8,
                 requests_per_minute: Optional[float] = None,
                 max_retries: int = 5,
                 timeout: float = 120.0,
                 backoff_base: float = 1.0,
                 backoff_max: float = 60.0,
                 seed: Optional[int] = None,
                 sleep: Callable[[float], Awaitable] = asyncio.sleep,
                 transport: Optional[httpx.AsyncBaseTransport] = None
                 ) -> None:
        if max_concurrency < 1:
            raise ValueError(f'max_concurrency must be at least 1, got '
                             f'{max_concurrency}')
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.usage = Usage()
        self._key = os.environ.get(api_key_env, '') if api_key_env else ''
        self._sleep = sleep
        self._random = random.Random(seed)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._limiter = (RateLimiter(requests_per_minute, sleep=sleep)
                         if requests_per_minute else None)
        headers = {'Authorization': f'Bearer {self._key}'} if self._key \
            else {}
        self._http = httpx.AsyncClient(
            headers=headers, timeout=timeout, transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency))

    async def __aenter__(self) -> 'ChatClient':
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    def mask(self, text: str) -> str:
        """``text`` with the API key replaced, for messages and logs."""
        return text.replace(self._key, '***') if self._key else text

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` from 0)."""
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        return delay * self._random.uniform(0.5, 1.0)

    async def complete(self, messages: list[dict], item: str,
                       **params) -> ChatReply:
        """One chat completion, retried as the class says.

        Args:
            messages (list[dict]): Chat messages (``role``, ``content``).
            item (str): Names the work item in errors, e.g. ``'image 42'``.
            **params: Other request fields: ``temperature``,
                ``max_tokens``, ``seed``, ...

        Raises:
            ChatError: The request failed for good, or the reply is not a
                chat completion.
        """
        body = dict(model=self.model, messages=messages, **params)
        for attempt in range(self.max_retries + 1):
            if self._limiter is not None:
                await self._limiter.acquire()
            self.usage.requests += 1
            fault, wait, status = None, None, None
            async with self._semaphore:
                try:
                    response = await self._http.post(self.url, json=body)
                except httpx.TimeoutException:
                    fault = 'timed out'
                except httpx.TransportError as error:
                    fault = f'connection failed ({type(error).__name__}: ' \
                        f'{error})'
            if fault is None:
                if response.status_code == 200:
                    return self._read_reply(response, item)
                status = response.status_code
                fault = (f'HTTP {status}: '
                         f'{response.text[:300]!r}')
                if response.status_code not in RETRY_STATUSES:
                    raise ChatError(self.mask(
                        f'{item}: {fault} from {self.url} (not retried)'),
                        response.status_code)
                wait = retry_after_seconds(
                    response.headers.get('retry-after'))
            if attempt == self.max_retries:
                break
            self.usage.retries += 1
            await self._sleep(self.backoff(attempt) if wait is None
                              else wait)
        raise ChatError(self.mask(
            f'{item}: gave up after {self.max_retries + 1} tries at '
            f'{self.url}; last: {fault}'), status)

    def _read_reply(self, response: httpx.Response, item: str) -> ChatReply:
        try:
            data = response.json()
            choice = data['choices'][0]
            content = choice['message']['content']
            if not isinstance(content, str):
                raise TypeError('message content is not a string')
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ChatError(self.mask(
                f'{item}: the reply is not a chat completion ({error}): '
                f'{response.text[:300]!r}')) from None
        usage = data.get('usage') or {}
        reply = ChatReply(content, choice.get('finish_reason'),
                          int(usage.get('prompt_tokens') or 0),
                          int(usage.get('completion_tokens') or 0))
        self.usage.prompt_tokens += reply.prompt_tokens
        self.usage.completion_tokens += reply.completion_tokens
        return reply
