"""AnyRes (LLaVA-NeXT): tile grids, unpadding and the merge of tile features.

An image is encoded as a base view (the whole image resized to one tile)
plus the tiles of a grid chosen per image from a list of pinpoint
resolutions. This module holds the arithmetic both sides need: the dataset
transform (which grid, how many image tokens) and the model (how the tile
features merge into one sequence).

``anyres_max`` is LLaVA-OneVision's ``anyres_max_N`` (the 2024-05
LLaVA-NeXT release and OneVision): an unpadded grid of more than about ``N``
tiles' features is shrunk with bilinear interpolation before the newline
column is appended (:func:`budget_shape`), so that grids of up to 6x6 tiles
cost at most about ``1.21 N + 1`` tiles of LLM rows (the 1.21 is the
reference's slack, :data:`ANYRES_MAX_SLACK` squared), newlines aside.

Conventions: every size and pinpoint here is ``(height, width)``, as in torch
and transformers. The official LLaVA-NeXT code and its ``config.json`` write
pinpoints and image sizes as ``(width, height)``;
:func:`pinpoints_from_official` and :func:`pinpoints_to_official` are the
only places that swap them.

The arithmetic (integer truncation in :func:`select_best_resolution`,
``ceil`` in :func:`resized_size`, rounding to 7 decimals before truncation in
:func:`unpadded_shape`) is transformers'. The official code truncates
without that rounding; the two differ only where a product lands within
1e-7 below an integer (about 1 in 70,000 image sizes), and there the
unpadded rows differ by one.
"""
import ast
import math
from typing import Optional, Sequence, Union

import torch
from torch.nn import functional as F

#: ``(height, width)``.
Size = tuple[int, int]
MERGE_TYPES = ('flat', 'spatial', 'spatial_unpad')
#: ``anyres_max_N`` shrinks a grid only when its side is more than this
#: many times the budget's (its area more than 1.21 ``N`` tiles), as the
#: official LLaVA-NeXT code and transformers' LlavaOnevision do.
ANYRES_MAX_SLACK = 1.1


# ---------------------------------------------------------------------------
# Pinpoints and their external conventions.
# ---------------------------------------------------------------------------
def _pairs(pinpoints: Union[str, Sequence], where: str) -> list[Size]:
    if isinstance(pinpoints, str):
        # The official training CLI passes them as a Python literal.
        pinpoints = ast.literal_eval(pinpoints)
    pairs = []
    for pair in pinpoints or []:
        if len(pair) != 2 or not all(isinstance(value, int) and value > 0
                                     for value in pair):
            raise ValueError(f'{where}: each pinpoint must be two positive '
                             f'integers, got {pair!r}.')
        pairs.append((pair[0], pair[1]))
    if not pairs:
        raise ValueError(f'{where}: the pinpoint list is empty.')
    return pairs


def pinpoints_from_official(pinpoints: Union[str, Sequence]) -> list[Size]:
    """Official LLaVA-NeXT pinpoints (``(width, height)`` pairs, or their
    string form) as mmllava's ``(height, width)`` pairs, in the same order
    (the order breaks ties in :func:`select_best_resolution`)."""
    return [(height, width) for width, height in
            _pairs(pinpoints, 'official image_grid_pinpoints')]


def pinpoints_to_official(pinpoints: Sequence) -> list[list[int]]:
    """mmllava's ``(height, width)`` pinpoints as the official ``[width,
    height]`` lists, in the same order."""
    return [[width, height] for height, width in
            _pairs(pinpoints, 'image_grid_pinpoints')]


def pinpoints_from_hf(pinpoints: Sequence) -> list[Size]:
    """llava-hf (transformers) pinpoints: already ``(height, width)``."""
    return _pairs(pinpoints, 'llava-hf image_grid_pinpoints')


def pinpoints_to_hf(pinpoints: Sequence) -> list[list[int]]:
    """mmllava's pinpoints in llava-hf's form (``[height, width]`` lists)."""
    return [list(pair) for pair in _pairs(pinpoints, 'image_grid_pinpoints')]


def check_pinpoints(pinpoints: Sequence, tile_size: int) -> list[Size]:
    """``(height, width)`` pinpoints, each side a multiple of ``tile_size``
    (a grid of whole tiles)."""
    pairs = _pairs(pinpoints, 'image_grid_pinpoints')
    uneven = [pair for pair in pairs if pair[0] % tile_size or
              pair[1] % tile_size]
    if uneven:
        raise ValueError(f'image_grid_pinpoints {uneven} are not multiples '
                         f'of the tile size {tile_size} (the vision '
                         "tower's image size).")
    return pairs


