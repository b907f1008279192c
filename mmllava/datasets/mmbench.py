"""MMBench and MMBench-CN as distributed: one tsv, images in base64.

The tsv (``mmbench_dev_20230712.tsv``, ``mmbench_dev_cn_20231003.tsv``,
``mmbench_test_*.tsv``) has the columns ``index``, ``question``, ``hint``,
``A`` .. ``D`` (empty for absent options), ``answer`` (the letter; not in
the test split), ``category``, ``l2-category``, ``split`` and ``image``
(base64). Circular evaluation asks each question once per rotation of its
options; the official files already hold the rotated copies as rows of
their own, ``index + k * 1,000,000`` with the options and answer rotated,
and a copy's ``image`` may be the index of the row holding the image (as
VLMEvalKit reads it).
"""
import base64
import binascii
import csv
import io
import sys
from typing import Optional, Sequence

from mmengine.dataset import BaseDataset
from PIL import Image

from mmllava.datasets.question_dataset import human_turn
from mmllava.registry import DATASETS, TRANSFORMS

#: Rows ``index + k * CIRCULAR_OFFSET`` are rotations of question ``index``.
CIRCULAR_OFFSET = 1_000_000
OPTION_LETTERS = ('A', 'B', 'C', 'D')
#: LLaVA's ``--single-pred-prompt`` for each language.
LETTER_PROMPTS = dict(
    en="Answer with the option's letter from the given choices directly.",
    cn='请直接回答选项字母。')


def is_missing(value: Optional[str]) -> bool:
    """An empty cell as pandas writes it (empty or 'nan'), as LLaVA's
    ``is_none`` reads it."""
    return value is None or value.strip() == '' or \
        value.strip().lower() == 'nan'


def read_tsv(path: str) -> list[dict]:
    """The rows of a pandas-written tsv as dicts of strings."""
    # A base64 image is far longer than csv's default field limit.
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, encoding='utf-8', newline='') as file:
            return list(csv.DictReader(file, delimiter='\t'))
    except FileNotFoundError:
        raise FileNotFoundError(f'MMBench tsv not found: {path}') from None


def row_options(row: dict) -> list[str]:
    """The options of a row in letter order, up to the first empty one
    (as LLaVA's ``get_options``)."""
    options = []
    for letter in OPTION_LETTERS:
        if is_missing(row.get(letter)):
            break
        options.append(row[letter])
    return options


def question_text(question: str, hint: Optional[str],
                  options: Sequence[str]) -> str:
    """The question as LLaVA's ``model_vqa_mmbench.py`` writes it: the hint
    (when there is one) on the line before, then one ``A. <option>`` line
    per option."""
    text = question if is_missing(hint) else f'{hint}\n{question}'
    for letter, option in zip(OPTION_LETTERS, options):
        text += f'\n{letter}. {option}'
    return text


def rotate_row(row: dict, shift: int) -> dict:
    """A rotated copy of a row, the layout of the official circular copies:
    option ``k`` moves to letter ``k - shift``, the answer letter with it,
    and the index is ``index + shift * CIRCULAR_OFFSET``."""
    options = row_options(row)
    rotated = options[shift:] + options[:shift]
    copy = dict(row)
    for letter, option in zip(OPTION_LETTERS, rotated):
        copy[letter] = option
    copy['index'] = str(int(row['index']) + shift * CIRCULAR_OFFSET)
    if not is_missing(row.get('answer')):
        position = OPTION_LETTERS.index(row['answer'].strip())
        copy['answer'] = OPTION_LETTERS[(position - shift) % len(options)]
    copy['image'] = row['index']
    return copy


