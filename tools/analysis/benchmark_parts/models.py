"""The two models with the same weights: mmllava's ``LLaVA`` and
transformers' ``LlavaForConditionalGeneration``."""
from typing import Optional

import torch
from safetensors.torch import load_file, save_file
from transformers import LlavaConfig, LlavaForConditionalGeneration

from mmllava.converters.llava_hf import from_hf_key
from mmllava.registry import MODELS

from benchmark_parts.sizes import HF_IMAGE_TOKEN_ID, Sizes


def mmllava_config(sizes: Sizes, tokenizer_dir: str,
                   packing_max_length: Optional[int] = None) -> dict:
    """LLaVA-1.5's stage 2 at benchmark size: CLIP penultimate patches,
    mlp2x_gelu, Llama; the tower frozen."""
    cfg = dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=sizes.vision,
                            select_layer=-2, select_feature='patch'),
        llm=dict(type='HFCausalLM', config=sizes.llm),
        tokenizer=dict(type='PretrainedTokenizer', pretrained=tokenizer_dir),
        projector=dict(type='mlp2x_gelu'),
        freeze_vision_encoder=True)
    if packing_max_length is not None:
        cfg['packing'] = dict(max_length=packing_max_length)
    return cfg


def build_mmllava(sizes: Sizes, tokenizer_dir: str,
                  weights: Optional[dict] = None,
                  packing_max_length: Optional[int] = None
                  ) -> torch.nn.Module:
    """Build mmllava's model; random (seeded by the caller) or ``weights``
    (mmllava keys)."""
    model = MODELS.build(mmllava_config(sizes, tokenizer_dir,
                                        packing_max_length))
    if weights is not None:
        model.load_state_dict(weights)
    return model


def baseline_config(sizes: Sizes) -> LlavaConfig:
    return LlavaConfig(
        vision_config=dict(model_type='clip_vision_model', **sizes.vision),
        text_config=dict(sizes.llm),
        image_token_id=HF_IMAGE_TOKEN_ID,
        vision_feature_layer=-2,
        vision_feature_select_strategy='default',
        projector_hidden_act='gelu',
        multimodal_projector_bias=True,
        image_seq_length=sizes.num_image_tokens)


def build_baseline(sizes: Sizes,
                   weights: dict[str, torch.Tensor]
                   ) -> LlavaForConditionalGeneration:
    """transformers' Llava holding ``weights`` (mmllava keys), mapped by the
    llava-hf converter's key rules; the tower frozen, as in LLaVA stage 2."""
    model = LlavaForConditionalGeneration(baseline_config(sizes))
    # Strict: every baseline key has its mmllava counterpart.
    model.load_state_dict({key: weights[from_hf_key(key)].clone()
                           for key in model.state_dict()})
    model.model.vision_tower.requires_grad_(False)
    return model


def save_weights(model: torch.nn.Module, path: str) -> None:
    save_file({key: value.contiguous()
               for key, value in model.state_dict().items()}, path)


def load_weights(path: str) -> dict[str, torch.Tensor]:
    return load_file(path)


def widen_lm_head(model: torch.nn.Module, seed: int = 0) -> None:
    """Give mmllava's random LM head clear winners: with a 0.02-std head the
    top logits of a random model nearly tie, and greedy decoding would follow
    rounding noise instead of the weights."""
    head = model.llm.get_output_embeddings().weight
    with torch.no_grad():
        head.copy_(torch.randn(head.shape, generator=torch.Generator()
                               .manual_seed(seed)))
