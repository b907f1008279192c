"""``mmllava/evaluation/metrics/scienceqa.py``: LLaVA's option parsing and
accuracy by subject and image."""
import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.scienceqa import parse_option_letter
from mmllava.registry import METRICS


@pytest.mark.parametrize('pred_text, num_choices, expected', [
    ('B', 4, 'B'),
    ('C. The cat', 4, 'C'),
    ('Because of X. The answer is A.', 2, 'A'),
    ('The answer is E.', 5, 'E'),
    # A letter past the choices reads as none.
    ('E', 4, None),
    ('The answer is C.', 2, None),
    # Two answers read as none.
    ('The answer is A. The answer is B.', 4, None),
    # LLaVA's pattern needs a character after the letter and a capital T.
    ('The answer is B', 4, None),
    ('the answer is B.', 4, None),
    # 'B.' is neither a bare letter nor 'B. ...'.
    ('B.', 4, None),
    ('b', 4, None),
    ('', 4, None),
])
def test_parse_option_letter(pred_text, num_choices, expected):
    assert parse_option_letter(pred_text, num_choices) == expected


def test_metric_from_registry():
    metric = METRICS.build(dict(type='ScienceQAAccuracy'))

    def sample(pred_text, gt_answer, num_choices, category, img_path):
        return DataSample(metainfo=dict(
            pred_text=pred_text, gt_answer=gt_answer, num_choices=num_choices,
            category=category, img_path=img_path))

    metric.process({}, [
        sample('A', 'A', 2, 'natural science', 'a.jpg'),  # right
        sample('The answer is B.', 'A', 3, 'natural science', None),  # wrong
        sample('no idea', 'C', 4, 'social science', 'b.jpg'),  # failed
        sample('B. Paris', 'B', 4, 'language science', 'c.jpg'),  # right
    ])
    assert metric.evaluate(4) == pytest.approx({
        'scienceqa/accuracy': 50.0,  # 2 of 4
        'scienceqa/failed': 1,
        'scienceqa/NAT': 50.0,  # 1 of 2
        'scienceqa/SOC': 0.0,
        'scienceqa/LAN': 100.0,
        'scienceqa/IMG': 200 / 3,  # 2 of the 3 with an image
        'scienceqa/NO_IMG': 0.0,
    })
