"""A transformers PIL image processor's work in fewer passes, with the same
bits out (or, with torch's resize, one level off in 0.2% of the values).

transformers' PIL backend turns an image into a numpy array, back into a PIL
image to resize it, into float64 to rescale and into float32 to normalise,
moving channels in between. For an RGB PIL image :class:`FastImageProcessor`
resizes with PIL directly (the processor's filter, no ``reducing_gap``, as the
backend calls it, so the same pixels), centre-crops the uint8 result and maps
every uint8 level to its final float with one table lookup per channel. The
table is the processor's own ``rescale`` and ``normalize`` applied to the 256
levels; both are element-wise, so each pixel gets exactly the float the
processor would give it.

With ``background`` it also pads each image to a square first (LLaVA-1.5's
``expand2square``), and resizes the canvas it made without resizing its
padding rows across: PIL resizes in two passes, across then down, rounding to
uint8 in between, and across a row of one colour gives that colour back, so
the padding rows of the first pass are known without computing them (a
quarter of that pass for a 4:3 photo). The padding and the resize happen in
one call, so the canvas's make-up never leaves it.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_transforms import center_crop
from transformers.image_utils import (ChannelDimension,
                                      validate_preprocess_arguments)

#: The PilBackend steps the fast path reproduces; a processor class that
#: overrides any of them runs as it is.
REPRODUCED_METHODS = ('preprocess', '_preprocess_image_like_inputs',
                      '_prepare_image_like_inputs', '_standardize_kwargs',
                      'process_image', 'convert_to_rgb', '_preprocess',
                      'resize', 'center_crop', 'rescale', 'normalize')
#: The resize targets the fast path computes, as the backend does.
REPRODUCED_SIZES = ({'shortest_edge'}, {'height', 'width'})
#: PIL filters resized in two separable passes (``ImagingResample``).
TWO_PASS_FILTERS = (Image.Resampling.BOX, Image.Resampling.BILINEAR,
                    Image.Resampling.HAMMING, Image.Resampling.BICUBIC,
                    Image.Resampling.LANCZOS)


#: ``FastImageProcessor``'s resize backends.
RESIZE_BACKENDS = ('pil', 'torch')
#: PIL filters torch interpolates with antialiasing, by torch's name.
TORCH_MODES = {Image.Resampling.BICUBIC: 'bicubic',
               Image.Resampling.BILINEAR: 'bilinear'}


@dataclass(frozen=True)
class SquarePadding:
    """How an image was centred on a square canvas.

    Args:
        canvas (Image.Image): The square canvas.
        image (Image.Image): The image pasted on it.
        offset (tuple[int, int]): Where its top-left corner went.
        background (tuple[int, int, int]): The colour around it.
    """

    canvas: Image.Image
    image: Image.Image
    offset: tuple[int, int]
    background: tuple[int, int, int]


def pad_to_square(image: Image.Image,
                  background: tuple[int, int, int]) -> SquarePadding:
    """Centre ``image`` on a square canvas of ``background`` colour (a
    square image is its own canvas)."""
    width, height = image.size
    if width == height:
        return SquarePadding(image, image, (0, 0), background)
    side = max(width, height)
    offset = ((side - width) // 2, (side - height) // 2)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, offset)
    return SquarePadding(canvas, image, offset, background)


def resize_canvas(padding: SquarePadding, size: tuple[int, int],
                  resample: int) -> Image.Image:
    """``padding.canvas.resize(size, resample)``, bit for bit, without the
    first pass over the padding rows of a canvas made from a wide image."""
    canvas, image = padding.canvas, padding.image
    if image.width <= image.height or resample not in TWO_PASS_FILTERS:
        return canvas.resize(size, resample)
    width, height = size
    # The first pass (across, to the new width) of the image rows; of the
    # padding rows it would give back the background colour.
    rows = image.resize((width, image.height), resample)
    strip = Image.new(canvas.mode, (width, canvas.height), padding.background)
    strip.paste(rows, (0, padding.offset[1]))
    # The second pass (down), over every row, as PIL's own.
    return strip.resize((width, height), resample)


def resized_size(height: int, width: int, size) -> tuple[int, int]:
    """``(height, width)`` the backend resizes an image to: its shorter edge
    to ``size.shortest_edge`` (the longer one scaled and truncated), or
    ``(size.height, size.width)``."""
    if size.shortest_edge is None:
        return size.height, size.width
    short, long = (width, height) if width <= height else (height, width)
    new_short = size.shortest_edge
    new_long = int(new_short * long / short)
    return (new_long, new_short) if width <= height \
        else (new_short, new_long)


def torch_resize(image: Image.Image, size: tuple[int, int],
                 mode: str) -> np.ndarray:
    """``image`` resized to ``(height, width)`` by torch's antialiased
    ``mode`` interpolation on uint8, as ``(H, W, 3)`` uint8.

    torch's uint8 kernel is ported from Pillow-SIMD: PIL's separable
    filter with 16-bit integer weights where PIL uses 22-bit fixed point
    (on CPUs without AVX2 torch computes in float). When shrinking, about
    0.2% of the values come out one level away from PIL's (never more), at
    a fifth of PIL's time on one core. Enlarging differs by more (two
    levels on a 3x2 image), so :class:`FastImageProcessor` enlarges with
    PIL.
    """
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    resized = torch.nn.functional.interpolate(
        pixels.contiguous(memory_format=torch.channels_last), size=size,
        mode=mode, antialias=True)
    return resized[0].permute(1, 2, 0).numpy()


class FastImageProcessor:
    """Run a transformers PIL image processor (resize, centre crop, rescale,
    normalise) on a list of images, bitwise equal to calling it and casting
    to float32 (with ``resize_backend='pil'``).

    RGB PIL images without a transparency key take the fast path; any other
    image, and every image of a processor this module does not reproduce
    (one that pads, resizes to a longest edge, or overrides a backend step),
    goes through the processor itself.

    Args:
        processor: A transformers PIL-backend image processor.
        resize_backend (str): ``'pil'`` resizes with PIL, as the processor
            does: bit for bit its output. ``'torch'`` shrinks bicubic and
            bilinear with torch's antialiased uint8 interpolation (see
            :func:`torch_resize`): about 4x faster, with some 0.2% of the
            values one uint8 level off. Defaults to ``'pil'``.
    """

    def __init__(self, processor, resize_backend: str = 'pil') -> None:
        if resize_backend not in RESIZE_BACKENDS:
            raise ValueError(f'resize_backend must be one of '
                             f'{RESIZE_BACKENDS}, got {resize_backend!r}')
        self.processor = processor
        self.fast = self.reproducible(processor)
        if self.fast:
            self.table = self.level_table(processor)
        self.torch_mode = TORCH_MODES.get(processor.resample) \
            if self.fast and resize_backend == 'torch' else None

    @staticmethod
    def reproducible(processor) -> bool:
        """Whether the fast path gives this processor's output."""
        if not isinstance(processor, PilBackend) or any(
                getattr(type(processor), name) is not getattr(
                    PilBackend, name) for name in REPRODUCED_METHODS):
            return False
        if processor.do_pad:
            return False
        if processor.do_resize and \
                set(dict(processor.size)) not in REPRODUCED_SIZES:
            return False
        # Settings the processor would reject go to it, to fail there.
        try:
            validate_preprocess_arguments(
                do_rescale=processor.do_rescale,
                rescale_factor=processor.rescale_factor,
                do_normalize=processor.do_normalize,
                image_mean=processor.image_mean,
                image_std=processor.image_std,
                do_center_crop=processor.do_center_crop,
                crop_size=processor.crop_size,
                do_resize=processor.do_resize, size=processor.size,
                resample=processor.resample)
        except ValueError:
            return False
        return True

    @staticmethod
    def level_table(processor) -> np.ndarray:
        """``(3, 256)`` float32: channel ``c``'s level ``v`` as the processor
        rescales and normalises it (channels first, as the backend holds
        images)."""
        levels = np.tile(np.arange(256, dtype=np.uint8), (3, 1, 1))
        if processor.do_rescale:
            levels = processor.rescale(levels, processor.rescale_factor)
        if processor.do_normalize:
            levels = processor.normalize(levels, processor.image_mean,
                                         processor.image_std)
        return np.ascontiguousarray(levels[:, 0].astype(np.float32))

    def __call__(self, images: Sequence,
                 background: Optional[tuple[int, int, int]] = None
                 ) -> torch.Tensor:
        """``(len(images), 3, H, W)`` float32 pixel values.

        Args:
            images (Sequence): The images.
            background (tuple, optional): Pad each PIL image to a square of
                this colour first (see :func:`pad_to_square`). Defaults to
                None (as they are).
        """
        if background is not None:
            kinds = {type(image).__name__ for image in images
                     if not isinstance(image, Image.Image)}
            if kinds:
                raise TypeError('Padding to a square takes PIL images (as '
                                f'LoadImage gives them), got {sorted(kinds)}')
            paddings = [pad_to_square(image, background) for image in images]
            return self._stack([self.process(padding.canvas, padding)
                                for padding in paddings])
        return self._stack([self.process(image) for image in images])

    @staticmethod
    def _stack(pixels: list[np.ndarray]) -> torch.Tensor:
        # numpy stacks: torch.stack may wake its thread pool, which costs
        # more than the copy on a busy machine.
        return torch.from_numpy(np.stack(pixels))

    def process(self, image,
                padding: Optional[SquarePadding] = None) -> np.ndarray:
        """One image's ``(3, H, W)`` float32 pixel values."""
        if not (self.fast and isinstance(image, Image.Image)
                and image.mode == 'RGB'
                and image.info.get('transparency') is None):
            # The processor composites transparency onto white; other
            # inputs (arrays, other modes) are its own to convert.
            return self.processor(image, return_tensors='np')[
                'pixel_values'][0].astype(np.float32)
        processor = self.processor
        pixels = None
        if processor.do_resize:
            height, width = resized_size(image.height, image.width,
                                         processor.size)
            if (width, height) == image.size:
                pass
            elif self.torch_mode is not None and width <= image.width \
                    and height <= image.height:
                pixels = torch_resize(image, (height, width), self.torch_mode)
            elif padding is None:
                image = image.resize((width, height), processor.resample)
            else:
                image = resize_canvas(padding, (width, height),
                                      processor.resample)
        if pixels is None:
            pixels = np.asarray(image)  # (H, W, 3) uint8
        if processor.do_center_crop:
            crop = processor.crop_size
            pixels = center_crop(pixels, (crop.height, crop.width),
                                 input_data_format=ChannelDimension.LAST)
        values = np.empty((3, ) + pixels.shape[:2], dtype=np.float32)
        for channel in range(3):
            np.take(self.table[channel], pixels[..., channel],
                    out=values[channel])
        return values