# ---------------------------------------------------------------------------
# Grids.
# ---------------------------------------------------------------------------
def select_best_resolution(image_size: Size,
                           pinpoints: Sequence[Size]) -> Size:
    """The pinpoint that keeps the most of the image's pixels when the image
    is scaled to fit it, the least padded one among equals; the first wins
    a full tie."""
    height, width = image_size
    best, best_effective, best_wasted = None, 0, math.inf
    for target_height, target_width in pinpoints:
        scale = min(target_width / width, target_height / height)
        effective = min(int(width * scale) * int(height * scale),
                        width * height)
        wasted = target_width * target_height - effective
        if effective > best_effective or (effective == best_effective
                                          and wasted < best_wasted):
            best = (target_height, target_width)
            best_effective, best_wasted = effective, wasted
    return best


def grid_shape(image_size: Size, pinpoints: Sequence[Size],
               tile_size: int) -> Size:
    """``(rows, columns)`` of tiles for an image."""
    height, width = select_best_resolution(image_size, pinpoints)
    return height // tile_size, width // tile_size


def num_tiles(image_size: Size, pinpoints: Sequence[Size],
              tile_size: int) -> int:
    """Tiles an image becomes, the base view included."""
    rows, columns = grid_shape(image_size, pinpoints, tile_size)
    return 1 + rows * columns


def resized_size(image_size: Size, target: Size) -> Size:
    """The image's size scaled to fit ``target`` keeping its aspect ratio
    (the side that fits exactly, the other rounded up)."""
    height, width = image_size
    target_height, target_width = target
    scale_width, scale_height = target_width / width, target_height / height
    if scale_width < scale_height:
        return min(math.ceil(height * scale_width), target_height), \
            target_width
    return target_height, min(math.ceil(width * scale_height), target_width)


def unpadded_shape(image_size: Size, shape: Size) -> tuple[slice, slice]:
    """Rows and columns of a ``shape`` feature grid that cover the image
    (the rest covers the padding :func:`resized_size` left)."""
    height, width = image_size
    rows, columns = shape
    if width / height > columns / rows:
        kept = int(round(height * (columns / width), 7))
        cut = (rows - kept) // 2
        return slice(cut, rows - cut), slice(0, columns)
    kept = int(round(width * (rows / height), 7))
    cut = (columns - kept) // 2
    return slice(0, rows), slice(cut, columns - cut)


def _length(span: slice) -> int:
    return span.stop - span.start


def check_anyres_max(anyres_max: Optional[int],
                     merge_type: str) -> Optional[int]:
    """``anyres_max`` if it is a positive integer given with the
    ``'spatial_unpad'`` merge (the only one it shrinks), or None."""
    if anyres_max is None:
        return None
    if isinstance(anyres_max, bool) or not isinstance(anyres_max, int) \
            or anyres_max < 1:
        raise ValueError(f'anyres_max must be a positive integer (the N of '
                         f"'anyres_max_N'), got {anyres_max!r}.")
    if merge_type != 'spatial_unpad':
        raise ValueError(f"anyres_max shrinks the 'spatial_unpad' merge; "
                         f'mm_patch_merge_type is {merge_type!r}.')
    return anyres_max