@DATASETS.register_module()
class MMBenchDataset(BaseDataset):
    """MMBench / MMBench-CN questions from the official tsv, for generation.

    Each row is a sample: ``sample_id`` and ``question_id`` (the row's
    ``index``), ``img`` (decoded when the sample is read),
    ``conversations`` and ``prompt`` (hint, question and option lines, then
    ``prompt_suffix``), ``options`` (letter -> option text),
    ``question`` (the bare question, for the judge), ``gt_answer`` (the
    letter; not in the test split), ``category``, ``l2_category``,
    ``split`` when the tsv has them.

    Args:
        data_file (str): The tsv.
        pipeline (Sequence[dict]): Transforms.
        lang (str): ``'en'`` or ``'cn'``: picks the default prompt suffix.
        prompt_suffix (str, optional): Appended on a new line. Defaults to
            LLaVA's letter prompt of ``lang``.
        expand_rotations (bool): Add the rotated copies of a question the
            file does not hold (a tsv without circular copies), so that
            every question is asked once per rotation. Defaults to False:
            the rows as they are (the official files hold the copies).
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 data_file: str,
                 pipeline: Sequence[dict] = (),
                 lang: str = 'en',
                 prompt_suffix: Optional[str] = None,
                 expand_rotations: bool = False,
                 **kwargs) -> None:
        if lang not in LETTER_PROMPTS:
            raise ValueError(f'lang must be one of {sorted(LETTER_PROMPTS)}'
                             f', got {lang!r}')
        self.prompt_suffix = LETTER_PROMPTS[lang] if prompt_suffix is None \
            else prompt_suffix
        self.expand_rotations = expand_rotations
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=data_file, pipeline=transforms, **kwargs)

    def load_data_list(self) -> list[dict]:
        rows = read_tsv(self.ann_file)
        for number, row in enumerate(rows):
            for key in ('index', 'question', 'image'):
                if is_missing(row.get(key)):
                    raise ValueError(f'{self.ann_file}: row {number} has no '
                                     f'"{key}"')
            try:
                int(row['index'])
            except ValueError:
                raise ValueError(f'{self.ann_file}: row {number}: "index" '
                                 f'must be an integer, got '
                                 f'{row["index"]!r}') from None
            if len(row_options(row)) < 2:
                raise ValueError(f'{self.ann_file}: row {number} (index '
                                 f'{row["index"]}) has fewer than 2 options')
        if self.expand_rotations:
            present = {int(row['index']) for row in rows}
            rows = rows + [
                rotate_row(row, shift) for row in rows
                if int(row['index']) < CIRCULAR_OFFSET
                for shift in range(1, len(row_options(row)))
                if int(row['index']) + shift * CIRCULAR_OFFSET not in present
            ]
        images = {row['index']: row['image'] for row in rows
                  if len(row['image']) > 64}
        return [self._data_info(row, images) for row in rows]

    def _data_info(self, row: dict, images: dict) -> dict:
        index = int(row['index'])
        image = row['image']
        if len(image) <= 64:
            # A copy naming the row that holds its image.
            if image not in images:
                raise ValueError(f'{self.ann_file}: row index {index} names '
                                 f'the image of row {image!r}, which has none')
            image = images[image]
        options = row_options(row)
        text = question_text(row['question'], row.get('hint'), options)
        if self.prompt_suffix:
            text = f'{text}\n{self.prompt_suffix}'
        info = dict(
            sample_id=index,
            question_id=index,
            image_base64=image,
            img_path=None,
            conversations=[human_turn(text, True)],
            prompt=text,
            options=dict(zip(OPTION_LETTERS, options)),
            question=row['question'])
        if not is_missing(row.get('answer')):
            info['gt_answer'] = row['answer'].strip()
        for column, key in (('category', 'category'),
                            ('l2-category', 'l2_category'),
                            ('split', 'split')):
            if not is_missing(row.get(column)):
                info[key] = row[column]
        return info

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        encoded = info.pop('image_base64')
        try:
            with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
                info['img'] = image.convert('RGB')
        except (binascii.Error, OSError, ValueError) as error:
            raise OSError(f'{self.ann_file}: sample index '
                          f'{info["sample_id"]}: cannot decode its base64 '
                          f'image: {error}') from None
        return info
