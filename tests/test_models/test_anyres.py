"""``mmllava/models/anyres.py`` against the official LLaVA-NeXT algorithm
(written out below in its own ``(width, height)`` convention) and against
transformers' own LlavaNext functions; its ``anyres_max_N`` budget against
transformers' LlavaOnevision processor and merge."""
import math
import random
from types import SimpleNamespace

import pytest
import torch
from transformers import (LlavaNextImageProcessorPil, LlavaNextProcessor,
                          LlavaOnevisionConfig, LlavaOnevisionProcessor)
from transformers.image_processing_utils import \
    select_best_resolution as hf_select_best_resolution
from transformers.models.llava_next.modeling_llava_next import (
    LlavaNextModel, get_anyres_image_grid_shape, image_size_to_num_patches,
    unpad_image)
from transformers.models.llava_onevision.modeling_llava_onevision import \
    LlavaOnevisionModel

from mmllava.models.anyres import (budget_shape, check_anyres_max,
                                   check_pinpoints, count_image_tokens,
                                   grid_shape, merge_tile_features,
                                   num_tiles, pinpoints_from_hf,
                                   pinpoints_from_official,
                                   pinpoints_to_official, resized_size,
                                   select_best_resolution, unpadded_shape)

#: The LLaVA-NeXT (2024-01) config.json, in the official (width, height).
OFFICIAL_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336],
                      [336, 1008]]
PINPOINTS = pinpoints_from_official(OFFICIAL_PINPOINTS)
TILE, PATCH = 336, 14


def image_sizes(count=400, seed=0):
    """(height, width) pairs: photos, strips, tiny and huge images."""
    rng = random.Random(seed)
    sizes = [(512, 512), (400, 600), (427, 640), (300, 451), (1, 1),
             (336, 672), (672, 336), (100, 2000), (2000, 100), (176, 99)]
    sizes += [(rng.randint(1, 2500), rng.randint(1, 2500))
              for _ in range(count)]
    return sizes


# ---------------------------------------------------------------------------
# The official algorithm (LLaVA-NeXT mm_utils / llava_arch), sizes as
# (width, height).
# ---------------------------------------------------------------------------
def official_select_best_resolution(original_size, possible_resolutions):
    original_width, original_height = original_size
    best_fit, max_effective, min_wasted = None, 0, float('inf')
    for width, height in possible_resolutions:
        scale = min(width / original_width, height / original_height)
        downscaled_width = int(original_width * scale)
        downscaled_height = int(original_height * scale)
        effective = min(downscaled_width * downscaled_height,
                        original_width * original_height)
        wasted = width * height - effective
        if effective > max_effective or (effective == max_effective
                                         and wasted < min_wasted):
            max_effective, min_wasted = effective, wasted
            best_fit = (width, height)
    return best_fit


def official_resize_size(original_size, target_resolution):
    """``resize_and_pad_image``'s resized (width, height)."""
    original_width, original_height = original_size
    target_width, target_height = target_resolution
    scale_w = target_width / original_width
    scale_h = target_height / original_height
    if scale_w < scale_h:
        return target_width, min(math.ceil(original_height * scale_w),
                                 target_height)
    return min(math.ceil(original_width * scale_h), target_width), \
        target_height


def official_unpad(tensor, original_size):
    """``unpad_image``: (C, H, W) features, size (width, height); plain
    truncation, no rounding."""
    original_width, original_height = original_size
    current_height, current_width = tensor.shape[1:]
    if original_width / original_height > current_width / current_height:
        new_height = int(original_height * (current_width / original_width))
        padding = (current_height - new_height) // 2
        return tensor[:, padding:current_height - padding, :]
    new_width = int(original_width * (current_height / original_height))
    padding = (current_width - new_width) // 2
    return tensor[:, :, padding:current_width - padding]


