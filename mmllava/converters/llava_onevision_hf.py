"""AnyRes models with an ``anyres_max`` budget in llava-hf: what
``LlavaOnevisionForConditionalGeneration`` changes.

The weights are those of :mod:`.llava_next_hf` (transformers reads
LlavaOnevision folders with LlavaNext's key layout). The config is a
``LlavaOnevisionConfig`` whose ``vision_aspect_ratio`` is
``'anyres_max_N'`` (``N`` the model's ``anyres_max``) and whose
``image_grid_pinpoints`` are ``(height, width)`` pairs like mmllava's; the
processor a ``LlavaOnevisionProcessor`` with a
``LlavaOnevisionImageProcessor``, so that transformers' processor counts
exactly the image tokens mmllava's model makes. The tokenizer gets
``<video>`` beside ``<image>``, as llava-hf's own OneVision folders have it
(``video_token_index``); mmllava's model takes no video.

The processor is written as the data its ``from_pretrained`` reads
(``processor_config.json``): it cannot be built here, since its video
processor needs torchvision, which cannot be installed beside mmllava's CPU
torch. Where torchvision is, transformers builds the video processor from
the model type and the image settings.

One difference stays: transformers' LlavaOnevision gives each image of a
prompt with several images only its base view (padded to a square) and a
newline; mmllava tiles every image. Single-image prompts agree.

transformers' LlavaOnevision merges tiles as ``'spatial_unpad'`` only.
"""
import json
import re
from pathlib import Path

from mmllava.converters.native import LLaVASpec
from mmllava.models.anyres import (check_anyres_max, pinpoints_from_hf,
                                   pinpoints_to_hf)

MODEL_TYPE = 'llava_onevision'
#: config.json's ``architectures``: the class serving stacks build.
ARCHITECTURE = 'LlavaOnevisionForConditionalGeneration'
PROCESSOR = 'LlavaOnevisionProcessor'
VIDEO_TOKEN = '<video>'
#: Special tokens the export adds besides ``<image>``.
ADDED_TOKENS = (VIDEO_TOKEN, )


def vision_aspect_ratio(anyres_max: int) -> str:
    """transformers' (and the official config's) name of the budget."""
    return f'anyres_max_{anyres_max}'


def hf_config(spec: LLaVASpec, base_kwargs: dict, tokenizer):
    """A ``LlavaOnevisionConfig`` from the kwargs of the Llava one."""
    from transformers import LlavaOnevisionConfig
    return LlavaOnevisionConfig(
        **base_kwargs, architectures=[ARCHITECTURE],
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        image_grid_pinpoints=pinpoints_to_hf(spec.image_grid_pinpoints),
        vision_aspect_ratio=vision_aspect_ratio(spec.anyres_max))


def write_processor(spec: LLaVASpec, image_token: str, strategy: str,
                    out_dir: str) -> None:
    """``processor_config.json``: the ``LlavaOnevisionProcessor`` settings
    and its image processor's (the tokenizer and the chat template are
    saved beside it)."""
    from transformers import LlavaOnevisionImageProcessorPil
    image_processor = LlavaOnevisionImageProcessorPil(
        **spec.image_processor,
        image_grid_pinpoints=pinpoints_to_hf(spec.image_grid_pinpoints))
    settings = dict(
        processor_class=PROCESSOR,
        image_processor=json.loads(image_processor.to_json_string()),
        image_token=image_token, video_token=VIDEO_TOKEN,
        # A tile's feature rows, a kept CLS row included (the processor
        # drops it again for strategy 'default').
        num_image_tokens=spec.num_image_tokens,
        vision_feature_select_strategy=strategy,
        vision_aspect_ratio=vision_aspect_ratio(spec.anyres_max))
    Path(out_dir, 'processor_config.json').write_text(
        json.dumps(settings, indent=2, sort_keys=True) + '\n')


def anyres_fields(config) -> dict:
    """The :class:`LLaVASpec` fields of a ``LlavaOnevisionConfig``."""
    matched = re.fullmatch(r'anyres_max_(\d+)', config.vision_aspect_ratio)
    if matched is None:
        raise ValueError(f"vision_aspect_ratio must be 'anyres_max_N', got "
                         f'{config.vision_aspect_ratio!r}.')
    return dict(image_aspect_ratio='anyres',
                image_grid_pinpoints=pinpoints_from_hf(
                    config.image_grid_pinpoints),
                mm_patch_merge_type='spatial_unpad',
                anyres_max=check_anyres_max(int(matched.group(1)),
                                            'spatial_unpad'))
