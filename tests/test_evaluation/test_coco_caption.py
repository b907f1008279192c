"""``mmllava/evaluation/metrics/coco_caption.py``: the metric must give
pycocoevalcap's own numbers (times 100), and say so when java is missing."""
import json
import shutil

import pytest
from mmpretrain.structures import DataSample
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from mmllava.registry import METRICS

REFERENCES = {
    1: ['A man riding a brown horse on a beach.',
        'A person rides a horse along the shore.'],
    2: ['Two dogs play with a ball in the park.',
        'A pair of dogs chasing a ball on the grass.'],
    3: ['A red bus parked on a city street.'],  # not predicted
}
PREDICTIONS = {1: 'A man rides a horse on the beach.', 2: ''}


@pytest.fixture
def ann_file(tmp_path):
    annotations = [dict(image_id=image_id, caption=caption, id=index)
                   for index, (image_id, caption) in enumerate(
                       (i, c) for i, cs in REFERENCES.items() for c in cs)]
    path = tmp_path / 'coco_karpathy_test_gt.json'
    path.write_text(json.dumps(dict(
        images=[dict(id=image_id) for image_id in REFERENCES],
        annotations=annotations)))
    return str(path)


def caption_samples(predictions):
    return [DataSample(metainfo=dict(image_id=image_id, pred_text=caption))
            for image_id, caption in predictions.items()]


def pycocoevalcap_scores(references, predictions):
    """The same captions scored directly with pycocoevalcap."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize(
        {i: [{'caption': c} for c in references[i]] for i in predictions})
    res = tokenizer.tokenize(
        {i: [{'caption': c}] for i, c in predictions.items()})
    bleu, _ = Bleu(4).compute_score(gts, res)
    return dict(
        Bleu_1=bleu[0], Bleu_2=bleu[1], Bleu_3=bleu[2], Bleu_4=bleu[3],
        METEOR=Meteor().compute_score(gts, res)[0],
        ROUGE_L=Rouge().compute_score(gts, res)[0],
        CIDEr=Cider().compute_score(gts, res)[0])


# Six java start-ups: tens of seconds on a busy machine.
@pytest.mark.slow
def test_metric_equals_pycocoevalcap(ann_file):
    metric = METRICS.build(dict(type='COCOCaptionMetric', ann_file=ann_file))
    metric.process({}, caption_samples(PREDICTIONS))
    result = metric.evaluate(len(PREDICTIONS))
    expected = pycocoevalcap_scores(REFERENCES, PREDICTIONS)
    assert result == {f'coco-caption/{name}': 100 * value
                      for name, value in expected.items()}
    assert 0 < result['coco-caption/CIDEr']


def test_missing_java_fails_when_the_metric_is_built(ann_file, monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    with pytest.raises(RuntimeError,
                       match=r'needs java.*apt install default-jre'):
        METRICS.build(dict(type='COCOCaptionMetric', ann_file=ann_file))


def test_missing_java_is_checked_again_before_scoring(ann_file, monkeypatch):
    metric = METRICS.build(dict(type='COCOCaptionMetric', ann_file=ann_file))
    metric.process({}, caption_samples(PREDICTIONS))
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    with pytest.raises(RuntimeError, match='needs java'):
        metric.evaluate(len(PREDICTIONS))


def test_prediction_without_reference_is_an_error(ann_file):
    metric = METRICS.build(dict(type='COCOCaptionMetric', ann_file=ann_file))
    metric.process({}, caption_samples({1: 'a horse', 99: 'a cat'}))
    with pytest.raises(ValueError, match='image_id 99'):
        metric.evaluate(2)


# Six java start-ups, as above.
@pytest.mark.slow
def test_references_in_memory_equal_pycocoevalcap():
    """Without ann_file, each sample's gt_captions are its references
    (CaptionDataset builds them from any captions file)."""
    metric = METRICS.build(dict(type='COCOCaptionMetric'))
    metric.process({}, [DataSample(metainfo=dict(
        image_id=image_id, pred_text=caption,
        gt_captions=REFERENCES[image_id]))
        for image_id, caption in PREDICTIONS.items()])
    result = metric.evaluate(len(PREDICTIONS))
    expected = pycocoevalcap_scores(REFERENCES, PREDICTIONS)
    assert result == {f'coco-caption/{name}': 100 * value
                      for name, value in expected.items()}


def test_without_ann_file_a_sample_needs_its_references():
    metric = METRICS.build(dict(type='COCOCaptionMetric'))
    with pytest.raises(ValueError, match='"gt_captions"'):
        metric.process({}, caption_samples({1: 'a horse'}))
