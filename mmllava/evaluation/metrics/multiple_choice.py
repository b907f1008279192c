"""Multiple-choice accuracy per dimension (SEED-Bench, Q-Bench)."""
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.evaluation.judge import ask_judge, check_judge
from mmllava.evaluation.metrics.fields import required_field
from mmllava.evaluation.metrics.mmbench import (JUDGE_TRIES, infer_letter,
                                                judge_prompt)
from mmllava.registry import METRICS

MATCHES = ('exact', 'mmbench')


@METRICS.register_module()
class MultipleChoiceAccuracy(BaseMetric):
    """Accuracy (percent) of option letters, overall and per ``category``.

    ``match='exact'``: the answer is right when it equals the letter, as
    LLaVA's ``convert_seed_for_submission.py`` scores SEED-Bench
    (``row['text'] == answer``: 'A.' or 'A) cat' is wrong). ``'mmbench'``:
    the letter is read as MMBench's evaluator reads it
    (:func:`~mmllava.evaluation.metrics.mmbench.infer_letter`, the
    ``options`` of each sample), with the judge model for the rest when
    one is given (Q-Bench).

    Reads ``pred_text``, ``gt_answer`` and ``category``; ``options`` and
    ``question`` (or ``prompt``) for ``'mmbench'``. Returns ``accuracy``
    (correct / all questions, the official total), ``questions`` and
    ``<category>`` per dimension; with ``'mmbench'`` also ``unread``
    (answers with no letter, judge included).

    Args:
        match (str): ``'exact'`` or ``'mmbench'``. Defaults to 'exact'.
        judge (dict, optional): For ``'mmbench'``, see
            :func:`~mmllava.evaluation.judge.ask_judge`.
        collect_device (str): Device for gathering results across ranks.
        prefix (str, optional): Defaults to ``'multiple-choice'``.
        collect_dir (str, optional): Shared folder for gathering results.
    """
    default_prefix = 'multiple-choice'

    def __init__(self,
                 match: str = 'exact',
                 judge: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device, prefix, collect_dir)
        if match not in MATCHES:
            raise ValueError(f'match must be one of {MATCHES}, got {match!r}')
        if judge is not None and match != 'mmbench':
            raise ValueError("a judge only reads answers with match="
                             "'mmbench'")
        check_judge(judge, 'MultipleChoiceAccuracy')
        self.match = match
        self.judge = judge

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        owner = 'MultipleChoiceAccuracy'
        for sample in data_samples:
            result = dict(
                prediction=sample.get('pred_text'),
                answer=required_field(sample, 'gt_answer', owner),
                category=sample.get('category'))
            if self.match == 'mmbench':
                result['options'] = dict(required_field(sample, 'options',
                                                        owner))
                result['question'] = sample.get('question') or \
                    sample.get('prompt') or ''
            self.results.append(result)

    def _letters(self, results: List[dict]) -> List[Optional[str]]:
        if self.match == 'exact':
            return [r['prediction'] for r in results]
        letters = [infer_letter(str(r['prediction']), r['options'])
                   for r in results]
        todo = {index: judge_prompt(r['question'], r['options'],
                                    str(r['prediction']))
                for index, (r, letter) in enumerate(zip(results, letters))
                if letter is None}
        for attempt in range(JUDGE_TRIES if self.judge else 0):
            if not todo:
                break
            replies = ask_judge(self.judge, {
                index: (prompt, attempt) for index, prompt in todo.items()})
            for index, reply in replies.items():
                letter = infer_letter(reply, results[index]['options'])
                if letter is not None:
                    letters[index] = letter
                    del todo[index]
        return letters

    def compute_metrics(self, results: List[dict]) -> dict:
        letters = self._letters(results)
        correct = [letter == r['answer'] for letter, r in zip(letters,
                                                               results)]
        metrics = dict(accuracy=100 * sum(correct) / len(correct),
                       questions=len(correct))
        if self.match == 'mmbench':
            metrics['unread'] = sum(letter is None for letter in letters)
        groups: Dict[str, List[bool]] = defaultdict(list)
        for flag, r in zip(correct, results):
            if r['category'] is not None:
                groups[r['category']].append(flag)
        metrics.update({name: 100 * sum(flags) / len(flags)
                        for name, flags in groups.items()})
        return metrics
