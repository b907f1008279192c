"""``mmllava/datasets/transforms/anyres.py`` and the AnyRes path through
tokenization, packing and the data preprocessor.

Pixels are compared with transformers' ``LlavaNextImageProcessor`` (PIL
backend), token counts with transformers' ``LlavaNextProcessor``.
"""
import pytest
import torch
from mmengine.dataset import pseudo_collate
from PIL import Image
from skimage import data as photos
from transformers import (LlavaNextImageProcessorPil, LlavaNextProcessor,
                          SiglipImageProcessorPil)

from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.conversation import tokenize_conversation
from mmllava.datasets.transforms import (AnyResImage, PackLLaVAInputs,
                                         TokenizeConversation)
from mmllava.models.anyres import grid_shape
from mmllava.registry import MODELS
from mmllava.templates import get_template

TILE, PATCH = 48, 8
#: (height, width): 1x2, 2x1, 2x2, 1x3 and 3x1 grids of 48-pixel tiles.
PINPOINTS = [(48, 96), (96, 48), (96, 96), (48, 144), (144, 48)]
PROCESSOR = dict(type='CLIPImageProcessor', size=dict(shortest_edge=TILE),
                 crop_size=dict(height=TILE, width=TILE))
TOKEN_COUNT = dict(grid_pinpoints=PINPOINTS, tile_size=TILE,
                   patch_size=PATCH, merge_type='spatial_unpad')


def photo_set():
    """Real photos of different aspect ratios, and strips of them that
    choose the 1x3 and 3x1 grids."""
    named = {name: Image.fromarray(getattr(photos, name)()).convert('RGB')
             for name in ('astronaut', 'coffee', 'rocket', 'chelsea')}
    named['rocket_strip'] = named['rocket'].crop((0, 150, 640, 250))
    named['astronaut_column'] = named['astronaut'].crop((200, 0, 290, 512))
    named['small_coffee'] = named['coffee'].resize((90, 40))
    return named


@pytest.fixture(scope='module')
def images():
    return photo_set()


def test_photos_cover_every_grid(images):
    grids = {grid_shape((image.height, image.width), PINPOINTS, TILE)
             for image in images.values()}
    assert grids == {(1, 3), (3, 1), (2, 2), (1, 2)}


def test_tiles_equal_transformers_llava_next_processor(images):
    transform = AnyResImage(PROCESSOR, PINPOINTS)
    reference = LlavaNextImageProcessorPil(
        size=dict(shortest_edge=TILE),
        crop_size=dict(height=TILE, width=TILE),
        image_grid_pinpoints=[list(pair) for pair in PINPOINTS])
    results = transform(dict(images=list(images.values())))
    for index, image in enumerate(images.values()):
        expected = reference(image, return_tensors='pt')
        rows, columns = grid_shape((image.height, image.width), PINPOINTS,
                                   TILE)
        ours = results['pixel_values'][index]
        assert ours.shape == (1 + rows * columns, 3, TILE, TILE)
        assert ours.dtype == torch.float32
        # transformers pads its batch to the most tiles: compare ours.
        assert torch.equal(ours, expected['pixel_values'][0][:len(ours)])
        assert results['image_sizes'][index] == tuple(
            expected['image_sizes'][0].tolist()) == (image.height,
                                                     image.width)


def test_siglip_processor_tiles_at_its_resize_size(images):
    """SigLIP's processor resizes straight to ``size`` and does not crop:
    that size is the tile."""
    transform = AnyResImage(
        dict(type='SiglipImageProcessor', size=dict(height=TILE, width=TILE)),
        PINPOINTS)
    assert transform.tile_size == TILE
    reference = SiglipImageProcessorPil(size=dict(height=TILE, width=TILE))
    coffee = images['coffee']
    ours = transform(dict(images=[coffee]))['pixel_values'][0]
    rows, columns = grid_shape((coffee.height, coffee.width), PINPOINTS, TILE)
    assert ours.shape == (1 + rows * columns, 3, TILE, TILE)
    # The base view: the whole image resized to one tile.
    assert torch.equal(ours[0],
                       reference(coffee, return_tensors='pt')
                       ['pixel_values'][0])


