"""Few-shot folders, the request messages and the detail instructions."""
import json

import pytest

from mmllava.datagen.parsing import parse_reply
from mmllava.datagen.prompts import (DETAIL_INSTRUCTIONS, SYSTEM_PROMPTS,
                                     build_messages, load_fewshot)


def test_default_examples_parse_as_their_type():
    examples = load_fewshot()
    assert {kind: len(found) for kind, found in examples.items()} == \
        dict(conv=2, detail=2, complex=2)
    for kind, found in examples.items():
        for example in found:
            assert parse_reply(kind, example.response, 'Describe.')
    assert len(DETAIL_INSTRUCTIONS) == len(set(DETAIL_INSTRUCTIONS)) == 16


def test_user_folder_replaces_only_its_types(tmp_path):
    (tmp_path / 'conv').mkdir()
    (tmp_path / 'conv' / 'b.json').write_text(json.dumps(
        dict(context='ctx b', response='Q: b?\nA: b.')))
    (tmp_path / 'conv' / 'a.json').write_text(json.dumps(
        dict(context='ctx a', response='Q: a?\nA: a.')))
    examples = load_fewshot(str(tmp_path))
    assert [e.context for e in examples['conv']] == ['ctx a', 'ctx b']
    assert examples['detail'] == load_fewshot()['detail']


def test_an_example_the_parser_rejects_is_an_error(tmp_path):
    (tmp_path / 'complex').mkdir()
    (tmp_path / 'complex' / 'bad.json').write_text(json.dumps(
        dict(context='ctx', response='Question: why?\nAnswer: because.')))
    with pytest.raises(ValueError, match=r"bad.json: the response is not a "
                       r"valid 'complex' reply: text before the first"):
        load_fewshot(str(tmp_path))


def test_messages_are_system_then_shots_then_the_context():
    examples = load_fewshot()['conv']
    messages = build_messages('conv', 'the context', examples)
    assert messages[0] == dict(role='system', content=SYSTEM_PROMPTS['conv'])
    assert [m['role'] for m in messages[1:]] == \
        ['user', 'assistant'] * len(examples) + ['user']
    assert messages[1]['content'] == examples[0].context
    assert messages[2]['content'] == examples[0].response
    assert messages[-1] == dict(role='user', content='the context')


def test_instructions_in_the_first_user_turn_without_a_system_role():
    examples = load_fewshot()['detail']
    messages = build_messages('detail', 'the context', examples,
                              system_role=False)
    assert messages[0] == dict(role='user', content=(
        SYSTEM_PROMPTS['detail'] + '\n\n' + examples[0].context))
    assert [m['role'] for m in messages] == \
        ['user', 'assistant'] * len(examples) + ['user']
