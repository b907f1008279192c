"""Merge the LoRA adapters of an mmllava LoRA run into plain weights.

A run whose config sets ``model.lora`` saves checkpoints with the adapted
layers under peft's keys (``...q_proj.base_layer.weight``,
``...q_proj.lora_A.default.weight``, ...; see :mod:`mmllava.models.lora`).
Merging builds that model, loads the checkpoint, folds each
``B @ A * alpha / r`` into its base weight and writes

- ``model.pth``: an mmllava checkpoint with the keys of the model built
  without LoRA (``state_dict`` and ``meta``), and
- ``config.py``: the run's config with ``model.lora`` removed,

which ``get_model(OUT/config.py, pretrained=OUT/model.pth)``,
``tools/test.py`` and the converters (``mmllava_to_hf.py``,
``mmllava_to_official.py``) take as they take any mmllava result.
"""
from pathlib import Path
from typing import Optional, Union

import torch
from mmengine.config import Config

from mmllava.converters.layouts import load_pretrained
from mmllava.converters.shards import Log
from mmllava.model_index import load_config
from mmllava.models.lora import merge_lora_weights
from mmllava.registry import MODELS

MERGED_CHECKPOINT = 'model.pth'
MERGED_CONFIG = 'config.py'


def merge_lora_checkpoint(config: Union[str, Config], checkpoint: str,
                          out_dir: str,
                          log: Optional[Log] = None) -> tuple[str, str]:
    """Merge a LoRA run's checkpoint; write a plain checkpoint and config.

    Args:
        config (str | Config): The run's config (file, model name or
            Config), with ``model.lora``.
        checkpoint (str): Its checkpoint, or its work dir (the latest
            checkpoint).
        out_dir (str): Where ``model.pth`` and ``config.py`` go.
        log (Callable, optional): Gets progress lines.

    Returns:
        tuple[str, str]: The written checkpoint and config.
    """
    log = log or (lambda line: None)
    cfg = load_config(config)
    if not cfg.get('model', {}).get('lora'):
        raise ValueError(f'The config {cfg.filename} sets no model.lora: '
                         'its checkpoints hold no adapters to merge.')
    log(f'Building the LoRA model and loading {checkpoint}')
    # The checkpoint holds the projector: no stage-1 file is read.
    model_cfg = cfg.model.copy()
    model_cfg.pop('projector_pretrained', None)
    model = MODELS.build(model_cfg)
    load_pretrained(model, checkpoint)
    count = merge_lora_weights(model)
    log(f'Merged the adapters of {count} layers')
    cfg.model.pop('lora')
    # The merged checkpoint holds the projector: nothing to read at build.
    cfg.model.pop('projector_pretrained', None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path, config_path = out / MERGED_CHECKPOINT, out / MERGED_CONFIG
    state = {key: value.detach().cpu()
             for key, value in model.state_dict().items()}
    torch.save(dict(meta=dict(merged_lora_from=str(checkpoint)),
                    state_dict=state), checkpoint_path)
    cfg.dump(str(config_path))
    log(f'Wrote {checkpoint_path} and {config_path}')
    return str(checkpoint_path), str(config_path)
