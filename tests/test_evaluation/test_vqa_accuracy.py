"""``mmllava/evaluation/metrics/vqa_accuracy.py``: the soft score against
ten human answers, the server-exact mode against the official ``vqaEval.py``
written out below, and the metric on real data samples."""
import re

import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.answer_normalization import (
    CONTRACTIONS, normalize_answer, process_digit_article,
    process_punctuation)
from mmllava.evaluation.metrics.vqa_accuracy import (vqa_score,
                                                     vqa_server_score)
from mmllava.registry import METRICS


@pytest.mark.parametrize('num_agree, expected', [
    # k of 10 humans gave the prediction. Leaving out one of them leaves
    # k-1 matches (k such subsets), leaving out another leaves k (10-k):
    # score = (k * min((k-1)/3, 1) + (10-k) * min(k/3, 1)) / 10.
    (0, 0.0),
    (1, 0.3),  # (1*0 + 9*1/3) / 10
    (2, 0.6),  # (2*1/3 + 8*2/3) / 10
    (3, 0.9),  # (3*2/3 + 7*1) / 10
    (4, 1.0),  # (4*1 + 6*1) / 10
    (10, 1.0),
])
def test_vqa_score_subset_average(num_agree, expected):
    gt_answers = ['cat'] * num_agree + ['dog'] * (10 - num_agree)
    assert vqa_score('cat', gt_answers) == pytest.approx(expected)


def test_vqa_score_normalises_both_sides():
    # 'Two' -> '2', 'the 2.' -> '2', '2' stays: 3 agree -> 0.9.
    gt_answers = ['2', 'the 2.', 'Two'] + ['3'] * 7
    assert vqa_score('Two', gt_answers) == pytest.approx(0.9)
    assert vqa_score('An apple!', ['apple'] * 10) == pytest.approx(1.0)


def test_vqa_score_empty_prediction():
    assert vqa_score('', ['yes'] * 10) == 0.0


def test_metric_from_registry_skips_unscored_and_padding():
    metric = METRICS.build(dict(type='VQAAccuracy'))
    samples = [
        DataSample(metainfo=dict(pred_text='Two',
                                 gt_answers=['2'] * 2 + ['3'] * 8)),  # 0.6
        DataSample(metainfo=dict(pred_text='yes', gt_answers=['yes'] * 10)),
        DataSample(metainfo=dict(pred_text='cat')),  # test-dev: no answers
        # Sampler padding, dropped by evaluate(size=3).
        DataSample(metainfo=dict(pred_text='no', gt_answers=['yes'] * 10)),
    ]
    metric.process({}, samples)
    result = metric.evaluate(3)
    # (0.6 + 1.0) / 2 = 80 %.
    assert result == {'vqa/unscored': 1,
                      'vqa/accuracy': pytest.approx(80.0)}


def test_metric_without_ground_truth_reports_only_the_count():
    metric = METRICS.build(dict(type='VQAAccuracy', prefix='vqav2'))
    metric.process({}, [DataSample(metainfo=dict(pred_text='a')),
                        DataSample(metainfo=dict(pred_text='b',
                                                 gt_answers=None))])
    assert metric.evaluate(2) == {'vqav2/unscored': 2}


# ---- server_exact: the official vqaEval.py (VQA API, used by the VQAv2
# and VizWiz servers), transcribed; the contraction table is the official
# one as data.

OFFICIAL_MANUAL_MAP = {'none': '0', 'zero': '0', 'one': '1', 'two': '2',
                       'three': '3', 'four': '4', 'five': '5', 'six': '6',
                       'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10'}
OFFICIAL_ARTICLES = ['a', 'an', 'the']
OFFICIAL_PERIOD_STRIP = re.compile(r'(?!<=\d)(\.)(?!\d)')
OFFICIAL_COMMA_STRIP = re.compile(r'(\d)(\,)(\d)')
OFFICIAL_PUNCT = [';', r'/', '[', ']', '"', '{', '}', '(', ')', '=', '+',
                  '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!']


def official_process_punctuation(inText):
    outText = inText
    for p in OFFICIAL_PUNCT:
        if (p + ' ' in inText or ' ' + p in inText) or (
                re.search(OFFICIAL_COMMA_STRIP, inText) is not None):
            outText = outText.replace(p, '')
        else:
            outText = outText.replace(p, ' ')
    outText = OFFICIAL_PERIOD_STRIP.sub('', outText, re.UNICODE)
    return outText


