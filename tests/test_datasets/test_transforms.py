"""``mmllava/datasets/transforms``: image loading and padding, the image
processor, tokenization with truncation, and packing.

Expected values are worked out here independently: the official
``expand2square`` is written out again, pixel values come from a direct call
to transformers' ``CLIPImageProcessor``, and truncation points are found by
counting expanded lengths in the test.
"""
import logging

import numpy as np
import pytest
import torch
import transformers
from mmengine.logging import MMLogger
from PIL import Image
from skimage import data as photos

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.conversation import build_generation_prompt, tokenize_conversation
from mmllava.datasets.transforms import (BlankImage, LoadImage,
                                         PackLLaVAInputs, PadToSquare,
                                         ProcessImage, TokenizeConversation)
from mmllava.datasets.transforms.tokenize import AnyResTokenCount
from mmllava.templates import get_template

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
# int(255 * mean) per channel, as the official expand2square call computes.
CLIP_PAD_COLOUR = (122, 116, 104)
PROCESSOR_CFG = dict(type='CLIPImageProcessor', size=dict(shortest_edge=32),
                     crop_size=dict(height=32, width=32))


def official_expand2square(pil_img, background_color):
    """``llava.train.train.expand2square``, written out again."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


@pytest.fixture(scope='module')
def image_files(tmp_path_factory):
    """Real photos in several PIL modes, formats and non-square sizes."""
    folder = tmp_path_factory.mktemp('images')
    files = {}

    def save(name, image):
        files[name] = folder / name
        image.save(files[name])

    save('rgb_tall.png', Image.fromarray(photos.astronaut()[:, 100:400]))
    save('gray_wide.png', Image.fromarray(photos.camera()[150:351]))
    rgba = Image.fromarray(photos.chelsea()).convert('RGBA')
    alpha = np.tile(np.linspace(0, 255, rgba.width, dtype=np.uint8),
                    (rgba.height, 1))
    rgba.putalpha(Image.fromarray(alpha))
    save('rgba.png', rgba)
    save('palette.png', Image.fromarray(photos.rocket()).quantize(64))
    save('cmyk.jpg', Image.fromarray(photos.coffee()).convert('CMYK'))
    save('rgb.jpg', Image.fromarray(photos.coffee()))
    return files


def load(path, sample_id='sample'):
    return LoadImage()(dict(img_path=str(path), sample_id=sample_id))


# ---------------------------------------------------------------------------
# LoadImage
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name,source_mode', [
    ('rgb_tall.png', 'RGB'), ('gray_wide.png', 'L'), ('rgba.png', 'RGBA'),
    ('palette.png', 'P'), ('cmyk.jpg', 'CMYK'), ('rgb.jpg', 'RGB')])
def test_load_image_converts_any_mode_to_rgb(name, source_mode, image_files):
    with Image.open(image_files[name]) as source:
        assert source.mode == source_mode
        expected = np.asarray(source.convert('RGB'))
    images = load(image_files[name])['images']
    assert len(images) == 1
    assert images[0].mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(images[0]), expected)


def test_load_image_grayscale_repeats_the_grey_value(image_files):
    with Image.open(image_files['gray_wide.png']) as source:
        grey = np.asarray(source)
    assert grey.ndim == 2 and grey.std() > 10
    rgb = np.asarray(load(image_files['gray_wide.png'])['images'][0])
    assert rgb.shape == grey.shape + (3, )
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], grey)


def test_load_image_rgba_drops_alpha_keeps_colour(image_files):
    with Image.open(image_files['rgba.png']) as source:
        rgba = np.asarray(source)
    # The alpha channel really varies, so a loader that composited it
    # instead of dropping it would change the colours.
    assert rgba[..., 3].min() == 0 and rgba[..., 3].max() == 255
    rgb = np.asarray(load(image_files['rgba.png'])['images'][0])
    np.testing.assert_array_equal(rgb, rgba[..., :3])


def test_load_image_takes_in_memory_images_over_the_path(tmp_path):
    photo = photos.astronaut()
    from_array = LoadImage()(dict(img=photo, img_path='unused.jpg'))
    assert 'img' not in from_array
    np.testing.assert_array_equal(np.asarray(from_array['images'][0]), photo)
    grey = LoadImage()(dict(img=Image.fromarray(photo).convert('L')))
    assert grey['images'][0].mode == 'RGB'


@pytest.mark.parametrize('image,error', [
    (np.zeros((4, 4, 3), dtype=np.float32), 'uint8'),
    (np.zeros((4, 4, 2), dtype=np.uint8), 'shape'),
    ([[0, 1]], 'path, a PIL image or a numpy array')])
def test_load_image_rejects_bad_in_memory_images(image, error):
    with pytest.raises((TypeError, ValueError), match=error):
        LoadImage()(dict(img=image))


def test_load_image_reads_a_list_of_paths_in_order(image_files):
    names = ['rgb.jpg', 'gray_wide.png', 'rgb.jpg']
    images = LoadImage()(dict(img_path=[str(image_files[name])
                                        for name in names]))['images']
    assert [image.mode for image in images] == ['RGB'] * 3
    for name, image in zip(names, images):
        with Image.open(image_files[name]) as source:
            np.testing.assert_array_equal(np.asarray(image),
                                          np.asarray(source.convert('RGB')))
    # In memory, a path may stand beside arrays.
    mixed = LoadImage()(dict(img=[photos.astronaut(),
                                  str(image_files['rgb.jpg'])]))['images']
    np.testing.assert_array_equal(np.asarray(mixed[0]), photos.astronaut())
    np.testing.assert_array_equal(np.asarray(mixed[1]), np.asarray(images[0]))


def test_load_image_names_the_file_of_a_list_that_fails(image_files,
                                                         tmp_path):
    paths = [str(image_files['rgb.jpg']), str(tmp_path / 'missing.jpg')]
    with pytest.raises(OSError, match="Sample 'two': cannot read image "
                       f'{paths[1]}'):
        LoadImage()(dict(img_path=paths, sample_id='two'))


def test_load_image_text_only_gives_no_images():
    results = LoadImage()(dict(img_path=None, sample_id='text'))
    assert results['images'] == []


def test_load_image_missing_file_names_sample_and_path(tmp_path):
    path = tmp_path / 'nowhere' / 'missing.jpg'
    with pytest.raises(OSError) as info:
        load(path, sample_id='000000033471')
    assert "'000000033471'" in str(info.value)
    assert str(path) in str(info.value)


def test_load_image_unreadable_file_names_sample_and_path(tmp_path):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(b'this is not an image')
    with pytest.raises(OSError) as info:
        load(path, sample_id='broken-7')
    assert "'broken-7'" in str(info.value) and str(path) in str(info.value)


def test_load_image_decompression_bomb_names_sample_file_and_limit(
        decompression_bomb):
    """PIL's DecompressionBombError is no OSError: it comes out as one, so
    the dataset's retry and skip_invalid policy applies to it."""
    with pytest.raises(OSError) as info:
        load(decompression_bomb, sample_id='bomb-3')
    message = str(info.value)
    assert message.startswith(
        f"Sample 'bomb-3': cannot read image {decompression_bomb}: PIL "
        'refuses it as a possible decompression bomb: ')
    assert f'{100_000 * 100_000} pixels' in message
    assert f'{2 * Image.MAX_IMAGE_PIXELS} pixels' in message
    assert isinstance(info.value.__cause__, Image.DecompressionBombError)


