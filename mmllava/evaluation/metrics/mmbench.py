"""MMBench / MMBench-CN circular accuracy, as the official evaluator scores it.

The official evaluator (OpenCompass' MMBench evaluation, kept in VLMEvalKit's
``multiple_choice.py``) reads a letter from each answer, first from the
letters it contains, then from the option texts it quotes; where it reads
none, a judge model matches the answer to an option. A question counts as
right only if every rotation of its options (the rows ``index + k *
1,000,000``) is answered right.
"""
import csv
import re
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmllava.datasets.mmbench import CIRCULAR_OFFSET, read_tsv
from mmllava.evaluation.judge import ask_judge, check_judge
from mmllava.evaluation.metrics.fields import required_field
from mmllava.registry import METRICS

# Refusals the official evaluator reads as the answer 'Z' (wrong).
REFUSALS = ("Sorry, I can't help with images of people yet.",
            "I can't process this file.",
            "I'm sorry, but without the image provided",
            'Cannot determine the answer')
#: Tries of the judge per answer, as the official evaluator.
JUDGE_TRIES = 3
_CHINESE = re.compile('[\u4e00-\u9fa5]')

JUDGE_PROMPT_EN = (
    'You are an AI assistant who will help me to match '
    'an answer with several options of a single-choice question. '
    'You are provided with a question, several options, and an answer, '
    'and you need to find which option is most similar to the answer. '
    'If the meaning of all options are significantly different from the '
    'answer, output Z. '
    'Your should output a single uppercase character in A, B, C, D (if '
    'they are valid options), and Z. \n'
    'Example 1: \n'
    'Question: What is the main object in image?\nOptions: A. teddy bear '
    'B. rabbit C. cat D. dog\n'
    'Answer: a cute teddy bear\nYour output: A\n'
    'Example 2: \n'
    'Question: What is the main object in image?\nOptions: A. teddy bear '
    'B. rabbit C. cat D. dog\n'
    'Answer: Spider\nYour output: Z\n'
    'Example 3: \n'
    'Question: {}?\nOptions: {}\nAnswer: {}\nYour output: ')
JUDGE_PROMPT_CN = (
    '你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。'
    '你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。'
    '如果所有选项的意义都与答案显著不同，则输出 Z。'
    '你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。'
    '例 1:'
    '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n'
    '例 2: \n'
    '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n'
    '例 3: \n'
    '问题: {}?\n选项: {}\n答案: {}\n输出: ')


def infer_letter(answer: str, options: Dict[str, str]) -> Optional[str]:
    """The letter an answer gives, as the official ``can_infer`` reads it,
    or None.

    First the letters: with ``.()[],:;!*#{}`` turned into spaces, exactly
    one option letter among the words gives that letter; none, and a word
    'Z', gives 'Z'; a known refusal gives 'Z'. Failing that, the option
    texts: exactly one option whose lower-cased text is in the lower-cased
    answer gives its letter.
    """
    for refusal in REFUSALS:
        if refusal in answer:
            return 'Z'
    cleaned = answer
    for char in '.()[],:;!*#{}':
        cleaned = cleaned.replace(char, ' ')
    words = cleaned.split()
    found = [letter for letter in options if letter in words]
    if len(found) == 1:
        return found[0]
    if not found and 'Z' in words:
        return 'Z'
    lowered = answer.lower()
    quoted = [letter for letter, text in options.items()
              if str(text).lower() in lowered]
    return quoted[0] if len(quoted) == 1 else None


def judge_prompt(question: str, options: Dict[str, str],
                 prediction: str) -> str:
    """The official matching prompt; the Chinese one when the question
    holds a Chinese character."""
    option_text = 'There are several options: \n' + ''.join(
        f'{letter}. {text}\n' for letter, text in options.items())
    template = JUDGE_PROMPT_CN if _CHINESE.search(question) \
        else JUDGE_PROMPT_EN
    return template.format(question, option_text, prediction)


