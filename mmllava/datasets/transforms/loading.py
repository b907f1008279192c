"""Read a sample's image from disk, or take one given in memory."""
import io
from os import PathLike
from typing import Union

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmllava.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """Open ``img_path`` as an RGB PIL image (any PIL mode is converted), or
    each of its paths when it is a list (a sample with several images).

    An image given in memory under ``img`` (a PIL image or an ``(H, W)`` /
    ``(H, W, 3)`` uint8 array, as ``inference_model`` passes it, or a list
    of them for a conversation about several, where an entry may also be a
    file path) is used instead of reading ``img_path``.

    Adds ``images``: a list with the images in order, or an empty list for
    a text-only sample (neither ``img`` nor ``img_path``). A file that
    cannot be read, decoded or converted, or that PIL refuses as a
    decompression bomb (``Image.MAX_IMAGE_PIXELS``), raises an ``OSError``
    naming the sample and the file.
    """

    def transform(self, results: dict) -> dict:
        sample_id = results.get('sample_id')
        if results.get('img') is not None:
            images = results.pop('img')
            images = images if isinstance(images, (list, tuple)) \
                else [images]
            results['images'] = [
                read_image(image, sample_id)
                if isinstance(image, (str, PathLike)) else to_rgb_image(image)
                for image in images]
            return results
        path = results.get('img_path')
        paths = [] if path is None else path \
            if isinstance(path, (list, tuple)) else [path]
        results['images'] = [read_image(path, sample_id) for path in paths]
        return results


def read_image(path: Union[str, PathLike], sample_id: object) -> Image.Image:
    """Read an image file as RGB; errors name the sample and the file."""
    try:
        # One read of the whole file: PIL decoding from memory saves
        # ~0.1 ms a photo of its chunked reads from the file.
        with open(path, 'rb') as file:
            encoded = io.BytesIO(file.read())
        with Image.open(encoded) as image:
            image.load()
            # convert() of an RGB image is a copy: skip it.
            return image if image.mode == 'RGB' else image.convert('RGB')
    except Image.DecompressionBombError as error:
        # Not an OSError in PIL: raised as one, so that the dataset's retry
        # and skip_invalid policy drops it like any unreadable image.
        raise OSError(f'Sample {sample_id!r}: cannot read image {path}: PIL '
                      'refuses it as a possible decompression bomb: '
                      f'{error}') from error
    except (OSError, ValueError) as error:
        raise OSError(f'Sample {sample_id!r}: cannot read image {path}: '
                      f'{error}') from error


def to_rgb_image(image) -> Image.Image:
    """A PIL image or a uint8 array (grey, RGB or RGBA) as an RGB image."""
    if isinstance(image, Image.Image):
        return image.convert('RGB')
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                'An image array must be uint8 with shape (H, W), (H, W, 3) '
                f'or (H, W, 4); got {image.dtype} {image.shape}.')
        return Image.fromarray(image).convert('RGB')
    raise TypeError('An image must be a path, a PIL image or a numpy array; '
                    f'got {type(image).__name__}.')