# ---------------------------------------------------------------------------
# PadToSquare
# ---------------------------------------------------------------------------
def test_pad_colour_is_int_255_mean():
    assert PadToSquare(mean=CLIP_MEAN).background == CLIP_PAD_COLOUR
    assert PadToSquare(mean=(0.5, 0.5, 0.5)).background == (127, 127, 127)


@pytest.mark.parametrize('size', [(300, 512), (512, 201), (451, 300),
                                  (120, 47), (47, 120)])
def test_pad_to_square_centres_original_pixels(size):
    width, height = size
    original = np.asarray(Image.fromarray(photos.astronaut()).resize(size))
    image = Image.fromarray(original)
    padded = PadToSquare(mean=CLIP_MEAN)(dict(images=[image]))['images']
    assert len(padded) == 1
    side = max(width, height)
    assert padded[0].size == (side, side) and padded[0].mode == 'RGB'
    result = np.asarray(padded[0])
    left, top = (side - width) // 2, (side - height) // 2
    np.testing.assert_array_equal(
        result[top:top + height, left:left + width], original)
    outside = np.ones((side, side), dtype=bool)
    outside[top:top + height, left:left + width] = False
    assert outside.sum() == side * side - width * height > 0
    assert (result[outside] == CLIP_PAD_COLOUR).all()
    # And the official function gives the same picture.
    np.testing.assert_array_equal(
        result, np.asarray(official_expand2square(image, CLIP_PAD_COLOUR)))


