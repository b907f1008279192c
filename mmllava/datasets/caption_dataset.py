"""Any captioned images as a caption test set: the references are read from
the file itself, no COCO ids or ground-truth json needed."""
import os.path as osp
from typing import Optional, Sequence

from mmengine.dataset import BaseDataset

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.templates import GPT
from mmllava.datasets.question_dataset import human_turn
from mmllava.datasets.records import read_records
from mmllava.registry import DATASETS, TRANSFORMS

#: Captions files looked for, in order, in a folder given as ``data_file``.
CAPTION_FILES = ('captions.json', 'captions.jsonl', 'metadata.jsonl')
IMAGE_KEYS = ('image', 'file_name')
CAPTION_KEYS = ('caption', 'captions', 'text')


def find_captions_file(path: str) -> str:
    """``path`` itself, or the captions file of a folder."""
    if not osp.isdir(path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'Caption data not found: {path}')
        return path
    for name in CAPTION_FILES:
        if osp.isfile(osp.join(path, name)):
            return osp.join(path, name)
    raise FileNotFoundError(
        f'{path} is a folder without a captions file; put the captions in '
        f'one of {", ".join(CAPTION_FILES)} (records with "image" and '
        '"caption", or LLaVA conversation records)')


def record_captions(record: object, index: int,
                    data_file: str) -> tuple[str, list[str]]:
    """The image and the reference captions of one record; the error names
    the file, the record and the fault.

    A record is LLaVA's (``image`` and ``conversations``: a human turn and
    one ``gpt`` turn, the caption), or ``image`` / ``file_name`` with
    ``caption`` / ``captions`` / ``text`` (a string or a list).
    """

    def fail(reason: str):
        raise ValueError(f'{data_file}: record {index}: {reason}')

    if not isinstance(record, dict):
        fail(f'expected an object, got {type(record).__name__}')
    image = next((record[key] for key in IMAGE_KEYS if key in record), None)
    if not isinstance(image, str) or not image:
        fail(f'no image: a caption record needs one of {IMAGE_KEYS} (a '
             'path string)')
    if 'conversations' in record:
        turns = record['conversations']
        answers = [turn.get('value') for turn in turns
                   if isinstance(turn, dict) and turn.get('from') == GPT] \
            if isinstance(turns, list) else []
        if len(answers) != 1 or not isinstance(answers[0], str):
            fail(f'image {image!r}: a caption record has exactly one "gpt" '
                 f'turn (the caption); this one has {len(answers)}')
        return image, [answers[0].strip()]
    captions = next((record[key] for key in CAPTION_KEYS if key in record),
                    None)
    if isinstance(captions, str):
        captions = [captions]
    if not isinstance(captions, list) or not captions or not all(
            isinstance(caption, str) and caption.strip()
            for caption in captions):
        fail(f'image {image!r}: no caption; give "conversations" or one of '
             f'{CAPTION_KEYS} (a non-empty string or list of strings)')
    return image, [caption.strip() for caption in captions]


@DATASETS.register_module()
class CaptionDataset(BaseDataset):
    """Captioned images of any naming as a caption test set.

    ``data_file`` is a json list / jsonl of records (see
    :func:`record_captions`: LLaVA caption records such as the LCS-558K or
    ShareGPT4V captions, or ``image`` + ``caption``), or a folder holding
    one of :data:`CAPTION_FILES` and the images. Records of the same image
    are one sample with all their captions as references. Each sample holds
    ``sample_id`` and ``image_id`` (the image's number, in order of first
    appearance), ``img_path``, ``image`` (the path as the file gives it),
    ``conversations``, ``prompt`` and ``gt_captions``; give
    :class:`~mmllava.evaluation.COCOCaptionMetric` no ``ann_file`` and it
    scores against ``gt_captions``.

    Args:
        data_file (str): The captions file or a folder with one.
        prompt (str): The caption instruction.
        image_folder (str, optional): Folder image paths are relative to.
            Defaults to the folder of the captions file.
        pipeline (Sequence[dict]): Transforms.
        max_images (int, optional): Keep the first N images.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(self,
                 data_file: str,
                 prompt: str,
                 image_folder: Optional[str] = None,
                 pipeline: Sequence[dict] = (),
                 max_images: Optional[int] = None,
                 **kwargs) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f'prompt must be a non-empty string, got '
                             f'{prompt!r}')
        captions_file = find_captions_file(data_file)
        self.image_folder = osp.dirname(captions_file) \
            if image_folder is None else image_folder
        self.prompt = prompt
        self.max_images = max_images
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=captions_file, pipeline=transforms,
                         **kwargs)

    def load_data_list(self) -> list[dict]:
        references: dict[str, list[str]] = {}
        for index, record in enumerate(read_records(self.ann_file)):
            image, captions = record_captions(record, index, self.ann_file)
            if image not in references and self.max_images is not None \
                    and len(references) >= self.max_images:
                continue
            references.setdefault(image, []).extend(captions)
        if not references:
            raise ValueError(f'{self.ann_file}: no caption records')
        missing = [image for image in references if not osp.isfile(
            osp.join(self.image_folder, image))]
        if missing:
            raise FileNotFoundError(
                f'{self.ann_file}: {len(missing)} of {len(references)} '
                f'images are not under {self.image_folder!r}, e.g. '
                f'{missing[0]!r}; set image_folder to the folder the paths '
                'are relative to')
        prompt = self.prompt.replace(IMAGE_PLACEHOLDER, '').strip()
        return [dict(sample_id=number, image_id=number, image=image,
                     img_path=osp.join(self.image_folder, image),
                     conversations=[human_turn(self.prompt, True)],
                     prompt=prompt, gt_captions=captions)
                for number, (image, captions) in enumerate(
                    references.items())]
