"""Linear probes of tower features per question kind (the demo's
diagnosis)."""
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmllava.testing.demo.assets import save_random_vision_encoder
from mmllava.testing.demo.feature_probe import (IGNORE, demo_scenes,
                                                fit_probes, one_hot_targets,
                                                probe_heads, scene_targets)
from mmllava.testing.demo.scenes import Scene, SceneObject
from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]


def scene(*objects) -> Scene:
    return Scene('train_00000', 'train', 'images/train_00000.png', 48,
                 tuple(objects))


def targets_by_name(scene_: Scene) -> dict:
    heads = probe_heads()
    return {head.name: (None if target == IGNORE else head.classes[target])
            for head, target in zip(heads, scene_targets(scene_, heads))}


def test_targets_follow_the_objects():
    red = SceneObject('circle', 'red', 'large', (1, 1, 14, 14), 0, 0)
    blue = SceneObject('square', 'blue', 'small', (35, 35, 44, 44), 2, 2)
    targets = targets_by_name(scene(red, blue))
    assert targets['colour@cell0'] == 'red'
    assert targets['shape@cell8'] == 'square'
    assert targets['size@cell8'] == 'small'
    assert targets['colour@cell4'] == 'none'
    assert targets['cell_of_blue'] == 'cell8'
    assert targets['cell_of_green'] is None  # not asked of this scene
    assert targets['count'] == '2'
    assert targets['count_circle'] == '1'
    assert targets['count_triangle'] == '0'
    assert targets['exists_red_circle'] == 'yes'
    assert targets['exists_red_square'] == 'no'
    assert targets['row_red_blue'] == 'before'  # red is above blue
    assert targets['column_blue_red'] == 'after'  # blue is right of red
    assert targets['row_red_green'] is None


def test_probes_read_what_the_features_hold_and_nothing_else():
    heads = probe_heads()
    scenes = demo_scenes('train', 400, 48) + demo_scenes('eval', 100, 48)
    targets = torch.tensor([scene_targets(s, heads) for s in scenes])
    # Features that are the answers themselves, and features of noise.
    exact = one_hot_targets(targets, heads)
    noise = torch.randn(exact.shape, generator=torch.Generator().manual_seed(0))
    read = fit_probes(exact[:400], targets[:400], exact[400:], targets[400:],
                      heads)
    blind = fit_probes(noise[:400], targets[:400], noise[400:],
                       targets[400:], heads)
    assert set(read) == {'colour', 'shape', 'size', 'position', 'count',
                         'count_shape', 'exists', 'relation'}
    assert min(read.values()) > 95, read
    # Noise: the colour of a cell is one of six, at best the commonest.
    assert blind['colour'] < 40, blind


@pytest.mark.slow
def test_the_tool_probes_a_tower(tmp_path):
    tower = tmp_path / 'tower'
    save_random_vision_encoder(
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, image_size=48, patch_size=16),
        dict(size=dict(shortest_edge=48),
             crop_size=dict(height=48, width=48)), str(tower))
    result = subprocess.run(
        [sys.executable, 'tools/analysis/probe_vision_features.py',
         '--vision-encoder', str(tower), '--num-train', '200',
         '--num-eval', '50'], cwd=REPO, capture_output=True, text=True,
        timeout=scaled_timeout(600))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.startswith('kind'))
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]]
            for line in lines[header + 1:]}
    assert set(rows) >= {'colour', 'count', 'relation'}
    assert all(0 <= value <= 100 for row in rows.values() for value in row)