def test_pad_to_square_keeps_square_images_and_every_image():
    square = Image.fromarray(photos.astronaut())
    wide = Image.fromarray(photos.coffee())
    results = PadToSquare(mean=CLIP_MEAN)(dict(images=[square, wide]))
    padded = results['images']
    assert len(padded) == 2
    np.testing.assert_array_equal(np.asarray(padded[0]), photos.astronaut())
    assert padded[1].size == (600, 600)


def test_pad_to_square_text_only_stays_empty():
    assert PadToSquare(mean=CLIP_MEAN)(dict(images=[]))['images'] == []


# ---------------------------------------------------------------------------
# ProcessImage
# ---------------------------------------------------------------------------
def test_process_image_matches_clip_image_processor(image_files):
    image = PadToSquare(mean=CLIP_MEAN)(
        load(image_files['gray_wide.png']))['images'][0]
    results = ProcessImage(PROCESSOR_CFG)(dict(images=[image]))
    pixel_values = results['pixel_values']
    assert pixel_values.shape == (1, 3, 32, 32)
    assert pixel_values.dtype == torch.float32
    reference = transformers.CLIPImageProcessor(
        size=dict(shortest_edge=32), crop_size=dict(height=32, width=32))(
            image, return_tensors='pt')['pixel_values']
    torch.testing.assert_close(pixel_values, reference.float(), rtol=0,
                               atol=0)
    # Normalised: a real photo spans both signs.
    assert pixel_values.min() < 0 < pixel_values.max()


