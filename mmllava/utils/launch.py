"""Runner settings that depend on the machine the run starts on."""
import torch
from mmengine.config import Config


def adapt_to_machine(cfg: Config) -> Config:
    """Let a distributed run start on a machine without CUDA.

    The configs name NCCL and CUDA device ids, right for GPU clusters; on a
    CPU-only machine processes talk through gloo and DDP takes no device
    ids. GPU runs are left as configured.
    """
    if cfg.get('launcher', 'none') != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        cfg.env_cfg.dist_cfg.backend = 'gloo'
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                     device_ids=None)
    return cfg
