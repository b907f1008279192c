"""``mmllava/converters/official.py``.

The fixture is an official LLaVA folder written by hand in the official key
names (``model.mm_projector.0.*``, ``model.vision_tower.vision_tower.
vision_model.*``) with the official config fields, as ``pytorch_model.bin``
shards. It must load into mmllava, and its logits must match its llava-hf
twin converted by our tools (official -> mmllava folders -> llava-hf).
"""
import json

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlavaConfig, \
    LlavaForConditionalGeneration

from mmllava.apis import get_model
from mmllava.converters.layouts import detect_layout
from mmllava.converters.llava_hf import convert_mmllava_to_hf
from mmllava.converters.official import (convert_official_to_mmllava,
                                         load_into_model, read_projector_bin,
                                         write_official, write_projector_bin)
from mmllava.converters.native import spec_from_model
from mmllava.models.llava import load_projector_state
from mmllava.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=32, patch_size=8)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=256, bos_token_id=1,
           eos_token_id=2)
NUM_PATCHES = 16


@pytest.fixture(scope='module')
def tower_dir(tmp_path_factory):
    """The tower folder ``mm_vision_tower`` names (a full save, with its
    image processor)."""
    from transformers import CLIPImageProcessorPil
    folder = tmp_path_factory.mktemp('tower')
    torch.manual_seed(3)
    CLIPVisionModel(CLIPVisionConfig(**VISION)).save_pretrained(folder)
    CLIPImageProcessorPil(size=dict(shortest_edge=32),
                          crop_size=dict(height=32, width=32)
                          ).save_pretrained(folder)
    return str(folder)


def model_cfg(tokenizer_folder, tower_dir, **extra):
    return dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', pretrained=tower_dir,
                            select_layer=-2, select_feature='patch'),
        llm=dict(type='HFCausalLM', config=LLM),
        tokenizer=dict(type='PretrainedTokenizer',
                       pretrained=tokenizer_folder),
        projector=dict(type='mlp2x_gelu'), **extra)


@pytest.fixture(scope='module')
def source(tokenizer_folder, tower_dir):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(tokenizer_folder, tower_dir)).eval()
    with torch.no_grad():
        for parameter in model.projector.parameters():
            parameter.normal_(0, 0.3)
    return model


