"""``mmllava/evaluation/metrics/exact_match.py``: GQA's exact match."""
import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.exact_match import normalize_gqa_answer
from mmllava.registry import METRICS


@pytest.mark.parametrize('text, expected', [
    ('Yes.', 'yes'),
    (' Left side. ', 'left side'),
    ('etc...', 'etc'),
    # No VQA normalisation: articles and number words stay.
    ('The table', 'the table'),
    ('Two', 'two'),
    ('', ''),
])
def test_normalize_gqa_answer(text, expected):
    assert normalize_gqa_answer(text) == expected


def test_metric_from_registry():
    metric = METRICS.build(dict(type='ExactMatchAccuracy'))
    metric.process({}, [
        DataSample(metainfo=dict(pred_text='Yes.', gt_answer='yes')),
        DataSample(metainfo=dict(pred_text='The table', gt_answer='table')),
        DataSample(metainfo=dict(pred_text='', gt_answer='no')),
        DataSample(metainfo=dict(pred_text='Red')),  # no ground truth
    ])
    # 1 right of 3 scored.
    assert metric.evaluate(4) == {'gqa/unscored': 1,
                                  'gqa/accuracy': pytest.approx(100 / 3)}


def test_accuracy_per_category():
    metric = METRICS.build(dict(type='ExactMatchAccuracy', prefix='demo'))
    metric.process({}, [
        DataSample(metainfo=dict(pred_text='Red', gt_answer='red',
                                 category='color')),
        DataSample(metainfo=dict(pred_text='Blue', gt_answer='red',
                                 category='color')),
        DataSample(metainfo=dict(pred_text='3', gt_answer='3',
                                 category='count')),
    ])
    assert metric.evaluate(3) == {
        'demo/unscored': 0, 'demo/accuracy': pytest.approx(200 / 3),
        'demo/color/accuracy': 50.0, 'demo/count/accuracy': 100.0}
