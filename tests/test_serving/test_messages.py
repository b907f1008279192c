"""``mmllava/serving/messages.py``: OpenAI messages -> LLaVA turns."""
import pytest

from mmllava.serving.errors import APIError
from mmllava.serving.messages import to_conversation
from mmllava.serving.schema import Message

IMAGE = {'type': 'image_url', 'image_url': {'url': 'data:one'}}


def messages(*items) -> list[Message]:
    return [Message.model_validate(item) for item in items]


def test_turns_alternate_and_the_image_goes_where_its_part_was():
    conversation = to_conversation(messages(
        {'role': 'user', 'content': [{'type': 'text', 'text': 'Look:'},
                                     IMAGE,
                                     {'type': 'text', 'text': 'What?'}]},
        {'role': 'assistant', 'content': 'A cat.'},
        {'role': 'user', 'content': 'Colour?'}))
    assert conversation.turns == [
        {'from': 'human', 'value': 'Look:\n<image>\nWhat?'},
        {'from': 'gpt', 'value': 'A cat.'},
        {'from': 'human', 'value': 'Colour?'}]
    assert conversation.image_urls == ['data:one']
    assert conversation.image_params == [
        'messages[0].content[1].image_url.url']


def test_several_images_one_per_message_up_to_the_cap():
    items = ({'role': 'user', 'content': [IMAGE, {'type': 'text',
                                                  'text': 'And this?'}]},
             {'role': 'assistant', 'content': 'A cat.'},
             {'role': 'user', 'content': [
                 {'type': 'image_url', 'image_url': {'url': 'data:two'}}]})
    conversation = to_conversation(messages(*items), max_images=2)
    assert conversation.image_urls == ['data:one', 'data:two']
    assert conversation.image_params[1] == \
        'messages[2].content[0].image_url.url'
    with pytest.raises(APIError) as caught:
        to_conversation(messages(*items), max_images=1)
    assert (caught.value.param, caught.value.code) == (
        'messages[2].content[0]', 'too_many_images')
    assert 'at most 1 image' in caught.value.message


def test_several_images_in_one_message_stay_where_their_parts_were():
    conversation = to_conversation(messages(
        {'role': 'user', 'content': [
            {'type': 'text', 'text': 'Compare'}, IMAGE,
            {'type': 'text', 'text': 'with'},
            {'type': 'image_url', 'image_url': {'url': 'data:two'}}]}),
        max_images=2)
    assert conversation.turns == [
        {'from': 'human', 'value': 'Compare\n<image>\nwith\n<image>'}]
    assert conversation.image_urls == ['data:one', 'data:two']
    assert conversation.image_params == [
        'messages[0].content[1].image_url.url',
        'messages[0].content[3].image_url.url']


def test_system_and_developer_messages_become_the_system_prompt():
    conversation = to_conversation(messages(
        {'role': 'system', 'content': 'Be brief.'},
        {'role': 'developer', 'content': [{'type': 'text',
                                           'text': 'Answer in French.'}]},
        {'role': 'user', 'content': 'Hi'}))
    assert conversation.system == 'Be brief.\nAnswer in French.'
    assert conversation.turns == [{'from': 'human', 'value': 'Hi'}]
    assert to_conversation(messages(
        {'role': 'user', 'content': 'Hi'})).system is None


@pytest.mark.parametrize('items, param, code', [
    ([{'role': 'user', 'content': 'Hi'},
      {'role': 'system', 'content': 'Be brief.'}], 'messages[1].role',
     'invalid_value'),
    ([{'role': 'system', 'content': [IMAGE]},
      {'role': 'user', 'content': 'Hi'}], 'messages[0].content[0]',
     'invalid_value'),
    ([{'role': 'user', 'content': 'a'}, {'role': 'user', 'content': 'b'}],
     'messages[1].role', 'invalid_value'),
    ([{'role': 'user', 'content': 'a'},
      {'role': 'assistant', 'content': 'b'}], 'messages[1].role',
     'invalid_value'),
    ([{'role': 'user', 'content': [IMAGE, IMAGE]}], 'messages[0].content[1]',
     'too_many_images'),  # over the default cap of one image
    ([{'role': 'user', 'content': 'what is <image> here'}],
     'messages[0].content', 'invalid_value'),
    ([{'role': 'user', 'content': '  '}], 'messages[0].content',
     'invalid_value'),
])
def test_conversations_the_model_cannot_take_are_400(items, param, code):
    with pytest.raises(APIError) as caught:
        to_conversation(messages(*items))
    assert caught.value.status == 400
    assert (caught.value.param, caught.value.code) == (param, code)