def official_merge(image_feature, image_size, grid_pinpoints, tile_size,
                   merge_type, image_newline):
    """The ``mm_patch_merge_type`` branch of
    ``prepare_inputs_labels_for_multimodal`` for one image (size as
    (width, height), pinpoints official)."""
    if merge_type == 'flat':
        return image_feature.flatten(0, 1)
    base, tiles = image_feature[0], image_feature[1:]
    side = int(math.sqrt(base.shape[0]))
    width, height = official_select_best_resolution(image_size,
                                                    grid_pinpoints)
    columns, rows = width // tile_size, height // tile_size
    tiles = tiles.view(rows, columns, side, side, -1)
    if 'unpad' in merge_type:
        tiles = tiles.permute(4, 0, 2, 1, 3).contiguous()
        tiles = tiles.flatten(1, 2).flatten(2, 3)
        tiles = official_unpad(tiles, image_size)
        tiles = torch.cat((tiles, image_newline[:, None, None].expand(
            *tiles.shape[:-1], 1)), dim=-1)
        tiles = tiles.flatten(1, 2).transpose(0, 1)
    else:
        tiles = tiles.permute(0, 2, 1, 3, 4).contiguous().flatten(0, 3)
    return torch.cat((base, tiles), dim=0)


# ---------------------------------------------------------------------------
# Conventions.
# ---------------------------------------------------------------------------
def test_pinpoint_conventions_swap_at_the_boundary_only():
    assert PINPOINTS == [(672, 336), (336, 672), (672, 672), (336, 1008),
                         (1008, 336)]
    assert pinpoints_to_official(PINPOINTS) == OFFICIAL_PINPOINTS
    # The official training CLI's string form.
    assert pinpoints_from_official(
        '[(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)]') \
        == PINPOINTS


def test_pinpoints_are_checked():
    with pytest.raises(ValueError, match='multiples of the tile size 336'):
        check_pinpoints([(336, 700)], 336)
    with pytest.raises(ValueError, match='empty'):
        check_pinpoints([], 336)
    with pytest.raises(ValueError, match='two positive integers'):
        check_pinpoints([(336, 672, 1)], 336)


@pytest.mark.parametrize('seed', [0, 1])
def test_best_resolution_is_the_official_one(seed):
    # Asymmetric, order-sensitive pinpoints: ties go to the first listed.
    official = [[336, 336], [672, 336], [336, 672], [1008, 336],
                [672, 672], [336, 1344], [1344, 336]]
    ours = pinpoints_from_official(official)
    for height, width in image_sizes(seed=seed):
        expected_width, expected_height = official_select_best_resolution(
            (width, height), official)
        assert select_best_resolution((height, width), ours) == \
            (expected_height, expected_width)
        # transformers works in (height, width) like mmllava.
        assert select_best_resolution((height, width), ours) == \
            tuple(hf_select_best_resolution((height, width), ours))


def test_grid_and_tile_counts_match_transformers():
    for size in image_sizes():
        assert grid_shape(size, PINPOINTS, TILE) == \
            get_anyres_image_grid_shape(size, PINPOINTS, TILE)
        assert num_tiles(size, PINPOINTS, TILE) == \
            image_size_to_num_patches(size, PINPOINTS, TILE)


def test_resized_size_is_the_official_one():
    for height, width in image_sizes():
        target = select_best_resolution((height, width), PINPOINTS)
        expected_width, expected_height = official_resize_size(
            (width, height), target[::-1])
        assert resized_size((height, width), target) == \
            (expected_height, expected_width)


def test_unpad_matches_transformers_and_official_but_for_float_edges():
    """transformers rounds to 7 decimals before truncating; the official
    code truncates ``47.99999...`` to 47. mmllava follows transformers (the
    interop target); the official result differs only where that rounding
    changes the cut."""
    differing = 0
    for height, width in image_sizes(2000):
        for rows, columns in [(48, 48), (24, 48), (48, 24), (24, 72)]:
            features = torch.arange(rows * columns).view(1, rows, columns)
            kept_rows, kept_columns = unpadded_shape((height, width),
                                                     (rows, columns))
            ours = features[:, kept_rows, kept_columns]
            assert torch.equal(ours, unpad_image(features, (height, width)))
            official = official_unpad(features, (width, height))
            if not torch.equal(ours, official):
                differing += 1
                # A product just below an integer, truncated.
                ratio = columns / width if width / height > columns / rows \
                    else rows / height
                side = height if width / height > columns / rows else width
                assert int(side * ratio) != int(round(side * ratio, 7))
    assert differing <= 2
    # A size where the two differ: 176x99 on a 2x2 grid of 24x24 patches
    # (99 * 48 / 176 = 26.999...: 27 columns kept, cut to 28 symmetric).
    features = torch.zeros(1, 48, 48)
    assert official_unpad(features, (99, 176)).shape[2] == 26
    assert unpad_image(features, (176, 99)).shape[2] == 28
    assert unpadded_shape((176, 99), (48, 48))[1] == slice(10, 38)