def test_text_only_sample_gets_no_tiles():
    results = AnyResImage(PROCESSOR, PINPOINTS)(dict(images=[]))
    assert results['pixel_values'] == [] and results['image_sizes'] == []
    packed = PackLLaVAInputs()(dict(results, input_ids=[1, 2]))
    assert packed['inputs']['pixel_values'].numel() == 0
    assert packed['inputs']['image_sizes'].shape == (0, 2)


def test_pinpoints_and_tiles_are_checked():
    with pytest.raises(ValueError, match='not multiples of the tile size'):
        AnyResImage(PROCESSOR, [(48, 100)])
    with pytest.raises(ValueError, match='tiles are square'):
        AnyResImage(dict(PROCESSOR, crop_size=dict(height=48, width=32)),
                    PINPOINTS)


def processor_counts(images):
    """Image tokens per image, as transformers' LlavaNextProcessor counts
    them for a CLIP tower (CLS dropped)."""
    processor = LlavaNextProcessor.__new__(LlavaNextProcessor)
    processor.image_processor = LlavaNextImageProcessorPil(
        size=dict(shortest_edge=TILE),
        crop_size=dict(height=TILE, width=TILE),
        image_grid_pinpoints=[list(pair) for pair in PINPOINTS])
    processor.patch_size = PATCH
    processor.num_additional_image_tokens = 1
    processor.vision_feature_select_strategy = 'default'
    processor.images_kwargs = {}
    return processor._get_num_multimodal_tokens(
        [(image.height, image.width) for image in images]).num_image_tokens


TURNS = [{'from': 'human', 'value': '<image>\nWhat is in the picture?'},
         {'from': 'gpt', 'value': 'A photo with several things in it.'}]


def test_truncation_counts_each_image_from_its_size(tokenizer, images):
    """A sample that fits exactly is kept whole; one token less cuts its
    last token, never the image."""
    full_ids, _ = tokenize_conversation(TURNS, get_template('vicuna_v1'),
                                        tokenizer, True)
    for image, count in zip(images.values(), processor_counts(
            images.values())):
        full_length = len(full_ids) - 1 + count
        transform = TokenizeConversation(
            tokenizer, 'vicuna_v1', max_length=full_length,
            num_image_tokens=TOKEN_COUNT)
        sample = AnyResImage(PROCESSOR, PINPOINTS)(dict(images=[image]))
        kept = transform(dict(sample, conversations=TURNS))
        assert kept['input_ids'] == full_ids
        transform.max_length = full_length - 1
        cut = transform(dict(sample, conversations=TURNS))
        assert cut['input_ids'] == full_ids[:-1]
        assert len(cut['pixel_values']) == len(cut['image_sizes']) == 1
        # Without room for the whole image, it goes with all after it.
        transform.max_length = full_ids.index(IMAGE_TOKEN_INDEX) + count - 1
        assert transform(dict(sample, conversations=TURNS)) is None


def test_batch_of_different_tile_counts(images, tokenizer):
    """Pack + data preprocessor: tiles of the whole batch in one stack,
    each image's size, images per sample."""
    pipeline = [AnyResImage(PROCESSOR, PINPOINTS),
                TokenizeConversation(tokenizer, 'vicuna_v1',
                                     mode='predict'),
                PackLLaVAInputs()]
    chosen = [images['rocket_strip'], None, images['astronaut']]
    samples = []
    for image in chosen:
        results = dict(images=[image] if image else [],
                       conversations=TURNS[:1] if image else [
                           {'from': 'human', 'value': 'Hello'}])
        if image:
            results['img_path'] = 'in memory'
        for transform in pipeline:
            results = transform(results)
        samples.append(results)
    batch = MODELS.build(dict(type='LLaVADataPreprocessor'))(
        pseudo_collate(samples))
    assert batch['num_images'] == [1, 0, 1]
    assert batch['pixel_values'].shape == (4 + 5, 3, TILE, TILE)
    assert torch.equal(batch['image_sizes'],
                       torch.tensor([[100, 640], [512, 512]]))
    assert (batch['input_ids'] == IMAGE_TOKEN_INDEX).sum() == 2
