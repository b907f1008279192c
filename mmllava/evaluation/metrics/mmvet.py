"""MM-Vet: open answers graded 0 to 1 by a judge model with the official
few-shot prompt, averaged per capability."""
import json
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmllava.evaluation.judge import ask_judge, check_judge
from mmllava.evaluation.metrics.fields import required_field
from mmllava.registry import METRICS

#: The grader prompt of MM-Vet's ``mm-vet_evaluator.py``.
GRADER_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""  # noqa: E501
RETRY_SUFFIX = '\nPredict the correctness of the answer (digit): '
#: Replies read per answer: the official loop reads five, each retry 0.5
#: warmer from the third on, and scores 0 after them (it sends a sixth
#: request whose reply it never reads; that one is not sent here).
READ_REQUESTS = 5


def grader_prompt(question: str, answer: str, prediction: str,
                  retry: bool = False) -> str:
    """The official request text; ``retry`` for the requests after an
    unreadable reply."""
    answer = answer.replace('<AND>', ' <AND> ').replace('<OR>', ' <OR> ')
    text = GRADER_PROMPT + '\n' + ' | '.join(
        [question, answer, prediction, ''])
    return text + RETRY_SUFFIX if retry else text


def read_score(reply: str) -> Optional[float]:
    """The score of a reply as the official loop reads it: the text before
    the first space, a float in [0, 1] ('nan' passes, as there), else
    None."""
    try:
        score = float(reply.split(' ')[0].strip())
    except ValueError:
        return None
    if score > 1.0 or score < 0.0:
        return None
    return score


def request_temperature(number: int) -> float:
    """The temperature of request ``number`` (from 0): 0, 0, 0.5, 1, ..."""
    return max(0, number - 1) * 0.5


def grade(items: Dict[str, dict], judge: dict) -> Dict[str, dict]:
    """Grade every answer: ``{id: {"question", "answer", "prediction"}}`` ->
    ``{id: {"score", "requests", "failed"}}``. Requests go out in rounds
    (all answers' first requests, then the retries of the unreadable ones),
    each reply cached; ``failed`` marks an answer that scored 0 because no
    reply was readable."""
    grades = {}
    pending = dict(items)
    for number in range(READ_REQUESTS):
        if not pending:
            break
        prompts = {key: (grader_prompt(item['question'], item['answer'],
                                       item['prediction'], retry=number > 0),
                         number, dict(temperature=request_temperature(number),
                                      max_tokens=3))
                   for key, item in pending.items()}
        replies = ask_judge(judge, prompts)
        for key, reply in replies.items():
            score = read_score(reply)
            if score is not None:
                grades[key] = dict(score=score, requests=number + 1,
                                   failed=False)
                del pending[key]
    for key in pending:
        grades[key] = dict(score=0.0, requests=READ_REQUESTS, failed=True)
    return grades


@METRICS.register_module()
class MMVetMetric(BaseMetric):
    """MM-Vet scores (percent): the judge's mean correctness overall
    (``total``) and per capability (``rec``, ``ocr``, ``know``, ``gen``,
    ``spat``, ``math``: the mean over the questions needing it), as
    MM-Vet's ``mm-vet_evaluator.py`` with one run, unrounded. Also
    ``graded`` and ``grade_failed`` (answers the judge never gave a
    readable score: 0, as there).

    Reads ``pred_text``, ``question_id``, ``question``, ``gt_answer`` and
    ``capability``.

    Args:
        judge (dict): The grader endpoint and its reply cache (see
            :func:`~mmllava.evaluation.judge.ask_judge`); the official
            grader is ``gpt-4-0613``.
        results_file (str, optional): Also write ``{id: answer}`` json, the
            input of the official evaluator and its online grader.
        collect_device (str): Device for gathering results across ranks.
        prefix (str, optional): Defaults to ``'mm-vet'``.
        collect_dir (str, optional): Shared folder for gathering results.
    """
    default_prefix = 'mm-vet'

    def __init__(self,
                 judge: Optional[dict] = None,
                 results_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device, prefix, collect_dir)
        check_judge(judge, 'MMVetMetric')
        if judge is None and results_file is None:
            raise ValueError('MMVetMetric needs a judge (MM-Vet is graded by '
                             'a language model) or a results_file to grade '
                             'elsewhere')
        self.judge = judge
        self.results_file = results_file

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        owner = 'MMVetMetric'
        for sample in data_samples:
            self.results.append(dict(
                id=str(required_field(sample, 'question_id', owner)),
                question=required_field(sample, 'question', owner),
                answer=required_field(sample, 'gt_answer', owner),
                prediction=str(sample.get('pred_text')),
                capability=list(required_field(sample, 'capability',
                                               owner))))

    def compute_metrics(self, results: List[dict]) -> dict:
        if self.results_file is not None:
            folder = os.path.dirname(self.results_file)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(self.results_file, 'w', encoding='utf-8') as file:
                json.dump({r['id']: r['prediction'] for r in results}, file,
                          ensure_ascii=False, indent=1)
        if self.judge is None:
            return {}
        grades = grade({r['id']: r for r in results}, self.judge)
        totals: Dict[str, List[float]] = defaultdict(list)
        for r in results:
            score = grades[r['id']]['score']
            totals['total'].append(score)
            for capability in set(r['capability']):
                totals[capability].append(score)
        metrics = {name: 100 * sum(scores) / len(scores)
                   for name, scores in totals.items()}
        metrics['graded'] = len(grades)
        metrics['grade_failed'] = sum(g['failed'] for g in grades.values())
        return metrics
