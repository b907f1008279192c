"""``mmllava/serving/schema.py``: what requests pass, and the 4xx bodies of
those that do not."""
import json

import pytest

from mmllava.serving.errors import APIError
from mmllava.serving.schema import parse_chat_request


def body(**fields) -> bytes:
    request = dict(model='m', messages=[{'role': 'user', 'content': 'Hi'}])
    request.update(fields)
    return json.dumps(request).encode()


def error_of(data: bytes) -> APIError:
    with pytest.raises(APIError) as caught:
        parse_chat_request(data)
    return caught.value


def test_a_full_request_parses():
    request = parse_chat_request(body(
        messages=[{'role': 'user', 'content': [
            {'type': 'image_url', 'image_url': {'url': 'data:x'}},
            {'type': 'text', 'text': 'What is it?'}]}],
        stream=True, stream_options={'include_usage': True},
        temperature=0.5, top_p=0.9, max_completion_tokens=7, stop='\n'))
    assert request.stream and request.stream_options.include_usage
    assert request.token_limit == 7
    assert request.stops == ['\n']
    assert request.messages[0].content[0].image_url.url == 'data:x'


@pytest.mark.parametrize('data, status, param, text', [
    (b'{"model": ', 400, None, 'not valid JSON'),
    (b'[1]', 400, None, 'object'),
    (body(model=None), 400, 'model', 'string'),
    (body(messages=[]), 400, 'messages', 'at least 1'),
    (body(messages=[{'role': 'robot', 'content': 'x'}]), 400,
     'messages[0].role', "'user'"),
    (body(messages=[{'role': 'user', 'content': [
        {'type': 'text', 'text': 'a'},
        {'type': 'image_url', 'image_url': {'url': 5}}]}]), 400,
     'messages[0].content[1].image_url.url', 'string'),
    (body(messages=[{'role': 'user', 'content': [{'type': 'video'}]}]), 400,
     'messages[0].content[0]', "'video'"),
    (body(max_tokens='5'), 400, 'max_tokens', 'integer'),
    (body(max_tokens=0), 400, 'max_tokens', 'greater than or equal to 1'),
    (body(temperature=3), 400, 'temperature', 'less than or equal to 2'),
    (body(n=0), 400, 'n', 'greater than or equal to 1'),
    (body(stop=['a', 'b', 'c', 'd', 'e']), 400, 'stop', 'at most 4'),
    (body(max_tokens=3, max_completion_tokens=4), 400, 'max_tokens',
     'differ'),
    (body(response_format={'type': 'json_object'}), 400, 'response_format',
     'does not support'),
    (body(logit_bias={'5': 1}), 400, 'logit_bias', 'does not support'),
    (body(frequency_penalty=3), 400, 'frequency_penalty',
     'less than or equal to 2'),
    (body(top_logprobs=21, logprobs=True), 400, 'top_logprobs',
     'less than or equal to 20'),
    (body(top_logprobs=2), 400, 'top_logprobs', 'logprobs'),
    (body(stream_options={'include_usage': True}), 400, 'stream_options',
     'stream'),
])
def test_malformed_requests_get_openai_error_bodies(data, status, param,
                                                    text):
    error = error_of(data)
    assert error.status == status
    assert error.param == param
    assert text in error.message
    assert set(error.body()['error']) == {'message', 'type', 'param', 'code'}
    assert error.body()['error']['type'] == 'invalid_request_error'


def test_generation_fields_parse_and_harmless_ones_are_ignored(caplog):
    with caplog.at_level('DEBUG', logger='mmllava.serving.schema'):
        request = parse_chat_request(body(
            seed=7, frequency_penalty=0.5, presence_penalty=-0.5, top_k=5,
            min_tokens=2, logprobs=True, top_logprobs=3, n=2,
            user='someone', metadata={'run': 'a'}))
    assert (request.seed, request.top_k, request.min_tokens, request.n) == \
        (7, 5, 2, 2)
    assert (request.frequency_penalty, request.presence_penalty) == \
        (0.5, -0.5)
    assert request.logprobs and request.top_logprobs == 3
    ignored = [record.getMessage() for record in caplog.records]
    assert any("'user'" in line for line in ignored)
    assert any("'metadata'" in line for line in ignored)
