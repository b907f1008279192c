"""Exact-match accuracy of short answers (GQA)."""
from typing import Any, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.registry import METRICS


def normalize_gqa_answer(text: str) -> str:
    """LLaVA's GQA conversion (``convert_gqa_for_eval.py``): trailing
    periods stripped, lower-cased; surrounding spaces stripped too."""
    return text.strip().rstrip('.').strip().lower()


@METRICS.register_module()
class ExactMatchAccuracy(BaseMetric):
    """Exact-match accuracy (percent) as in LLaVA's GQA evaluation.

    Reads ``pred_text`` and ``gt_answer``; both go through
    :func:`normalize_gqa_answer` and must then be equal. Samples without
    ``gt_answer`` are counted as ``unscored`` rather than scored as wrong.

    Returns ``accuracy`` (left out when no sample has ground truth),
    ``{category}/accuracy`` for each ``category`` samples name, and
    ``unscored``.

    Args:
        collect_device (str): Device for gathering results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``, 'gqa'.
        collect_dir (str, optional): Shared folder for gathering results
            when ``collect_device`` is 'cpu'. Defaults to None.
    """
    default_prefix = 'gqa'

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Mark each sample correct or not; ``None`` when it has no
        ground truth."""
        for sample in data_samples:
            gt_answer = sample.get('gt_answer')
            correct: Optional[bool] = None
            if gt_answer is not None:
                correct = (normalize_gqa_answer(sample.get('pred_text'))
                           == normalize_gqa_answer(gt_answer))
            self.results.append(dict(correct=correct,
                                     category=sample.get('category')))

    def compute_metrics(self, results: List[dict]) -> dict:
        scored = [r for r in results if r['correct'] is not None]
        metrics = dict(unscored=len(results) - len(scored))
        if scored:
            metrics['accuracy'] = accuracy(scored)
        for category in sorted({str(r['category']) for r in scored
                                if r['category'] is not None}):
            metrics[f'{category}/accuracy'] = accuracy(
                [r for r in scored if str(r['category']) == category])
        return metrics


def accuracy(results: List[dict]) -> float:
    """Percent of ``results`` marked correct."""
    return 100 * sum(r['correct'] for r in results) / len(results)
