"""The LLaVA instruction format: a json list or jsonl of conversations."""
import json
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from mmllava.conversation import GPT, HUMAN
from mmllava.registry import DATASETS, TRANSFORMS


def read_records(data_file: str) -> list[dict]:
    """Read a json list or a jsonl file of records.

    Errors name the file, and for jsonl the line, that could not be read.
    """
    if not osp.isfile(data_file):
        raise FileNotFoundError(f'LLaVA data file not found: {data_file}')
    with open(data_file, encoding='utf-8') as file:
        if data_file.endswith('.jsonl'):
            records = []
            for line_number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f'{data_file}, line {line_number}: not '
                                     f'valid json ({error})') from None
            return records
        try:
            records = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f'{data_file}: not valid json ({error})') from None
    if not isinstance(records, list):
        raise ValueError(f'{data_file}: expected a json list of records, got '
                         f'{type(records).__name__}')
    return records


def check_record(record: object, index: int, data_file: str) -> None:
    """Check a record's structure; the error names the record and the fault."""

    def fail(reason: str):
        record_id = record.get('id') if isinstance(record, dict) else None
        raise ValueError(
            f'{data_file}: record {index} (id={record_id!r}): {reason}')

    if not isinstance(record, dict):
        fail(f'expected an object, got {type(record).__name__}')
    if 'image' in record and not isinstance(record['image'], str):
        fail('"image" must be a path string')
    turns = record.get('conversations')
    if not isinstance(turns, list) or not turns:
        fail('"conversations" must be a non-empty list')
    for turn_index, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get('from') not in (HUMAN, GPT) \
                or not isinstance(turn.get('value'), str):
            fail(f'turn {turn_index} must be {{"from": "human"|"gpt", '
                 f'"value": str}}, got {turn!r:.200}')
    # A leading "gpt" turn is dropped when the conversation is rendered (as
    # in the official preprocessing), so it does not count as an answer.
    answers = turns[1:] if turns[0]['from'] == GPT else turns
    if not any(turn['from'] == GPT for turn in answers):
        fail('no "gpt" turn after a "human" turn, so nothing to learn')


@DATASETS.register_module()
class LLaVADataset(BaseDataset):
    """Conversations in the LLaVA json format.

    Each record: ``id``, optional ``image`` (relative to ``image_folder``),
    ``conversations`` ``[{"from": "human"|"gpt", "value": str}, ...]``, as in
    ``blip_laion_cc_sbu_558k.json`` and ``llava_v1_5_mix665k.json``.

    Loading parses and checks the records but tokenizes nothing; tokenizing
    happens per sample in the pipeline. Each sample's word count and modality
    are recorded on load for :class:`LengthGroupedSampler`.

    Args:
        data_file (str): A ``.json`` list or a ``.jsonl`` file.
        image_folder (str): Folder that ``image`` paths are relative to.
        pipeline (Sequence[dict]): Transforms.
        max_refetch (int): How many other samples to try when the pipeline
            drops one (it returns None, e.g. a sample truncated to nothing).
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 data_file: str,
                 image_folder: str = '',
                 pipeline: Sequence[dict] = (),
                 max_refetch: int = 1000,
                 **kwargs) -> None:
        self.image_folder = image_folder
        self._modality_lengths: Optional[np.ndarray] = None
        # Built from mmllava's registry, so the dataset works outside a
        # runner too (mmengine's Compose looks in the scope's registry).
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=data_file, pipeline=transforms,
                         max_refetch=max_refetch, **kwargs)

    def load_data_list(self) -> list[dict]:
        records = read_records(self.ann_file)
        data_list = []
        for index, record in enumerate(records):
            check_record(record, index, self.ann_file)
            has_image = 'image' in record
            # The official modality length: word count, negative when
            # text-only (never zero).
            words = max(sum(len(turn['value'].split())
                            for turn in record['conversations']), 1)
            data_list.append(
                dict(
                    sample_id=record.get('id', index),
                    img_path=osp.join(self.image_folder, record['image'])
                    if has_image else None,
                    conversations=record['conversations'],
                    modality_length=words if has_image else -words))
        return data_list

    @property
    def modality_lengths(self) -> np.ndarray:
        """Per sample: word count, positive with an image, negative without."""
        if self._modality_lengths is None:
            self._modality_lengths = np.asarray(
                [self.get_data_info(index)['modality_length']
                 for index in range(len(self))], dtype=np.int64)
        return self._modality_lengths
