"""The independent reference of the model tests: transformers' own Llava,
LlavaNext and LlavaOnevision."""
from pathlib import Path

import pytest
import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration


def transformers_llava(model, image_token_id: int
                       ) -> LlavaForConditionalGeneration:
    """transformers' ``LlavaForConditionalGeneration`` with ``model``'s
    weights (a CLIP tower, ``mlp2x_gelu``, a causal LM), configured from
    ``model``'s own parts; ``image_token_id`` marks images in its input."""
    config = LlavaConfig(
        vision_config=model.vision_encoder.model.config.to_dict(),
        text_config=model.llm.config.to_dict(),
        image_token_id=image_token_id,
        vision_feature_layer=model.vision_encoder.select_layer,
        vision_feature_select_strategy='default',
        projector_hidden_act='gelu',
        multimodal_projector_bias=True)
    reference = LlavaForConditionalGeneration(config).eval()
    copy_llava_weights(model, reference)
    return reference


def copy_llava_weights(model, reference) -> None:
    """Load ``model``'s tower, LM, LM head and ``mlp2x_gelu`` projector
    into a transformers Llava or LlavaNext ``reference``, strictly: every
    key of our parts has its counterpart there."""
    reference.model.vision_tower.load_state_dict(
        model.vision_encoder.model.state_dict())
    reference.model.language_model.load_state_dict(
        model.llm.get_decoder().state_dict())
    reference.lm_head.load_state_dict(
        model.llm.get_output_embeddings().state_dict())
    projector = model.projector.state_dict()
    reference.model.multi_modal_projector.load_state_dict({
        'linear_1.weight': projector['0.weight'],
        'linear_1.bias': projector['0.bias'],
        'linear_2.weight': projector['2.weight'],
        'linear_2.bias': projector['2.bias'],
    })


@pytest.fixture(scope='session')
def to_transformers_llava():
    """:func:`transformers_llava`, for the test modules."""
    return transformers_llava


def transformers_anyres(model, model_class, config, folder: Path):
    """transformers' LlavaNext or LlavaOnevision (``model_class`` built
    from ``config``) with ``model``'s weights, ``image_newline`` included,
    through ``save_pretrained`` to ``folder`` and ``from_pretrained``, which
    must read every weight."""
    built = model_class(config)
    copy_llava_weights(model, built)
    with torch.no_grad():
        built.model.image_newline.copy_(model.image_newline)
    built.save_pretrained(folder)
    loaded, info = model_class.from_pretrained(folder,
                                               output_loading_info=True)
    assert not any(info.values()), info
    return loaded.eval()


@pytest.fixture(scope='session')
def to_transformers_anyres():
    """:func:`transformers_anyres`, for the test modules."""
    return transformers_anyres
