"""``mmllava/serving/app.py`` served by uvicorn, read with the official
``openai`` client: answers equal ``ChatSession`` / ``inference_model``
batched or not, and every limit answers with its status and error body."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from mmllava.apis import ChatSession, inference_model
from mmllava.conversation import build_generation_prompt

pytestmark = pytest.mark.usefixtures('one_thread', 'in_workspace')

MODEL = 'llava-tiny_demo_vqa'
MAX_TOKENS = 8
QUESTIONS = ['What is in the image?', 'Describe the colours.']
PHOTOS = ['astronaut', 'coffee', 'chelsea', 'rocket']
API_KEY = 'test-key-123'


@pytest.fixture(scope='module')
def server(serving_model, start_server):
    """Default limits, static batches; a 50 ms gather window so that
    requests sent together reliably meet."""
    return start_server(serving_model, batching='static',
                        gather_window_s=0.05)


@pytest.fixture(scope='module')
def continuous(serving_model, start_server):
    """Default limits and continuous batching."""
    return start_server(serving_model)


@pytest.fixture(scope='module')
def strict(serving_model, start_server):
    """An API key, small caps, one request at a time, one waiting, and
    remote images allowed."""
    return start_server(serving_model, batching='static', api_key=API_KEY,
                        max_batch_size=1,
                        queue_size=1, max_tokens_cap=16,
                        max_image_pixels=1_000_000, max_body_bytes=200_000,
                        allow_remote_images=True)


def client(url: str, api_key: str = 'unused') -> openai.OpenAI:
    return openai.OpenAI(base_url=url + '/v1', api_key=api_key,
                         max_retries=0, timeout=60)


def user_message(text: str, image_url=None) -> dict:
    parts = [{'type': 'image_url', 'image_url': {'url': image_url}}] \
        if image_url else []
    return {'role': 'user', 'content': parts + [{'type': 'text',
                                                 'text': text}]}


def ask(url: str, messages: list, **options):
    return client(url).chat.completions.create(
        model=MODEL, messages=messages, temperature=0, **options)


def session_answer(model, workspace, photo, question, **kwargs) -> str:
    return ChatSession(model, Path(workspace, f'{photo}.png')).ask(
        question, **kwargs)


def post(url: str, body, headers=None, **kwargs) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {'Content-Type': 'application/json', **(headers or {})}
    return httpx.post(url + '/v1/chat/completions', content=data,
                      timeout=60, headers=headers, **kwargs)


def test_a_streamed_answer_equals_the_whole_one_and_chat_session(
        server, serving_model, model_workspace, photo_url):
    url, _ = server
    assert [model.id for model in client(url).models.list()] == [MODEL]
    messages = [user_message(QUESTIONS[0], photo_url('astronaut'))]
    whole = ask(url, messages, max_tokens=MAX_TOKENS)
    chunks = list(ask(url, messages, max_tokens=MAX_TOKENS, stream=True,
                      stream_options={'include_usage': True}))
    expected = session_answer(serving_model, model_workspace, 'astronaut',
                              QUESTIONS[0], max_new_tokens=MAX_TOKENS)
    assert expected and whole.choices[0].message.content == expected
    assert whole.object == 'chat.completion'
    assert whole.choices[0].message.role == 'assistant'
    # The prompt as the LLM sees it: the rendered template, the image
    # placeholder replaced by the config's 36 feature rows.
    prompt_ids = build_generation_prompt(
        [{'from': 'human', 'value': '<image>\n' + QUESTIONS[0]}],
        serving_model.template, serving_model.tokenizer, has_image=True)
    assert whole.usage.prompt_tokens == len(prompt_ids) - 1 + 36
    finish = whole.choices[0].finish_reason
    assert finish in ('stop', 'length')
    assert whole.usage.completion_tokens == MAX_TOKENS if finish == 'length' \
        else whole.usage.completion_tokens < MAX_TOKENS
    assert whole.usage.total_tokens == \
        whole.usage.prompt_tokens + whole.usage.completion_tokens

    assert {chunk.object for chunk in chunks} == {'chat.completion.chunk'}
    assert chunks[0].choices[0].delta.role == 'assistant'
    pieces = [chunk.choices[0].delta.content for chunk in chunks[:-2]]
    assert sum(1 for piece in pieces if piece) > 1, 'nothing streamed'
    assert ''.join(pieces) == expected
    assert chunks[-2].choices[0].finish_reason == finish
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    raw = post(url, dict(model=MODEL, messages=messages, stream=True,
                         max_tokens=2))
    assert raw.headers['content-type'].startswith('text/event-stream')
    assert raw.text.endswith('data: [DONE]\n\n')


@pytest.mark.slow
def test_batched_answers_equal_unbatched_ones_and_the_apis(
        server, serving_model, model_workspace, photo_url):
    url, chat_server = server
    requests = [dict(messages=[user_message(question, photo_url(photo))],
                     max_tokens=MAX_TOKENS - 4 * (index % 2))
                for index, (photo, question) in enumerate(
                    (photo, question) for photo in PHOTOS
                    for question in QUESTIONS)]
    # A stop string and a text-only question share the batch too.
    requests[0]['stop'] = [' ']
    requests.append(dict(messages=[{'role': 'user', 'content': 'Hello?'}],
                         max_tokens=MAX_TOKENS))

    def answer(request) -> str:
        return ask(url, **request).choices[0].message.content

    alone = [answer(request) for request in requests]
    before = chat_server.batcher.stats()
    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(answer, requests))
    after = chat_server.batcher.stats()
    assert after['num_items'] - before['num_items'] == len(requests)
    assert after['num_batches'] - before['num_batches'] < len(requests), \
        'the requests did not share batches'
    assert together == alone

    for index, (photo, question) in enumerate(
            (photo, question) for photo in PHOTOS for question in QUESTIONS):
        expected = session_answer(serving_model, model_workspace, photo,
                                  question, max_new_tokens=MAX_TOKENS
                                  - 4 * (index % 2))
        if index == 0:
            expected = expected.split(' ')[0]
        assert alone[index] == expected, (photo, question)
    assert alone[-1] == ChatSession(serving_model).ask(
        'Hello?', max_new_tokens=MAX_TOKENS)
    # inference_model adds the config's VQA prompt suffix to the question.
    suffix = serving_model.cfg.inference.prompt_suffix
    assert answer(dict(messages=[user_message(
        QUESTIONS[0] + suffix, photo_url('rocket'))],
        max_tokens=MAX_TOKENS)) == inference_model(
            serving_model, str(Path(model_workspace, 'rocket.png')),
            QUESTIONS[0], max_new_tokens=MAX_TOKENS)['pred_answer']


def test_a_multi_turn_conversation_equals_chat_session(
        server, serving_model, model_workspace, photo_url):
    url, _ = server
    session = ChatSession(serving_model,
                          Path(model_workspace, 'chelsea.png'))
    first = session.ask(QUESTIONS[0], max_new_tokens=MAX_TOKENS)
    second = session.ask(QUESTIONS[1], max_new_tokens=MAX_TOKENS)
    # The image part after the text: the template still puts it first.
    messages = [
        {'role': 'user', 'content': [
            {'type': 'text', 'text': QUESTIONS[0]},
            {'type': 'image_url',
             'image_url': {'url': photo_url('chelsea')}}]},
        {'role': 'assistant', 'content': first},
        {'role': 'user', 'content': QUESTIONS[1]}]
    answer = ask(url, messages, max_tokens=MAX_TOKENS)
    assert answer.choices[0].message.content == second


@pytest.mark.parametrize('batching', ['static', 'continuous'])
@pytest.mark.slow
def test_32_concurrent_clients_all_get_complete_answers(
        batching, server, continuous, serving_model, model_workspace,
        photo_url):
    url, chat_server = server if batching == 'static' else continuous
    expected = {photo: session_answer(serving_model, model_workspace, photo,
                                      QUESTIONS[1], max_new_tokens=MAX_TOKENS)
                for photo in PHOTOS}

    def streamed(photo: str) -> str:
        chunks = list(ask(url, [user_message(QUESTIONS[1], photo_url(photo))],
                          max_tokens=MAX_TOKENS, stream=True))
        assert chunks[-1].choices[0].finish_reason in ('stop', 'length')
        return ''.join(chunk.choices[0].delta.content or ''
                       for chunk in chunks)

    def whole(photo: str) -> str:
        answer = ask(url, [user_message(QUESTIONS[1], photo_url(photo))],
                     max_tokens=MAX_TOKENS)
        assert answer.choices[0].finish_reason in ('stop', 'length')
        return answer.choices[0].message.content

    clients = [(streamed if index % 2 else whole, PHOTOS[index % 4])
               for index in range(32)]
    before = chat_server.batcher.stats()
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda job: job[0](job[1]), clients))
    stats = chat_server.batcher.stats()
    assert answers == [expected[photo] for _, photo in clients]
    assert stats['num_items'] - before['num_items'] == 32
    assert stats['largest_batch'] > 1
    if batching == 'static':
        assert stats['num_batches'] - before['num_batches'] < 32


def error_of(response: httpx.Response, status: int, code) -> dict:
    assert response.status_code == status, response.text
    error = response.json()['error']
    assert set(error) == {'message', 'type', 'param', 'code'}
    assert error['code'] == code
    return error


def test_requests_the_server_refuses(server, photo_url):
    url, _ = server
    image = photo_url('coffee')
    error = error_of(post(url, dict(model='gpt-4o', messages=[
        user_message('Hi')])), 404, 'model_not_found')
    assert error['param'] == 'model' and MODEL in error['message']
    error = error_of(post(url, dict(model=MODEL, messages=[user_message(
        'Hi', 'https://example.com/cat.png')])), 400,
        'remote_images_disabled')
    assert error['param'] == 'messages[0].content[0].image_url.url'
    error_of(post(url, dict(model=MODEL, messages=[user_message(
        'Hi', image)], max_tokens=500)), 400, 'context_length_exceeded')
    error_of(post(url, dict(model=MODEL, messages=[
        user_message('Hi'), {'role': 'system', 'content': 'Be brief.'}])),
        400, 'invalid_value')
    error_of(post(url, b'{"model": "x", '), 400, 'invalid_json')
    error = error_of(post(url, dict(model=MODEL, messages=[user_message(
        'Hi')], temperature='hot')), 400, 'invalid_value')
    assert error['param'] == 'temperature'
    error = error_of(post(url, dict(model=MODEL, messages=[user_message(
        'Hi')], logit_bias={'1': 5})), 400, 'invalid_value')
    assert error['param'] == 'logit_bias'
    error_of(post(url, dict(model=MODEL, messages=[user_message('Hi')]),
                  headers={'Content-Type': 'text/plain'}), 415,
             'unsupported_media_type')
    error = error_of(httpx.get(url + '/v1/nothing'), 404, None)
    assert error['type'] == 'not_found_error'
    with pytest.raises(openai.BadRequestError):
        client(url).chat.completions.create(model=MODEL, messages=[
            user_message('Hi')], n=9)


def test_api_key_and_caps(strict, photo_url, model_workspace):
    url, _ = strict
    small = Image.open(Path(model_workspace, 'coffee.png')).resize((64, 48))
    small.save(Path(model_workspace, 'coffee_small.png'))
    message = [user_message('Hi', photo_url('coffee_small'))]
    with pytest.raises(openai.AuthenticationError):
        client(url).models.list()
    with pytest.raises(openai.AuthenticationError):
        client(url, 'wrong-key').chat.completions.create(
            model=MODEL, messages=message)
    headers = {'Authorization': f'Bearer {API_KEY}'}
    error_of(post(url, dict(model=MODEL, messages=message)), 401,
             'invalid_api_key')
    answer = client(url, API_KEY).chat.completions.create(
        model=MODEL, messages=message, max_tokens=16)
    assert answer.choices[0].message.content
    error = error_of(post(url, dict(model=MODEL, messages=message,
                                    max_tokens=17), headers=headers),
                     400, 'max_tokens_exceeded')
    assert error['param'] == 'max_tokens'
    # The astronaut photo's data URL is ~0.7 MB.
    error_of(post(url, dict(model=MODEL, messages=[user_message(
        'Hi', photo_url('astronaut'))]), headers=headers), 413,
        'request_too_large')
    Image.new('RGB', (1001, 1000)).save(Path(model_workspace, 'wide.png'))
    error = error_of(post(url, dict(model=MODEL, messages=[user_message(
        'Hi', photo_url('wide'))]), headers=headers), 413, 'image_too_large')
    assert '1001x1000' in error['message']


def test_remote_images_are_fetched_when_allowed(strict, model_workspace,
                                                photo_url):
    url, _ = strict
    handler = partial(SimpleHTTPRequestHandler, directory=model_workspace)
    handler.log_message = lambda *args: None
    images = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    try:
        remote = f'http://127.0.0.1:{images.server_port}/coffee_small.png'
        answers = [client(url, API_KEY).chat.completions.create(
            model=MODEL, messages=[user_message('Hi', image)], temperature=0,
            max_tokens=6).choices[0].message.content
            for image in (remote, photo_url('coffee_small'))]
        missing = post(url, dict(model=MODEL, messages=[user_message(
            'Hi', remote + '.gone')]),
            headers={'Authorization': f'Bearer {API_KEY}'})
    finally:
        images.shutdown()
    assert answers[0] and answers[0] == answers[1]
    error_of(missing, 400, 'image_fetch_failed')


def test_a_full_queue_answers_503_with_retry_after(strict, serving_model,
                                                   monkeypatch):
    url, chat_server = strict
    entered, release = threading.Event(), threading.Event()
    generate = serving_model.generate_answers

    def held(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return generate(*args, **kwargs)

    monkeypatch.setattr(serving_model, 'generate_answers', held)
    body = dict(model=MODEL, messages=[user_message('Hi')], max_tokens=4)
    headers = {'Authorization': f'Bearer {API_KEY}'}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, url, body, headers=headers)
        assert entered.wait(30)
        waiting = pool.submit(post, url, body, headers=headers)
        deadline = time.monotonic() + 30
        while chat_server.batcher.stats()['waiting'] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = post(url, body, headers=headers)
        release.set()
        statuses = [running.result().status_code,
                    waiting.result().status_code]
    error_of(refused, 503, 'server_overloaded')
    assert int(refused.headers['Retry-After']) >= 1
    assert statuses == [200, 200]


def test_sampled_requests_sample_and_do_not_disturb_greedy_ones(
        server, serving_model, model_workspace, photo_url):
    url, _ = server
    messages = [user_message(QUESTIONS[0], photo_url('coffee'))]
    sampled = dict(messages=messages, max_tokens=MAX_TOKENS, temperature=1.5,
                   top_p=0.95)

    def answer(options: dict) -> str:
        options = {'temperature': 0, **options}
        return client(url).chat.completions.create(
            model=MODEL, **options).choices[0].message.content

    jobs = [sampled] * 4 + [dict(messages=messages, max_tokens=MAX_TOKENS)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(answer, jobs))
    assert len(set(answers[:4])) > 1, 'sampling gave one answer four times'
    assert answers[4] == session_answer(serving_model, model_workspace,
                                        'coffee', QUESTIONS[0],
                                        max_new_tokens=MAX_TOKENS)


def test_what_the_openai_sdk_sends_is_answered(server, photo_url):
    """A system message and the fields SDK users set (seed, penalties, user,
    n, logprobs) through the official client."""
    url, _ = server
    answer = client(url).chat.completions.create(
        model=MODEL, messages=[
            {'role': 'system', 'content': 'You are terse.'},
            user_message(QUESTIONS[0], photo_url('coffee'))],
        temperature=0.8, seed=3, n=2, user='user-1', frequency_penalty=0.5,
        presence_penalty=0.5, logprobs=True, top_logprobs=2,
        max_tokens=MAX_TOKENS, extra_body={'top_k': 20, 'min_tokens': 2})
    assert [choice.index for choice in answer.choices] == [0, 1]
    for choice in answer.choices:
        assert len(choice.logprobs.content) >= 2
        assert len(choice.logprobs.content[0].top_logprobs) == 2
    assert answer.usage.completion_tokens == sum(
        len(choice.logprobs.content) for choice in answer.choices)
