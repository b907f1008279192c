"""Image preparation: LLaVA-1.5's pad-to-square and the transformers image
processor."""
from typing import Sequence

import torch
import transformers
from mmcv.transforms import BaseTransform
from PIL import Image

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


def pad_to_square(image: Image.Image,
                  background: tuple[int, int, int]) -> Image.Image:
    """Centre ``image`` on a square canvas of ``background`` colour."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


@TRANSFORMS.register_module()
class PadToSquare(BaseTransform):
    """Pad each image to a square, as LLaVA-1.5 (``image_aspect_ratio='pad'``).

    Args:
        mean (Sequence[float]): The image processor's mean in 0-1; the
            padding colour is ``int(255 * mean)`` per channel, as in the
            official code.
    """

    def __init__(self, mean: Sequence[float]) -> None:
        self.background = tuple(int(255 * value) for value in mean)

    def transform(self, results: dict) -> dict:
        results['images'] = [pad_to_square(image, self.background)
                             for image in results['images']]
        return results


@TRANSFORMS.register_module()
class ProcessImage(BaseTransform):
    """Run the transformers image processor (resize, crop, normalise).

    Adds ``pixel_values``: ``(num_images, 3, H, W)`` float32, or an empty
    tensor for a text-only sample.

    Args:
        image_processor (dict): See :func:`build_image_processor`.
    """

    def __init__(self, image_processor: dict) -> None:
        self.image_processor = build_image_processor(image_processor)

    def transform(self, results: dict) -> dict:
        images = results['images']
        if not images:
            results['pixel_values'] = torch.empty(0)
            return results
        processed = self.image_processor(images, return_tensors='pt')
        results['pixel_values'] = processed['pixel_values'].float()
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
        self.colour = tuple(int(255 * value) for value in mean)

    def transform(self, results: dict) -> dict:
        results['images'] = [Image.new('RGB', image.size, self.colour)
                             for image in results['images']]
        return results
