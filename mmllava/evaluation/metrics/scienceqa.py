"""ScienceQA multiple-choice accuracy."""
import re
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.evaluation.metrics.fields import required_field
from mmllava.registry import METRICS

# LLaVA's eval_science_qa.py parses against all five letters, then rejects
# a letter beyond the question's number of choices.
OPTIONS = ('A', 'B', 'C', 'D', 'E')
# The unescaped '.' (any character) is LLaVA's.
_ANSWER_IS = re.compile(r'The answer is ([A-Z]).')
# The subjects' abbreviations in the ScienceQA paper's tables.
SUBJECTS = {
    'natural science': 'NAT',
    'social science': 'SOC',
    'language science': 'LAN',
}


def parse_option_letter(pred_text: str, num_choices: int) -> Optional[str]:
    """The option letter of a prediction, as LLaVA's ``eval_science_qa.py``
    reads it, or None if it reads none.

    In order: the bare letter ('B'); a letter opening the text as 'B. ...';
    the only 'The answer is B.' in the text (two of them read as none).
    A letter past ``num_choices`` reads as none.
    """
    if pred_text in OPTIONS:
        letter = pred_text
    elif (len(pred_text) >= 3 and pred_text[0] in OPTIONS
          and pred_text[1:3] == '. '):
        letter = pred_text[0]
    else:
        found = _ANSWER_IS.findall(pred_text)
        letter = found[0] if len(found) == 1 else None
    return letter if letter in OPTIONS[:num_choices] else None


def _percent(flags: List[bool]) -> float:
    return 100 * sum(flags) / len(flags)


@METRICS.register_module()
class ScienceQAAccuracy(BaseMetric):
    """ScienceQA accuracy (percent), overall and by subject and image.

    Reads ``pred_text``, ``gt_answer`` (the letter), ``num_choices``,
    ``category`` (the subject) and ``img_path`` (None for a question
    without an image). The letter is read by :func:`parse_option_letter`;
    a prediction it cannot read is wrong and counted in ``failed``.

    Returns ``accuracy``, ``failed``, ``IMG`` / ``NO_IMG`` (questions with
    / without an image) and one accuracy per subject present: ``NAT``,
    ``SOC``, ``LAN`` (another subject keeps its own name).

    Args:
        collect_device (str): Device for gathering results across ranks,
            'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``, 'scienceqa'.
        collect_dir (str, optional): Shared folder for gathering results
            when ``collect_device`` is 'cpu'. Defaults to None.
    """
    default_prefix = 'scienceqa'

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        """Parse each prediction and mark it correct or not."""
        for sample in data_samples:
            num_choices = required_field(sample, 'num_choices',
                                         'ScienceQAAccuracy')
            letter = parse_option_letter(sample.get('pred_text'),
                                         num_choices)
            answer = required_field(sample, 'gt_answer', 'ScienceQAAccuracy')
            self.results.append(dict(
                correct=letter == answer,
                failed=letter is None,
                category=sample.get('category'),
                has_image=sample.get('img_path') is not None))

    def compute_metrics(self, results: List[dict]) -> dict:
        groups: Dict[str, List[bool]] = defaultdict(list)
        for r in results:
            groups['IMG' if r['has_image'] else 'NO_IMG'].append(r['correct'])
            if r['category'] is not None:
                subject = SUBJECTS.get(r['category'], r['category'])
                groups[subject].append(r['correct'])
        metrics = dict(
            accuracy=_percent([r['correct'] for r in results]),
            failed=sum(r['failed'] for r in results))
        metrics.update({name: _percent(flags)
                        for name, flags in groups.items()})
        return metrics
