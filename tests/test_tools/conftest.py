"""Fixtures shared by the tools' tests."""
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint

from mmllava.registry import MODELS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='session')
def demo_vqa_checkpoint(demo_workspace) -> str:
    """A random demo model saved as an mmllava checkpoint, whose answers
    differ from question to question and depend on the image."""
    cwd = os.getcwd()
    os.chdir(demo_workspace)
    try:
        cfg = Config.fromfile(
            str(REPO / 'configs/llava/llava-tiny_demo_vqa.py'))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    finally:
        os.chdir(cwd)
    with torch.no_grad():
        # Large logits give greedy decoding clear winners rather than
        # rounding noise; large image rows and sharp attention (queries and
        # keys scaled) make answers depend on the question and the image:
        # with the demo's 9 image rows a random model's diffuse attention
        # gave every question the same answer. (The head is tied to the
        # input embedding, so it is left alone.)
        model.llm.get_decoder().norm.weight.mul_(50)
        model.projector[2].weight.mul_(40)
        for layer in model.llm.get_decoder().layers:
            layer.self_attn.q_proj.weight.mul_(10)
            layer.self_attn.k_proj.weight.mul_(10)
    path = demo_workspace / 'random_demo_model.pth'
    save_checkpoint(model.state_dict(), str(path))
    return str(path)
