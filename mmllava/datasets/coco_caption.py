"""COCO captioning on the Karpathy test/val split, one sample per image."""
import os.path as osp
import re
from typing import Sequence

from mmengine.dataset import BaseDataset

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.datasets.question_dataset import human_turn
from mmllava.datasets.records import read_records
from mmllava.registry import DATASETS, TRANSFORMS


def coco_image_id(file_name: str) -> int:
    """The COCO image id in a file name: ``COCO_val2014_000000391895.jpg``
    (or ``000000391895.jpg``) -> 391895."""
    match = re.search(r'(\d+)\.\w+$', osp.basename(file_name))
    if match is None:
        raise ValueError(
            f'no COCO image id in the file name {file_name!r}; for captions '
            'of images named otherwise use CaptionDataset (configs/llava/'
            'llava-1.5-7b_caption_custom.py)')
    return int(match.group(1))


def read_caption_record(record: object, index: int,
                        data_file: str) -> tuple[int, list[str]]:
    """Check a record; return its COCO image id and reference captions.

    The error names the file, the record and the fault.
    """

    def fail(reason: str):
        image = record.get('image') if isinstance(record, dict) else None
        raise ValueError(f'{data_file}: record {index} (image={image!r}): '
                         f'{reason}')

    if not isinstance(record, dict):
        fail(f'expected an object, got {type(record).__name__}')
    if not isinstance(record.get('image'), str):
        fail('"image" (a path string) is missing')
    captions = record.get('caption')
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(captions, list) or not all(
            isinstance(caption, str) for caption in captions):
        fail('"caption" must be a list of strings')
    try:
        return coco_image_id(record['image']), captions
    except ValueError as error:
        fail(str(error))


@DATASETS.register_module()
class COCOKarpathyCaptionDataset(BaseDataset):
    """The Karpathy split of COCO captions, in BLIP's json layout.

    ``coco_karpathy_test.json`` / ``coco_karpathy_val.json``: a list of
    ``{"image": "val2014/COCO_val2014_000000391895.jpg", "caption": [...]}``,
    one record per image. Each sample holds ``sample_id`` and ``image_id``
    (the int COCO id of the file name), ``img_path``, ``conversations``
    (``<image>\\n`` + prompt), ``prompt`` and ``gt_captions`` (the record's
    reference captions).

    Args:
        data_file (str): The Karpathy split json.
        image_folder (str): Folder that ``image`` paths are relative to (the
            one holding ``val2014/``).
        pipeline (Sequence[dict]): Transforms.
        prompt (str): The caption instruction, the same for every image.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 data_file: str,
                 image_folder: str,
                 pipeline: Sequence[dict],
                 prompt: str,
                 **kwargs) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f'prompt must be a non-empty string, got '
                             f'{prompt!r}')
        self.image_folder = image_folder
        self.prompt = prompt
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=data_file, pipeline=transforms, **kwargs)

    def load_data_list(self) -> list[dict]:
        records = read_records(self.ann_file)
        first_index: dict[int, int] = {}
        data_list = []
        for index, record in enumerate(records):
            image_id, captions = read_caption_record(record, index,
                                                     self.ann_file)
            if image_id in first_index:
                raise ValueError(
                    f'{self.ann_file}: record {index} (image='
                    f'{record["image"]!r}): image id {image_id} is also '
                    f'record {first_index[image_id]}; the split has one '
                    'record per image')
            first_index[image_id] = index
            data_list.append(dict(
                sample_id=image_id,
                image_id=image_id,
                img_path=osp.join(self.image_folder, record['image']),
                conversations=[human_turn(self.prompt, True)],
                prompt=self.prompt.replace(IMAGE_PLACEHOLDER, '').strip(),
                gt_captions=captions))
        return data_list
