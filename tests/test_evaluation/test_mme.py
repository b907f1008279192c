"""``mmllava/evaluation/metrics/mme.py``: MME's answer reading, acc, acc+
and the perception / cognition sums."""
import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.mme import parse_mme_answer, subtask_scores
from mmllava.registry import METRICS


@pytest.mark.parametrize('pred_text, expected', [
    ('Yes', 'yes'),
    ('NO', 'no'),
    ('No.', 'no'),
    ('Yes, it is.', 'yes'),
    ('Not sure', 'no'),
    ('nope', 'no'),
    # 'yes' is looked for before 'no' in the first four characters.
    ('yesno', 'yes'),
    ('There is no dog', 'other'),
    ('I do not know', 'other'),
    ('', 'other'),
])
def test_parse_mme_answer(pred_text, expected):
    assert parse_mme_answer(pred_text) == expected


def test_subtask_scores_by_hand():
    # a.jpg: both right; b.jpg: one of two right.
    scores = subtask_scores([True, True, True, False],
                            ['a.jpg', 'a.jpg', 'b.jpg', 'b.jpg'])
    # acc 3/4, acc+ 1/2 images.
    assert scores == dict(acc=75.0, acc_plus=50.0, score=125.0)


def test_metric_from_registry():
    metric = METRICS.build(dict(type='MMEMetric'))
    metric.process({}, [
        DataSample(metainfo=dict(pred_text=pred, gt_answer=gt,
                                 category=category, image_id=image_id))
        for pred, gt, category, image_id in [
            ('Yes', 'Yes', 'existence', '1.jpg'),
            ('No', 'No', 'existence', '1.jpg'),
            ('Yes', 'Yes', 'existence', '2.jpg'),
            ('No', 'Yes', 'existence', '2.jpg'),
            # The same file name in another subtask is another image.
            ('yes.', 'Yes', 'OCR', '1.jpg'),
            ('no', 'No', 'OCR', '1.jpg'),
            ('Maybe', 'Yes', 'code_reasoning', 'x.png'),  # 'other': wrong
            ('No', 'No', 'code_reasoning', 'x.png'),
        ]
    ])
    assert metric.evaluate(8) == {
        'mme/existence/acc': 75.0,
        'mme/existence/acc_plus': 50.0,
        'mme/existence/score': 125.0,
        'mme/OCR/acc': 100.0,
        'mme/OCR/acc_plus': 100.0,
        'mme/OCR/score': 200.0,
        'mme/code_reasoning/acc': 50.0,
        'mme/code_reasoning/acc_plus': 0.0,
        'mme/code_reasoning/score': 50.0,
        'mme/perception': 325.0,  # existence + OCR
        'mme/cognition': 50.0,
    }