# ---------------------------------------------------------------------------
# Token counts and merges.
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def processor():
    """transformers' processor in the llava-v1.6 setting (its counts need
    no tokenizer)."""
    image_processor = LlavaNextImageProcessorPil(
        size=dict(shortest_edge=TILE),
        crop_size=dict(height=TILE, width=TILE),
        image_grid_pinpoints=[list(pair) for pair in PINPOINTS])
    processor = LlavaNextProcessor.__new__(LlavaNextProcessor)
    processor.image_processor = image_processor
    processor.patch_size = PATCH
    processor.num_additional_image_tokens = 1
    processor.vision_feature_select_strategy = 'default'
    return processor


def test_token_counts_match_the_transformers_processor(processor):
    for size in image_sizes():
        expected = processor._get_number_of_features(
            *size, TILE, TILE) - 1
        assert count_image_tokens(size, PINPOINTS, TILE, PATCH,
                                  'spatial_unpad') == expected, size


def test_standard_token_counts():
    # 576 base + 48 rows x (48 + 1) for a square image on the 2x2 grid.
    assert count_image_tokens((672, 672), PINPOINTS, TILE, PATCH,
                              'spatial_unpad') == 576 + 48 * 49 == 2928
    assert count_image_tokens((672, 672), PINPOINTS, TILE, PATCH,
                              'flat') == 5 * 576
    assert count_image_tokens((336, 1008), PINPOINTS, TILE, PATCH,
                              'spatial') == 4 * 576
    assert count_image_tokens((672, 672), PINPOINTS, TILE, PATCH, 'flat',
                              tokens_per_tile=577) == 5 * 577


def random_tiles(size, pinpoints, tile, side, channels=5, seed=0):
    count = num_tiles(size, pinpoints, tile)
    return torch.randn(count, side * side, channels,
                       generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('merge_type', ['flat', 'spatial', 'spatial_unpad'])
def test_merge_matches_the_official_merge(merge_type):
    tile, side = 48, 6
    official = [[48, 96], [96, 48], [96, 96], [144, 48], [48, 144]]
    pinpoints = pinpoints_from_official(official)
    newline = torch.randn(5)
    for index, (height, width) in enumerate(image_sizes(60)):
        features = random_tiles((height, width), pinpoints, tile, side,
                                seed=index)
        ours = merge_tile_features(features, (height, width), pinpoints,
                                   tile, merge_type, newline)
        expected = official_merge(features, (width, height), official, tile,
                                  merge_type, newline)
        # (These sizes avoid the float edge of the unpad test above.)
        assert torch.equal(ours, expected), (height, width)
        assert len(ours) == count_image_tokens((height, width), pinpoints,
                                               tile, 8, merge_type)


@pytest.mark.parametrize('anyres_max', [None, 1, 2, 4])
def test_spatial_unpad_merge_matches_transformers_pack_image_features(
        anyres_max):
    """LlavaNext's ``pack_image_features``; with an ``anyres_max`` budget,
    LlavaOnevision's (on grids of 1x1 to 4x4 tiles, which the budgets
    shrink or not)."""
    tile, side = 48, 6
    pinpoints = [(rows * tile, columns * tile) for columns in range(1, 5)
                 for rows in range(1, 5)]
    model = SimpleNamespace(config=SimpleNamespace(
        vision_config=SimpleNamespace(image_size=tile, patch_size=8),
        image_grid_pinpoints=[list(pair) for pair in pinpoints]))
    newline = torch.randn(5)
    sizes = image_sizes(60, seed=3)
    features = [random_tiles(size, pinpoints, tile, side, seed=index)
                for index, size in enumerate(sizes)]
    if anyres_max is None:
        expected, lengths = LlavaNextModel.pack_image_features(
            model, features, torch.tensor(sizes), 'default', newline)
    else:
        expected, lengths = LlavaOnevisionModel.pack_image_features(
            model, features, torch.tensor(sizes), newline,
            f'anyres_max_{anyres_max}')
    for size, image, reference, length in zip(sizes, features, expected,
                                              lengths.tolist()):
        ours = merge_tile_features(image, size, pinpoints, tile,
                                   'spatial_unpad', newline, anyres_max)
        assert torch.equal(ours, reference), size
        assert length == count_image_tokens(size, pinpoints, tile, 8,
                                            'spatial_unpad',
                                            anyres_max=anyres_max)


def test_merge_errors_name_what_is_wrong():
    pinpoints = [(96, 96)]
    with pytest.raises(ValueError, match=r'2x2 grid: expected 5 tiles'):
        merge_tile_features(torch.zeros(3, 36, 4), (90, 90), pinpoints, 48,
                            'spatial')
    with pytest.raises(ValueError, match='not a square grid'):
        merge_tile_features(torch.zeros(5, 37, 4), (90, 90), pinpoints, 48,
                            'spatial')
    with pytest.raises(ValueError, match='needs image_newline'):
        merge_tile_features(torch.zeros(5, 36, 4), (90, 90), pinpoints, 48,
                            'spatial_unpad')


# ---------------------------------------------------------------------------
# anyres_max_N (LLaVA-OneVision).
# ---------------------------------------------------------------------------
#: LLaVA-OneVision's grids, 1x1 to 6x6 tiles of SO400M's 384 px, as
#: transformers' LlavaOnevisionConfig holds them.
ONEVISION_PINPOINTS = pinpoints_from_hf(
    LlavaOnevisionConfig().image_grid_pinpoints)
ONEVISION_TILE, ONEVISION_PATCH = 384, 14


def onevision_processor(anyres_max):
    """transformers' processor in the llava-onevision-qwen2 setting (729
    SigLIP tokens a tile; its counts need no tokenizer)."""
    processor = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)
    processor.image_processor = SimpleNamespace(
        image_grid_pinpoints=[list(pair) for pair in ONEVISION_PINPOINTS])
    processor.num_image_tokens = 729
    processor.vision_aspect_ratio = f'anyres_max_{anyres_max}'
    return processor


