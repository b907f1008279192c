"""The symbolic context of an image: what the text-only model is told.

The context is the image's captions, one per line, then a blank line and its
labelled boxes, one ``category: [x1, y1, x2, y2]`` line each, with
coordinates normalised to [0, 1] by the image's width and height and written
with 3 decimals::

    A man rides a red bicycle down a city street.
    A cyclist passes parked cars.

    person: [0.412, 0.180, 0.655, 0.897]
    bicycle: [0.398, 0.502, 0.702, 0.990]

Two inputs are read: COCO captions (+ optional instances) annotation files,
and a simple json list (or jsonl) of
``{"id", "image", "captions": [str], "boxes": [{"category", "bbox"}]}``
whose ``bbox`` is already normalised ``[x1, y1, x2, y2]``.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional, Sequence

from mmllava.datasets.records import read_json, read_records

Box = tuple[float, float, float, float]


@dataclass
class ImageContext:
    """What is known of one image.

    Args:
        image_id (str): Identifies the image; becomes the record's ``id``.
        image (str): Image path, relative to the image folder.
        captions (list[str]): Its captions.
        boxes (list[tuple[str, Box]]): ``(category, (x1, y1, x2, y2))``,
            normalised to [0, 1].
    """
    image_id: str
    image: str
    captions: list[str]
    boxes: list[tuple[str, Box]] = field(default_factory=list)


def format_context(context: ImageContext) -> str:
    """The captions, a blank line, then one ``category: [box]`` per line."""
    lines = list(context.captions)
    if context.boxes:
        lines.append('')
        lines += [f'{category}: [{", ".join(f"{v:.3f}" for v in box)}]'
                  for category, box in context.boxes]
    return '\n'.join(lines)


def normalise_coco_box(bbox: Sequence[float], width: float,
                       height: float) -> Box:
    """COCO ``[x, y, w, h]`` in pixels -> ``[x1, y1, x2, y2]`` in [0, 1].

    Clamped to the image: COCO boxes can overrun its edge by a fraction of a
    pixel.
    """
    x, y, w, h = bbox
    corners = (x / width, y / height, (x + w) / width, (y + h) / height)
    return tuple(min(1.0, max(0.0, value)) for value in corners)


def load_coco_contexts(captions_file: str,
                       instances_file: Optional[str] = None
                       ) -> list[ImageContext]:
    """Contexts of the images of a COCO captions file, in its image order.

    Args:
        captions_file (str): COCO captions json (``images``,
            ``annotations`` with ``caption``).
        instances_file (str, optional): COCO instances json of the same
            images (``annotations`` with ``bbox`` and ``category_id``,
            ``categories``); without it, contexts have captions only.
    """
    captions_data = read_json(captions_file, 'COCO captions file')
    images = _coco_images(captions_data, captions_file)
    captions = defaultdict(list)
    for index, ann in enumerate(captions_data.get('annotations', [])):
        if ann.get('image_id') not in images or \
                not isinstance(ann.get('caption'), str):
            raise ValueError(f'{captions_file}: annotation {index} needs an '
                             f'"image_id" of a listed image and a "caption" '
                             f'string, got {ann!r:.200}')
        captions[ann['image_id']].append(ann['caption'].strip())
    boxes = defaultdict(list)
    if instances_file is not None:
        instances = read_json(instances_file, 'COCO instances file')
        categories = {cat['id']: cat['name']
                      for cat in instances.get('categories', [])}
        for index, ann in enumerate(instances.get('annotations', [])):
            image = images.get(ann.get('image_id'))
            if image is None:
                continue  # an image the captions file does not list
            name = categories.get(ann.get('category_id'))
            bbox = ann.get('bbox')
            if name is None or not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(
                    f'{instances_file}: annotation {index} (id='
                    f'{ann.get("id")!r}) needs a known "category_id" and a '
                    f'"bbox" [x, y, w, h], got {ann!r:.200}')
            boxes[ann['image_id']].append(
                (name, normalise_coco_box(bbox, image['width'],
                                          image['height'])))
    return [ImageContext(str(image_id), image['file_name'],
                         captions[image_id], boxes[image_id])
            for image_id, image in images.items() if captions[image_id]]


def _coco_images(data: object, path: str) -> dict:
    """``images`` of a COCO file by id; each needs a name and a size."""
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        raise ValueError(f'{path}: not a COCO annotation file (no "images" '
                         'list)')
    images = {}
    for index, image in enumerate(data['images']):
        if not all(key in image for key in ('id', 'file_name', 'width',
                                            'height')) \
                or not image['width'] > 0 or not image['height'] > 0:
            raise ValueError(f'{path}: image {index} needs "id", '
                             f'"file_name" and a positive "width" and '
                             f'"height", got {image!r:.200}')
        images[image['id']] = image
    return images


def load_simple_contexts(path: str) -> list[ImageContext]:
    """Contexts from a json list or jsonl of ``{"id", "image", "captions",
    "boxes"}`` records (``boxes`` optional, normalised ``[x1, y1, x2,
    y2]``)."""
    contexts = []
    for index, record in enumerate(read_records(path)):
        def fail(reason: str):
            record_id = record.get('id') if isinstance(record, dict) \
                else None
            raise ValueError(f'{path}: record {index} (id={record_id!r}): '
                             f'{reason}')

        if not isinstance(record, dict):
            fail(f'expected an object, got {type(record).__name__}')
        if not isinstance(record.get('id'), (str, int)) or \
                not isinstance(record.get('image'), str):
            fail('needs an "id" (string or integer) and an "image" path')
        captions = record.get('captions')
        if not isinstance(captions, list) or not captions or \
                not all(isinstance(c, str) and c.strip() for c in captions):
            fail('"captions" must be a non-empty list of non-empty strings')
        if not isinstance(record.get('boxes', []), list):
            fail('"boxes" must be a list')
        boxes = []
        for box in record.get('boxes', []):
            if not _is_normalised_box(box):
                fail(f'a box must be {{"category": str, "bbox": [x1, y1, '
                     f'x2, y2]}} normalised to [0, 1], got {box!r:.200}')
            boxes.append((box['category'],
                          tuple(float(v) for v in box['bbox'])))
        contexts.append(ImageContext(str(record['id']), record['image'],
                                     [c.strip() for c in captions], boxes))
    return contexts


def _is_normalised_box(box: object) -> bool:
    """``{"category": str, "bbox": [x1, y1, x2, y2]}`` inside [0, 1]."""
    if not isinstance(box, dict) or not isinstance(box.get('category'), str):
        return False
    bbox = box.get('bbox')
    return (isinstance(bbox, list) and len(bbox) == 4
            and all(isinstance(v, (int, float)) and 0 <= v <= 1
                    for v in bbox)
            and bbox[0] <= bbox[2] and bbox[1] <= bbox[3])
