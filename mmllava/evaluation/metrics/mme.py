"""MME scores (yes/no questions, two per image)."""
from collections import defaultdict
from typing import Any, Dict, List, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.evaluation.metrics.fields import required_field
from mmllava.registry import METRICS

# The subtask names as in MME's eval_tool/calculation.py.
PERCEPTION = ('existence', 'count', 'position', 'color', 'posters',
              'celebrity', 'scene', 'landmark', 'artwork', 'OCR')
COGNITION = ('commonsense_reasoning', 'numerical_calculation',
             'text_translation', 'code_reasoning')


def parse_mme_answer(pred_text: str) -> str:
    """'yes', 'no' or 'other', as MME's ``calculation.py`` reads an answer:
    lower-cased, exactly 'yes' / 'no', else 'yes' or 'no' within its first
    four characters ('yes' looked for first)."""
    answer = pred_text.lower()
    if answer in ('yes', 'no'):
        return answer
    prefix = answer[:4]
    if 'yes' in prefix:
        return 'yes'
    if 'no' in prefix:
        return 'no'
    return 'other'


def subtask_scores(correct: List[bool],
                   image_ids: List[str]) -> Dict[str, float]:
    """``acc`` (percent of questions right), ``acc_plus`` (percent of
    images with all their questions right; MME asks two per image) and
    ``score`` = acc + acc_plus, for one subtask."""
    image_correct: Dict[str, bool] = {}
    for flag, image_id in zip(correct, image_ids):
        image_correct[image_id] = image_correct.get(image_id, True) and flag
    acc = 100 * sum(correct) / len(correct)
    acc_plus = 100 * sum(image_correct.values()) / len(image_correct)
    return dict(acc=acc, acc_plus=acc_plus, score=acc + acc_plus)


@METRICS.register_module()
class MMEMetric(BaseMetric):
    """MME's official scores.

    Reads ``pred_text``, ``gt_answer`` ('Yes' / 'No'), ``category`` (the
    subtask, e.g. 'existence', 'OCR', 'code_reasoning') and ``image_id``
    (the image file name, which pairs a subtask's two questions). Answers
    are read by :func:`parse_mme_answer`; 'other' is wrong.

    Returns, per subtask present, ``{subtask}/acc``, ``{subtask}/acc_plus``
    and ``{subtask}/score``; ``perception`` (sum of the scores of the
    perception subtasks present, at most 2000) and ``cognition`` (the same
    over the cognition subtasks, at most 800) when any is present.

    Args:
        collect_device (str): Device for gathering results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``, 'mme'.
        collect_dir (str, optional): Shared folder for gathering results
            when ``collect_device`` is 'cpu'. Defaults to None.
    """
    default_prefix = 'mme'

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Mark each answer correct or not."""
        for sample in data_samples:
            answer = required_field(sample, 'gt_answer', 'MMEMetric')
            self.results.append(dict(
                correct=(parse_mme_answer(sample.get('pred_text'))
                         == answer.lower()),
                category=required_field(sample, 'category', 'MMEMetric'),
                image_id=required_field(sample, 'image_id', 'MMEMetric')))

    def compute_metrics(self, results: List[dict]) -> dict:
        by_subtask: Dict[str, List[dict]] = defaultdict(list)
        for r in results:
            by_subtask[r['category']].append(r)
        metrics = {}
        task_scores = {}
        for subtask, group in by_subtask.items():
            scores = subtask_scores([r['correct'] for r in group],
                                    [r['image_id'] for r in group])
            task_scores[subtask] = scores['score']
            metrics.update({f'{subtask}/{name}': value
                            for name, value in scores.items()})
        for name, subtasks in (('perception', PERCEPTION),
                               ('cognition', COGNITION)):
            present = [task_scores[t] for t in subtasks if t in task_scores]
            if present:
                metrics[name] = sum(present)
        return metrics
