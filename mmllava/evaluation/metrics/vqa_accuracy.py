"""VQA accuracy against ten human answers (VQAv2, TextVQA, VizWiz)."""
from typing import Any, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.evaluation.metrics.answer_normalization import (
    normalize_answer, process_digit_article, process_punctuation)
from mmllava.registry import METRICS


def vqa_score(pred_text: str, gt_answers: Sequence[str]) -> float:
    """The official soft score of one prediction, in [0, 1].

    For each human, the others are a subset of 9 (10 choose 9 subsets);
    the subset scores ``min(#humans in it who gave the prediction / 3, 1)``
    and the score is the mean over subsets, after :func:`normalize_answer`
    on both sides.
    """
    pred = normalize_answer(pred_text)
    answers = [normalize_answer(answer) for answer in gt_answers]
    num_matches = sum(answer == pred for answer in answers)
    # Leaving out a human who gave the prediction leaves one match fewer.
    subset_scores = [
        min((num_matches - (answer == pred)) / 3, 1.0) for answer in answers
    ]
    return sum(subset_scores) / len(subset_scores)


def _strip_whitespace(text: str) -> str:
    return text.replace('\n', ' ').replace('\t', ' ').strip()


def vqa_server_score(pred_text: str, gt_answers: Sequence[str]) -> float:
    """The score the VQAv2 / VizWiz evaluation server gives, in [0, 1].

    The prediction first goes through the submission step (LLaVA's
    ``convert_vqav2_for_submission.py`` / ``convert_vizwiz_for_submission
    .py`` apply :func:`normalize_answer`, which splits "man's" into
    "man 's"); the server's ``vqaEval.py`` then normalises the prediction
    (punctuation, digits and articles) but the human answers only when they
    disagree, and then only their punctuation. So "man's" against ten
    humans of whom some said "man's" scores 0, and 'yes' against ten 'Yes'
    scores 0, where :func:`vqa_score` gives credit.
    """
    submitted = normalize_answer(pred_text)
    pred = process_digit_article(process_punctuation(
        _strip_whitespace(submitted)))
    answers = [_strip_whitespace(answer) for answer in gt_answers]
    if len(set(answers)) > 1:
        answers = [process_punctuation(answer) for answer in answers]
    num_matches = sum(answer == pred for answer in answers)
    subset_scores = [
        min((num_matches - (answer == pred)) / 3, 1.0) for answer in answers
    ]
    return sum(subset_scores) / len(subset_scores)


@METRICS.register_module()
class VQAAccuracy(BaseMetric):
    """VQA accuracy (percent) with the official answer normalisation.

    Reads ``pred_text`` and ``gt_answers`` (the human answers, usually 10)
    from each data sample. Samples without ``gt_answers`` (test-dev
    questions, scored by the benchmark's server) are counted as
    ``unscored`` rather than scored as wrong.

    Returns ``accuracy`` (left out when no sample has ground truth) and
    ``unscored``.

    By default both the prediction and the human answers are normalised as
    LLaVA's TextVQA evaluation does (:func:`vqa_score`). ``server_exact=True``
    scores as the VQAv2 / VizWiz servers do after LLaVA's submission step
    (:func:`vqa_server_score`): the number the papers report for those
    test sets, a little lower.

    Args:
        server_exact (bool): Score as the evaluation server. Defaults to
            False.
        collect_device (str): Device for gathering results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``, 'vqa'.
        collect_dir (str, optional): Shared folder for gathering results
            when ``collect_device`` is 'cpu'. Defaults to None.
    """
    default_prefix = 'vqa'

    def __init__(self,
                 server_exact: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device, prefix, collect_dir)
        self.server_exact = server_exact

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Score each sample; ``None`` marks one without ground truth."""
        for sample in data_samples:
            gt_answers = sample.get('gt_answers')
            score: Optional[float] = None
            if gt_answers:
                score_fn = vqa_server_score if self.server_exact \
                    else vqa_score
                score = score_fn(sample.get('pred_text'), gt_answers)
            self.results.append(dict(score=score))

    def compute_metrics(self, results: List[dict]) -> dict:
        scores = [r['score'] for r in results if r['score'] is not None]
        metrics = dict(unscored=len(results) - len(scores))
        if scores:
            metrics['accuracy'] = 100 * sum(scores) / len(scores)
        return metrics