def test_process_image_loads_a_saved_processor(tmp_path, image_files):
    saved = transformers.CLIPImageProcessor(
        size=dict(shortest_edge=48), crop_size=dict(height=40, width=40),
        image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    saved.save_pretrained(str(tmp_path))
    images = [load(image_files[name])['images'][0]
              for name in ('rgb.jpg', 'rgba.png')]
    pixel_values = ProcessImage(dict(pretrained=str(tmp_path)))(
        dict(images=images))['pixel_values']
    assert pixel_values.shape == (2, 3, 40, 40)
    reference = saved(images, return_tensors='pt')['pixel_values']
    torch.testing.assert_close(pixel_values, reference.float(), rtol=0,
                               atol=0)
    # The saved settings are used, not CLIP's defaults.
    default = ProcessImage(PROCESSOR_CFG)(dict(images=images))
    assert default['pixel_values'].shape == (2, 3, 32, 32)


def test_process_image_text_only_gives_empty_tensor():
    results = ProcessImage(PROCESSOR_CFG)(dict(images=[]))
    assert isinstance(results['pixel_values'], torch.Tensor)
    assert results['pixel_values'].numel() == 0


# ---------------------------------------------------------------------------
# The image path end to end: LoadImage, PadToSquare, ProcessImage against
# the official steps (PIL open + convert, expand2square, CLIPImageProcessor)
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def photo_files(tmp_path_factory):
    """Real photos as the data path meets them: JPEG (lossy, decoded) and
    PNG, wide, tall, square and odd sizes, every PIL mode LoadImage takes,
    saved without EXIF, plus one JPEG whose EXIF says 'rotate' (neither
    path applies it)."""
    folder = tmp_path_factory.mktemp('photos')
    files = []

    def save(name, image, **kwargs):
        files.append(folder / name)
        image.save(files[-1], **kwargs)

    rocket, coffee = photos.rocket(), photos.coffee()
    for size in ((640, 480), (427, 640), (500, 375), (512, 512), (640, 1),
                 (1, 480), (5, 3), (1, 1)):
        image = Image.fromarray(rocket).resize(size)
        save(f'rocket_{size[0]}x{size[1]}.jpg', image, quality=90)
        save(f'rocket_{size[0]}x{size[1]}.png', image)
    save('chelsea.jpg', Image.fromarray(photos.chelsea()))
    save('gray.jpg', Image.fromarray(photos.camera()).resize((300, 200)))
    save('gray.png', Image.fromarray(photos.camera()[100:300]))
    rgba = Image.fromarray(coffee).convert('RGBA')
    rgba.putalpha(Image.fromarray(np.tile(
        np.linspace(0, 255, rgba.width, dtype=np.uint8), (rgba.height, 1))))
    save('rgba.png', rgba)
    save('palette.png', Image.fromarray(coffee).quantize(64))
    save('palette_transparent.png', Image.fromarray(coffee).quantize(64),
         transparency=0)
    save('cmyk.jpg', Image.fromarray(coffee).convert('CMYK'))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    save('exif_rotated.jpg', Image.fromarray(coffee), exif=exif)
    return files


def official_pixels(path, processor_kwargs):
    """The official LLaVA image steps, with the processor's PIL backend."""
    processor = transformers.CLIPImageProcessorPil(**processor_kwargs)
    image = Image.open(path).convert('RGB')
    image = official_expand2square(image, tuple(
        int(x * 255) for x in processor.image_mean))
    return processor.preprocess(image, return_tensors='pt')['pixel_values']


@pytest.mark.parametrize('processor_kwargs', [
    dict(size=dict(shortest_edge=224), crop_size=dict(height=224,
                                                      width=224)),
    dict(size=dict(shortest_edge=32), crop_size=dict(height=32, width=32),
         image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]),
], ids=['clip_224', 'small_custom_mean'])
@pytest.mark.parametrize('padded_by', ['PadToSquare', 'ProcessImage'])
def test_image_path_is_bitwise_the_official_one(processor_kwargs, padded_by,
                                                photo_files):
    mean = transformers.CLIPImageProcessorPil(**processor_kwargs).image_mean
    processor = dict(type='CLIPImageProcessor', **processor_kwargs)
    pipeline = [LoadImage(), PadToSquare(mean=mean), ProcessImage(processor)] \
        if padded_by == 'PadToSquare' else \
        [LoadImage(), ProcessImage(processor, pad_to_square=mean)]
    for path in photo_files:
        results = dict(img_path=str(path), sample_id=path.name)
        for step in pipeline:
            results = step(results)
        expected = official_pixels(path, processor_kwargs)
        assert results['pixel_values'].dtype == torch.float32
        assert torch.equal(results['pixel_values'], expected), path.name


# ---------------------------------------------------------------------------
# TokenizeConversation
# ---------------------------------------------------------------------------
def human(value):
    return {'from': 'human', 'value': value}


def gpt(value):
    return {'from': 'gpt', 'value': value}


MULTI_TURN = [
    human('<image>\nWhat are the colors of the bus in the image?'),
    gpt('The bus in the image is white and red.'),
    human('What feature can be seen on the back of the bus?'),
    gpt('The back of the bus features an advertisement.'),
    human('Is the bus driving down the street or pulled off to the side?'),
    gpt('The bus is driving down the street, which is crowded with people '
        'and other vehicles.'),
]
# The image comes in the second question, so the first answer is supervised
# text that stands before the image.
IMAGE_IN_LATER_TURN = [
    human('What is the capital of France?'),
    gpt('Paris.'),
    human('What is shown in this picture?\n<image>'),
    gpt('A grey cat lying on a red blanket.'),
]
TEXT_ONLY = [
    human('How do I tell if a customer segment is well segmented? In 3 '
          'bullet points.'),
    gpt('1. Homogeneity. 2. Distinctiveness. 3. Reachability.'),
]
STAGE1 = [
    human('Render a clear and concise summary of the photo.\n<image>'),
    gpt('select luxury furniture 3 - inch gel memory foam mattress topper'),
]


def sample(turns, has_image=True, sample_id='s0'):
    """A sample as it reaches the tokenizer: image loaded and processed."""
    results = dict(sample_id=sample_id,
                   img_path='img.jpg' if has_image else None,
                   conversations=[dict(turn) for turn in turns])
    if has_image:
        results['images'] = [Image.new('RGB', (8, 8))]
        results['pixel_values'] = torch.randn(1, 3, 32, 32)
    return results


def expanded_length(input_ids, num_image_tokens):
    return sum(num_image_tokens if token == IMAGE_TOKEN_INDEX else 1
               for token in input_ids)


