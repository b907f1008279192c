"""Causal language models from transformers."""
import importlib.util
from typing import Optional

import torch
from peft import prepare_model_for_kbit_training
from transformers import (AutoConfig, AutoModelForCausalLM,
                          BitsAndBytesConfig, PreTrainedModel)

from mmllava.registry import MODELS
from mmllava.utils.files import require_local_folder
from mmllava.utils.rng import rng_left_as_found

QUANTIZATIONS = ('4bit', )


def quantization_config(quantization: str,
                        compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """QLoRA's 4-bit storage (NF4, double quantization), computing in
    ``compute_dtype``, as the official ``--bits 4`` runs load the LLM.

    Raises:
        RuntimeError: bitsandbytes is not installed or no CUDA GPU is
            visible (its 4-bit kernels need one).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f'quantization must be one of {QUANTIZATIONS} or '
                         f'None, got {quantization!r}')
    missing = []
    if importlib.util.find_spec('bitsandbytes') is None:
        missing.append('the bitsandbytes package (pip install bitsandbytes)')
    if not torch.cuda.is_available():
        missing.append('a CUDA GPU (none is visible)')
    if missing:
        raise RuntimeError(
            f"quantization='{quantization}' (QLoRA) loads the LLM through "
            f"bitsandbytes and needs {' and '.join(missing)}. Without them, "
            'train with LoRA on the unquantized LLM (leave quantization '
            'out).')
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4',
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


@MODELS.register_module(name='HFCausalLM')
def build_causal_lm(pretrained: Optional[str] = None,
                    config: Optional[dict] = None,
                    attn_implementation: str = 'sdpa',
                    torch_dtype: str = 'float32',
                    gradient_checkpointing: bool = False,
                    trust_remote_code: bool = False,
                    quantization: Optional[str] = None,
                    **kwargs) -> PreTrainedModel:
    """Build any transformers causal LM from a local folder or a config.

    Args:
        pretrained (str, optional): Local folder with weights and config.
        config (dict, optional): Config kwargs with ``model_type`` (e.g.
            ``dict(model_type='llama', hidden_size=256, ...)``) for a random
            initialisation. Exactly one of ``pretrained`` and ``config``.
        attn_implementation (str): ``'sdpa'``, ``'eager'`` or
            ``'flash_attention_2'``. Defaults to ``'sdpa'``.
        torch_dtype (str): Parameter dtype. Defaults to ``'float32'``.
        gradient_checkpointing (bool): Recompute activations in backward.
        trust_remote_code (bool): Passed to transformers; off by default.
        quantization (str, optional): ``'4bit'`` loads the ``pretrained``
            weights in 4 bits (QLoRA: train it with ``LLaVA(lora=...)``);
            needs bitsandbytes and a CUDA GPU. ``torch_dtype`` is then the
            compute dtype. Defaults to None (the weights as stored).
        **kwargs: Passed to ``from_pretrained`` (e.g. ``gguf_file``).
    """
    if (pretrained is None) == (config is None):
        raise ValueError('Give the LLM exactly one of `pretrained` (a local '
                         'folder) and `config` (random init).')
    dtype = getattr(torch, torch_dtype)
    if quantization is not None:
        kwargs['quantization_config'] = quantization_config(quantization,
                                                            dtype)
        if pretrained is None:
            raise ValueError(f'quantization={quantization!r} quantizes '
                             'loaded weights: give `pretrained`.')
    if pretrained is not None:
        with rng_left_as_found():
            model = AutoModelForCausalLM.from_pretrained(
                require_local_folder(pretrained, 'LLM'),
                attn_implementation=attn_implementation, dtype=dtype,
                trust_remote_code=trust_remote_code, **kwargs)
    else:
        config = dict(config)
        model_config = AutoConfig.for_model(config.pop('model_type'), **config)
        model = AutoModelForCausalLM.from_config(
            model_config, attn_implementation=attn_implementation,
            dtype=dtype)
    if quantization is not None:
        # Norms and the embedding in fp32, as peft's k-bit recipe does; the
        # checkpointing is set up below.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=dict(use_reentrant=False))
    return model