def budget_shape(shape: Size, side: int, anyres_max: Optional[int]) -> Size:
    """``(rows, columns)`` an unpadded feature grid of ``shape`` keeps under
    ``anyres_max_N``.

    A grid of more than ``N`` tiles' features (``N * side ** 2``) by a
    side ratio over :data:`ANYRES_MAX_SLACK` shrinks by that ratio, each
    side floored; any other grid, and any grid without ``anyres_max``,
    keeps its shape.

    Args:
        shape (tuple): ``(rows, columns)`` of the unpadded grid.
        side (int): Patches along one side of a tile.
        anyres_max (int, optional): ``N``.
    """
    if anyres_max is None:
        return shape
    rows, columns = shape
    ratio = math.sqrt(rows * columns / (anyres_max * side**2))
    if ratio <= ANYRES_MAX_SLACK:
        return shape
    # Float floor division, as the reference code does it: it can differ
    # from math.floor(rows / ratio) by one at an integer edge.
    return int(rows // ratio), int(columns // ratio)


# ---------------------------------------------------------------------------
# Features.
# ---------------------------------------------------------------------------
def count_image_tokens(image_size: Size, pinpoints: Sequence[Size],
                       tile_size: int, patch_size: int, merge_type: str,
                       tokens_per_tile: Optional[int] = None,
                       anyres_max: Optional[int] = None) -> int:
    """Feature rows an image of ``image_size`` becomes in the LLM input:
    the length of what :func:`merge_tile_features` returns, without the
    features. The data pipeline (truncation) and the model (the server's
    prompt lengths) both count with it.

    Args:
        image_size (tuple): ``(height, width)`` of the original image.
        pinpoints (Sequence): ``(height, width)`` grid resolutions.
        tile_size (int): The vision tower's image size.
        patch_size (int): The vision tower's patch size.
        merge_type (str): ``'flat'``, ``'spatial'`` or ``'spatial_unpad'``.
        tokens_per_tile (int, optional): Feature rows of one tile; defaults
            to ``(tile_size // patch_size) ** 2`` (a CLS token kept adds
            one, which only ``'flat'`` allows).
        anyres_max (int, optional): ``N`` of ``anyres_max_N``
            (``'spatial_unpad'`` only, see :func:`budget_shape`).
    """
    side = tile_size // patch_size
    per_tile = side * side if tokens_per_tile is None else tokens_per_tile
    rows, columns = grid_shape(image_size, pinpoints, tile_size)
    if merge_type in ('flat', 'spatial'):
        return (1 + rows * columns) * per_tile
    if merge_type != 'spatial_unpad':
        raise ValueError(f'mm_patch_merge_type must be one of {MERGE_TYPES}, '
                         f'got {merge_type!r}')
    kept_rows, kept_columns = unpadded_shape(image_size,
                                             (rows * side, columns * side))
    rows, columns = budget_shape((_length(kept_rows), _length(kept_columns)),
                                 side, anyres_max)
    # Each kept row of the grid ends with the image_newline row.
    return per_tile + rows * (columns + 1)


def merge_tile_features(features: torch.Tensor, image_size: Size,
                        pinpoints: Sequence[Size], tile_size: int,
                        merge_type: str,
                        image_newline: Optional[torch.Tensor] = None,
                        anyres_max: Optional[int] = None) -> torch.Tensor:
    """One image's tile features as one sequence.

    Args:
        features (Tensor): ``(1 + rows * columns, P, C)``: the base view,
            then the tiles row by row (as :class:`AnyResImage` orders them).
        image_size (tuple): ``(height, width)`` of the original image.
        pinpoints, tile_size: As for :func:`grid_shape`.
        merge_type (str): ``'flat'``: every tile's rows one after another;
            ``'spatial'``: the base view, then the tiles' patches as one
            big grid, row by row; ``'spatial_unpad'``: as ``'spatial'``,
            without the rows and columns of padding, each grid row ending
            with ``image_newline``.
        image_newline (Tensor, optional): ``(C,)``, for ``'spatial_unpad'``.
        anyres_max (int, optional): ``N`` of ``anyres_max_N``, for
            ``'spatial_unpad'``: the unpadded grid shrinks to
            :func:`budget_shape` by bilinear interpolation before the
            newlines are appended.

    Returns:
        Tensor: ``(N, C)``, ``N`` as :func:`count_image_tokens` says.
    """
    rows, columns = grid_shape(image_size, pinpoints, tile_size)
    if len(features) != 1 + rows * columns:
        raise ValueError(
            f'Image of size {tuple(image_size)} (height, width) has a '
            f'{rows}x{columns} grid: expected {1 + rows * columns} tiles '
            f'(base view included), got {len(features)}.')
    if merge_type == 'flat':
        # (1 + T, P, C) -> ((1 + T) * P, C)
        return features.flatten(0, 1)
    if merge_type not in MERGE_TYPES:
        raise ValueError(f'mm_patch_merge_type must be one of {MERGE_TYPES}, '
                         f'got {merge_type!r}')
    base, tiles = features[0], features[1:]
    side = math.isqrt(tiles.shape[1])
    if side * side != tiles.shape[1]:
        raise ValueError(f'{tiles.shape[1]} features per tile are not a '
                         'square grid of patches (a CLS token kept?); '
                         'spatial merges need patch features only.')
    # (T, P, C) -> (rows, columns, side, side, C) -> (rows, side, columns,
    # side, C) -> (rows * side, columns * side, C): one grid over the image.
    grid = tiles.view(rows, columns, side, side, -1).permute(
        0, 2, 1, 3, 4).reshape(rows * side, columns * side, -1)
    if merge_type == 'spatial':
        return torch.cat([base, grid.flatten(0, 1)])
    if image_newline is None:
        raise ValueError("'spatial_unpad' needs image_newline.")
    kept_rows, kept_columns = unpadded_shape(image_size, grid.shape[:2])
    grid = grid[kept_rows, kept_columns]
    shape = budget_shape(tuple(grid.shape[:2]), side, anyres_max)
    if shape != tuple(grid.shape[:2]):
        # (H', W', C) -> (1, C, H', W') -> (1, C, h, w) -> (h, w, C)
        grid = F.interpolate(grid.permute(2, 0, 1)[None], size=shape,
                             mode='bilinear')[0].permute(1, 2, 0)
    # (H', W', C) -> (H', W' + 1, C) -> (H' * (W' + 1), C)
    newline = image_newline.to(grid.dtype).expand(grid.shape[0], 1, -1)
    return torch.cat([base, torch.cat([grid, newline], 1).flatten(0, 1)])
