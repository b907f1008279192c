"""``mmllava/converters/lora.py``: an official LLaVA LoRA folder, made by
peft in the test, merged into its base LLM. The judge is peft's own forward
with the adapter unmerged."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig

from mmllava.converters.lora import merge_lora
from mmllava.converters.official import is_official
from mmllava.converters.shards import SAFE_INDEX
from mmllava.testing.timeouts import scaled_timeout

pytestmark = pytest.mark.usefixtures('one_thread')

REPO = Path(__file__).resolve().parents[2]
LLM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=2, vocab_size=32000,
           max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
#: The official recipe adapts every linear layer of the LLM.
TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
           'down_proj']


@pytest.fixture(scope='module')
def lora_run(tmp_path_factory, tokenizer_folder):
    """A base LLM folder and an official-style LoRA output folder."""
    root = tmp_path_factory.mktemp('lora')
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(**LLM)).save_pretrained(
        root / 'base')
    llm = AutoModelForCausalLM.from_pretrained(root / 'base')
    peft_model = get_peft_model(llm, LoraConfig(
        r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if 'lora_B' in name:  # peft starts B at zero: a no-op adapter
                parameter.normal_(0, 0.05)
    peft_model.save_pretrained(root / 'lora')
    projector = {'model.mm_projector.0.weight': torch.randn(64, 32),
                 'model.mm_projector.0.bias': torch.randn(64),
                 'model.mm_projector.2.weight': torch.randn(64, 64),
                 'model.mm_projector.2.bias': torch.randn(64)}
    torch.save({'base_model.model.' + key: value
                for key, value in projector.items()},
               root / 'lora/non_lora_trainables.bin')
    config = dict(LLM, architectures=['LlavaLlamaForCausalLM'],
                  model_type='llava_llama', mm_projector_type='mlp2x_gelu',
                  mm_vision_tower='openai/clip-vit-large-patch14-336',
                  mm_hidden_size=32, mm_vision_select_layer=-2,
                  mm_vision_select_feature='patch', image_aspect_ratio='pad',
                  mm_use_im_start_end=False, mm_use_im_patch_token=False)
    (root / 'lora/config.json').write_text(json.dumps(config))
    for name in ('tokenizer.model', 'tokenizer_config.json'):
        (root / 'lora' / name).write_bytes(
            Path(tokenizer_folder, name).read_bytes())
    return root, projector


def merged_state(folder: Path) -> dict:
    index = json.loads((folder / SAFE_INDEX).read_text())
    state = {}
    for shard in sorted(set(index['weight_map'].values())):
        state.update(load_file(folder / shard))
    assert sorted(state) == sorted(index['weight_map'])
    return state


def test_merged_llm_gives_the_adapters_logits(lora_run, tmp_path):
    root, projector = lora_run
    merge_lora(str(root / 'lora'), str(root / 'base'), str(tmp_path / 'out'),
               max_shard_size='200KB')
    state = merged_state(tmp_path / 'out')
    assert len(set(json.loads((tmp_path / 'out' / SAFE_INDEX).read_text())
                   ['weight_map'].values())) > 1
    merged = AutoModelForCausalLM.from_config(LlamaConfig(**LLM))
    merged.load_state_dict({key: value for key, value in state.items()
                            if 'mm_projector' not in key})
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(root / 'base'), root / 'lora')
    base = AutoModelForCausalLM.from_pretrained(root / 'base')
    ids = torch.randint(3, 32000, (2, 12), generator=torch.Generator()
                        .manual_seed(1))
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        assert (expected - base(input_ids=ids).logits).abs().max() > 1e-3
        torch.testing.assert_close(merged.eval()(input_ids=ids).logits,
                                   expected, rtol=0, atol=1e-5)
    for key, value in projector.items():
        assert torch.equal(state[key], value), key
    assert not any('lora_' in key for key in state)
    assert is_official(str(tmp_path / 'out'))
    assert (tmp_path / 'out/tokenizer.model').is_file()


@pytest.mark.slow
def test_cli_merges_and_names_missing_files(lora_run, tmp_path):
    root, _ = lora_run
    tool = REPO / 'tools/model_converters/merge_lora.py'
    done = subprocess.run(
        [sys.executable, str(tool), str(root / 'lora'), str(root / 'base'),
         str(tmp_path / 'out')], capture_output=True, text=True,
         timeout=scaled_timeout(300))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / 'out' / SAFE_INDEX).is_file()
    failed = subprocess.run(
        [sys.executable, str(tool), str(root / 'base'), str(root / 'base'),
         str(tmp_path / 'out2')], capture_output=True, text=True,
         timeout=scaled_timeout(300))
    assert failed.returncode != 0
    assert 'adapter_config.json' in failed.stdout + failed.stderr
