"""``mmllava/converters/mmllava_lora.py`` and
``tools/model_converters/merge_mmllava_lora.py``: a checkpoint of the small
demo model with LoRA on its LLM and tower is loaded by ``get_model``, merged
into plain weights, and the merged result loads (with LoRA off) and exports
to llava-hf with the LoRA model's logits."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmllava.apis import get_model
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.converters.llava_hf import convert_mmllava_to_hf
from mmllava.converters.mmllava_lora import merge_lora_checkpoint
from mmllava.testing.timeouts import scaled_timeout

pytestmark = pytest.mark.usefixtures('one_thread')

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/model_converters/merge_mmllava_lora.py'
LORA = dict(r=4, alpha=8, vision_encoder=dict(r=2, alpha=4))


def lora_config() -> Config:
    cfg = Config.fromfile(str(REPO / 'configs/llava/llava-tiny_demo_vqa.py'))
    cfg.merge_from_dict(dict(model=dict(lora=LORA)))
    return cfg


def logits(model) -> torch.Tensor:
    """Two prompts, one with a photo-sized random image, through the
    model's own data preprocessor."""
    size = model.vision_encoder.model.config.image_size
    pixels = torch.randn(1, 3, size, size,
                         generator=torch.Generator().manual_seed(0))
    batch = model.data_preprocessor(dict(inputs=dict(
        input_ids=[torch.tensor([1, IMAGE_TOKEN_INDEX, 3148, 1001, 29901]),
                   torch.tensor([1, 1724, 338, 445, 29973, 22557])],
        pixel_values=[pixels, torch.empty(0)])))
    with torch.no_grad():
        return model(**batch, mode='tensor')


def assert_logits_close(actual, expected):
    """Within 1e-5 of the logits' scale: the fixture's wide LM head gives
    logits up to ~40, where fp32 rounding of ``W + BA`` against ``Wx +
    B(Ax)`` alone reaches a few 1e-5."""
    scale = expected.abs().max()
    assert (actual - expected).abs().max() <= 1e-5 * scale


@pytest.fixture(scope='module')
def lora_run(model_workspace):
    """A LoRA model with trained-looking adapters and projector, saved as a
    runner checkpoint (``lora.pth``) with its config (``lora_cfg.py``);
    and its logits."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(model_workspace)
        model = get_model(lora_config(), device='cpu')
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if 'lora_B' in name or name.startswith('projector.'):
                parameter.copy_(torch.randn(parameter.shape,
                                            generator=generator) * 0.2)
    torch.save(dict(meta=dict(iter=1), state_dict=model.state_dict()),
               model_workspace / 'lora.pth')
    lora_config().dump(str(model_workspace / 'lora_cfg.py'))
    return model, logits(model)


def test_get_model_loads_a_lora_checkpoint_with_its_config(
        model_workspace, lora_run, monkeypatch):
    _, expected = lora_run
    monkeypatch.chdir(model_workspace)
    model = get_model('lora_cfg.py', pretrained='lora.pth', device='cpu')
    assert any('.lora_A.' in name for name, _ in model.named_parameters())
    torch.testing.assert_close(logits(model), expected, atol=0, rtol=0)


@pytest.mark.slow
def test_merge_tool_writes_a_plain_checkpoint_with_the_same_logits(
        model_workspace, lora_run, tmp_path, monkeypatch):
    _, expected = lora_run
    out = tmp_path / 'merged'
    result = subprocess.run(
        [sys.executable, str(TOOL), 'lora_cfg.py', 'lora.pth', str(out)],
        cwd=model_workspace, capture_output=True, text=True,
        timeout=scaled_timeout(300),
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    assert 'Merged the adapters of 20 layers' in result.stdout  # 16 + 4
    state = torch.load(out / 'model.pth', weights_only=True)['state_dict']
    assert not [key for key in state if 'lora_' in key or 'base_layer' in key]
    merged_cfg = Config.fromfile(str(out / 'config.py'))
    assert 'lora' not in merged_cfg.model

    monkeypatch.chdir(model_workspace)
    merged = get_model(str(out / 'config.py'),
                       pretrained=str(out / 'model.pth'), device='cpu')
    assert not any('lora' in name for name, _ in merged.named_parameters())
    assert state.keys() == merged.state_dict().keys()
    assert_logits_close(logits(merged), expected)

    # The merged result exports like any mmllava checkpoint.
    hf_dir = tmp_path / 'hf'
    convert_mmllava_to_hf(str(out / 'config.py'), str(out / 'model.pth'),
                          str(hf_dir))
    exported = get_model(str(out / 'config.py'), pretrained=str(hf_dir),
                         device='cpu')
    assert_logits_close(logits(exported), expected)


def test_converters_refuse_an_unmerged_lora_checkpoint(
        model_workspace, lora_run, tmp_path, monkeypatch):
    monkeypatch.chdir(model_workspace)
    with pytest.raises(KeyError, match='merge_mmllava_lora.py'):
        convert_mmllava_to_hf('lora_cfg.py', 'lora.pth', str(tmp_path / 'hf'))


def test_merge_needs_a_lora_config(model_workspace, lora_run, tmp_path,
                                   monkeypatch):
    monkeypatch.chdir(model_workspace)
    with pytest.raises(ValueError, match='no model.lora'):
        merge_lora_checkpoint('llava-tiny_demo_vqa', 'ft.pth',
                              str(tmp_path / 'out'))
