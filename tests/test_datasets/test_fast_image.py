"""``mmllava/datasets/transforms/fast_image.py`` against transformers' own
image processors (PIL backend) and PIL's own resize: every value must be
bit for bit the same (``torch.equal``, not ``allclose``).

The pipeline end to end (files on disk, LoadImage, PadToSquare, ProcessImage
against the official ``expand2square`` and ``CLIPImageProcessor``) is tested
in ``test_transforms.py``.
"""
import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from skimage import data as photos

from mmllava.datasets.transforms.fast_image import (TORCH_MODES,
                                                    FastImageProcessor,
                                                    SquarePadding,
                                                    pad_to_square,
                                                    resize_canvas)

CLIP_PAD_COLOUR = (122, 116, 104)


def photo(name: str, size=None) -> Image.Image:
    image = Image.fromarray(getattr(photos, name)()).convert('RGB')
    return image.resize(size) if size else image


#: Real photos: square, wide, tall, and the odd sizes (one row, one column,
#: a few pixels, one pixel) that stress the resize borders.
PHOTOS = [('astronaut', None), ('coffee', None), ('chelsea', None),
          ('rocket', (427, 640)), ('astronaut', (451, 1)),
          ('coffee', (1, 77)), ('chelsea', (3, 2)), ('rocket', (2, 5)),
          ('coffee', (1, 1)), ('astronaut', (640, 427))]

PROCESSORS = {
    'clip': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=224), crop_size=dict(height=224, width=224)),
    # A crop larger than the resized image: the processor pads with zeros.
    'clip_crop_pads': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=32), crop_size=dict(height=40, width=28)),
    'clip_scalar_mean': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=48), crop_size=dict(height=40, width=40),
        image_mean=0.5, image_std=0.25),
    'siglip': lambda: transformers.SiglipImageProcessorPil(
        size=dict(height=64, width=48)),
    'no_rescale_no_normalize': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=30), do_rescale=False, do_normalize=False),
    'bilinear_no_rescale': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=30), resample=Image.Resampling.BILINEAR,
        do_rescale=False),
    'lanczos_no_normalize': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=30), resample=Image.Resampling.LANCZOS,
        do_normalize=False),
    'nearest': lambda: transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=30), resample=Image.Resampling.NEAREST),
    'no_resize': lambda: transformers.CLIPImageProcessorPil(
        do_resize=False, crop_size=dict(height=30, width=30)),
}


def photos_and_canvases():
    """``(name, size, image, background, processed)``: each of
    :data:`PHOTOS` as it is (no background) and padded to a square by the
    fast processor (with the background), with the image the processor
    itself is given for the same result: the photo or its square canvas."""
    for name, size in PHOTOS:
        image = photo(name, size)
        yield name, size, image, None, image
        yield name, size, image, CLIP_PAD_COLOUR, pad_to_square(
            image, CLIP_PAD_COLOUR).canvas


def reference(processor, image) -> torch.Tensor:
    """What ``ProcessImage`` returned before: the processor, as float32."""
    return processor(image, return_tensors='pt')['pixel_values'].float()


@pytest.mark.parametrize('name', sorted(PROCESSORS))
@pytest.mark.slow
def test_equals_the_processor_on_photos_and_their_canvases(name):
    processor = PROCESSORS[name]()
    fast = FastImageProcessor(processor)
    assert fast.fast
    for photo_name, size, image, background, processed in \
            photos_and_canvases():
        expected = reference(processor, processed)
        ours = fast([image], background)
        assert ours.dtype == torch.float32
        assert ours.shape == expected.shape, (photo_name, size)
        assert torch.equal(ours, expected), (name, photo_name, size)


@pytest.mark.parametrize('name', sorted(PROCESSORS))
@pytest.mark.slow
def test_torch_resize_is_within_one_level_of_the_processor(name):
    """``resize_backend='torch'``: bicubic and bilinear resizes by torch
    land within one uint8 level of PIL's (a level is the table's step per
    channel), on a small fraction of the values; filters torch does not
    antialias stay PIL's, bit for bit."""
    processor = PROCESSORS[name]()
    fast = FastImageProcessor(processor, resize_backend='torch')
    step = torch.from_numpy(np.abs(fast.table[:, 1] - fast.table[:, 0]))
    differing = values = 0
    for photo_name, size, image, background, processed in \
            photos_and_canvases():
        expected = reference(processor, processed)
        ours = fast([image], background)
        assert ours.shape == expected.shape, (photo_name, size)
        levels = ((ours - expected).abs() / step[:, None, None]).round()
        assert levels.max() <= 1, (name, photo_name, size)
        differing += int((levels > 0).sum())
        values += levels.numel()
    if processor.resample in TORCH_MODES and processor.do_resize:
        assert 0 < differing / values < 0.01, differing / values
    else:
        assert differing == 0


def test_an_unknown_resize_backend_fails():
    with pytest.raises(ValueError, match="resize_backend must be one of"):
        FastImageProcessor(PROCESSORS['clip'](), resize_backend='cv2')


