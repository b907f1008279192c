"""Benchmarks distributed as one json of questions beside an image folder:
MM-Vet (``mm-vet.json``), SEED-Bench (``SEED-Bench.json``, image part) and
Q-Bench A1 (``llvisionqa_dev.json``), read as LLaVA's question files render
them."""
import os.path as osp
from typing import Sequence

from mmengine.dataset import BaseDataset

from mmllava.datasets.question_dataset import human_turn
from mmllava.datasets.records import read_json
from mmllava.registry import DATASETS, TRANSFORMS

LETTER_PROMPT = \
    "Answer with the option's letter from the given choices directly."
OPTION_LETTERS = 'ABCDEFGH'


def _fail(path: str, where: str, reason: str):
    raise ValueError(f'{path}: {where}: {reason}')


def _require(entry: object, keys: Sequence[str], path: str,
             where: str) -> None:
    if not isinstance(entry, dict):
        _fail(path, where, f'expected an object, got '
              f'{type(entry).__name__}')
    missing = [key for key in keys if key not in entry]
    if missing:
        _fail(path, where, f'no {", ".join(repr(k) for k in missing)}')


def choice_text(question: str, options: Sequence[str]) -> str:
    """The question and one ``A. <option>`` line per option."""
    return question + ''.join(f'\n{letter}. {option}' for letter, option
                              in zip(OPTION_LETTERS, options))


class _JsonBenchmark(BaseDataset):
    """Shared set-up: the pipeline and the image folder."""

    def __init__(self, data_file: str, image_folder: str,
                 pipeline: Sequence[dict] = (), **kwargs) -> None:
        self.image_folder = image_folder
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=data_file, pipeline=transforms, **kwargs)

    def _sample(self, question_id, image: str, text: str, **fields) -> dict:
        return dict(sample_id=question_id, question_id=question_id,
                    img_path=osp.join(self.image_folder, image),
                    conversations=[human_turn(text, True)], prompt=text,
                    **fields)


@DATASETS.register_module()
class MMVetDataset(_JsonBenchmark):
    """MM-Vet: ``mm-vet.json`` (``{"v1_0": {"imagename", "capability",
    "question", "answer"}}``) and its ``images/`` folder. The question is
    asked as it is (LLaVA's ``llava-mm-vet.jsonl``). Each sample holds
    ``question_id`` (``'v1_0'``), ``question``, ``gt_answer`` and
    ``capability`` (a list of rec, ocr, know, gen, spat, math).

    Args:
        data_file (str): ``mm-vet.json``.
        image_folder (str): The ``images`` folder.
        pipeline (Sequence[dict]): Transforms.
    """

    def load_data_list(self) -> list[dict]:
        data = read_json(self.ann_file, 'MM-Vet file')
        if not isinstance(data, dict):
            raise ValueError(f'{self.ann_file}: expected a json object '
                             '{"v1_0": {...}, ...}')
        samples = []
        for question_id, entry in data.items():
            _require(entry, ('imagename', 'capability', 'question', 'answer'),
                     self.ann_file, f'question {question_id!r}')
            samples.append(self._sample(
                question_id, entry['imagename'], entry['question'],
                question=entry['question'], gt_answer=entry['answer'],
                capability=list(entry['capability'])))
        return samples


@DATASETS.register_module()
class SEEDBenchDataset(_JsonBenchmark):
    """SEED-Bench's image questions: ``SEED-Bench.json`` (``{"questions":
    [{"question_id", "question", "choice_a".."choice_d", "answer",
    "question_type_id", "data_id", "data_type"}], "question_type": {name:
    id}}``) and the ``SEED-Bench-image`` folder. Rendered as LLaVA's
    ``llava-seed-bench.jsonl``: the question, ``A. ..`` to ``D. ..``, then
    the letter prompt. ``category`` is the dimension's name.

    Args:
        data_file (str): ``SEED-Bench.json``.
        image_folder (str): The ``SEED-Bench-image`` folder.
        pipeline (Sequence[dict]): Transforms.
        data_type (str): Which questions: ``'image'`` (the LLaVA papers'
            number). Defaults to 'image'.
    """

    def __init__(self, data_file: str, image_folder: str,
                 pipeline: Sequence[dict] = (), data_type: str = 'image',
                 **kwargs) -> None:
        self.data_type = data_type
        super().__init__(data_file, image_folder, pipeline, **kwargs)

    def load_data_list(self) -> list[dict]:
        data = read_json(self.ann_file, 'SEED-Bench file')
        _require(data, ('questions', 'question_type'), self.ann_file,
                 'the file')
        names = {type_id: name for name, type_id
                 in data['question_type'].items()}
        samples = []
        for index, entry in enumerate(data['questions']):
            where = f'question {index}'
            _require(entry, ('question_id', 'question', 'choice_a',
                             'choice_b', 'choice_c', 'choice_d', 'answer',
                             'question_type_id', 'data_id', 'data_type'),
                     self.ann_file, where)
            if entry['data_type'] != self.data_type:
                continue
            if entry['question_type_id'] not in names:
                _fail(self.ann_file, where, f'question_type_id '
                      f'{entry["question_type_id"]!r} is not in '
                      '"question_type"')
            options = [entry[f'choice_{c}'] for c in 'abcd']
            text = f'{choice_text(entry["question"], options)}\n' \
                f'{LETTER_PROMPT}'
            samples.append(self._sample(
                entry['question_id'], entry['data_id'], text,
                gt_answer=entry['answer'],
                category=names[entry['question_type_id']]))
        return samples


@DATASETS.register_module()
class QBenchDataset(_JsonBenchmark):
    """Q-Bench A1 (LLVisionQA): ``llvisionqa_dev.json``, a list of
    ``{"img_path", "question", "candidates", "correct_ans", "type",
    "concern"}``, and its image folder. Rendered as LLaVA's
    ``model_vqa_qbench.py`` (English): the question, ``Choose between one
    of the options as follows:``, one ``A. ..`` line per candidate (at most
    four). ``gt_answer`` is the correct candidate's letter, ``options`` the
    candidates by letter, ``category`` the question type (yes-or-no, what,
    how) and ``concern`` the quadrant of the paper's table.

    Args:
        data_file (str): ``llvisionqa_dev.json``.
        image_folder (str): The image folder.
        pipeline (Sequence[dict]): Transforms.
    """

    def load_data_list(self) -> list[dict]:
        data = read_json(self.ann_file, 'Q-Bench file')
        if not isinstance(data, list):
            raise ValueError(f'{self.ann_file}: expected a json list')
        samples = []
        for index, entry in enumerate(data):
            where = f'question {index}'
            _require(entry, ('img_path', 'question', 'candidates',
                             'correct_ans'), self.ann_file, where)
            candidates = entry['candidates']
            if entry['correct_ans'] not in candidates:
                _fail(self.ann_file, where, f'correct_ans '
                      f'{entry["correct_ans"]!r} is not a candidate')
            if not 2 <= len(candidates) <= 4:
                _fail(self.ann_file, where, f'{len(candidates)} candidates; '
                      'Q-Bench questions have 2 to 4')
            text = entry['question'] + \
                '\nChoose between one of the options as follows:\n' + \
                ''.join(f'{letter}. {candidate}\n' for letter, candidate
                        in zip(OPTION_LETTERS, candidates))
            samples.append(self._sample(
                index, entry['img_path'], text,
                gt_answer=OPTION_LETTERS[candidates.index(
                    entry['correct_ans'])],
                options=dict(zip(OPTION_LETTERS, candidates)),
                category=entry.get('type'), concern=entry.get('concern')))
        return samples
