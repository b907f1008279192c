"""ChatClient against a real local server: the key's one place, retries,
backoff, Retry-After, timeouts, the concurrency limit and the rpm cap."""
import asyncio
import socket
import threading
import time

import pytest

from mmllava.datagen.client import (ChatClient, ChatError, RateLimiter,
                                    retry_after_seconds)
from mmllava.testing.replay_server import ReplayServer, Reply, Status

KEY_ENV = 'MMLLAVA_TEST_API_KEY'


def run(coroutine):
    return asyncio.run(coroutine)


def make_client(server, waits=None, **kwargs) -> ChatClient:
    """A client whose sleeps are recorded in ``waits`` instead of slept."""
    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    kwargs.setdefault('backoff_base', 1.0)
    return ChatClient(server.base_url, 'judge-model', api_key_env=KEY_ENV,
                      sleep=fake_sleep if waits is not None
                      else asyncio.sleep, seed=0, **kwargs)


async def complete(client, messages, **params):
    async with client:
        return await client.complete(messages, 'image 42', **params)


def test_the_key_goes_only_into_the_authorization_header(api_key):
    image_part = dict(type='image_url',
                      image_url=dict(url='data:image/png;base64,iVBORw0K'))
    messages = [dict(role='user', content=[
        dict(type='text', text='What is this?'), image_part])]
    with ReplayServer(lambda body, i: Reply('A cat.', prompt_tokens=7,
                                            completion_tokens=3)) as server:
        client = make_client(server)
        reply = run(complete(client, messages, temperature=0.2))
    assert (reply.content, reply.finish_reason) == ('A cat.', 'stop')
    (request,) = server.requests
    assert request.path == '/v1/chat/completions'
    assert request.headers['authorization'] == f'Bearer {api_key}'
    assert request.body == dict(model='judge-model', messages=messages,
                                temperature=0.2)
    others = {k: v for k, v in request.headers.items()
              if k != 'authorization'}
    assert api_key not in repr(others) + repr(request.body) + request.path
    assert (client.usage.requests, client.usage.prompt_tokens,
            client.usage.completion_tokens) == (1, 7, 3)


def test_no_key_in_the_environment_sends_no_header(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ReplayServer(lambda body, i: Reply('ok')) as server:
        run(complete(make_client(server), [dict(role='user', content='hi')]))
    assert 'authorization' not in server.requests[0].headers


def test_retry_after_is_honoured_then_success(api_key):
    script = [Status(429, {'Retry-After': '7'}), Status(503),
              Reply('done')]
    waits = []
    with ReplayServer(lambda body, i: script[i]) as server:
        client = make_client(server, waits, backoff_base=2.0)
        reply = run(complete(client, [dict(role='user', content='hi')]))
    assert reply.content == 'done'
    assert len(server.requests) == 3
    # 7 s as the server asked, then the 2nd backoff: 2 * 2**1 s scaled by a
    # jitter factor from [0.5, 1].
    assert waits[0] == 7.0
    assert 2.0 <= waits[1] <= 4.0
    assert (client.usage.requests, client.usage.retries) == (3, 2)


def test_backoff_doubles_up_to_the_cap_then_the_error_names_the_item(
        api_key):
    waits = []
    with ReplayServer(lambda body, i: Status(500)) as server:
        client = make_client(server, waits, max_retries=5, backoff_base=1.0,
                             backoff_max=10.0)
        with pytest.raises(ChatError) as error:
            run(complete(client, [dict(role='user', content='hi')]))
    assert len(server.requests) == 6
    for attempt, wait in enumerate(waits):
        full = min(10.0, 2.0**attempt)
        assert full / 2 <= wait <= full
    assert len(waits) == 5
    message = str(error.value)
    assert message.startswith('image 42: gave up after 6 tries')
    assert 'HTTP 500' in message and api_key not in message
    assert error.value.status == 500


def test_a_wrong_key_is_not_retried(api_key):
    with ReplayServer(lambda body, i: Status(401)) as server:
        with pytest.raises(ChatError, match='image 42: HTTP 401.*not '
                           'retried') as error:
            run(complete(make_client(server, []), [dict(role='user',
                                                        content='hi')]))
    assert len(server.requests) == 1 and error.value.status == 401


def test_a_slow_reply_times_out_and_is_retried(api_key):
    script = [Reply('late', delay=1.0), Reply('on time')]
    waits = []
    with ReplayServer(lambda body, i: script[i]) as server:
        client = make_client(server, waits, timeout=0.2)
        reply = run(complete(client, [dict(role='user', content='hi')]))
    assert reply.content == 'on time'
    assert len(waits) == 1 and len(server.requests) == 2


def test_connection_errors_are_retried():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    waits = []

    async def fake_sleep(seconds):
        waits.append(seconds)

    client = ChatClient(f'http://127.0.0.1:{port}/v1', 'm', api_key_env=None,
                        max_retries=2, sleep=fake_sleep)
    with pytest.raises(ChatError, match='gave up after 3 tries.*connection '
                       'failed'):
        run(complete(client, [dict(role='user', content='hi')]))
    assert len(waits) == 2


def test_a_reply_that_is_not_a_completion_is_an_error(api_key):
    with ReplayServer(lambda body, i: Status(200)) as server:
        with pytest.raises(ChatError, match='image 42: the reply is not a '
                           'chat completion'):
            run(complete(make_client(server, []), [dict(role='user',
                                                        content='hi')]))


def test_concurrency_limit(api_key):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def respond(body, index):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return Reply('ok')

    async def many(client):
        async with client:
            await asyncio.gather(*(client.complete(
                [dict(role='user', content=str(i))], f'item {i}')
                for i in range(8)))

    with ReplayServer(respond) as server:
        run(many(make_client(server, max_concurrency=3)))
    assert len(server.requests) == 8 and peak[0] == 3


def test_rate_limiter_spaces_starts_on_a_fake_clock():
    now = [100.0]
    starts = []

    async def fake_sleep(seconds):
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=fake_sleep)

    async def request():
        await limiter.acquire()
        starts.append(now[0])

    async def burst():
        await asyncio.gather(*(request() for _ in range(5)))
        now[0] += 10.0  # idle: the next start is not delayed
        await request()

    run(burst())
    # 120 per minute: one start each 0.5 s, whatever the order of waking.
    assert sorted(starts) == [100.0, 100.5, 101.0, 101.5, 102.0, 112.0]


def test_client_rpm_cap_waits_between_requests(api_key):
    waits = []
    with ReplayServer(lambda body, i: Reply('ok')) as server:
        client = make_client(server, waits, requests_per_minute=6)

        async def three():
            async with client:
                for i in range(3):
                    await client.complete([dict(role='user', content='x')],
                                          f'item {i}')

        run(three())
    # 6 per minute: slots 10 s apart from the first start. The fake sleep
    # does not advance the real clock, so the waits are the slots' offsets
    # (10 s, 20 s) less the real time spent on the requests.
    assert len(waits) == 2
    assert 9.0 < waits[0] <= 10.0 and 19.0 < waits[1] <= 20.0


def test_retry_after_forms():
    assert retry_after_seconds('2.5') == 2.5
    assert retry_after_seconds('Wed, 21 Oct 2015 07:28:10 GMT',
                               now=lambda: 1445412480.0) == 10.0
    assert retry_after_seconds('soon') is None
    assert retry_after_seconds(None) is None
