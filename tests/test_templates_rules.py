"""``mmllava/templates/rules.py``: each rule on its own, a record that
breaks several gets them all, and the paths that raise raise the first."""
import pytest

from mmllava.templates.rules import (BrokenRule, conversation_problems,
                                        record_problems, rendered_turns)
from mmllava.datasets.checks import REASONS, WARNINGS, check_rules
from mmllava.templates import get_template
from mmllava.templates.placeholders import move_image_to_front
from mmllava.templates.turns import checked_turns


def human(value: object) -> dict:
    return {'from': 'human', 'value': value}


def gpt(value: object) -> dict:
    return {'from': 'gpt', 'value': value}


def photo(*turns: dict, record_id: str = 'r1') -> dict:
    """A record with an image."""
    return dict(id=record_id, image='photo.jpg', conversations=list(turns))


def photos(*turns: dict, record_id: str = 'r2') -> dict:
    """A record with two images."""
    return dict(id=record_id, image=['a.jpg', 'b.jpg'],
                conversations=list(turns))


def found(record: object, template=None) -> list[tuple]:
    return [(broken.code, broken.turn)
            for broken in record_problems(record, template)]


GOOD = photo(human('<image>\nWhat is it?'), gpt('A cat.'))

#: name -> (record, its broken rules as (code, turn)).
RULES = {
    'not_an_object': ('a string', [('malformed_fields', None)]),
    'id_not_str_or_int': (dict(GOOD, id=[1]), [('malformed_fields', None)]),
    'image_not_str': (dict(GOOD, image=3), [('malformed_fields', None)]),
    'image_list_empty': (dict(GOOD, image=[]), [('malformed_fields', None)]),
    'image_list_not_str': (dict(GOOD, image=['a.jpg', None]),
                           [('malformed_fields', None)]),
    'no_conversations': (dict(id='r1'), [('malformed_fields', None)]),
    'empty_conversations': (dict(id='r1', conversations=[]),
                            [('malformed_fields', None)]),
    'turn_not_a_dict': (photo(human('<image>\nHi?'), 'Hello.'),
                        [('malformed_fields', 1)]),
    'unknown_role': (photo(human('<image>\nHi?'), {'from': 'user',
                                                   'value': 'x'}),
                     [('malformed_fields', 1)]),
    'value_not_str': (photo(human('<image>\nHi?'), gpt(3)),
                      [('malformed_fields', 1)]),
    'nothing_to_learn': (photo(gpt('Hello!'), human('<image>\nAnyone?')),
                         [('malformed_fields', None)]),
    'out_of_order': (photo(human('<image>\nHi?'), gpt('Hello.'),
                           gpt('Again.')), [('roles_out_of_order', 2)]),
    'unpaired': (photo(human('<image>\nHi?'), gpt('Hello.'), human('And?')),
                 [('unpaired_turn', 2)]),
    'empty_answer': (photo(human('<image>\nHi?'), gpt('')),
                     [('empty_answer', 1)]),
    'blank_question': (dict(id='r1', conversations=[human(' \n'),
                                                    gpt('Hello.')]),
                       [('empty_question', 0)]),
    'placeholder_in_answer': (photo(human('<image>\nHi?'), gpt('<image>')),
                              [('image_count_mismatch', 1)]),
    'no_placeholder': (photo(human('Hi?'), gpt('Hello.')),
                       [('image_count_mismatch', None)]),
    'two_turns_with_placeholders': (
        photo(human('<image>\nHi?'), gpt('Hello.'), human('<image> again?'),
              gpt('Yes.')), [('image_count_mismatch', None)]),
    'nested': (photo(human('What is <im<image>age>?'), gpt('A tag.')),
               [('nested_placeholder', 0)]),
    'merged': (photo(human('<image>\nCompare <image>.'), gpt('Same.')),
               [('placeholders_merged', 0)]),
    # In a text-only record <image> is text, as in the official code.
    'text_only_placeholder': (dict(id='r1', conversations=[
        human('What is <image>?'), gpt('A tag: <image>.')]), []),
    'leading_gpt_dropped': (photo(gpt('Dropped.'), human('<image>\nHi?'),
                                  gpt('Hello.')), []),
    'good': (GOOD, []),
    # Several images: one <image> each, in any human turn, several in one
    # turn kept where they stand (LLaVA-NeXT-Interleave).
    'several_in_one_turn': (photos(human('<image> or <image>?'),
                                   gpt('The first.')), []),
    'several_in_several_turns': (
        photos(human('What is <image>?'), gpt('A cat.'), human('And <image>?'),
               gpt('A dog.')), []),
    'several_too_few': (photos(human('<image>\nHi?'), gpt('Hello.')),
                        [('image_count_mismatch', None)]),
    'several_too_many': (photos(human('<image> <image> <image>'),
                                gpt('Three.')),
                         [('image_count_mismatch', None)]),
    'several_none': (photos(human('Hi?'), gpt('Hello.')),
                     [('image_count_mismatch', None)]),
    'several_in_an_answer': (photos(human('<image> or <image>?'),
                                    gpt('<image>')),
                             [('image_count_mismatch', 1)]),
    'one_in_a_list': (dict(GOOD, image=['photo.jpg']), []),
}


@pytest.mark.parametrize('name', list(RULES))
def test_each_rule(name):
    record, expected = RULES[name]
    assert found(record) == expected


def test_codes_are_the_checkers():
    codes = {code for _, expected in RULES.values() for code, _ in expected}
    assert codes <= set(REASONS) | set(WARNINGS)


def test_template_rule():
    plain = get_template('plain')
    two_rounds = photo(human('<image>\nHi?'), gpt('Hello.'), human('More?'),
                       gpt('No.'))
    assert found(two_rounds, plain) == [('template_mismatch', None)]
    assert found(GOOD, plain) == []
    assert found(two_rounds, get_template('vicuna_v1')) == []
    question = [human('<image>\nHi?')]
    assert list(conversation_problems(question, True, plain,
                                      add_generation_prompt=True)) == []
    broken, = conversation_problems(question, False, plain,
                                    add_generation_prompt=True)
    assert broken.code == 'template_mismatch' and 'image=False' in str(broken)


def test_a_record_breaking_several_rules_gets_them_all():
    record = photo(human(''), gpt('<image> here'), gpt(' '),
                   human('<im<image>age>?'), gpt('Yes.'),
                   record_id='several')
    problems = list(record_problems(record))
    assert [(p.code, p.turn) for p in problems] == [
        ('empty_question', 0), ('image_count_mismatch', 1),
        ('roles_out_of_order', 2), ('empty_answer', 2),
        ('nested_placeholder', 3)]
    assert str(problems[2]) == (
        "Sample 'several': turn 2 is from 'gpt', expected 'human' (turns "
        'must alternate human, gpt)')
    assert str(problems[3]) == "Sample 'several': turn 2 is blank (gpt)"
    assert all(p.sample_id == 'several' for p in problems)


def test_malformed_fields_are_all_listed_and_stop_the_rest():
    record = dict(id=1.5, image=3, conversations=[human(''), gpt(None),
                                                  'text'])
    problems = list(record_problems(record))
    assert [(p.code, p.turn) for p in problems] == [
        ('malformed_fields', None), ('malformed_fields', None),
        ('malformed_fields', 1), ('malformed_fields', 2)]
    assert [p.message for p in problems][:2] == [
        '"id" must be a string or an integer, got float',
        '"image" must be a path string or a non-empty list of path strings']
    assert problems[2].message.startswith(
        'turn 1 must be {"from": "human"|"gpt", "value": str}, got ')


def test_rendering_takes_what_only_a_data_file_refuses():
    """Blank messages, an unanswered last question and ``<image>`` count
    are rules of a data file's records, not of rendering."""
    turns = [human(' '), gpt('Hello.'), human('And?')]
    assert list(conversation_problems(turns, has_image=True)) == []
    assert [p.code for p in conversation_problems(
        turns, has_image=True, record_rules=True)] == [
        'empty_question', 'unpaired_turn', 'image_count_mismatch']


@pytest.mark.parametrize('value', [
    '<image>\nHi?', 'Hi <image>', '<image><image>', '<im<image>age>',
    '<<image>image>?', '<image>\nAnd <im<image>age>?', ' <image> x '])
def test_nested_rule_counts_as_rendering_does(value):
    record = photo(human(value), gpt('Yes.'))
    nested = [p for p in record_problems(record)
              if p.code == 'nested_placeholder']
    rendered = move_image_to_front(value).count('<image>')
    assert bool(nested) == (rendered != 1)
    if nested:
        assert f'holds {rendered} <image>' in nested[0].message


def test_checked_turns_raises_the_first_naming_sample_and_turn():
    turns = [gpt('Dropped.'), human('<image>\nHi?'), gpt(''),
             gpt('<image>')]
    first = next(conversation_problems(turns, True, sample_id='s-9'))
    with pytest.raises(ValueError) as info:
        checked_turns(turns, get_template('vicuna_v1'), True,
                      sample_id='s-9')
    assert str(info.value) == f'{first}.'
    # Turns are counted in the record, the dropped leading one included.
    assert str(info.value) == "Sample 's-9': turn 2 is empty (gpt)."


def test_checked_turns_returns_the_rendered_turns():
    turns = [gpt('Dropped.'), human('<image>\nHi?'), gpt('Hello.')]
    assert checked_turns(turns, get_template('vicuna_v1'), True) == \
        rendered_turns(turns) == turns[1:]


def test_checker_lists_them_all_naming_index_and_id():
    record = photo(human('Hi?'), gpt('<image>'), human('More?'),
                   record_id='x')
    problems = check_rules(record, 4)
    assert [str(p) for p in problems] == [
        "record 4 (id='x'): image_count_mismatch: turn 1 holds <image> in "
        'an answer',
        "record 4 (id='x'): unpaired_turn: turn 2 (human) has no answer "
        'after it',
        "record 4 (id='x'): image_count_mismatch: 0 human turns hold "
        '<image>, the record has 1 image']


def test_broken_rule_names_the_sample():
    broken = BrokenRule('empty_answer', 'turn 1 is empty (gpt)', 7, 1)
    assert str(broken) == 'Sample 7: turn 1 is empty (gpt)'


def test_several_images_count_where_rendering_places_them():
    """A lone ``<image>`` of a turn moves to its front (so a nested tag
    forms one more), several stay; the message names each turn's count."""
    record = photos(human('What is <im<image>age>?'), gpt('A tag.'),
                    human('<image> <image>'), gpt('Two.'), record_id='nest')
    broken, = record_problems(record)
    assert str(broken) == (
        "Sample 'nest': the human turns hold 4 <image> where rendering "
        'places them (turn 0: 2, turn 2: 2), the record has 2 images (one '
        '<image> per image)')


def test_plain_takes_one_image():
    broken, = conversation_problems(
        [human('<image>'), gpt('A caption.')], True, get_template('plain'),
        num_images=2)
    assert broken.code == 'template_mismatch'
    assert 'image=True, 2 images' in str(broken)
