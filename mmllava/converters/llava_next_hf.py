"""AnyRes models in llava-hf: what ``LlavaNextForConditionalGeneration``
changes.

The weights are those of :mod:`.llava_hf` plus ``image_newline`` (written
top-level, as transformers 4 did; transformers 5 reads it as
``model.image_newline``). The config is a ``LlavaNextConfig`` whose
``image_grid_pinpoints`` are ``(height, width)`` pairs like mmllava's, and
the processor a ``LlavaNextProcessor`` with a ``LlavaNextImageProcessor``, so
that transformers' processor counts exactly the image tokens mmllava's model
makes.

transformers' LlavaNext merges tiles as ``'spatial_unpad'`` only; other
merge types have no llava-hf form.
"""
from mmllava.converters.native import LLaVASpec
from mmllava.models.anyres import pinpoints_from_hf, pinpoints_to_hf

MODEL_TYPE = 'llava_next'
#: config.json's ``architectures``: the class serving stacks build.
ARCHITECTURE = 'LlavaNextForConditionalGeneration'
#: Special tokens the export adds besides ``<image>``: none.
ADDED_TOKENS = ()


def hf_config(spec: LLaVASpec, base_kwargs: dict):
    """A ``LlavaNextConfig`` from the kwargs of the Llava one."""
    from transformers import LlavaNextConfig
    # Its image_seq_length stays the base view's; the processor counts the
    # rest from each image's size.
    return LlavaNextConfig(**base_kwargs, architectures=[ARCHITECTURE],
                           image_grid_pinpoints=pinpoints_to_hf(
                               spec.image_grid_pinpoints))


def hf_processor(spec: LLaVASpec, tokenizer, strategy: str,
                 chat_template: str):
    from transformers import LlavaNextImageProcessorPil, LlavaNextProcessor
    image_processor = LlavaNextImageProcessorPil(
        **spec.image_processor,
        image_grid_pinpoints=pinpoints_to_hf(spec.image_grid_pinpoints))
    return LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        patch_size=spec.vision_config['patch_size'],
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=int(spec.has_cls_token),
        chat_template=chat_template)


def anyres_fields(config) -> dict:
    """The :class:`LLaVASpec` fields of a ``LlavaNextConfig``."""
    return dict(image_aspect_ratio='anyres',
                image_grid_pinpoints=pinpoints_from_hf(
                    config.image_grid_pinpoints),
                mm_patch_merge_type='spatial_unpad')
