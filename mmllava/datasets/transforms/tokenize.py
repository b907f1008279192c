"""Conversation -> template -> ``input_ids`` and ``labels``."""
import logging
from typing import Optional, Sequence, Union

from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from mmllava.constants import (IGNORE_INDEX, IMAGE_PLACEHOLDER,
                               IMAGE_TOKEN_INDEX)
from mmllava.content_specials import keeps_text
from mmllava.conversation import build_generation_prompt, tokenize_conversation
from mmllava.models.anyres import (check_anyres_max, check_pinpoints,
                                   count_image_tokens)
from mmllava.models.tokenizer import build_tokenizer
from mmllava.registry import TRANSFORMS
from mmllava.templates import GPT, get_template


def truncate_to_length(
        input_ids: list[int], labels: list[int], max_length: int,
        num_image_tokens: Union[int, Sequence[int]]
) -> tuple[list[int], list[int]]:
    """Cut a sample so that, with each image expanded to
    ``num_image_tokens`` rows (one count for every image, or one per image
    in placeholder order), it fits ``max_length``.

    The cut never falls inside an image: an image that does not fit whole is
    dropped with everything after it.
    """
    counts = iter([num_image_tokens] * input_ids.count(IMAGE_TOKEN_INDEX)
                  if isinstance(num_image_tokens, int) else num_image_tokens)
    length = 0
    for index, token in enumerate(input_ids):
        length += next(counts) if token == IMAGE_TOKEN_INDEX else 1
        if length > max_length:
            return input_ids[:index], labels[:index]
    return input_ids, labels