def test_several_images_at_once_in_order():
    processor = PROCESSORS['clip']()
    images = [photo('coffee'), photo('astronaut'), photo('rocket')]
    canvases = [pad_to_square(image, CLIP_PAD_COLOUR).canvas
                for image in images]
    ours = FastImageProcessor(processor)(images, CLIP_PAD_COLOUR)
    assert torch.equal(ours, reference(processor, canvases))
    # Three different photos: a mix-up of the order would show.
    assert not torch.equal(ours[0], ours[1])


@pytest.mark.parametrize('filter_', [
    Image.Resampling.BICUBIC, Image.Resampling.BILINEAR,
    Image.Resampling.LANCZOS, Image.Resampling.BOX, Image.Resampling.HAMMING,
    Image.Resampling.NEAREST])
@pytest.mark.parametrize('size,target', [
    ((640, 480), (224, 224)), ((640, 427), (336, 336)),
    ((500, 375), (224, 224)), ((451, 1), (224, 224)), ((7, 3), (224, 224)),
    ((600, 400), (600, 300)), ((600, 400), (300, 600)),
    ((480, 640), (224, 224)), ((512, 512), (224, 224))])
def test_resize_canvas_equals_pil_resize_of_the_canvas(filter_, size, target):
    """The padding rows of the first pass are not computed, yet the result
    is PIL's: a wide image's canvas, a tall one's (PIL itself), a square."""
    padding = pad_to_square(photo('chelsea', size), CLIP_PAD_COLOUR)
    expected = np.asarray(padding.canvas.resize(target, filter_))
    ours = np.asarray(resize_canvas(padding, target, filter_))
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize('background', [(0, 0, 0), (255, 255, 255),
                                        (122, 116, 104), (1, 254, 128)])
def test_padding_rows_keep_their_colour_at_any_background(background):
    """The shortcut rests on one fact: across a row of one colour, PIL's
    resize gives that colour back (the fixed-point weights sum to one
    within rounding)."""
    padding = pad_to_square(photo('coffee', (640, 301)), background)
    for target in ((224, 224), (336, 336), (97, 13)):
        np.testing.assert_array_equal(
            np.asarray(resize_canvas(padding, target, Image.BICUBIC)),
            np.asarray(padding.canvas.resize(target, Image.BICUBIC)))


def test_padding_takes_pil_images_only():
    with pytest.raises(TypeError, match=r"PIL images .* \['ndarray'\]"):
        FastImageProcessor(PROCESSORS['clip']())([photos.coffee()],
                                                 CLIP_PAD_COLOUR)


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P', 'CMYK', 'LA'])
def test_other_modes_go_through_the_processor(mode):
    processor = PROCESSORS['clip']()
    image = photo('chelsea').convert(mode)
    ours = FastImageProcessor(processor)([image])
    assert torch.equal(ours, reference(processor, image))


def test_numpy_images_go_through_the_processor():
    processor = PROCESSORS['siglip']()
    array = photos.coffee()
    ours = FastImageProcessor(processor)([array])
    assert torch.equal(ours, reference(processor, array))


def test_rgb_with_a_transparency_key_is_composited_as_the_processor_does():
    """A PNG's tRNS key on an RGB image: the processor paints that colour
    white; so must we."""
    pixels = photos.astronaut()[:64, :64].copy()
    pixels[:16] = (10, 20, 30)
    image = Image.fromarray(pixels)
    image.info['transparency'] = (10, 20, 30)
    processor = PROCESSORS['clip_scalar_mean']()
    expected = reference(processor, image)
    plain = reference(processor, Image.fromarray(pixels))
    assert not torch.equal(expected, plain)  # the key matters
    assert torch.equal(FastImageProcessor(processor)([image]), expected)


class OwnResize(transformers.CLIPImageProcessorPil):
    """A processor with a resize of its own (here: always to 8 x 8)."""

    def resize(self, image, size, resample=None, **kwargs):
        return super().resize(image, transformers.image_utils.SizeDict(
            height=8, width=8), resample)


@pytest.mark.parametrize('processor', [
    OwnResize(size=dict(shortest_edge=16), crop_size=dict(height=8, width=8)),
    transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=16, longest_edge=20), do_center_crop=False),
    transformers.CLIPImageProcessorPil(
        size=dict(shortest_edge=16), do_center_crop=False, do_pad=True,
        pad_size=dict(height=20, width=24)),
], ids=['overridden_resize', 'longest_edge', 'do_pad'])
def test_processors_it_does_not_reproduce_run_as_they_are(processor):
    fast = FastImageProcessor(processor)
    assert not fast.fast
    image = photo('coffee', (90, 60))
    ours = fast([image], CLIP_PAD_COLOUR)
    canvas = pad_to_square(image, CLIP_PAD_COLOUR).canvas
    assert torch.equal(ours, reference(processor, canvas))


def test_square_padding_records_the_paste():
    image = photo('coffee', (90, 61))
    padding = pad_to_square(image, CLIP_PAD_COLOUR)
    assert isinstance(padding, SquarePadding)
    assert padding.image is image and padding.offset == (0, 14)
    canvas = np.asarray(padding.canvas)
    np.testing.assert_array_equal(canvas[14:75], np.asarray(image))
    assert (canvas[:14] == CLIP_PAD_COLOUR).all()
    square = photo('astronaut', (40, 40))
    assert pad_to_square(square, CLIP_PAD_COLOUR).canvas is square
