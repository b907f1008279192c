"""The models: the check model written once as folders (tower, LLM, projector
file, tokenizer), so that every path loads the same weights in its own way
(ZeRO-3 partitioned, QLoRA in 4 bits); the speed model built straight on the
device in bf16, with transformers' Llava holding the same tensors."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration

from mmllava.converters.llava_hf import from_hf_key
from mmllava.registry import MODELS
from mmllava.testing.demo.tokenizer import write_llama_tokenizer

from benchmark_parts.models import (baseline_config, build_mmllava,
                                    mmllava_config, widen_lm_head)
from benchmark_parts.sizes import Sizes


@dataclass(frozen=True)
class Folders:
    """Where the check model's parts are."""

    tokenizer: str
    vision: str
    llm: str
    projector: str


def write_check_model(sizes: Sizes, work_dir: str, seed: int) -> Folders:
    """A random LLaVA-1.5 (CLIP, mlp2x_gelu, Llama) at ``sizes``, its LM head
    drawn with std 1 (:func:`widen_lm_head`: clear winners, so that rounding
    does not pick greedy tokens, and a loss that moves with every hidden
    state, so that a wrong path shows), saved part by part."""
    folder = Path(work_dir)
    tokenizer = write_llama_tokenizer(str(folder / 'tokenizer'))
    torch.manual_seed(seed)
    model = build_mmllava(sizes, tokenizer)
    widen_lm_head(model, seed)
    folders = Folders(tokenizer, str(folder / 'vision'), str(folder / 'llm'),
                      str(folder / 'projector.safetensors'))
    model.vision_encoder.model.save_pretrained(folders.vision)
    model.llm.save_pretrained(folders.llm)
    save_file({f'projector.{key}': value.contiguous()
               for key, value in model.projector.state_dict().items()},
              folders.projector)
    return folders


def check_config(sizes: Sizes, folders: Folders,
                 packing: bool = False, lora: Optional[dict] = None,
                 **llm) -> dict:
    """The model config of a path: the folders' weights, the LLM's extra
    keys (attention, dtype, quantization) in ``llm``."""
    cfg = mmllava_config(sizes, folders.tokenizer,
                         sizes.packing_max_length if packing else None)
    cfg['vision_encoder'].pop('config')
    cfg['vision_encoder']['pretrained'] = folders.vision
    cfg['llm'] = dict(type='HFCausalLM', pretrained=folders.llm, **llm)
    cfg['projector_pretrained'] = folders.projector
    if lora is not None:
        cfg['lora'] = lora
    return cfg


def build_check_model(cfg: dict, device: str, seed: int) -> torch.nn.Module:
    """Seeded, so that what is drawn at build (LoRA's A) is the same for
    every path."""
    torch.manual_seed(seed)
    return MODELS.build(cfg).to(device)


def build_speed_pair(
        sizes: Sizes, tokenizer_dir: str, device: str, attention: str,
        seed: int) -> tuple[torch.nn.Module, LlavaForConditionalGeneration]:
    """mmllava's stage-2 model (packing on), random, built in bf16 on
    ``device``; and transformers' Llava holding the same tensors (no second
    copy of the weights: the two are never trained with a learning rate
    above 0, see speed.py). Vision towers on SDPA in both, the LLMs on
    ``attention``."""
    torch.manual_seed(seed)
    cfg = mmllava_config(sizes, tokenizer_dir, sizes.packing_max_length)
    cfg['llm'].update(torch_dtype='bfloat16', attn_implementation=attention)
    cfg['vision_encoder']['torch_dtype'] = 'bfloat16'
    with torch.device(device):
        model = MODELS.build(cfg)
    # The projector is built in float32; the data preprocessor learns the
    # device here.
    model.to(device=device, dtype=torch.bfloat16)
    with torch.device(device):
        baseline = LlavaForConditionalGeneration._from_config(
            baseline_config(sizes), dtype=torch.bfloat16,
            attn_implementation=dict(text_config=attention,
                                     vision_config='sdpa'))
    weights = model.state_dict()
    # Strict: every key of the baseline has its mmllava counterpart; its own
    # random tensors are dropped as these take their place.
    baseline.load_state_dict({key: weights[from_hf_key(key)]
                              for key in baseline.state_dict()}, assign=True)
    baseline.model.vision_tower.requires_grad_(False)
    return model, baseline


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
