"""LoRA adapters (peft) on the LLM and, optionally, the vision tower; and
folding them back into plain weights.

The adapters are injected into the transformers modules in place
(``peft.inject_adapter_in_model``), with no ``PeftModel`` wrapper: the LLM
stays a ``*ForCausalLM`` (``get_decoder``, ``get_output_embeddings`` and
``generate`` reach the same modules), and only the adapted linear layers
change their state-dict keys: ``...q_proj.weight`` becomes
``...q_proj.base_layer.weight`` beside ``...q_proj.lora_A.default.weight`` and
``...q_proj.lora_B.default.weight``. mmengine checkpoints hold all of them,
so a LoRA run resumes like any other; :func:`merge_lora_weights` turns the
model back into the plain layout.
"""
from typing import Union

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

#: The official LLaVA-1.5 LoRA recipe (scripts/v1_5/finetune_lora.sh and
#: llava/train/train.py): rank 128, alpha 256, dropout 0.05, no bias
#: training, every linear layer of the LLM but its output head.
LLM_LORA_DEFAULTS = dict(r=128, alpha=256, dropout=0.05, target='all-linear')
#: Keys of a vision-tower adapter: the same meaning, no official values.
VISION_LORA_DEFAULTS = dict(r=16, alpha=32, dropout=0.05,
                            target='all-linear')
LORA_KEYS = (*LLM_LORA_DEFAULTS, 'vision_encoder')
#: peft's name of the (only) adapter.
ADAPTER = 'default'


def check_keys(cfg: dict, allowed, where: str) -> None:
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise KeyError(f'Unknown key(s) {unknown} in {where}; known keys: '
                       f'{list(allowed)}.')


def linear_names(module: nn.Module,
                 exclude: tuple[nn.Module, ...] = ()) -> list[str]:
    """Full names of the ``nn.Linear`` layers under ``module``."""
    return [name for name, child in module.named_modules()
            if isinstance(child, nn.Linear)
            and not any(child is other for other in exclude)]


def llm_targets(llm: nn.Module, target: Union[str, list]) -> list[str]:
    """The LLM's layers to adapt: ``'all-linear'`` is every linear layer
    but the output head (the official ``find_all_linear_names``), or a list
    of module names (peft matches a name or any name ending in
    ``'.' + name``)."""
    if target != 'all-linear':
        return list(target)
    head = llm.get_output_embeddings()
    names = linear_names(llm, exclude=(head, ) if head is not None else ())
    if not names:
        raise ValueError(f'{type(llm).__name__} has no linear layers to '
                         "adapt (target='all-linear').")
    return names


def tower_targets(vision_encoder: nn.Module,
                  target: Union[str, list]) -> list[str]:
    """The tower's layers to adapt, named in ``vision_encoder.model``:
    ``'all-linear'`` is every linear layer of the encoder layers that feed
    the selected features (later layers never reach the output, so their
    adapters would get no gradient)."""
    if target != 'all-linear':
        return list(target)
    used = vision_encoder.layers[:vision_encoder.num_used_layers]
    used_ids = {id(child) for layer in used for child in layer.modules()}
    return [name for name, child in vision_encoder.model.named_modules()
            if isinstance(child, nn.Linear) and id(child) in used_ids]


def inject_lora(module: nn.Module, cfg: dict, targets: list[str]) -> None:
    """Add one adapter to each target layer of ``module``, in place.

    peft freezes every other parameter of ``module``; the caller decides
    what else trains.
    """
    config = LoraConfig(r=cfg['r'], lora_alpha=cfg['alpha'],
                        lora_dropout=cfg['dropout'], target_modules=targets,
                        bias='none')
    inject_adapter_in_model(config, module, adapter_name=ADAPTER)


def apply_lora(model: nn.Module, lora: dict) -> None:
    """Give a built LLaVA's LLM (and optionally its vision tower) LoRA
    adapters.

    The LLM's own weights freeze and its adapters train. A vision-tower
    adapter trains beside whatever the tower's freeze policy left trainable
    (``trainable_from_layer``). The projector is not touched: it trains as
    before.

    Args:
        model (LLaVA): With ``llm`` and ``vision_encoder`` built and frozen
            as configured.
        lora (dict): ``r``, ``alpha``, ``dropout`` and ``target``
            (``'all-linear'`` or module names) of the LLM's adapters,
            defaults :data:`LLM_LORA_DEFAULTS`; ``vision_encoder`` (dict,
            optional): the same keys for the tower's adapters, defaults
            :data:`VISION_LORA_DEFAULTS`.
    """
    check_keys(lora, LORA_KEYS, 'model.lora')
    llm_cfg = {**LLM_LORA_DEFAULTS, **lora}
    vision_cfg = llm_cfg.pop('vision_encoder', None)
    inject_lora(model.llm, llm_cfg, llm_targets(model.llm, llm_cfg['target']))
    if vision_cfg is None:
        return
    check_keys(vision_cfg, VISION_LORA_DEFAULTS, 'model.lora.vision_encoder')
    vision_cfg = {**VISION_LORA_DEFAULTS, **vision_cfg}
    tower = model.vision_encoder
    # peft would freeze the layers the freeze policy left trainable.
    trainable = {id(p): p.requires_grad for p in tower.parameters()}
    inject_lora(tower.model, vision_cfg,
                tower_targets(tower, vision_cfg['target']))
    for parameter in tower.parameters():
        if id(parameter) in trainable:
            parameter.requires_grad_(trainable[id(parameter)])


def merge_lora_weights(module: nn.Module) -> int:
    """Fold every LoRA adapter under ``module`` into its base layer
    (``W + B @ A * alpha / r``) and put the plain layer back in its place,
    so the state dict has the keys of a model built without LoRA.

    Returns:
        int: How many layers were merged.
    """
    adapted = [(name, child) for name, child in module.named_modules()
               if isinstance(child, LoraLayer)]
    for name, layer in adapted:
        layer.merge(safe_merge=True)
        parent_name, _, child_name = name.rpartition('.')
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child_name, layer.get_base_layer())
    # The peft config injected beside the adapters (the model no longer has
    # them).
    for child in module.modules():
        if hasattr(child, 'peft_config'):
            del child.peft_config
    return len(adapted)

