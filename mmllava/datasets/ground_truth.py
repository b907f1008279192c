"""Ground truth read from the benchmarks' official annotation files.

Each reader takes the annotation file (or folder) and the records of a LLaVA
question file, and returns, for each record in order, its ground-truth fields
(``gt_answers``, ``gt_answer``, ``num_choices``; ``image_id`` for MME). The
records are joined the way LLaVA's evaluation scripts join their answers:

* ``vqav2``: ``v2_mscoco_val2014_annotations.json``, on ``question_id``.
* ``gqa``: ``testdev_balanced_questions.json`` (``{qid: {"answer": ...}}``),
  on ``question_id``.
* ``textvqa``: ``TextVQA_0.5.1_val.json``. LLaVA's question file uses the
  *image* id as ``question_id``, so the join is on (image id, the question
  line of ``text``, lower-cased), as ``eval_textvqa.py``; a record whose
  ``question_id`` is a TextVQA question id is joined on that.
* ``vizwiz``: the VizWiz ``val.json`` list, on the image file name (LLaVA's
  ``question_id`` is a running number).
* ``pope``: the folder of ``coco_pope_{adversarial,popular,random}.json``
  (json lines; ``label`` yes/no). ``eval_pope.py`` pairs answers with labels
  by order within a ``category``; the join here is on (category, image, the
  question line), which gives the same pairs on the official files and also
  works on a subset.
* ``mme``: the ``MME_Benchmark_release_version`` folder. As
  ``convert_answer_to_mme.py``: the subtask is the first part of
  ``question_id`` (``artwork/images/10002.jpg``), the answers are in
  ``<subtask>/questions_answers_YN/<stem>.txt`` (or ``<subtask>/<stem>.txt``
  where there is no ``images`` folder), lines ``question<TAB>Yes|No`` with
  the question ending in ``Please answer yes or no.``. ``image_id`` is the
  ``question_id``: the image whose two questions form an acc+ pair.
* ``scienceqa``: ScienceQA's ``problems.json``, on the pid.
"""
import os.path as osp
import re
from typing import Callable, Hashable, Sequence

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.datasets.records import read_json, read_json_lines
from mmllava.datasets.scienceqa import answer_letter, check_problem

Reader = Callable[[str, Sequence[dict]], list[dict]]


def _get(entry: object, key: str, path: str, where: str) -> object:
    """``entry[key]``, or an error naming the file, the entry and the key."""
    try:
        return entry[key]
    except (KeyError, TypeError, IndexError):
        raise ValueError(f'{path}: {where} has no "{key}"') from None


def _answer_list(entry: dict, path: str, where: str) -> list[str]:
    """VQA-style ``answers``: ``[{"answer": str, ...}, ...]``."""
    answers = _get(entry, 'answers', path, where)
    return [_get(answer, 'answer', path, f'{where}, answer {index}')
            for index, answer in enumerate(answers)]


def question_line(text: str) -> str:
    """The question of a LLaVA question text: its first line that is not the
    OCR reference (TextVQA) or, in the ``OCR tokens: ... Question: ... Short
    answer:`` layout, the part after ``Question:``."""
    text = text.replace(IMAGE_PLACEHOLDER, '').strip()
    match = re.search(r'Question: (.*?) Short answer:', text, re.DOTALL)
    if text.startswith('OCR tokens: ') and match:
        return match.group(1)
    for line in text.split('\n'):
        if not line.startswith('Reference OCR token:'):
            return line
    return text


def _join(path: str, questions: Sequence[dict], table: dict,
          keys_of: Callable[[dict], Sequence[Hashable]]) -> list[dict]:
    """Look each record up under its candidate keys, in order."""
    results = []
    for index, record in enumerate(questions):
        keys = keys_of(record)
        found = next((key for key in keys if key in table), None)
        if found is None:
            raise ValueError(
                f'{path}: no ground truth for question record {index} '
                f'(question_id={record.get("question_id")!r}); looked up '
                f'{" or ".join(repr(key) for key in keys)}')
        results.append(dict(table[found]))
    return results


def read_vqav2(path: str, questions: Sequence[dict]) -> list[dict]:
    """VQAv2 annotations: ``gt_answers``, the 10 human answers."""
    annotations = _get(read_json(path, 'Annotation file'), 'annotations', path, 'the file')
    table = {}
    for index, entry in enumerate(annotations):
        where = f'annotation {index}'
        table[str(_get(entry, 'question_id', path, where))] = dict(
            gt_answers=_answer_list(entry, path, where))
    return _join(path, questions, table,
                 lambda record: (str(record['question_id']), ))


def read_gqa(path: str, questions: Sequence[dict]) -> list[dict]:
    """GQA questions with answers: ``gt_answer``."""
    data = read_json(path, 'Annotation file')
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a json object of questions')
    table = {str(qid): dict(gt_answer=_get(entry, 'answer', path,
                                           f'question {qid!r}'))
             for qid, entry in data.items()}
    return _join(path, questions, table,
                 lambda record: (str(record['question_id']), ))


def read_textvqa(path: str, questions: Sequence[dict]) -> list[dict]:
    """TextVQA annotations: ``gt_answers``, the 10 human answers."""
    data = _get(read_json(path, 'Annotation file'), 'data', path, 'the file')
    table = {}
    for index, entry in enumerate(data):
        where = f'entry {index}'
        fields = dict(gt_answers=list(_get(entry, 'answers', path, where)))
        table[str(_get(entry, 'question_id', path, where))] = fields
        question = _get(entry, 'question', path, where)
        table[(str(_get(entry, 'image_id', path, where)),
               question.lower())] = fields
    return _join(path, questions, table, lambda record: (
        (str(record['question_id']), question_line(record['text']).lower()),
        str(record['question_id'])))


