"""``mmllava/evaluation/metrics/vqa_accuracy.py``: the soft score against
ten human answers, and the metric on real data samples."""
import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.vqa_accuracy import vqa_score
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