def group_rows(rows: Sequence[dict]) -> Dict[int, List[dict]]:
    """Rows by question (``index % 1,000,000``), each group in index order."""
    groups: Dict[int, List[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda row: row['index']):
        groups[row['index'] % CIRCULAR_OFFSET].append(row)
    return dict(groups)


def circular_hits(rows: Sequence[dict],
                  judge: Optional[dict] = None) -> Dict[int, dict]:
    """Whether each question is right in every rotation.

    Args:
        rows (Sequence[dict]): ``index``, ``prediction``, ``answer``,
            ``options`` (letter -> text) and ``question`` of each row.
        judge (dict, optional): See :func:`~mmllava.evaluation.judge.
            ask_judge`. Without one, a question with an answer whose letter
            cannot be read is wrong, as the official ``exact_matching``
            policy.

    Returns:
        dict: question index -> ``hit`` (bool), ``judged`` (answers the
        judge read) and ``judge_failed`` (answers it could not read in
        :data:`JUDGE_TRIES` tries: wrong here, a random letter in the
        official evaluator).
    """
    results = {}
    undecided = {}
    for question, group in group_rows(rows).items():
        letters = [infer_letter(row['prediction'], row['options'])
                   for row in group]
        wrong = any(letter is not None and letter != row['answer']
                    for letter, row in zip(letters, group))
        if wrong or None not in letters:
            results[question] = dict(hit=not wrong, judged=0,
                                     judge_failed=0)
        else:
            undecided[question] = (group, letters)
    if undecided and judge is None:
        for question in undecided:
            results[question] = dict(hit=False, judged=0, judge_failed=0)
        return results
    # The judge reads every answer left; the official evaluator stops at a
    # group's first wrong one, which gives the same hits.
    todo = {(question, position): judge_prompt(
                row['question'], row['options'], row['prediction'])
            for question, (group, letters) in undecided.items()
            for position, (row, letter) in enumerate(zip(group, letters))
            if letter is None}
    read = {}
    for attempt in range(JUDGE_TRIES):
        if not todo:
            break
        replies = ask_judge(judge, {key: (prompt, attempt)
                                    for key, prompt in todo.items()})
        for key, reply in replies.items():
            question, position = key
            options = undecided[question][0][position]['options']
            letter = infer_letter(reply, options)
            if letter is not None:
                read[key] = letter
                del todo[key]
    for question, (group, letters) in undecided.items():
        final = [letter if letter is not None else read.get(
            (question, position), 'Z')
                 for position, letter in enumerate(letters)]
        results[question] = dict(
            hit=all(letter == row['answer']
                    for letter, row in zip(final, group)),
            judged=sum(letter is None for letter in letters),
            judge_failed=sum((question, position) in todo
                             for position in range(len(group))))
    return results


def write_submission(data_file: str, predictions: Dict[int, str],
                     out_file: str) -> None:
    """The upload file of LLaVA's ``convert_mmbench_for_submission.py``: the
    tsv's rows without ``hint``, ``category``, ``source``, ``image``,
    ``comment``, ``l2-category``, with ``prediction`` as the seventh column;
    ``.xlsx`` (needs openpyxl, as the official script) or ``.tsv``."""
    rows = read_tsv(data_file)
    dropped = {'hint', 'category', 'source', 'image', 'comment',
               'l2-category'}
    columns = [c for c in (rows[0] if rows else {}) if c not in dropped]
    columns.insert(min(6, len(columns)), 'prediction')
    table = [[row.get(column) if column != 'prediction'
              else predictions.get(int(row['index'])) for column in columns]
             for row in rows]
    if out_file.endswith('.xlsx'):
        try:
            import openpyxl
        except ImportError:
            raise ImportError('An .xlsx submission file needs openpyxl '
                              '(pip install openpyxl); or name a .tsv '
                              'file.') from None
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(columns)
        for values in table:
            sheet.append(values)
        book.save(out_file)
    else:
        with open(out_file, 'w', encoding='utf-8', newline='') as file:
            writer = csv.writer(file, delimiter='\t')
            writer.writerow(columns)
            writer.writerows([['' if v is None else v for v in values]
                              for values in table])


@METRICS.register_module()
class MMBenchMetric(BaseMetric):
    """MMBench / MMBench-CN circular accuracy (percent).

    Reads ``pred_text``, ``question_id`` (the row index), ``options``,
    ``question``, ``gt_answer`` (the letter), ``category`` and
    ``l2_category`` from each data sample (:class:`MMBenchDataset` gives
    them). Letters are read by :func:`infer_letter`, the rest through the
    judge; a question is right when all its rotations are
    (:func:`circular_hits`).

    Returns ``accuracy`` (over questions), ``questions``, ``judged``,
    ``judge_failed``, ``category/<name>`` and ``l2-category/<name>``.
    Without ground truth (the test split) it returns nothing and only
    writes the submission file.

    Args:
        judge (dict, optional): The judge endpoint and its reply cache, see
            :func:`~mmllava.evaluation.judge.ask_judge`. Without one,
            unreadable answers are wrong (the official ``exact_matching``).
        submission (dict, optional): ``dict(data_file=<the tsv>,
            out_file=<.xlsx or .tsv>)``: write the upload file.
        collect_device (str): Device for gathering results across ranks.
        prefix (str, optional): Defaults to ``'mmbench'``.
        collect_dir (str, optional): Shared folder for gathering results.
    """
    default_prefix = 'mmbench'

    def __init__(self,
                 judge: Optional[dict] = None,
                 submission: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device, prefix, collect_dir)
        check_judge(judge, 'MMBenchMetric')
        if submission is not None and set(submission) != {'data_file',
                                                          'out_file'}:
            raise ValueError('MMBenchMetric: submission must be dict('
                             'data_file=..., out_file=...), got keys '
                             f'{sorted(submission)}')
        self.judge = judge
        self.submission = submission

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        for sample in data_samples:
            self.results.append(dict(
                index=int(required_field(sample, 'question_id',
                                         'MMBenchMetric')),
                prediction=str(sample.get('pred_text')),
                answer=sample.get('gt_answer'),
                options=dict(required_field(sample, 'options',
                                            'MMBenchMetric')),
                question=required_field(sample, 'question', 'MMBenchMetric'),
                category=sample.get('category'),
                l2_category=sample.get('l2_category')))

    def compute_metrics(self, results: List[dict]) -> dict:
        if self.submission is not None:
            write_submission(self.submission['data_file'],
                             {r['index']: r['prediction'] for r in results},
                             self.submission['out_file'])
            print_log(f'MMBench submission written to '
                      f'{self.submission["out_file"]}', logger='current')
        if all(r['answer'] is None for r in results):
            return {}
        missing = [r['index'] for r in results if r['answer'] is None]
        if missing:
            raise ValueError(f'MMBenchMetric: rows {missing[:5]} have no '
                             'answer while others have one')
        hits = circular_hits(results, self.judge)
        main = {}
        for r in sorted(results, key=lambda r: r['index']):
            main.setdefault(r['index'] % CIRCULAR_OFFSET, r)
        metrics = dict(
            accuracy=100 * sum(h['hit'] for h in hits.values()) / len(hits),
            questions=len(hits),
            judged=sum(h['judged'] for h in hits.values()),
            judge_failed=sum(h['judge_failed'] for h in hits.values()))
        for field, name in (('category', 'category'),
                            ('l2_category', 'l2-category')):
            groups: Dict[str, List[bool]] = defaultdict(list)
            for question, hit in hits.items():
                if main[question][field] is not None:
                    groups[main[question][field]].append(hit['hit'])
            metrics.update({f'{name}/{group}': 100 * sum(flags) / len(flags)
                            for group, flags in groups.items()})
        return metrics