class AnyResTokenCount:
    """Image tokens per image size for AnyRes (see
    :func:`~mmllava.models.anyres.count_image_tokens`).

    Args:
        grid_pinpoints (list): ``(height, width)`` grid resolutions.
        tile_size (int): The vision tower's image size.
        patch_size (int): The vision tower's patch size.
        merge_type (str): The model's ``mm_patch_merge_type``.
        cls_token (bool): Whether the vision encoder keeps its CLS token
            (``select_feature='cls_patch'``, a ``'flat'`` merge only): one
            more row per tile. Defaults to False.
        anyres_max (int, optional): The model's ``anyres_max`` (``N`` of
            ``anyres_max_N``). Defaults to None.
    """

    def __init__(self, grid_pinpoints: list, tile_size: int, patch_size: int,
                 merge_type: str, cls_token: bool = False,
                 anyres_max: Optional[int] = None) -> None:
        if cls_token and merge_type != 'flat':
            raise ValueError(f'A kept CLS token (cls_token=True) needs '
                             f"merge_type 'flat', got {merge_type!r}.")
        self.grid_pinpoints = check_pinpoints(grid_pinpoints, tile_size)
        self.tile_size, self.patch_size = tile_size, patch_size
        self.merge_type = merge_type
        self.tokens_per_tile = (tile_size // patch_size)**2 + int(cls_token)
        self.anyres_max = check_anyres_max(anyres_max, merge_type)

    def __call__(self, image_size: tuple[int, int]) -> int:
        return count_image_tokens(image_size, self.grid_pinpoints,
                                  self.tile_size, self.patch_size,
                                  self.merge_type, self.tokens_per_tile,
                                  self.anyres_max)


def check_image_count(input_ids: list[int], num_images: int,
                      sample_id: object) -> None:
    """Fail early, naming the sample, when the placeholders the prompt holds
    and the sample's images differ in number."""
    num_placeholders = input_ids.count(IMAGE_TOKEN_INDEX)
    if num_placeholders != num_images:
        raise ValueError(
            f'Sample {sample_id!r}: image placeholders and images do not '
            f'match: {num_placeholders} placeholders, {num_images} images '
            f'(each image needs one {IMAGE_PLACEHOLDER} in a human turn).')


def num_images(results: dict) -> int:
    """The sample's images: those loaded, else those of ``img_path`` (a
    path, or a list of them)."""
    images = results.get('images')
    if images:
        return len(images)
    path = results.get('img_path')
    if path is None:
        return 0
    return len(path) if isinstance(path, (list, tuple)) else 1


@TRANSFORMS.register_module()
class TokenizeConversation(BaseTransform):
    """Render ``conversations`` with a chat template and tokenize them.

    In ``'train'`` mode adds ``input_ids`` and ``labels`` (``-100`` where not
    supervised). In ``'predict'`` mode the last answer, if any, becomes
    ``gt_answer`` and ``input_ids`` end with the assistant prefix.

    A sample may have several images (``img_path`` a list, or several
    loaded ``images``), one ``<image>`` per image in its human turns, in the
    images' order (see :func:`~mmllava.templates.placeholders.place_images`
    for where they stand); a count that differs is an error naming the
    sample and both counts.

    Truncation: with ``max_length`` set, a sample longer than that (images
    counted as ``num_image_tokens`` rows each) is cut at the end, never
    inside an image: an image that does not fit whole is dropped with its
    placeholder and everything after it, and so are the images after it
    (from ``images``, ``pixel_values`` and ``image_sizes``). Each truncation
    is logged with the sample, the images it drops and a running count. A
    sample that keeps no supervised token is dropped (the dataset draws
    another one), also logged and counted.

    Args:
        tokenizer (dict): Tokenizer config (``PretrainedTokenizer``).
        template (str): Chat template name (``plain``, ``vicuna_v1``, ...).
        max_length (int, optional): Longest sequence the model sees.
        num_image_tokens (int | dict): Feature rows one image becomes (576
            for CLIP ViT-L/14 at 336 px), or for AnyRes a dict of
            :class:`AnyResTokenCount`'s arguments (``grid_pinpoints``,
            ``tile_size``, ``patch_size``, ``merge_type``, ``anyres_max``):
            each image is counted from its size. Needed with ``max_length``.
        mode (str): ``'train'`` or ``'predict'``. Defaults to ``'train'``.
        special_tokens_in_content (str): What the string of a special token
            (``</s>``, ``<|im_end|>``) inside a message becomes: ``'text'``,
            ordinary sub-word ids, or ``'special'``, the special token, as
            the official LLaVA code does (to reproduce an official run bit
            for bit). The template's own special tokens stay special either
            way. Defaults to ``'text'``.
    """

    def __init__(self,
                 tokenizer: dict,
                 template: str,
                 max_length: Optional[int] = None,
                 num_image_tokens: Union[int, dict, None] = None,
                 mode: str = 'train',
                 special_tokens_in_content: str = 'text') -> None:
        if mode not in ('train', 'predict'):
            raise ValueError(f"mode must be 'train' or 'predict', got {mode!r}")
        if mode == 'predict' and max_length is not None:
            raise ValueError('max_length applies to training samples only; '
                             "leave it unset in 'predict' mode.")
        if max_length is not None and num_image_tokens is None:
            raise ValueError('max_length needs num_image_tokens (the feature '
                             'rows of one image) to count sample lengths.')
        keeps_text(special_tokens_in_content)  # an unknown value fails here
        self.special_tokens_in_content = special_tokens_in_content
        self.tokenizer = build_tokenizer(tokenizer)
        self.template = get_template(template)
        self.max_length = max_length
        self.num_image_tokens = AnyResTokenCount(**num_image_tokens) \
            if isinstance(num_image_tokens, dict) else num_image_tokens
        self.mode = mode
        self.num_truncated = 0
        self.num_dropped = 0

    def transform(self, results: dict) -> Optional[dict]:
        sample_id = results.get('sample_id')
        count = num_images(results)
        turns = results['conversations']
        if self.mode == 'predict':
            if turns[-1]['from'] == GPT:
                results['gt_answer'] = turns[-1]['value']
                turns = turns[:-1]
            results['input_ids'] = build_generation_prompt(
                turns, self.template, self.tokenizer, count > 0, sample_id,
                self.special_tokens_in_content, num_images=count)
            check_image_count(results['input_ids'], count, sample_id)
            return results
        input_ids, labels = tokenize_conversation(
            turns, self.template, self.tokenizer, count > 0, sample_id,
            self.special_tokens_in_content, num_images=count)
        check_image_count(input_ids, count, sample_id)
        if self.max_length is not None:
            full_length = len(input_ids)
            input_ids, labels = truncate_to_length(
                input_ids, labels, self.max_length,
                self._image_token_counts(results))
            if len(input_ids) < full_length:
                return self._after_truncation(results, input_ids, labels,
                                              full_length)
        results['input_ids'], results['labels'] = input_ids, labels
        return results

    def _image_token_counts(self, results: dict) -> Union[int, list[int]]:
        if isinstance(self.num_image_tokens, int):
            return self.num_image_tokens
        return [self.num_image_tokens((image.height, image.width))
                for image in results.get('images', [])]

    def _after_truncation(self, results: dict, input_ids: list[int],
                          labels: list[int], full_length: int
                          ) -> Optional[dict]:
        sample_id = results.get('sample_id')
        if all(label == IGNORE_INDEX for label in labels):
            self.num_dropped += 1
            print_log(
                f'Sample {sample_id!r} dropped: truncated to max_length '
                f'{self.max_length} it keeps no supervised token '
                f'({self.num_dropped} dropped in this worker so far).',
                logger='current', level=logging.WARNING)
            return None
        self.num_truncated += 1
        kept_images = input_ids.count(IMAGE_TOKEN_INDEX)
        total_images = num_images(results)
        dropped = f', dropping {total_images - kept_images} of its ' \
            f'{total_images} images' if kept_images < total_images else ''
        print_log(
            f'Sample {sample_id!r} truncated from {full_length} to '
            f'{len(input_ids)} tokens (max_length {self.max_length})'
            f'{dropped} ({self.num_truncated} truncated in this worker so '
            'far).',
            logger='current', level=logging.WARNING)
        results['images'] = results.get('images', [])[:kept_images]
        for key in ('pixel_values', 'image_sizes'):
            if key in results:
                results[key] = results[key][:kept_images]
        results['input_ids'], results['labels'] = input_ids, labels
        return results
