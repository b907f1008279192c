"""COCO caption metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr."""
import shutil
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.fileio import load
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from mmllava.evaluation.metrics.fields import required_field
from mmllava.registry import METRICS


def check_java() -> None:
    """Fail before scoring, with the fix, when java is missing: otherwise
    pycocoevalcap fails deep inside a subprocess call."""
    if shutil.which('java') is None:
        raise RuntimeError(
            'COCOCaptionMetric needs java: pycocoevalcap runs its PTB '
            'tokenizer and METEOR as java programs, and no `java` is on '
            'PATH. Install a Java runtime, e.g. `apt install default-jre` '
            '(Debian/Ubuntu) or `conda install -c conda-forge openjdk`.')


def score_captions(references: Dict[int, List[str]],
                   predictions: Dict[int, str]) -> Dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of one caption per image
    against its references, in percent (pycocoevalcap's scores times 100).

    Captions are tokenised by pycocoevalcap's ``PTBTokenizer`` (lower-case,
    punctuation dropped), as ``COCOEvalCap`` does. SPICE is left out: it
    downloads Stanford CoreNLP models on its first run.

    Args:
        references (dict): Image id -> its reference captions.
        predictions (dict): Image id -> the predicted caption; the same
            ids as ``references``.
    """
    check_java()
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({image_id: [dict(caption=c) for c in captions]
                              for image_id, captions in references.items()})
    res = tokenizer.tokenize({image_id: [dict(caption=caption)]
                              for image_id, caption in predictions.items()})
    scorers = [(Bleu(4), ['Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4']),
               (Meteor(), ['METEOR']), (Rouge(), ['ROUGE_L']),
               (Cider(), ['CIDEr'])]
    metrics = {}
    for scorer, names in scorers:
        score, _ = scorer.compute_score(gts, res)
        scores = score if isinstance(score, list) else [score]
        metrics.update({name: 100 * s for name, s in zip(names, scores)})
    return metrics


@METRICS.register_module()
class COCOCaptionMetric(BaseMetric):
    """COCO caption metrics of the predicted captions, in percent.

    Reads ``pred_text`` and ``image_id`` from each data sample and scores
    the predicted images against their captions in ``ann_file`` with
    :func:`score_captions`. Scores are pycocoevalcap's times 100, as papers
    report them (CIDEr 115.3); mmpretrain's ``COCOCaption`` returns them
    unscaled (1.153). java must be on PATH (pycocoevalcap needs it); the
    metric checks when it is built, before any generation.

    Returns ``Bleu_1``, ``Bleu_2``, ``Bleu_3``, ``Bleu_4``, ``METEOR``,
    ``ROUGE_L`` and ``CIDEr`` (pycocoevalcap's names).

    Args:
        ann_file (str, optional): COCO-format caption annotations (e.g.
            ``coco_karpathy_test_gt.json``): ``{"images": [...],
            "annotations": [{"image_id", "caption", "id"}, ...]}``. None:
            each sample's ``gt_captions`` are its references (built in
            memory by :class:`~mmllava.datasets.CaptionDataset` and
            ``COCOKarpathyCaptionDataset``).
        collect_device (str): Device for gathering results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``, 'coco-caption'.
        collect_dir (str, optional): Shared folder for gathering results
            when ``collect_device`` is 'cpu'. Defaults to None.
    """
    default_prefix = 'coco-caption'

    def __init__(self, ann_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device, prefix, collect_dir)
        # Fail when the run is set up, not after hours of generation.
        check_java()
        self.ann_file = ann_file

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Keep each sample's image id and caption."""
        for sample in data_samples:
            image_id = required_field(sample, 'image_id',
                                      'COCOCaptionMetric')
            result = dict(image_id=int(image_id),
                          caption=sample.get('pred_text'))
            if self.ann_file is None:
                result['references'] = list(required_field(
                    sample, 'gt_captions', 'COCOCaptionMetric without '
                    'ann_file'))
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        # An image predicted twice is scored once.
        predictions = {r['image_id']: r['caption'] for r in results}
        if self.ann_file is None:
            return score_captions(
                {r['image_id']: r['references'] for r in results},
                predictions)
        references: Dict[int, List[str]] = {}
        for ann in load(self.ann_file)['annotations']:
            if ann['image_id'] in predictions:
                references.setdefault(ann['image_id'], []).append(
                    ann['caption'])
        missing = [i for i in predictions if i not in references]
        if missing:
            raise ValueError(
                f'{len(missing)} predicted images have no caption in '
                f'{self.ann_file}, e.g. image_id {missing[0]}')
        return score_captions(references, predictions)