@pytest.mark.parametrize('template,turns,has_image', [
    ('vicuna_v1', MULTI_TURN, True), ('llava_v1', MULTI_TURN, True),
    ('vicuna_v1', IMAGE_IN_LATER_TURN, True),
    ('vicuna_v1', TEXT_ONLY, False), ('plain', STAGE1, True)])
def test_train_mode_equals_tokenize_conversation(template, turns, has_image,
                                                 tokenizer_cfg, tokenizer):
    transform = TokenizeConversation(tokenizer_cfg, template)
    results = transform(sample(turns, has_image))
    expected_ids, expected_labels = tokenize_conversation(
        turns, get_template(template), tokenizer, has_image)
    assert results['input_ids'] == expected_ids
    assert results['labels'] == expected_labels
    assert len(results['input_ids']) == len(results['labels'])
    assert results['input_ids'].count(IMAGE_TOKEN_INDEX) == int(has_image)
    assert any(label != IGNORE_INDEX for label in results['labels'])
    assert 'gt_answer' not in results


def test_train_mode_takes_image_placeholder_without_image_as_text(
        tokenizer):
    # As the official code: a text-only sample is never split at <image>.
    transform = TokenizeConversation(tokenizer, 'vicuna_v1')
    results = transform(sample(MULTI_TURN, has_image=False))
    assert IMAGE_TOKEN_INDEX not in results['input_ids']
    assert (results['input_ids'], results['labels']) == \
        tokenize_conversation(MULTI_TURN, get_template('vicuna_v1'),
                              tokenizer, has_image=False)


@pytest.mark.parametrize('mode', ['train', 'predict'])
def test_special_tokens_in_content_setting(mode, tokenizer):
    turns = [human('<image>\nWhat does </s> mean?'), gpt('The end </s>.')]
    counts = {}
    for setting in ('text', 'special'):
        transform = TokenizeConversation(
            tokenizer, 'vicuna_v1', mode=mode,
            special_tokens_in_content=setting)
        results = transform(sample(turns))
        counts[setting] = results['input_ids'].count(tokenizer.eos_token_id)
    # The question's </s>, and in training the answer's and the template's.
    assert counts == ({'text': 1, 'special': 3} if mode == 'train'
                      else {'text': 0, 'special': 1})
    with pytest.raises(ValueError, match='special_tokens_in_content'):
        TokenizeConversation(tokenizer, 'vicuna_v1',
                             special_tokens_in_content='escape')


def test_predict_mode_ends_with_assistant_prefix(tokenizer):
    transform = TokenizeConversation(tokenizer, 'vicuna_v1',
                                     mode='predict')
    results = transform(sample(MULTI_TURN))
    assert results['gt_answer'] == MULTI_TURN[-1]['value']
    assert 'labels' not in results
    prefix = tokenizer('ASSISTANT:', add_special_tokens=False).input_ids
    assert len(prefix) > 1
    assert results['input_ids'][-len(prefix):] == prefix
    assert results['input_ids'] == build_generation_prompt(
        MULTI_TURN[:-1], get_template('vicuna_v1'), tokenizer, True)
    # The prompt is the training prompt up to the last answer.
    train_ids, _ = tokenize_conversation(MULTI_TURN, get_template('vicuna_v1'),
                                         tokenizer, True)
    assert train_ids[:len(results['input_ids'])] == results['input_ids']
    answer = tokenizer.decode(train_ids[len(results['input_ids']):],
                              skip_special_tokens=True)
    assert answer.strip() == MULTI_TURN[-1]['value']


def test_predict_mode_question_without_answer(tokenizer):
    transform = TokenizeConversation(tokenizer, 'vicuna_v1',
                                     mode='predict')
    results = transform(sample(MULTI_TURN[:3]))
    assert 'gt_answer' not in results
    assert results['input_ids'] == build_generation_prompt(
        MULTI_TURN[:3], get_template('vicuna_v1'), tokenizer, True)


def test_no_truncation_below_max_length(tokenizer):
    full_ids, full_labels = tokenize_conversation(
        MULTI_TURN, get_template('vicuna_v1'), tokenizer, True)
    max_length = expanded_length(full_ids, 16)
    transform = TokenizeConversation(tokenizer, 'vicuna_v1',
                                     max_length=max_length,
                                     num_image_tokens=16)
    results = transform(sample(MULTI_TURN))
    assert results['input_ids'] == full_ids
    assert results['labels'] == full_labels
    assert results['pixel_values'].shape[0] == 1
    assert transform.num_truncated == transform.num_dropped == 0


