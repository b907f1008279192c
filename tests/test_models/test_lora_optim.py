"""Per-part learning rates and weight decay: mmengine's optimizer
constructor, configured by name (``paramwise_cfg.custom_keys``), on a LLaVA
with LoRA adapters and a partly trainable (ShareGPT4V-style) vision tower;
and the LoRA recipe's projector rate.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmllava.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4,
              num_attention_heads=4, image_size=32, patch_size=8)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=256)
LR, WEIGHT_DECAY = 1e-3, 0.1

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def model(tokenizer):
    """LoRA on the LLM and the tower; tower layers 2 and 3 of 4 train in
    full, as ShareGPT4V trains the latter half."""
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-1, trainable_from_layer=2),
        llm=dict(type='HFCausalLM', config=LLM),
        tokenizer=tokenizer,
        lora=dict(r=4, alpha=8, vision_encoder=dict(r=2, alpha=4))))


def groups_by_parameter(optim_wrapper):
    """Each trainable parameter's ``(lr, weight_decay)``, by identity."""
    found = {}
    for group in optim_wrapper.optimizer.param_groups:
        for parameter in group['params']:
            if parameter.requires_grad:
                found[id(parameter)] = (group['lr'], group['weight_decay'])
    return found


def build(model, optim_wrapper):
    with DefaultScope.overwrite_default_scope('mmllava'):
        return build_optim_wrapper(model, optim_wrapper)


def test_per_part_lr_and_weight_decay(model):
    optim_wrapper = build(model, dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WEIGHT_DECAY),
        paramwise_cfg=dict(custom_keys={
            'projector': dict(lr_mult=0.1),
            'vision_encoder': dict(lr_mult=0.5, decay_mult=0.0),
            'llm': dict(decay_mult=0.0),
            # The longest matching key wins: a tower adapter follows
            # 'vision_encoder', an LLM adapter 'lora_'.
            'lora_': dict(lr_mult=2.0)})))
    settings = groups_by_parameter(optim_wrapper)
    expected = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith('projector.'):
            expected[name] = (0.1 * LR, WEIGHT_DECAY)
        elif name.startswith('vision_encoder.'):
            expected[name] = (0.5 * LR, 0.0)
        elif '.lora_' in name:
            expected[name] = (2.0 * LR, WEIGHT_DECAY)
        else:
            expected[name] = (LR, 0.0)
    named = dict(model.named_parameters())
    for name, (lr, weight_decay) in expected.items():
        assert settings[id(named[name])] == (pytest.approx(lr),
                                             weight_decay), name
    # Every part is represented, and only adapters train in the LLM.
    trainable = set(expected)
    tower = {n for n in trainable if n.startswith('vision_encoder.')}
    assert any('.lora_' in n for n in tower)
    assert any('layers.3.mlp.fc1.base_layer.weight' in n for n in tower)
    assert all('.lora_' in n for n in trainable if n.startswith('llm.'))
    assert any(n.startswith('llm.') for n in trainable)


def test_lora_recipe_gives_the_projector_a_tenth_of_the_rate(model):
    recipe = Config.fromfile(str(REPO / 'configs/llava/llava-1.5-7b_lora.py'))
    assert recipe.model.lora == dict(r=128, alpha=256, dropout=0.05,
                                     target='all-linear')
    optim_wrapper = build(model, recipe.optim_wrapper)
    settings = groups_by_parameter(optim_wrapper)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            lr = 2e-5 if name.startswith('projector.') else 2e-4
            assert settings[id(parameter)] == (pytest.approx(lr), 0.0), name
