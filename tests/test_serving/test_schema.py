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
    (b'[1]', 422, None, 'object'),
    (body(model=None), 422, 'model', 'string'),
    (body(messages=[]), 422, 'messages', 'at least 1'),
    (body(messages=[{'role': 'robot', 'content': 'x'}]), 422,
     'messages[0].role', "'user'"),
    (body(messages=[{'role': 'user', 'content': [
        {'type': 'text', 'text': 'a'},
        {'type': 'image_url', 'image_url': {'url': 5}}]}]), 422,
     'messages[0].content[1].image_url.url', 'string'),
    (body(messages=[{'role': 'user', 'content': [{'type': 'video'}]}]), 422,
     'messages[0].content[0]', "'video'"),
    (body(max_tokens='5'), 422, 'max_tokens', 'integer'),
    (body(max_tokens=0), 422, 'max_tokens', 'greater than or equal to 1'),
    (body(temperature=3), 422, 'temperature', 'less than or equal to 2'),
    (body(n=2), 422, 'n', 'less than or equal to 1'),
    (body(stop=['a', 'b', 'c', 'd', 'e']), 422, 'stop', 'at most 4'),
    (body(max_tokens=3, max_completion_tokens=4), 422, 'max_tokens',
     'differ'),
    (body(seed=1), 422, 'seed', 'Extra inputs'),
])
def test_malformed_requests_get_openai_error_bodies(data, status, param,
                                                    text):
    error = error_of(data)
    assert error.status == status
    assert error.param == param
    assert text in error.message
    assert set(error.body()['error']) == {'message', 'type', 'param', 'code'}
    assert error.body()['error']['type'] == 'invalid_request_error'