def read_vizwiz(path: str, questions: Sequence[dict]) -> list[dict]:
    """VizWiz annotations: ``gt_answers``, the 10 human answers."""
    data = read_json(path, 'Annotation file')
    if not isinstance(data, list):
        raise ValueError(f'{path}: expected a json list of annotations')
    table = {}
    for index, entry in enumerate(data):
        where = f'annotation {index}'
        image = osp.basename(_get(entry, 'image', path, where))
        table[image] = dict(gt_answers=_answer_list(entry, path, where))
    return _join(path, questions, table,
                 lambda record: (osp.basename(record.get('image', '')), ))


def read_pope(folder: str, questions: Sequence[dict]) -> list[dict]:
    """POPE labels (``coco_pope_<category>.json``): ``gt_answer``."""
    for index, record in enumerate(questions):
        if not isinstance(record.get('category'), str):
            raise ValueError(
                f'POPE question record {index} (question_id='
                f'{record.get("question_id")!r}) has no "category" naming '
                'its split (adversarial, popular or random).')
    table = {}
    for category in sorted({record['category'] for record in questions}):
        path = osp.join(folder, f'coco_pope_{category}.json')
        for index, entry in enumerate(read_json_lines(path, 'Annotation file')):
            where = f'entry {index}'
            key = (category, _get(entry, 'image', path, where),
                   question_line(_get(entry, 'text', path, where)))
            table[key] = dict(gt_answer=_get(entry, 'label', path, where))
    return _join(folder, questions, table, lambda record: (
        (record['category'], record.get('image'),
         question_line(record['text'])), ))


def _mme_answers(folder: str, question_id: str,
                 cache: dict) -> tuple[str, dict]:
    """The answer file of the image an MME question id names, and its
    ``{question: answer}``."""
    subtask = question_id.split('/')[0]
    stem = osp.splitext(osp.basename(question_id))[0]
    subtask_folder = osp.join(folder, subtask)
    if osp.isdir(osp.join(subtask_folder, 'images')):
        subtask_folder = osp.join(subtask_folder, 'questions_answers_YN')
    path = osp.join(subtask_folder, f'{stem}.txt')
    if path not in cache:
        if not osp.isfile(path):
            raise FileNotFoundError(f'MME answer file not found: {path} '
                                    f'(for question_id {question_id!r})')
        answers = {}
        with open(path, encoding='utf-8') as file:
            for line_number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                fields = line.strip().split('\t')
                if len(fields) != 2:
                    raise ValueError(f'{path}, line {line_number}: expected '
                                     f'"question<TAB>answer", got {line!r}')
                answers[fields[0]] = fields[1]
        cache[path] = answers
    return path, cache[path]


def read_mme(folder: str, questions: Sequence[dict]) -> list[dict]:
    """MME answers: ``gt_answer`` (``Yes``/``No``) and ``image_id``."""
    cache: dict = {}
    results = []
    for index, record in enumerate(questions):
        question_id = str(record['question_id'])
        path, answers = _mme_answers(folder, question_id, cache)
        question = record['text'].replace(IMAGE_PLACEHOLDER, '').replace(
            'Answer the question using a single word or phrase.', '').strip()
        # Most official questions end with one space before "Please answer
        # yes or no.", a few with two.
        candidates = [question] if 'Please answer yes or no.' in question \
            else [question + ' Please answer yes or no.',
                  question + '  Please answer yes or no.']
        found = next((key for key in candidates if key in answers), None)
        if found is None:
            raise ValueError(
                f'{path}: no ground truth for question record {index} '
                f'(question_id={record["question_id"]!r}); looked up '
                f'{" or ".join(repr(key) for key in candidates)}')
        results.append(dict(gt_answer=answers[found], image_id=question_id))
    return results


def read_scienceqa(path: str, questions: Sequence[dict]) -> list[dict]:
    """ScienceQA ``problems.json``: ``gt_answer`` (a letter) and
    ``num_choices``."""
    problems = read_json(path, 'Annotation file')
    if not isinstance(problems, dict):
        raise ValueError(f'{path}: expected a json object of problems')
    table = {}
    for record in questions:
        pid = str(record['question_id'])
        if pid in problems and pid not in table:
            check_problem(pid, problems[pid], path)
            table[pid] = dict(gt_answer=answer_letter(problems[pid]),
                              num_choices=len(problems[pid]['choices']))
    return _join(path, questions, table,
                 lambda record: (str(record['question_id']), ))


#: The annotation formats, by the name a config gives.
GROUND_TRUTH_READERS: dict[str, Reader] = dict(
    vqav2=read_vqav2,
    gqa=read_gqa,
    textvqa=read_textvqa,
    vizwiz=read_vizwiz,
    pope=read_pope,
    mme=read_mme,
    scienceqa=read_scienceqa)


def read_ground_truth(format: str, file: str,
                      questions: Sequence[dict]) -> list[dict]:
    """The ground-truth fields of each question record, in order.

    Args:
        format (str): A key of :data:`GROUND_TRUTH_READERS`.
        file (str): The annotation file (a folder for ``pope`` and ``mme``).
        questions (Sequence[dict]): The question file's records.
    """
    if format not in GROUND_TRUTH_READERS:
        raise ValueError(f'Unknown ground-truth format {format!r}; known: '
                         f'{", ".join(sorted(GROUND_TRUTH_READERS))}')
    return GROUND_TRUTH_READERS[format](file, questions)
