"""Merge an official LLaVA LoRA checkpoint into its base LLM, for export.

LLaVA's LoRA runs (``--lora_enable``) save a folder with the LLM's adapter
(``adapter_config.json``, ``adapter_model.{bin,safetensors}``, keys
``base_model.model.model.layers.*.lora_{A,B}.weight``), the weights trained
in full beside it (``non_lora_trainables.bin``: the projector, keys
``base_model.model.model.mm_projector.*``), the multimodal ``config.json``
and the tokenizer. Merging folds each ``B @ A * alpha / r`` into its base
weight (peft's ``merge_and_unload``) and writes an official-layout folder
that every other conversion reads.

The base LLM is loaded whole: merging needs each adapted weight beside its
base, and peft merges in place.
"""
from pathlib import Path
from typing import Optional

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from mmllava.converters.shards import (DEFAULT_SHARD_SIZE, TOKENIZER_FILES,
                                       Log, ShardWriter, copy_files)
from mmllava.utils.files import require_local_folder
from mmllava.utils.safe_load import load_torch_file

#: How peft prefixes the keys of the model it wraps.
PEFT_PREFIX = 'base_model.model.'
NON_LORA_FILE = 'non_lora_trainables.bin'


def read_non_lora_trainables(lora_dir: str) -> dict[str, torch.Tensor]:
    """The fully trained weights of a LoRA run, in official key names."""
    path = Path(lora_dir, NON_LORA_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} not found: an official LLaVA LoRA folder holds the '
            f'projector there ({NON_LORA_FILE}).')
    state = load_torch_file(str(path))
    return {key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key:
            value for key, value in state.items()}


def merge_lora(lora_dir: str, base_llm_dir: str, out_dir: str,
               max_shard_size: str = DEFAULT_SHARD_SIZE,
               log: Optional[Log] = None) -> dict:
    """Merge a LoRA checkpoint into its base LLM; write the official layout.

    Args:
        lora_dir (str): The LoRA run's output folder.
        base_llm_dir (str): The LLM it was trained on (e.g. Vicuna-7B v1.5).
        out_dir (str): Where the merged folder goes (sharded safetensors,
            ``config.json`` and tokenizer from ``lora_dir``).
        max_shard_size (str): Largest output shard.
        log (Callable, optional): Gets progress lines.

    Returns:
        dict: The index of the written shards.
    """
    log = log or (lambda line: None)
    require_local_folder(lora_dir, 'LoRA checkpoint')
    require_local_folder(base_llm_dir, 'Base LLM')
    if not Path(lora_dir, 'adapter_config.json').is_file():
        raise FileNotFoundError(
            f'{lora_dir} has no adapter_config.json: not a LoRA checkpoint.')
    if not Path(lora_dir, 'config.json').is_file():
        raise FileNotFoundError(
            f'{lora_dir} has no config.json (the multimodal config of the '
            'LoRA run).')
    trainables = read_non_lora_trainables(lora_dir)
    log(f'Loading the base LLM from {base_llm_dir}')
    llm = AutoModelForCausalLM.from_pretrained(base_llm_dir)
    log(f'Merging the adapter of {lora_dir}')
    merged = PeftModel.from_pretrained(llm, lora_dir).merge_and_unload()
    writer = ShardWriter(out_dir, max_shard_size, log)
    state = merged.state_dict()
    # The fully trained weights (projector, resized embeddings) win over
    # the base's.
    for key, value in state.items():
        if key not in trainables:
            writer.add(key, value)
    for key, value in trainables.items():
        writer.add(key, value)
    index = writer.close()
    copy_files(lora_dir, out_dir, ('config.json', *TOKENIZER_FILES))
    log(f'Merged {len(index["weight_map"])} tensors into {out_dir}')
    return index
