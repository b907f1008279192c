"""``mmllava/evaluation/metrics/pope.py``: LLaVA's yes/no reading and the
binary metrics, overall and per split."""
import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.pope import binary_metrics, pope_answer_is_yes
from mmllava.registry import METRICS


@pytest.mark.parametrize('pred_text, expected', [
    ('Yes, there is a dog in the image.', True),
    ('No, there is no dog.', False),
    ('There is not a dog.', False),
    ('no', False),
    # Only the first sentence counts.
    ('Yes. There is no cat.', True),
    # Only the exact words No / no / not mean no.
    ('NO', True),
    ('Nope', True),
    ('No, ', False),
    ('', True),
])
def test_pope_answer_is_yes(pred_text, expected):
    assert pope_answer_is_yes(pred_text) is expected


def test_binary_metrics_by_hand():
    preds = [True, True, False, False, True]
    labels = [True, False, False, True, True]
    # TP 2 (0, 4), FP 1 (1), TN 1 (2), FN 1 (3).
    assert binary_metrics(preds, labels) == pytest.approx(dict(
        accuracy=60.0,  # (2 + 1) / 5
        precision=200 / 3,  # 2 / (2 + 1)
        recall=200 / 3,  # 2 / (2 + 1)
        f1=200 / 3,  # precision == recall
        yes_ratio=60.0))  # 3 / 5


def test_binary_metrics_without_yes_predictions_is_zero_not_an_error():
    metrics = binary_metrics([False, False], [True, False])
    assert metrics['precision'] == metrics['recall'] == metrics['f1'] == 0.0
    assert metrics['accuracy'] == 50.0


def test_metric_from_registry_per_category():
    metric = METRICS.build(dict(type='POPEMetric'))
    metric.process({}, [
        DataSample(metainfo=dict(pred_text=text, gt_answer=label,
                                 category=category))
        for text, label, category in [
            ('Yes, it is.', 'yes', 'adversarial'),  # TP
            ('Yes', 'no', 'adversarial'),  # FP
            ('No.', 'no', 'random'),  # TN
            ('There is not.', 'yes', 'random'),  # FN
        ]
    ])
    assert metric.evaluate(4) == pytest.approx({
        'pope/accuracy': 50.0, 'pope/precision': 50.0, 'pope/recall': 50.0,
        'pope/f1': 50.0, 'pope/yes_ratio': 50.0,
        # TP 1, FP 1: precision 1/2, recall 1/1, F1 2*0.5*1/1.5 = 2/3.
        'pope/adversarial/accuracy': 50.0,
        'pope/adversarial/precision': 50.0,
        'pope/adversarial/recall': 100.0,
        'pope/adversarial/f1': 200 / 3,
        'pope/adversarial/yes_ratio': 100.0,
        # TN 1, FN 1: no yes predicted, so precision, recall, F1 are 0.
        'pope/random/accuracy': 50.0,
        'pope/random/precision': 0.0,
        'pope/random/recall': 0.0,
        'pope/random/f1': 0.0,
        'pope/random/yes_ratio': 0.0,
    })
