"""Replies -> question/answer pairs, and the reasons bad replies give."""
import pytest

from mmllava.datagen.parsing import ParseError, parse_reply


def test_conversation_turns_may_span_lines():
    reply = ('Q: What is on the table?\n'
             'A: A red ball.\n'
             'It sits near the edge.\n'
             '\n'
             'Q:How many chairs are there?\n'
             '  A: Two.\n')
    assert parse_reply('conv', reply) == [
        ('What is on the table?', 'A red ball.\nIt sits near the edge.'),
        ('How many chairs are there?', 'Two.')]


def test_complex_is_one_pair():
    assert parse_reply('complex', 'Q: Why?\nA: Because.') == \
        [('Why?', 'Because.')]


def test_detail_answers_the_instruction():
    assert parse_reply('detail', '  A tidy room.\n', 'Describe it.') == \
        [('Describe it.', 'A tidy room.')]


@pytest.mark.parametrize('kind, reply, reason', [
    ('conv', '', 'empty'),
    ('conv', 'Sure! Here is a conversation:\nQ: a?\nA: b.',
     'text before the first "Q:"'),
    ('conv', 'A: b.\nQ: a?', 'turn 1 is "A:", expected "Q:"'),
    ('conv', 'Q: a?\nQ: b?\nA: c.', 'turn 2 is "Q:", expected "A:"'),
    ('conv', 'Q: a?\nA: b.\nQ: c?', 'the last question \\(turn 3\\) has no '
     'answer'),
    ('conv', 'Q: a?\nA:\n\nQ: c?\nA: d.', 'turn 2 \\("A:"\\) is empty'),
    ('conv', 'Q: Where is the dog?\nA: At [0.100, 0.200, 0.3, 0.4].',
     'quotes box coordinates'),
    ('complex', 'Q: a?\nA: b.\nQ: c?\nA: d.', 'expected one question and '
     'one answer, got 2 pairs'),
    ('detail', 'Q: What is it?\nA: A room.', 'has Q:/A: turns'),
    ('detail', '   \n', 'empty'),
])
def test_bad_replies_raise_with_the_reason(kind, reply, reason):
    with pytest.raises(ParseError, match=reason):
        parse_reply(kind, reply, 'Describe it.')


def test_unknown_type():
    with pytest.raises(ValueError, match="unknown type 'story'"):
        parse_reply('story', 'text')