@pytest.mark.parametrize('turns', [MULTI_TURN, IMAGE_IN_LATER_TURN])
def test_truncation_at_every_max_length(turns, tokenizer):
    """For every max_length: the longest prefix whose expanded length fits,
    an image kept whole or not at all, None when nothing is supervised."""
    num_image_tokens = 8
    full_ids, full_labels = tokenize_conversation(
        turns, get_template('vicuna_v1'), tokenizer, True)
    full_length = expanded_length(full_ids, num_image_tokens)
    transform = TokenizeConversation(
        tokenizer, 'vicuna_v1', max_length=full_length,
        num_image_tokens=num_image_tokens)
    truncated = dropped = 0
    seen_image_cut = False
    for max_length in range(1, full_length + 2):
        transform.max_length = max_length
        pixel_values = torch.randn(1, 3, 32, 32)
        results = sample(turns)
        results['pixel_values'] = pixel_values
        results = transform(results)
        keep = max(k for k in range(len(full_ids) + 1)
                   if expanded_length(full_ids[:k], num_image_tokens)
                   <= max_length)
        if keep == len(full_ids):
            assert results['input_ids'] == full_ids
            continue
        if all(label == IGNORE_INDEX for label in full_labels[:keep]):
            assert results is None, max_length
            dropped += 1
            continue
        truncated += 1
        assert results['input_ids'] == full_ids[:keep]
        assert results['labels'] == full_labels[:keep]
        assert expanded_length(results['input_ids'],
                               num_image_tokens) <= max_length
        num_images = full_ids[:keep].count(IMAGE_TOKEN_INDEX)
        assert len(results['images']) == num_images
        assert results['pixel_values'].shape == (num_images, 3, 32, 32)
        torch.testing.assert_close(results['pixel_values'],
                                   pixel_values[:num_images])
        seen_image_cut |= num_images == 0
    assert transform.num_truncated == truncated > 0
    assert transform.num_dropped == dropped > 0
    # With the image in a later turn, some cuts drop the image but keep the
    # first, supervised answer.
    assert seen_image_cut == (turns is IMAGE_IN_LATER_TURN)


def test_cut_inside_the_image_drops_it_and_what_follows(tokenizer):
    num_image_tokens = 16
    full_ids, full_labels = tokenize_conversation(
        IMAGE_IN_LATER_TURN, get_template('vicuna_v1'), tokenizer, True)
    position = full_ids.index(IMAGE_TOKEN_INDEX)
    # One row short of fitting the image.
    transform = TokenizeConversation(
        tokenizer, 'vicuna_v1', max_length=position + num_image_tokens - 1,
        num_image_tokens=num_image_tokens)
    results = transform(sample(IMAGE_IN_LATER_TURN))
    assert results['input_ids'] == full_ids[:position]
    assert results['labels'] == full_labels[:position]
    assert IMAGE_TOKEN_INDEX not in results['input_ids']
    assert results['images'] == []
    assert results['pixel_values'].shape == (0, 3, 32, 32)
    supervised = [t for t in results['labels'] if t != IGNORE_INDEX]
    assert tokenizer.decode(supervised) == 'Paris.</s>'
    # Exactly enough room: the image stays whole, the cut falls after it.
    transform.max_length = position + num_image_tokens
    results = transform(sample(IMAGE_IN_LATER_TURN))
    assert results['input_ids'] == full_ids[:position + 1]
    assert len(results['images']) == 1
    assert results['pixel_values'].shape == (1, 3, 32, 32)
    assert transform.num_truncated == 2


