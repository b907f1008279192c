"""POPE object-hallucination metrics (yes/no questions)."""
from collections import defaultdict
from typing import Any, Dict, List, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.evaluation.metrics.fields import required_field
from mmllava.registry import METRICS


def pope_answer_is_yes(pred_text: str) -> bool:
    """Read a free answer as yes or no, as LLaVA's ``eval_pope.py`` does.

    Only the first sentence counts (text before the first '.'); with commas
    deleted, it is 'no' if one of its space-separated words is exactly
    'No', 'no' or 'not', and 'yes' otherwise ('No!' and 'NO' read as yes).
    """
    first_sentence = pred_text.split('.')[0].replace(',', '')
    return not {'No', 'no', 'not'} & set(first_sentence.split(' '))


def binary_metrics(preds: List[bool], labels: List[bool]) -> Dict[str, float]:
    """Accuracy, precision, recall, F1 and yes-ratio in percent, with 'yes'
    the positive class. A ratio with a zero denominator is 0 (the official
    script raises ZeroDivisionError there)."""
    tp = sum(p and t for p, t in zip(preds, labels))
    fp = sum(p and not t for p, t in zip(preds, labels))
    fn = sum(t and not p for p, t in zip(preds, labels))
    tn = len(preds) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = (2 * precision * recall / (precision + recall)
          if precision + recall else 0.0)
    return dict(
        accuracy=100 * (tp + tn) / len(preds),
        precision=100 * precision,
        recall=100 * recall,
        f1=100 * f1,
        yes_ratio=100 * sum(preds) / len(preds))


@METRICS.register_module()
class POPEMetric(BaseMetric):
    """POPE accuracy, precision, recall, F1 and yes-ratio (percent).

    Reads ``pred_text``, ``gt_answer`` ('yes' / 'no') and ``category`` (the
    split: adversarial, popular or random). Answers are read by
    :func:`pope_answer_is_yes`.

    Returns ``accuracy``, ``precision``, ``recall``, ``f1`` and
    ``yes_ratio`` over all samples, and the same per category as
    ``{category}/{name}`` (e.g. ``adversarial/f1``). LLaVA's script prints
    the per-split numbers only.

    Args:
        collect_device (str): Device for gathering results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``, 'pope'.
        collect_dir (str, optional): Shared folder for gathering results
            when ``collect_device`` is 'cpu'. Defaults to None.
    """
    default_prefix = 'pope'

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Read each answer as yes or no."""
        for sample in data_samples:
            label = required_field(sample, 'gt_answer', 'POPEMetric')
            self.results.append(dict(
                pred=pope_answer_is_yes(sample.get('pred_text')),
                # LLaVA's script: any label but 'no' is positive.
                label=label.lower() != 'no',
                category=sample.get('category')))

    def compute_metrics(self, results: List[dict]) -> dict:
        metrics = binary_metrics([r['pred'] for r in results],
                                 [r['label'] for r in results])
        by_category: Dict[str, List[dict]] = defaultdict(list)
        for r in results:
            if r['category'] is not None:
                by_category[r['category']].append(r)
        for category, group in by_category.items():
            split = binary_metrics([r['pred'] for r in group],
                                   [r['label'] for r in group])
            metrics.update({f'{category}/{name}': value
                            for name, value in split.items()})
        return metrics
