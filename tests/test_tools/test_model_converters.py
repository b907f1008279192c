"""``tools/model_converters/``: the scripts end to end on the apis'
workspace model (``model_workspace`` in tests/conftest.py): progress lines,
outputs the other side loads, and one-line errors naming the file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration

from mmllava.converters.shards import SAFE_INDEX, iter_shards
from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools/model_converters'
NAME = 'llava-tiny_demo_vqa'


def tool(name: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOLS / f'{name}.py'), *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=scaled_timeout(300),
        env=dict(os.environ, OMP_NUM_THREADS='1'))


def checkpoint_state(workspace):
    return torch.load(workspace / 'ft.pth', weights_only=True)['state_dict']


@pytest.mark.slow
def test_export_to_hf_then_import_back(model_workspace, tmp_path):
    hf_dir, mm_dir = tmp_path / 'hf', tmp_path / 'mm'
    result = tool('mmllava_to_hf', NAME, 'ft.pth', hf_dir,
                  '--max-shard-size', '1MB', cwd=model_workspace)
    assert result.returncode == 0, result.stderr
    assert 'wrote' in result.stdout and 'shard' in result.stdout
    index = json.loads((hf_dir / SAFE_INDEX).read_text())
    assert len(set(index['weight_map'].values())) > 1
    LlavaForConditionalGeneration.from_pretrained(hf_dir)

    result = tool('hf_to_mmllava', hf_dir, mm_dir)
    assert result.returncode == 0, result.stderr
    assert (mm_dir / 'llava_config.py').is_file()
    saved = checkpoint_state(model_workspace)
    llm = {key: value for _, tensors in iter_shards(str(mm_dir / 'llm'))
           for key, value in tensors.items()}
    for key, value in llm.items():
        original = saved['llm.' + key]
        assert torch.equal(value[:len(original)], original), key


@pytest.mark.slow
def test_official_round_trip_and_projector_bin(model_workspace, tmp_path):
    official, mm_dir = tmp_path / 'official', tmp_path / 'mm'
    result = tool('mmllava_to_official', NAME, 'ft.pth', official,
                  '--no-vision-tower', cwd=model_workspace)
    assert result.returncode == 0, result.stderr
    config = json.loads((official / 'config.json').read_text())
    assert config['mm_vision_tower'] == 'checkpoints/demo/vision_encoder'
    # The tower path is relative to the workspace, so convert from there.
    result = tool('official_to_mmllava', official, mm_dir,
                  cwd=model_workspace)
    assert result.returncode == 0, result.stderr
    saved = checkpoint_state(model_workspace)
    from safetensors.torch import load_file
    projector = load_file(str(mm_dir / 'projector.safetensors'))
    for key, value in projector.items():
        assert torch.equal(value, saved[key])

    result = tool('mmllava_to_official', NAME, 'ft.pth',
                  tmp_path / 'stage1' / 'mm_projector.bin', '--projector-only',
                  cwd=model_workspace)
    assert result.returncode == 0, result.stderr
    result = tool('official_to_mmllava', tmp_path / 'stage1/mm_projector.bin',
                  tmp_path / 'projector.safetensors')
    assert result.returncode == 0, result.stderr
    assert load_file(str(tmp_path / 'projector.safetensors')).keys() == \
        projector.keys()


@pytest.mark.slow
def test_delta_tools_round_trip(tmp_path):
    generator = torch.Generator().manual_seed(0)
    base = {'model.embed_tokens.weight': torch.randn(6, 4,
                                                     generator=generator),
            'model.norm.weight': torch.randn(4, generator=generator)}
    target = {'model.embed_tokens.weight': torch.randn(8, 4,
                                                       generator=generator),
              'model.norm.weight': torch.randn(4, generator=generator),
              'model.mm_projector.weight': torch.randn(4, 3,
                                                       generator=generator)}
    for name, tensors in (('base', base), ('target', target)):
        (tmp_path / name).mkdir()
        save_file(tensors, str(tmp_path / name / 'model.safetensors'))
    (tmp_path / 'target' / 'config.json').write_text('{}')
    result = tool('make_delta', tmp_path / 'base', tmp_path / 'target',
                  tmp_path / 'delta', '--exact')
    assert result.returncode == 0, result.stderr
    result = tool('apply_delta', tmp_path / 'base', tmp_path / 'delta',
                  tmp_path / 'merged')
    assert result.returncode == 0, result.stderr
    assert 'apply delta' in result.stdout
    assert (tmp_path / 'merged' / 'config.json').is_file()
    merged = {key: value for _, tensors in iter_shards(
        str(tmp_path / 'merged')) for key, value in tensors.items()}
    assert merged.keys() == target.keys()
    assert all(torch.equal(merged[key], target[key]) for key in target)


@pytest.mark.slow
def test_errors_name_the_file(tmp_path):
    result = tool('apply_delta', tmp_path / 'nowhere', tmp_path / 'delta',
                  tmp_path / 'out')
    assert result.returncode == 1
    assert result.stderr.startswith('error: No weights in')
    assert 'nowhere' in result.stderr and 'Traceback' not in result.stderr
    (tmp_path / 'hf').mkdir()
    (tmp_path / 'hf' / 'config.json').write_text('{"model_type": "bert"}')
    result = tool('hf_to_mmllava', tmp_path / 'hf', tmp_path / 'mm')
    assert result.returncode == 1
    assert 'is not a llava-hf folder' in result.stderr