@pytest.mark.parametrize('anyres_max', [1, 4, 9])
def test_anyres_max_counts_match_the_transformers_onevision_processor(
        anyres_max):
    processor = onevision_processor(anyres_max)
    sizes = image_sizes()
    shrunk = 0
    for size in sizes:
        count = count_image_tokens(size, ONEVISION_PINPOINTS, ONEVISION_TILE,
                                   ONEVISION_PATCH, 'spatial_unpad',
                                   anyres_max=anyres_max)
        assert count == processor._get_number_of_features(
            *size, ONEVISION_TILE, ONEVISION_TILE), size
        shrunk += count < count_image_tokens(
            size, ONEVISION_PINPOINTS, ONEVISION_TILE, ONEVISION_PATCH,
            'spatial_unpad')
    # The budget shrinks some images and leaves others.
    assert 0 < shrunk < len(sizes)


def test_anyres_max_9_token_counts():
    """729 base rows plus rows x (columns + 1) of the (shrunk) grid."""
    def count(size):
        return count_image_tokens(size, ONEVISION_PINPOINTS, ONEVISION_TILE,
                                  ONEVISION_PATCH, 'spatial_unpad',
                                  anyres_max=9)

    # 3x3 tiles: 81 x 81 rows, exactly the budget of 9 x 729.
    assert count((1152, 1152)) == 729 + 81 * 82 == 7371
    # 6x6 tiles: 162 x 162 rows, side ratio 2 to the budget: 81 x 81.
    assert count((2304, 2304)) == 7371
    # 4x4 tiles: 108 x 108, ratio 4/3; 108 // (4/3) is 81 (not 80).
    assert count((1536, 1536)) == 7371
    # 1x1 and 2x2: under the budget, not shrunk.
    assert count((384, 384)) == 729 + 27 * 28
    assert count((768, 768)) == 729 + 54 * 55
    # Up to 1.1 x the budget's side a grid stays: 89 x 89 (ratio 1.099).
    assert budget_shape((89, 89), 27, 9) == (89, 89)
    # 90 x 90 (ratio 10/9, 1.1111111111111112 in floating point) shrinks
    # to 80 x 80, not 81 x 81: the ratio rounds up, as in the reference.
    assert budget_shape((90, 90), 27, 9) == (80, 80)


def test_anyres_max_is_checked():
    assert check_anyres_max(None, 'flat') is None
    assert check_anyres_max(9, 'spatial_unpad') == 9
    for value in (0, -1, 2.5, True, '9'):
        with pytest.raises(ValueError, match='positive integer'):
            check_anyres_max(value, 'spatial_unpad')
    with pytest.raises(ValueError, match="mm_patch_merge_type is 'spatial'"):
        check_anyres_max(9, 'spatial')
