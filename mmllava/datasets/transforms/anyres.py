"""AnyRes image preparation (LLaVA-NeXT): a base view plus grid tiles."""
from typing import Sequence

from mmcv.transforms import BaseTransform
from PIL import Image

from mmllava.datasets.transforms.fast_image import FastImageProcessor
from mmllava.datasets.transforms.image import build_image_processor
from mmllava.models.anyres import (Size, check_pinpoints, resized_size,
                                   select_best_resolution)
from mmllava.registry import TRANSFORMS


def tile_size_of(processor) -> int:
    """The square image a processor produces (one tile, the tower's input):
    its crop size (CLIP), or its resize size where it does not crop
    (SigLIP resizes straight to ``size``)."""
    side = processor.crop_size if getattr(processor, 'crop_size', None) \
        else processor.size
    side = dict(side)
    if not side.get('height') or not side.get('width'):
        raise ValueError(
            f'AnyRes needs an image processor that outputs a fixed square; '
            f'{type(processor).__name__} has crop size '
            f'{getattr(processor, "crop_size", None)} and size '
            f'{processor.size}.')
    if side['height'] != side['width']:
        raise ValueError(f'AnyRes tiles are square; the image processor '
                         f'outputs {side["height"]}x{side["width"]}.')
    return side['height']


def cut_tiles(image: Image.Image, pinpoints: Sequence[Size], tile_size: int,
              resample: int) -> list[Image.Image]:
    """The base view, then the grid's tiles row by row.

    The image is resized into its best pinpoint keeping its aspect ratio,
    centred on a black canvas of that resolution, and cut into tiles; the
    base view is the whole image resized to one tile.
    """
    height, width = image.height, image.width
    target_height, target_width = select_best_resolution((height, width),
                                                         pinpoints)
    new_height, new_width = resized_size((height, width),
                                         (target_height, target_width))
    canvas = Image.new('RGB', (target_width, target_height), (0, 0, 0))
    canvas.paste(image.resize((new_width, new_height), resample),
                 ((target_width - new_width) // 2,
                  (target_height - new_height) // 2))
    tiles = [canvas.crop((left, top, left + tile_size, top + tile_size))
             for top in range(0, target_height, tile_size)
             for left in range(0, target_width, tile_size)]
    return [image.resize((tile_size, tile_size), resample)] + tiles


@TRANSFORMS.register_module()
class AnyResImage(BaseTransform):
    """Prepare each image as LLaVA-NeXT does (``image_aspect_ratio=
    'anyres'``); replaces ``PadToSquare`` + ``ProcessImage``.

    Adds ``pixel_values``: per image a ``(1 + rows * columns, 3, S, S)``
    float32 tensor (the base view, then the tiles row by row; ``S`` is the
    processor's crop size), and ``image_sizes``: per image its original
    ``(height, width)``, which the model needs to merge the tiles.

    Args:
        image_processor (dict): See
            :func:`~mmllava.datasets.transforms.image.build_image_processor`;
            its crop size is the tile size and its resampling filter resizes.
        grid_pinpoints (list): ``(height, width)`` resolutions, multiples of
            the tile size (the model's ``image_grid_pinpoints``).
    """

    def __init__(self, image_processor: dict, grid_pinpoints: list) -> None:
        self.image_processor = build_image_processor(image_processor)
        self.tile_size = tile_size_of(self.image_processor)
        self.grid_pinpoints = check_pinpoints(grid_pinpoints, self.tile_size)
        self.resample = int(self.image_processor.resample)
        # The processor's pixels, bit for bit, in fewer passes.
        self.fast_processor = FastImageProcessor(self.image_processor)

    def transform(self, results: dict) -> dict:
        pixel_values, sizes = [], []
        for image in results['images']:
            tiles = cut_tiles(image, self.grid_pinpoints, self.tile_size,
                              self.resample)
            pixel_values.append(self.fast_processor(tiles))
            sizes.append((image.height, image.width))
        results['pixel_values'] = pixel_values
        results['image_sizes'] = sizes
        return results