def test_truncation_and_drops_are_logged_with_running_counts(tokenizer,
                                                             caplog):
    num_image_tokens = 16
    full_ids, full_labels = tokenize_conversation(
        MULTI_TURN, get_template('vicuna_v1'), tokenizer, True)
    first_answer = next(i for i, label in enumerate(full_labels)
                        if label != IGNORE_INDEX)
    transform = TokenizeConversation(
        tokenizer, 'vicuna_v1',
        max_length=expanded_length(full_ids, num_image_tokens) - 5,
        num_image_tokens=num_image_tokens)
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            assert transform(sample(MULTI_TURN, sample_id='a')) is not None
            assert transform(sample(MULTI_TURN, sample_id='b')) is not None
            transform.max_length = expanded_length(full_ids[:first_answer],
                                                   num_image_tokens)
            assert transform(sample(MULTI_TURN, sample_id='c')) is None
    finally:
        logger.removeHandler(caplog.handler)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "'a'" in messages[0] and '1 truncated' in messages[0]
    assert "'b'" in messages[1] and '2 truncated' in messages[1]
    assert "'c'" in messages[2] and '1 dropped' in messages[2]
    assert all(record.levelno == logging.WARNING for record in caplog.records)
    assert (transform.num_truncated, transform.num_dropped) == (2, 1)


#: Three images, in two turns: a lone one moves to its turn's front, the
#: two of the second question stay where they stand.
THREE_IMAGES = [
    human('What is in <image>?'),
    gpt('A cat on a sofa.'),
    human('And in <image> and <image>?'),
    gpt('A dog, then a bird.'),
]


def several(turns, sizes, sample_id='s3'):
    """A sample with one image per size, loaded and processed, its paths
    as a dataset gives a record's list."""
    return dict(sample_id=sample_id,
                img_path=[f'{index}.jpg' for index in range(len(sizes))],
                conversations=[dict(turn) for turn in turns],
                images=[Image.new('RGB', size) for size in sizes],
                pixel_values=torch.arange(len(sizes), dtype=torch.float32)
                .reshape(-1, 1, 1, 1).expand(-1, 3, 32, 32),
                image_sizes=[(height, width) for width, height in sizes])


def test_several_images_each_get_their_placeholder(tokenizer):
    results = TokenizeConversation(tokenizer, 'vicuna_v1')(
        several(THREE_IMAGES, [(8, 8)] * 3))
    ids = results['input_ids']
    assert ids.count(IMAGE_TOKEN_INDEX) == 3
    # The second question keeps its two images apart, in place.
    second = ids[ids.index(IMAGE_TOKEN_INDEX) + 1:]
    between = second[second.index(IMAGE_TOKEN_INDEX) + 1:]
    assert tokenizer.decode(between[:between.index(IMAGE_TOKEN_INDEX)]) \
        .strip() == 'and'
    predicted = TokenizeConversation(tokenizer, 'vicuna_v1', mode='predict')(
        several(THREE_IMAGES[:3], [(8, 8)] * 3))
    assert predicted['input_ids'].count(IMAGE_TOKEN_INDEX) == 3


@pytest.mark.parametrize('mode', ['train', 'predict'])
def test_several_images_and_placeholders_must_agree(tokenizer, mode):
    turns = THREE_IMAGES if mode == 'train' else THREE_IMAGES[:3]
    transform = TokenizeConversation(tokenizer, 'vicuna_v1', mode=mode)
    with pytest.raises(ValueError) as error:
        transform(several(turns, [(8, 8)] * 2, sample_id='rec-12'))
    assert str(error.value).startswith(
        "Sample 'rec-12': image placeholders and images do not match: 3 "
        'placeholders, 2 images')
    # Paths alone (no image loaded yet) count as well.
    sample = several(turns, [(8, 8)] * 4, sample_id='rec-13')
    del sample['images']
    with pytest.raises(ValueError, match="'rec-13'.*3 placeholders, 4 "
                       'images'):
        transform(sample)


