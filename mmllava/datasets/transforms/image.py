"""Image preparation: LLaVA-1.5's pad-to-square and the transformers image
processor."""
from typing import Optional, Sequence

import torch
import transformers
from mmcv.transforms import BaseTransform
from PIL import Image

from mmllava.datasets.transforms.fast_image import (FastImageProcessor,
                                                    pad_to_square)
from mmllava.registry import TRANSFORMS
from mmllava.utils.files import require_local_folder


def build_image_processor(cfg: dict):
    """Build a transformers image processor.

    ``dict(pretrained=FOLDER)`` loads one saved beside a vision tower;
    ``dict(type='CLIPImageProcessor', **kwargs)`` builds one from arguments.
    The PIL processors are used: the torchvision ones cannot be installed
    beside our CPU torch.
    """
    cfg = dict(cfg)
    if 'pretrained' in cfg:
        return transformers.AutoImageProcessor.from_pretrained(
            require_local_folder(cfg.pop('pretrained'), 'Image processor'),
            backend='pil', **cfg)
    name = cfg.pop('type')
    # transformers 5 names the PIL variants '<Name>Pil'.
    processor_class = getattr(transformers, name + 'Pil', None) \
        or getattr(transformers, name)
    return processor_class(**cfg)


def pad_colour(mean: Sequence[float]) -> tuple[int, ...]:
    """The padding colour of LLaVA-1.5: ``int(255 * mean)`` per channel."""
    return tuple(int(255 * value) for value in mean)


@TRANSFORMS.register_module()
class PadToSquare(BaseTransform):
    """Pad each image to a square, as LLaVA-1.5 (``image_aspect_ratio='pad'``).

    ``ProcessImage(pad_to_square=mean)`` does the same padding and resizes
    the canvas faster, as it knows how the canvas was made; this step is for
    pipelines that need the padded image itself (e.g. to draw it).

    Args:
        mean (Sequence[float]): The image processor's mean in 0-1; the
            padding colour is ``int(255 * mean)`` per channel, as in the
            official code.
    """

    def __init__(self, mean: Sequence[float]) -> None:
        self.background = pad_colour(mean)

    def transform(self, results: dict) -> dict:
        results['images'] = [pad_to_square(image, self.background).canvas
                             for image in results['images']]
        return results


@TRANSFORMS.register_module()
class ProcessImage(BaseTransform):
    """Run the transformers image processor (resize, crop, normalise),
    optionally after padding each image to a square (LLaVA-1.5's
    ``image_aspect_ratio='pad'``).

    The processor's work is done by :class:`FastImageProcessor`: the same
    float32 values, bit for bit, in a fraction of the time; with
    ``pad_to_square`` the padding is done here too, the result bit for bit
    :class:`PadToSquare` followed by the processor.

    Adds ``pixel_values``: ``(num_images, 3, H, W)`` float32, or an empty
    tensor for a text-only sample.

    Args:
        image_processor (dict): See :func:`build_image_processor`.
        resize_backend (str): ``'pil'`` (the processor's own resize, bit for
            bit) or ``'torch'`` (about 4x faster resizing; some 0.2% of the
            values one uint8 level off). See :class:`FastImageProcessor`.
            Defaults to ``'pil'``.
        pad_to_square (Sequence[float], optional): The image processor's
            mean in 0-1: pad each image to a square of colour
            ``int(255 * mean)`` per channel first, as the official code.
            Defaults to None (no padding).
    """

    def __init__(self, image_processor: dict,
                 resize_backend: str = 'pil',
                 pad_to_square: Optional[Sequence[float]] = None) -> None:
        self.image_processor = build_image_processor(image_processor)
        self.fast_processor = FastImageProcessor(self.image_processor,
                                                 resize_backend)
        self.pad_background = None if pad_to_square is None else \
            pad_colour(pad_to_square)

    def transform(self, results: dict) -> dict:
        images = results['images']
        results['pixel_values'] = self.fast_processor(
            images, self.pad_background) if images else torch.empty(0)
        return results


@TRANSFORMS.register_module()
class BlankImage(BaseTransform):
    """Replace each image by a blank one of the same size: a blind baseline,
    showing what a model answers from the text alone.

    Args:
        mean (Sequence[float]): The colour in 0-1 (the image processor's
            mean, so the blank image normalises to zeros).
    """

    def __init__(self, mean: Sequence[float]) -> None:
        self.colour = pad_colour(mean)

    def transform(self, results: dict) -> dict:
        results['images'] = [Image.new('RGB', image.size, self.colour)
                             for image in results['images']]
        return results


def blind_pipeline(pipeline: Sequence[dict],
                   mean: Sequence[float]) -> list[dict]:
    """``pipeline`` with a :class:`BlankImage` step right after
    ``LoadImage``: the blind baseline's pipeline.

    Args:
        pipeline (Sequence[dict]): Transform configs, one a ``LoadImage``.
        mean (Sequence[float]): The blank colour in 0-1 (see
            :class:`BlankImage`).
    """
    steps = [step['type'] for step in pipeline]
    if 'LoadImage' not in steps:
        raise ValueError('Blanking the images needs a LoadImage step in the '
                         f'pipeline; it has {steps}')
    after = steps.index('LoadImage') + 1
    return [*pipeline[:after], dict(type='BlankImage', mean=mean),
            *pipeline[after:]]
