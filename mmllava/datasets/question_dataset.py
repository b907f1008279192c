"""LLaVA's evaluation question files: one question, no answer, per record."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.dataset import BaseDataset

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.datasets.ground_truth import read_ground_truth
from mmllava.datasets.records import read_records
from mmllava.registry import DATASETS, TRANSFORMS
from mmllava.templates import HUMAN

#: Ground-truth fields a question record may carry, and their types.
RECORD_GROUND_TRUTH = dict(answers=list, answer=str, label=str,
                           num_choices=int)


def human_turn(text: str, has_image: bool) -> dict:
    """The question as a human turn: ``<image>\\n`` first when there is an
    image and the text does not place the placeholder itself."""
    if has_image and IMAGE_PLACEHOLDER not in text:
        text = f'{IMAGE_PLACEHOLDER}\n{text}'
    return {'from': HUMAN, 'value': text}


def check_question(record: object, index: int, question_file: str) -> None:
    """Check a question record; the error names the record and the fault."""

    def fail(reason: str):
        question_id = record.get('question_id') \
            if isinstance(record, dict) else None
        raise ValueError(f'{question_file}: record {index} (question_id='
                         f'{question_id!r}): {reason}')

    if not isinstance(record, dict):
        fail(f'expected an object, got {type(record).__name__}')
    if not isinstance(record.get('question_id'), (str, int)) or \
            isinstance(record['question_id'], bool):
        fail('"question_id" (a string or an integer) is missing')
    if not isinstance(record.get('text'), str) or not record['text'].strip():
        fail('"text" (the question) must be a non-empty string')
    for key in ('image', 'category'):
        if key in record and not isinstance(record[key], str):
            fail(f'"{key}" must be a string, got {record[key]!r:.80}')
    for key, kind in RECORD_GROUND_TRUTH.items():
        if key in record and (not isinstance(record[key], kind)
                              or isinstance(record[key], bool)):
            fail(f'"{key}" must be a {kind.__name__}, got '
                 f'{record[key]!r:.80}')
    if 'answers' in record and not all(isinstance(answer, str)
                                       for answer in record['answers']):
        fail('"answers" must be a list of strings')
    if 'answer' in record and 'label' in record:
        fail('has both "answer" and "label"; keep one')
    placeholders = record['text'].count(IMAGE_PLACEHOLDER)
    if placeholders > int('image' in record):
        fail(f'"text" holds {placeholders} {IMAGE_PLACEHOLDER} for '
             f'{int("image" in record)} image')


def record_ground_truth(record: dict) -> dict:
    """The ground-truth fields a record carries itself."""
    fields = {}
    if 'answers' in record:
        fields['gt_answers'] = list(record['answers'])
    for key in ('answer', 'label'):
        if key in record:
            fields['gt_answer'] = record[key]
    if 'num_choices' in record:
        fields['num_choices'] = record['num_choices']
    return fields


@DATASETS.register_module()
class LLaVAQuestionDataset(BaseDataset):
    """Questions in LLaVA's evaluation format, for generation.

    Each record (json list or jsonl, as ``llava_gqa_testdev_balanced.jsonl``
    or ``llava_pope_test.jsonl``): ``question_id``, optional ``image``
    (relative to ``image_folder``; text-only questions exist in ScienceQA),
    ``text``, optional ``category``, and optionally its own ground truth:
    ``answers`` (list, becomes ``gt_answers``), ``answer`` or ``label``
    (becomes ``gt_answer``), ``num_choices``.

    Each sample holds ``sample_id``, ``question_id``, ``img_path``,
    ``conversations`` (one human turn: ``<image>\\n`` + text + suffix, or
    the text as it is when it places ``<image>`` itself or has no image),
    ``prompt`` (text + suffix, without ``<image>``), ``category`` when given
    and the ground-truth fields when known. Images are not opened on load.

    Args:
        question_file (str): A ``.jsonl`` or ``.json`` list of questions.
        image_folder (str): Folder that ``image`` paths are relative to.
        pipeline (Sequence[dict]): Transforms.
        prompt_suffix (str): Appended to each question, e.g. ``'\\nAnswer
            the question using a single word or phrase.'``, unless the text
            already ends with it (LLaVA's own question files carry it).
            Defaults to ''.
        ground_truth (dict, optional): ``dict(format=..., file=...)``: an
            official annotation file (or folder) to read the ground truth
            from; see :mod:`mmllava.datasets.ground_truth` for the formats.
            Values it gives must agree with those a record carries.
        allow_duplicate_ids (bool): Accept question ids that repeat, as in
            LLaVA's TextVQA and MME files, whose ids name images. The
            ``sample_id`` is then ``'<question_id>#<record index>'``.
            Defaults to False: a repeated id is an error.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 question_file: str,
                 image_folder: str = '',
                 pipeline: Sequence[dict] = (),
                 prompt_suffix: str = '',
                 ground_truth: Optional[dict] = None,
                 allow_duplicate_ids: bool = False,
                 **kwargs) -> None:
        if ground_truth is not None and set(ground_truth) != {'format',
                                                              'file'}:
            raise ValueError('ground_truth must be dict(format=..., file=...)'
                             f', got keys {sorted(ground_truth)}')
        self.image_folder = image_folder
        self.prompt_suffix = prompt_suffix
        self.ground_truth = ground_truth
        self.allow_duplicate_ids = allow_duplicate_ids
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=question_file, pipeline=transforms,
                         **kwargs)

    def load_data_list(self) -> list[dict]:
        records = read_records(self.ann_file)
        first_index: dict = {}
        for index, record in enumerate(records):
            check_question(record, index, self.ann_file)
            question_id = record['question_id']
            if question_id in first_index and not self.allow_duplicate_ids:
                raise ValueError(
                    f'{self.ann_file}: record {index} (question_id='
                    f'{question_id!r}) repeats the question id of record '
                    f'{first_index[question_id]}. Question ids must be '
                    'unique; pass allow_duplicate_ids=True for files whose '
                    'ids name images (LLaVA\'s TextVQA and MME questions).')
            first_index.setdefault(question_id, index)
        file_truth = read_ground_truth(
            self.ground_truth['format'], self.ground_truth['file'], records
        ) if self.ground_truth else [{}] * len(records)
        return [self._data_info(index, record, truth)
                for index, (record, truth) in enumerate(
                    zip(records, file_truth))]

    def _data_info(self, index: int, record: dict, file_truth: dict) -> dict:
        question_id = record['question_id']
        text = record['text']
        suffix = '' if text.endswith(self.prompt_suffix) \
            else self.prompt_suffix
        has_image = 'image' in record
        info = dict(
            sample_id=f'{question_id}#{index}' if self.allow_duplicate_ids
            else question_id,
            question_id=question_id,
            img_path=osp.join(self.image_folder, record['image'])
            if has_image else None,
            conversations=[human_turn(text + suffix, has_image)],
            prompt=text.replace(IMAGE_PLACEHOLDER, '').strip() + suffix)
        if 'category' in record:
            info['category'] = record['category']
        info.update(record_ground_truth(record))
        for key, value in file_truth.items():
            if key in info and info[key] != value:
                raise ValueError(
                    f'{self.ann_file}: record {index} (question_id='
                    f'{question_id!r}): "{key}" is {info[key]!r} in the '
                    f'record but {value!r} in {self.ground_truth["file"]}')
            info[key] = value
        return info