def test_truncation_keeps_whole_images_of_their_own_sizes(tokenizer,
                                                          caplog):
    """Images of different row counts (AnyRes): at every max_length the
    longest prefix that fits with each image whole; the images cut off go
    with their pixels and sizes, and the log says how many."""
    sizes = [(48, 48), (96, 48), (144, 48)]
    counts = AnyResTokenCount([(48, 96), (96, 48), (96, 96), (48, 144),
                               (144, 48)], 48, 8, 'spatial_unpad')
    rows = [counts((height, width)) for width, height in sizes]
    assert len(set(rows)) == 3
    full_ids, full_labels = tokenize_conversation(
        THREE_IMAGES, get_template('vicuna_v1'), tokenizer, True,
        num_images=3)

    def length(ids):
        images = iter(rows)
        return sum(next(images) if token == IMAGE_TOKEN_INDEX else 1
                   for token in ids)

    transform = TokenizeConversation(
        tokenizer, 'vicuna_v1', max_length=length(full_ids),
        num_image_tokens=dict(grid_pinpoints=counts.grid_pinpoints,
                              tile_size=48, patch_size=8,
                              merge_type='spatial_unpad'))
    kept_counts = set()
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            for max_length in range(1, length(full_ids)):
                caplog.clear()
                transform.max_length = max_length
                results = transform(several(THREE_IMAGES, sizes))
                keep = max(k for k in range(len(full_ids) + 1)
                           if length(full_ids[:k]) <= max_length)
                if results is None:
                    assert all(label == IGNORE_INDEX
                               for label in full_labels[:keep])
                    continue
                assert results['input_ids'] == full_ids[:keep]
                kept = full_ids[:keep].count(IMAGE_TOKEN_INDEX)
                kept_counts.add(kept)
                assert [image.size for image in results['images']] == \
                    sizes[:kept]
                assert results['image_sizes'] == [
                    (height, width) for width, height in sizes[:kept]]
                assert results['pixel_values'][:, 0, 0, 0].tolist() == \
                    list(range(kept))
                message, = [record.getMessage()
                            for record in caplog.records]
                assert message.startswith("Sample 's3' truncated from ")
                assert (f'dropping {3 - kept} of its 3 images' in message) \
                    == (kept < 3)
    finally:
        logger.removeHandler(caplog.handler)
    # Cuts between every two images happen (before the first, nothing is
    # supervised yet: dropped).
    assert kept_counts == {1, 2, 3}


def test_max_length_without_num_image_tokens_raises(tokenizer):
    with pytest.raises(ValueError, match='num_image_tokens'):
        TokenizeConversation(tokenizer, 'vicuna_v1', max_length=128)


def test_unknown_mode_and_template_raise(tokenizer):
    with pytest.raises(ValueError, match="'test'"):
        TokenizeConversation(tokenizer, 'vicuna_v1', mode='test')
    with pytest.raises(KeyError, match="'vicuna'"):
        TokenizeConversation(tokenizer, 'vicuna')


# ---------------------------------------------------------------------------
# PackLLaVAInputs
# ---------------------------------------------------------------------------
def test_pack_train_sample():
    pixel_values = torch.randn(1, 3, 32, 32)
    packed = PackLLaVAInputs()(dict(
        sample_id='id-1', img_path='a/b.jpg', input_ids=[1, IMAGE_TOKEN_INDEX,
                                                         5, 6],
        labels=[IGNORE_INDEX, IGNORE_INDEX, 5, 6], pixel_values=pixel_values,
        images=['not packed']))
    inputs, data_sample = packed['inputs'], packed['data_samples']
    assert set(inputs) == {'input_ids', 'labels', 'pixel_values'}
    assert inputs['input_ids'].dtype == inputs['labels'].dtype == torch.long
    assert inputs['input_ids'].tolist() == [1, IMAGE_TOKEN_INDEX, 5, 6]
    assert inputs['labels'].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 5, 6]
    assert inputs['pixel_values'] is pixel_values
    assert data_sample.metainfo == dict(sample_id='id-1', img_path='a/b.jpg')


def test_pack_predict_text_only_sample():
    packed = PackLLaVAInputs()(dict(sample_id=3, img_path=None,
                                    input_ids=[1, 2, 3], gt_answer='Yes.'))
    inputs, data_sample = packed['inputs'], packed['data_samples']
    assert 'labels' not in inputs
    assert inputs['pixel_values'].numel() == 0
    assert data_sample.gt_answer == 'Yes.'
    assert data_sample.sample_id == 3 and data_sample.img_path is None


def test_blank_image_keeps_sizes_and_removes_content():
    images = [Image.fromarray(photos.coffee()), Image.fromarray(photos.camera())]
    results = BlankImage(mean=(0.48145466, 0.4578275, 0.40821073))(
        dict(images=images))
    assert [image.size for image in results['images']] == \
        [image.size for image in images]
    for image in results['images']:
        pixels = np.asarray(image)
        assert image.mode == 'RGB'
        assert (pixels == np.array([122, 116, 104])).all()
