"""Causal language models from transformers."""
from typing import Optional

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from mmllava.registry import MODELS
from mmllava.utils.files import require_local_folder


@MODELS.register_module(name='HFCausalLM')
def build_causal_lm(pretrained: Optional[str] = None,
                    config: Optional[dict] = None,
                    attn_implementation: str = 'sdpa',
                    torch_dtype: str = 'float32',
                    gradient_checkpointing: bool = False,
                    trust_remote_code: bool = False,
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
        **kwargs: Passed to ``from_pretrained`` (e.g. ``gguf_file``).
    """
    if (pretrained is None) == (config is None):
        raise ValueError('Give the LLM exactly one of `pretrained` (a local '
                         'folder) and `config` (random init).')
    dtype = getattr(torch, torch_dtype)
    if pretrained is not None:
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
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=dict(use_reentrant=False))
    return model