def official_process_digit_article(inText):
    outText = []
    tempText = inText.lower().split()
    for word in tempText:
        word = OFFICIAL_MANUAL_MAP.setdefault(word, word)
        if word not in OFFICIAL_ARTICLES:
            outText.append(word)
    for wordId, word in enumerate(outText):
        if word in CONTRACTIONS:
            outText[wordId] = CONTRACTIONS[word]
    return ' '.join(outText)


def official_accuracy(submitted, gt_answers):
    """``VQAEval.evaluate`` for one question."""
    answers = [dict(answer=a, answer_id=i + 1)
               for i, a in enumerate(gt_answers)]
    resAns = submitted
    resAns = resAns.replace('\n', ' ')
    resAns = resAns.replace('\t', ' ')
    resAns = resAns.strip()
    resAns = official_process_punctuation(resAns)
    resAns = official_process_digit_article(resAns)
    gtAcc = []
    gtAnswers = [ans['answer'] for ans in answers]
    if len(set(gtAnswers)) > 1:
        for ansDic in answers:
            ansDic['answer'] = official_process_punctuation(ansDic['answer'])
    for gtAnsDatum in answers:
        otherGTAns = [item for item in answers if item != gtAnsDatum]
        matchingAns = [item for item in otherGTAns
                       if item['answer'] == resAns]
        acc = min(1, float(len(matchingAns)) / 3)
        gtAcc.append(acc)
    return float(sum(gtAcc)) / len(gtAcc)


# (prediction, what LLaVA's submission converter uploads, human answers)
SERVER_CASES = [
    # The issue's cases: the possessive split off by the submission step...
    ("man's", "man 's", ["man's"] * 4 + ['man'] * 6),
    ("man's", "man 's", ["man's"] * 10),
    # ...and ten agreeing humans are not normalised.
    ('yes', 'yes', ['Yes'] * 10),
    ('Yes', 'yes', ['yes'] * 10),
    # Disagreeing humans: their punctuation only, not digits or articles.
    ('two', '2', ['two'] * 5 + ['2'] * 2 + ['3'] * 3),
    ('the dog', 'dog', ['the dog'] * 3 + ['dog'] * 2 + ['cat'] * 5),
    ('black-and-white', 'black and white',
     ['black-and-white'] * 3 + ['black and white'] * 7),
    ('1,000', '1000', ['1,000'] * 4 + ['1000'] * 6),
    ('Two.', '2', ['2'] * 10),
    ('  red\n', 'red', ['red', 'red ', 'Red', 'blue'] + ['red'] * 6),
    ('unanswerable', 'unanswerable', ['unanswerable'] * 7 + ['dog'] * 3),
    ('', '', ['yes'] * 10),
]


@pytest.mark.parametrize('pred, submitted, gt_answers', SERVER_CASES)
def test_server_exact_equals_official_vqa_eval(pred, submitted, gt_answers):
    assert normalize_answer(pred) == submitted
    assert vqa_server_score(pred, gt_answers) == pytest.approx(
        official_accuracy(submitted, gt_answers))


@pytest.mark.parametrize('text', [
    'x.' * 40, 'e.g. 1,000.5 (about)', 'yes !', "man 's", 'a-b c- d'])
def test_punctuation_equals_official(text):
    assert process_punctuation(text) == official_process_punctuation(text)
    assert process_digit_article(text) == \
        official_process_digit_article(text)


def test_server_exact_differs_from_the_default_where_the_issue_says():
    assert vqa_server_score("man's", ["man's"] * 4 + ['man'] * 6) == 0.0
    assert vqa_score("man's", ["man's"] * 4 + ['man'] * 6) == \
        pytest.approx(1.0)
    assert vqa_server_score('yes', ['Yes'] * 10) == 0.0
    assert vqa_score('yes', ['Yes'] * 10) == 1.0


def test_metric_server_exact_mode():
    metric = METRICS.build(dict(type='VQAAccuracy', server_exact=True))
    metric.process({}, [
        DataSample(metainfo=dict(pred_text='yes', gt_answers=['Yes'] * 10)),
        DataSample(metainfo=dict(pred_text='no', gt_answers=['no'] * 10))])
    assert metric.evaluate(2) == {'vqa/unscored': 0,
                                  'vqa/accuracy': pytest.approx(50.0)}
