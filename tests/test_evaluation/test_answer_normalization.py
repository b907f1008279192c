"""``mmllava/evaluation/metrics/answer_normalization.py``: the official VQA
answer normalisation, checked rule by rule on hand-made answers."""
import pytest

from mmllava.evaluation.metrics.answer_normalization import (
    normalize_answer, process_digit_article, process_punctuation)


@pytest.mark.parametrize('text, expected', [
    # A mark inside a word becomes a space...
    ('black-and-white', 'black and white'),
    ('red,blue', 'red blue'),
    # ...one next to a space is deleted.
    ('yes !', 'yes '),
    # '(' touches no space: a space; ')' does: deleted.
    ('(left) side', ' left side'),
    # A digit-comma-digit deletes every mark, so numbers keep together.
    ('1,000 (about)', '1000 about'),
    # A period goes unless a digit follows it.
    ('5.', '5'),
    ('2.5', '2.5'),
    ('e.g.', 'eg'),
    ('', ''),
])
def test_process_punctuation(text, expected):
    assert process_punctuation(text) == expected


@pytest.mark.parametrize('text, expected', [
    ('The Two dogs', '2 dogs'),
    ('none', '0'),
    ('an apple', 'apple'),
    ('a  ten', '10'),
    ('dont know', "don't know"),
    ('isnt', "isn't"),
    ('the', ''),
])
def test_process_digit_article(text, expected):
    assert process_digit_article(text) == expected


@pytest.mark.parametrize('text, expected', [
    ('Two.', '2'),
    ('  The   Cat\t', 'cat'),
    ('\nyes\n', 'yes'),
    ('Yes!', 'yes'),
    ('What?', 'what'),
    # Commas go before the punctuation step.
    ('1,000', '1000'),
    # EvalAIAnswerProcessor splits the possessive off (official: no).
    ("Man's hat", "man 's hat"),
    ('The answer is 3.5.', 'answer is 3.5'),
    ('', ''),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected
