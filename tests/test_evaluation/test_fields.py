"""The metrics read their fields from what mmengine's ``Evaluator`` hands
them (plain dicts of each data sample), and a missing field names itself."""
import pytest
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.fields import required_field

SAMPLES = {
    'VQAAccuracy': dict(pred_text='two', gt_answers=['2'] * 10),
    'ExactMatchAccuracy': dict(pred_text='Yes.', gt_answer='yes'),
    'ScienceQAAccuracy': dict(pred_text='B', gt_answer='B', num_choices=3,
                              category='natural science',
                              img_path='x.png'),
    'POPEMetric': dict(pred_text='Yes, there is.', gt_answer='yes',
                       category='random'),
    'MMEMetric': dict(pred_text='Yes', gt_answer='Yes', category='color',
                      image_id='color/1.jpg'),
}


@pytest.mark.parametrize('metric', sorted(SAMPLES))
def test_metric_scores_through_mmengines_evaluator(metric):
    evaluator = Evaluator(dict(type=f'mmllava.{metric}'))
    evaluator.process([DataSample(metainfo=SAMPLES[metric])])
    metrics = evaluator.evaluate(1)
    scores = [value for key, value in metrics.items()
              if key.endswith(('accuracy', '/acc'))]
    assert scores and all(score == 100 for score in scores), metrics


def test_missing_field_names_metric_sample_and_key():
    with pytest.raises(ValueError, match=r'POPEMetric needs "gt_answer".*'
                       r"sample 'q7'"):
        required_field(dict(sample_id='q7', pred_text='yes'), 'gt_answer',
                       'POPEMetric')