def official_state(model, with_tower=True):
    """The model's weights in the official key names, written out."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith('llm.'):
            state[key[len('llm.'):]] = value
        elif key.startswith('projector.'):
            state['model.mm_projector.' + key[len('projector.'):]] = value
        elif with_tower:
            state['model.vision_tower.vision_tower.vision_model.'
                  + key[len('vision_encoder.model.'):]] = value
    return state


def write_fixture(model, folder, tower_dir, tokenizer_folder,
                  with_tower=True, **config):
    """An official folder: two .bin shards with an index, config.json with
    the official fields, the tokenizer."""
    import shutil
    folder.mkdir(parents=True, exist_ok=True)
    state = official_state(model, with_tower)
    keys = sorted(state)
    halves = [keys[:len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for number, part in enumerate(halves, 1):
        name = f'pytorch_model-0000{number}-of-00002.bin'
        torch.save({key: state[key].clone() for key in part}, folder / name)
        weight_map.update({key: name for key in part})
    (folder / 'pytorch_model.bin.index.json').write_text(json.dumps(
        dict(metadata={}, weight_map=weight_map)))
    llm = dict(LLM)
    llm.pop('model_type')
    (folder / 'config.json').write_text(json.dumps(dict(
        llm, architectures=['LlavaLlamaForCausalLM'], model_type='llava_llama',
        mm_projector_type='mlp2x_gelu', mm_vision_select_layer=-2,
        mm_vision_select_feature='patch', mm_hidden_size=32,
        mm_vision_tower=tower_dir, image_aspect_ratio='pad',
        mm_use_im_start_end=False, mm_use_im_patch_token=False,
        **config)))
    for name in ('tokenizer.model', 'tokenizer_config.json'):
        shutil.copyfile(f'{tokenizer_folder}/{name}', folder / name)
    return folder


def tensor_logits(model, seed=0):
    ids = torch.tensor([[1, 319, 13563, -200, 1724, 338, 445, 29973]])
    pixels = torch.randn(1, 3, 32, 32,
                         generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return ids, pixels, model(input_ids=ids,
                                  attention_mask=torch.ones_like(ids),
                                  pixel_values=pixels, num_images=[1],
                                  mode='tensor')


def assert_same_weights(model, other):
    state = other.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize('with_tower', [True, False])
def test_official_folder_loads(source, tokenizer_folder, tower_dir, tmp_path,
                               with_tower):
    folder = write_fixture(source, tmp_path / 'official', tower_dir,
                           tokenizer_folder, with_tower)
    assert detect_layout(folder) == 'official'
    torch.manual_seed(9)
    fresh = MODELS.build(model_cfg(tokenizer_folder, tower_dir)).eval()
    load_into_model(fresh, str(folder))
    assert_same_weights(source, fresh)


@pytest.mark.slow
def test_official_logits_match_llava_hf_twin(source, tokenizer_folder,
                                             tower_dir, tmp_path):
    folder = write_fixture(source, tmp_path / 'official', tower_dir,
                           tokenizer_folder, with_tower=False)
    # Our tools: official -> mmllava folders (+ config) -> llava-hf.
    config = convert_official_to_mmllava(str(folder), str(tmp_path / 'mm'))
    hf_dir = convert_mmllava_to_hf(config, None, str(tmp_path / 'hf'))
    hf_config = LlavaConfig.from_pretrained(hf_dir)
    assert hf_config.vision_feature_layer == -2
    reference = LlavaForConditionalGeneration.from_pretrained(hf_dir).eval()
    # The official folder, loaded by get_model into the config's model.
    loaded = get_model(config, pretrained=folder, device='cpu')
    ids, pixels, logits = tensor_logits(loaded)
    expanded = [[32000] * NUM_PATCHES if i == -200 else [i]
                for i in ids[0].tolist()]
    hf_ids = torch.tensor([[i for part in expanded for i in part]])
    with torch.no_grad():
        expected = reference(input_ids=hf_ids, pixel_values=pixels).logits
    assert (logits[0] - expected[0, :, :32000]).abs().max() <= 1e-5
    # And the official weights are the source's, bit for bit.
    _, _, source_logits = tensor_logits(source)
    assert torch.equal(logits, source_logits)


def test_mmllava_to_official_round_trip(source, tokenizer_folder, tower_dir,
                                        tmp_path):
    spec = spec_from_model(source, tokenizer_folder)
    assert spec.vision_tower_dir is None
    out = write_official(spec, [source.state_dict()], str(tmp_path / 'off'),
                         vision_tower=tower_dir, max_shard_size='2MB')
    config = json.loads((tmp_path / 'off' / 'config.json').read_text())
    assert config['architectures'] == ['LlavaLlamaForCausalLM']
    assert config['mm_projector_type'] == 'mlp2x_gelu'
    assert config['mm_vision_select_layer'] == -2
    assert config['mm_vision_select_feature'] == 'patch'
    assert config['mm_hidden_size'] == 32
    assert config['mm_vision_tower'] == tower_dir
    assert config['mm_use_im_start_end'] is False
    torch.manual_seed(4)
    fresh = MODELS.build(model_cfg(tokenizer_folder, tower_dir)).eval()
    load_into_model(fresh, out)
    assert_same_weights(source, fresh)


def test_stage1_projector_bin_round_trip(source, tmp_path):
    path = str(tmp_path / 'mm_projector.bin')
    written = write_projector_bin([source.state_dict()], path)
    assert sorted(written) == ['model.mm_projector.0.bias',
                               'model.mm_projector.0.weight',
                               'model.mm_projector.2.bias',
                               'model.mm_projector.2.weight']
    back = read_projector_bin(path)
    stage2 = load_projector_state(path)
    for key, value in source.projector.state_dict().items():
        assert torch.equal(back['projector.' + key], value)
        assert torch.equal(stage2[key], value)


def test_unsupported_official_folders_fail_clearly(source, tokenizer_folder,
                                                   tower_dir, tmp_path):
    folder = write_fixture(source, tmp_path / 'a', tower_dir,
                           tokenizer_folder)
    config = json.loads((folder / 'config.json').read_text())
    config['mm_use_im_start_end'] = True
    (folder / 'config.json').write_text(json.dumps(config))
    fresh = MODELS.build(model_cfg(tokenizer_folder, tower_dir))
    with pytest.raises(ValueError, match='mm_use_im_start_end'):
        load_into_model(fresh, str(folder))
    config.update(mm_use_im_start_end=False,
                  mm_vision_tower='openai/clip-vit-large-patch14-336')
    (folder / 'config.json').write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match='--vision-tower'):
        convert_official_to_mmllava(str(folder), str(tmp_path / 'out'))
