"""``mmllava/converters/mmpretrain.py``: mmpretrain's LLaVA files.

The fixtures are written in the test in mmpretrain's key layout: the LLM
file as its ``llava-delta2mmpre.py`` writes it (official keys under
``model.lang_encoder.``, the embedding grown by one ``<im_patch>`` row) and
the tower in its ``VisionTransformer`` naming (``backbone.*``). The tower
map is checked against a forward pass written from mmpretrain's ViT
structure; the page's flow runs end to end and its logits are compared with
the same weights loaded from the official layout.
"""
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel

from mmllava.apis import get_model, inference_model
from mmllava.converters.delta import apply_delta
from mmllava.converters.layouts import detect_layout, runner_checkpoint
from mmllava.converters.mmpretrain import (clip_to_vit, read_llm_file,
                                           read_tower, to_mmllava_state,
                                           vit_to_clip)
from mmllava.converters.shards import SAFE_INDEX
from mmllava.model_index import load_config
from mmllava.testing.demo.eval_files import write_eval_files
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset
from mmllava.testing.timeouts import scaled_timeout

pytestmark = pytest.mark.usefixtures('one_thread')

NAME = 'llava-tiny_demo_caption'
TOOLS = Path(__file__).resolve().parents[2] / 'tools/model_converters'
CONFIGS = Path(__file__).resolve().parents[2] / 'configs/llava'
#: The tiny ViT of the reference test: width 32, 4 heads, 2 layers.
WIDTH, HEADS, LAYERS, IMAGE, PATCH = 32, 4, 2, 48, 8
VOCAB = 32000


def random_vit(seed: int, final_norm: bool = False) -> dict:
    """A CLIP ViT's weights in mmpretrain's ``VisionTransformer`` names
    (``pre_norm=True``; ``final_norm`` adds ``ln1``)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=0.2):
        return torch.randn(*shape, generator=generator) * scale

    def norm(prefix):
        return {prefix + '.weight': 1 + randn(WIDTH, scale=0.1),
                prefix + '.bias': randn(WIDTH, scale=0.1)}

    num_tokens = (IMAGE // PATCH) ** 2 + 1
    vit = {'cls_token': randn(1, 1, WIDTH),
           'pos_embed': randn(1, num_tokens, WIDTH),
           'patch_embed.projection.weight': randn(WIDTH, 3, PATCH, PATCH),
           **norm('pre_norm')}
    for i in range(LAYERS):
        layer = f'layers.{i}.'
        vit.update(norm(layer + 'ln1'))
        vit.update(norm(layer + 'ln2'))
        vit.update({
            layer + 'attn.qkv.weight': randn(3 * WIDTH, WIDTH),
            layer + 'attn.qkv.bias': randn(3 * WIDTH),
            layer + 'attn.proj.weight': randn(WIDTH, WIDTH),
            layer + 'attn.proj.bias': randn(WIDTH),
            layer + 'ffn.layers.0.0.weight': randn(2 * WIDTH, WIDTH),
            layer + 'ffn.layers.0.0.bias': randn(2 * WIDTH),
            layer + 'ffn.layers.1.weight': randn(WIDTH, 2 * WIDTH),
            layer + 'ffn.layers.1.bias': randn(WIDTH)})
    if final_norm:
        vit.update(norm('ln1'))
    return vit


def reference_hidden_states(vit: dict, pixels: torch.Tensor) -> list:
    """Token states after the pre-norm and after each layer, computed the
    way mmpretrain's ``VisionTransformer`` runs (pre_norm=True): CLS first,
    position embedding added, ``x + attn(ln1(x))`` with ``qkv`` reshaped to
    (B, N, 3, heads, head_dim), ``x + ffn(ln2(x))`` with QuickGELU."""
    def norm(x, prefix):
        return F.layer_norm(x, (WIDTH, ), vit[prefix + '.weight'],
                            vit[prefix + '.bias'], eps=1e-5)

    x = F.conv2d(pixels, vit['patch_embed.projection.weight'], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, N, C)
    batch = x.shape[0]
    x = torch.cat([vit['cls_token'].expand(batch, -1, -1), x], dim=1)
    x = norm(x + vit['pos_embed'], 'pre_norm')
    states = [x]
    for i in range(LAYERS):
        layer = f'layers.{i}.'
        tokens = x.shape[1]
        qkv = F.linear(norm(x, layer + 'ln1'), vit[layer + 'attn.qkv.weight'],
                       vit[layer + 'attn.qkv.bias'])
        q, k, v = qkv.reshape(batch, tokens, 3, HEADS,
                              WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, D)
        attn = attn.transpose(1, 2).reshape(batch, tokens, WIDTH)
        x = x + F.linear(attn, vit[layer + 'attn.proj.weight'],
                         vit[layer + 'attn.proj.bias'])
        hidden = F.linear(norm(x, layer + 'ln2'),
                          vit[layer + 'ffn.layers.0.0.weight'],
                          vit[layer + 'ffn.layers.0.0.bias'])
        hidden = hidden * torch.sigmoid(1.702 * hidden)
        x = x + F.linear(hidden, vit[layer + 'ffn.layers.1.weight'],
                         vit[layer + 'ffn.layers.1.bias'])
        states.append(x)
    return states


def clip_tower(vit: dict) -> CLIPVisionModel:
    tower = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=WIDTH, intermediate_size=2 * WIDTH,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        image_size=IMAGE, patch_size=PATCH)).eval()
    state = vit_to_clip(vit)
    if 'post_layernorm.weight' not in state:
        state.update({key: value for key, value in tower.state_dict().items()
                      if key.startswith('post_layernorm.')})
    tower.load_state_dict(state, strict=True)
    return tower


def test_vit_map_matches_mmpretrains_forward():
    vit = random_vit(0)
    pixels = torch.randn(2, 3, IMAGE, IMAGE,
                         generator=torch.Generator().manual_seed(1))
    expected = reference_hidden_states(vit, pixels)
    with torch.no_grad():
        got = clip_tower(vit)(pixel_values=pixels,
                              output_hidden_states=True).hidden_states
    assert len(got) == LAYERS + 1
    for layer, (ours, theirs) in enumerate(zip(got, expected)):
        assert (ours - theirs).abs().max() <= 1e-5, layer
    # mmpretrain's Llava takes the last layer's patch tokens (feats[-1][:,
    # 1:], no final norm): mmllava's encoder with select_layer=-1 gives them.
    from mmllava.models.vision_encoders import CLIPVisionEncoder
    encoder = CLIPVisionEncoder(
        config=clip_tower(vit).config.to_dict(), select_layer=-1).eval()
    encoder.model.load_state_dict(clip_tower(vit).state_dict())
    with torch.no_grad():
        features = encoder(pixels)
    assert (features - expected[-1][:, 1:]).abs().max() <= 1e-5
    # Swapping q and k would still round-trip; the forward would not match.
    swapped = dict(vit)
    q, k, v = vit['layers.0.attn.qkv.weight'].chunk(3)
    swapped['layers.0.attn.qkv.weight'] = torch.cat([k, q, v])
    with torch.no_grad():
        wrong = clip_tower(swapped)(pixel_values=pixels,
                                    output_hidden_states=True).hidden_states
    assert (wrong[1] - expected[1]).abs().max() > 1e-3


@pytest.mark.parametrize('final_norm', [False, True])
def test_vit_maps_are_exact_both_ways(final_norm):
    vit = random_vit(2, final_norm)
    clip = vit_to_clip(vit)
    assert ('post_layernorm.weight' in clip) == final_norm
    back = clip_to_vit(clip)
    assert back.keys() == vit.keys()
    for key, value in vit.items():
        assert back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key
    again = vit_to_clip(back)
    assert all(torch.equal(again[key], value) for key, value in clip.items())


def test_tower_files_in_each_prefix(tmp_path):
    vit = random_vit(3, final_norm=True)
    expected = vit_to_clip(vit)
    files = {
        # A downloadable mmpretrain checkpoint: backbone.*, a head, meta.
        'backbone.pth': dict(meta={}, state_dict={
            **{'backbone.' + k: v for k, v in vit.items()},
            'head.layers.head.weight': torch.zeros(3, WIDTH)}),
        # openai-clip_to_mmpretrain-clip.py's output: visual.* and text keys.
        'visual.pth': {**{'visual.' + k: v for k, v in vit.items()},
                       'visual_proj.proj': torch.zeros(WIDTH, 8),
                       'token_embedding.weight': torch.zeros(5, 8)},
        'bare.pth': vit,
    }
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        tower = read_tower(str(tmp_path / name))
        assert tower.keys() == {'vision_encoder.model.' + key
                                for key in expected}, name
        for key, value in expected.items():
            assert torch.equal(tower['vision_encoder.model.' + key], value)
    torch.save({'backbone.' + k: v for k, v in vit.items()}
               | {'backbone.layers.0.gamma1.weight': torch.ones(WIDTH)},
               tmp_path / 'scaled.pth')
    with pytest.raises(KeyError, match=r'scaled\.pth.*layers\.0\.gamma1'):
        read_tower(str(tmp_path / 'scaled.pth'))
    torch.save({'conv.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    with pytest.raises(KeyError, match=r'other\.pth holds no CLIP'):
        read_tower(str(tmp_path / 'other.pth'))


def test_whole_llava_state_dict_holds_its_tower(tmp_path):
    # A state dict of mmpretrain's Llava module itself: the tower under
    # model.vision_tower., the LLM and projector under model.lang_encoder.
    vit = random_vit(4)
    state = {'model.vision_tower.' + k: v for k, v in vit.items()}
    state['model.lang_encoder.model.mm_projector.weight'] = torch.ones(2, 2)
    state['model.lang_encoder.model.layers.0.self_attn.rotary_emb.'
          'inv_freq'] = torch.ones(2)
    torch.save(dict(state_dict=state), tmp_path / 'llava.pth')
    read = read_llm_file(str(tmp_path / 'llava.pth'))
    assert read.keys() == {'projector.weight'} | {
        'vision_encoder.model.' + key for key in vit_to_clip(vit)}
    state['model.other.weight'] = torch.ones(1)
    torch.save(state, tmp_path / 'odd.pth')
    with pytest.raises(KeyError, match=r"odd\.pth: 'model\.other\.weight'"):
        read_llm_file(str(tmp_path / 'odd.pth'))


# The page's flow, on the apis workspace (tests/conftest.py: small random
# demo weights, and ft.pth whose projector and LLM differ from them).

def official_keys(state: dict) -> dict:
    """mmllava keys -> official LLaVA keys (the LLM and projector)."""
    out = {}
    for key, value in state.items():
        if key.startswith('llm.'):
            out[key[len('llm.'):]] = value
        elif key.startswith('projector.'):
            out['model.mm_projector.' + key[len('projector.'):]] = value
    return out


def mmpretrain_vit(clip_state: dict) -> dict:
    """transformers CLIP vision keys -> mmpretrain ViT keys, written from
    mmpretrain's openai-clip converter's names (no final norm, as its LLaVA
    configs build the tower)."""
    vit = {'cls_token': clip_state['embeddings.class_embedding'][None, None],
           'pos_embed': clip_state['embeddings.position_embedding.weight'][
               None],
           'patch_embed.projection.weight':
           clip_state['embeddings.patch_embedding.weight'],
           'pre_norm.weight': clip_state['pre_layrnorm.weight'],
           'pre_norm.bias': clip_state['pre_layrnorm.bias']}
    i = 0
    while f'encoder.layers.{i}.layer_norm1.weight' in clip_state:
        hf, mm = f'encoder.layers.{i}.', f'layers.{i}.'
        for param in ('weight', 'bias'):
            vit[f'{mm}attn.qkv.{param}'] = torch.cat([
                clip_state[f'{hf}self_attn.{p}_proj.{param}']
                for p in 'qkv'])
            for ours, theirs in (('layer_norm1', 'ln1'),
                                 ('layer_norm2', 'ln2'),
                                 ('self_attn.out_proj', 'attn.proj'),
                                 ('mlp.fc1', 'ffn.layers.0.0'),
                                 ('mlp.fc2', 'ffn.layers.1')):
                vit[f'{mm}{theirs}.{param}'] = \
                    clip_state[f'{hf}{ours}.{param}']
        i += 1
    return vit


@pytest.fixture(scope='module')
def page_files(model_workspace, tmp_path_factory):
    """What an mmpretrain user holds after its page's first step, and the
    official delta it came from.

    The target is ft.pth's LLM and projector in official keys, with one
    more row in the embedding and LM head (<im_patch>); the delta is
    ``target - base`` over the demo's LLM folder (float64, exact);
    ``llava.pth`` is what llava-delta2mmpre.py writes for base + delta, and
    ``vit.pth`` the demo tower in mmpretrain's naming."""
    root = tmp_path_factory.mktemp('mmpretrain_page')
    saved = torch.load(model_workspace / 'ft.pth',
                       weights_only=True)['state_dict']
    generator = torch.Generator().manual_seed(5)
    target = {key: value.clone() for key, value in
              official_keys(saved).items()}
    for key in ('model.embed_tokens.weight', 'lm_head.weight'):
        row = torch.randn(1, target[key].shape[1], generator=generator)
        target[key] = torch.cat([target[key], row])
    base_dir = model_workspace / 'checkpoints/demo/llm'
    base = _read_folder(base_dir)
    delta = {}
    for key, value in target.items():
        if key in base:
            wide = value.double()
            rows = tuple(slice(0, n) for n in base[key].shape)
            wide[rows] -= base[key].double()
            delta[key] = wide
        else:
            delta[key] = value
    delta_dir = root / 'delta'
    delta_dir.mkdir()
    save_file({k: v.contiguous() for k, v in delta.items()},
              str(delta_dir / 'model.safetensors'))
    vision_dir = str(model_workspace / 'checkpoints/demo/vision_encoder')
    llm_config = json.loads((base_dir / 'config.json').read_text())
    (delta_dir / 'config.json').write_text(json.dumps(dict(
        llm_config, vocab_size=VOCAB + 1,
        architectures=['LlavaLlamaForCausalLM'], model_type='llava_llama',
        mm_projector_type='mlp2x_gelu', mm_vision_select_layer=-2,
        mm_vision_select_feature='patch', mm_vision_tower=vision_dir,
        image_aspect_ratio='pad', mm_use_im_start_end=False,
        mm_use_im_patch_token=True)))
    # llava-delta2mmpre.py: base + delta (into the first rows of the grown
    # tensors), every key under model.lang_encoder.
    merged = {}
    for key, value in delta.items():
        value = value.clone()
        if key in base:
            rows = tuple(slice(0, n) for n in base[key].shape)
            value[rows] += base[key].double()
        merged['model.lang_encoder.' + key] = value.float()
    torch.save(merged, root / 'llava.pth')
    tower = _read_folder(Path(vision_dir))
    tower = {key[len('vision_model.'):] if key.startswith('vision_model.')
             else key: value for key, value in tower.items()}
    torch.save(dict(meta={}, state_dict={
        'backbone.' + key: value
        for key, value in mmpretrain_vit(tower).items()}), root / 'vit.pth')
    return dict(root=root, base=str(base_dir), delta=str(delta_dir),
                llava=str(root / 'llava.pth'), vit=str(root / 'vit.pth'),
                target=target)


def _read_folder(folder: Path) -> dict:
    from mmllava.converters.shards import iter_shards
    return {key: value for _, tensors in iter_shards(str(folder))
            for key, value in tensors.items()}


def tensor_logits(model):
    ids = torch.tensor([[1, 319, 13563, -200, 1724, 338, 445, 29973]])
    pixels = torch.randn(1, 3, 48, 48,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids),
                     pixel_values=pixels, num_images=[1], mode='tensor')


@pytest.mark.slow
def test_page_flow_end_to_end(page_files, model_workspace, monkeypatch,
                              tmp_path):
    monkeypatch.chdir(model_workspace)
    assert detect_layout(page_files['llava']) == 'mmpretrain'
    assert detect_layout('ft.pth') == 'mmllava'
    # Our step 1: apply_delta gives the official folder (target exactly).
    merged_dir = str(tmp_path / 'merged')
    apply_delta(page_files['base'], page_files['delta'], merged_dir)
    assert detect_layout(merged_dir) == 'official'
    merged = _read_folder(Path(merged_dir))
    assert all(torch.equal(merged[key], value)
               for key, value in page_files['target'].items())
    # Step 2: get_model with mmpretrain's file (and its tower file), as
    # mmpretrain's page calls it.
    generation = dict(generation_cfg=dict(max_new_tokens=5))
    with pytest.warns(UserWarning, match=r'32001 rows.*dropped rows 32000'):
        ours = get_model(NAME, pretrained=page_files['llava'],
                         vision_tower=page_files['vit'], device='cpu',
                         **generation)
    # The same weights from the official layout, into a model with the
    # official vocabulary (32001) ...
    llm_config = {key: value for key, value in json.loads(Path(
        'checkpoints/demo/llm/config.json').read_text()).items()
        if key not in ('architectures', 'transformers_version', 'dtype',
                       'torch_dtype')}
    official = get_model(NAME, pretrained=merged_dir, device='cpu',
                         llm=dict(pretrained=None, config=dict(
                             llm_config, vocab_size=VOCAB + 1)))
    # ... and ft.pth, their source, as an mmllava checkpoint.
    reference = get_model(NAME, pretrained='ft.pth', device='cpu',
                          **generation)
    saved = reference.state_dict()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, saved[key]), key
    logits = tensor_logits(ours)
    official_logits = tensor_logits(official)
    assert official_logits.shape[-1] == VOCAB + 1
    difference = (logits - official_logits[..., :VOCAB]).abs().max().item()
    print(f'max abs logit difference, mmpretrain file vs official folder: '
          f'{difference:.3g} (logits up to '
          f'{official_logits.abs().max().item():.3g})')
    assert difference <= 1e-5
    assert torch.equal(logits, tensor_logits(reference))
    # Step 3: inference_model gives pred_caption, as mmpretrain's does.
    result = inference_model(ours, 'astronaut.png')
    assert set(result) == {'pred_caption'}
    assert isinstance(result['pred_caption'], str)
    assert result == inference_model(reference, 'astronaut.png')
    # mmpretrain's other call shape: a name, the weights as keywords.
    with pytest.warns(UserWarning, match='dropped rows'):
        assert inference_model(NAME, 'astronaut.png',
                               pretrained=page_files['llava'],
                               vision_tower=page_files['vit'], device='cpu',
                               max_new_tokens=5) == result


def run_tool(name: str, *args: str, monkeypatch) -> None:
    monkeypatch.setattr(sys, 'argv', [name, *args])
    runpy.run_path(str(TOOLS / name), run_name='__main__')


def test_converters_are_exact_both_ways(page_files, model_workspace,
                                        monkeypatch, tmp_path):
    monkeypatch.chdir(model_workspace)
    # mmllava -> mmpretrain -> mmllava: bit for bit.
    run_tool('mmllava_to_mmpretrain.py', NAME, 'ft.pth',
             str(tmp_path / 'llava.pth'), '--vision-tower-out',
             str(tmp_path / 'vit.pth'), monkeypatch=monkeypatch)
    run_tool('mmpretrain_to_mmllava.py', NAME, str(tmp_path / 'llava.pth'),
             str(tmp_path / 'back.pth'), '--vision-tower',
             str(tmp_path / 'vit.pth'), monkeypatch=monkeypatch)
    saved = torch.load('ft.pth', weights_only=True)['state_dict']
    back = torch.load(tmp_path / 'back.pth', weights_only=True)['state_dict']
    assert back.keys() == saved.keys()
    assert all(torch.equal(back[key], value) for key, value in saved.items())
    # The files written are the layout of the hand-written fixture.
    exported = torch.load(tmp_path / 'llava.pth', weights_only=True)
    fixture = torch.load(page_files['llava'], weights_only=True)
    assert exported.keys() == fixture.keys()
    vit = torch.load(tmp_path / 'vit.pth', weights_only=True)
    vit_fixture = torch.load(page_files['vit'], weights_only=True)[
        'state_dict']
    assert set(vit) == set(vit_fixture) | {'backbone.ln1.weight',
                                           'backbone.ln1.bias'}
    assert all(torch.equal(vit[key], value)
               for key, value in vit_fixture.items())
    # mmpretrain -> mmllava -> mmpretrain: exact but for the dropped row.
    run_tool('mmpretrain_to_mmllava.py', NAME, page_files['llava'],
             str(tmp_path / 'from_page.pth'), '--vision-tower',
             page_files['vit'], monkeypatch=monkeypatch)
    run_tool('mmllava_to_mmpretrain.py', NAME, str(tmp_path / 'from_page.pth'),
             str(tmp_path / 'again.pth'), '--vision-tower-out',
             str(tmp_path / 'vit_again.pth'), monkeypatch=monkeypatch)
    again = torch.load(tmp_path / 'again.pth', weights_only=True)
    assert again.keys() == fixture.keys()
    for key, value in fixture.items():
        assert torch.equal(again[key], value[:VOCAB] if key.endswith(
            ('embed_tokens.weight', 'lm_head.weight')) else value), key
    vit_again = torch.load(tmp_path / 'vit_again.pth', weights_only=True)
    assert all(torch.equal(vit_again[key], value)
               for key, value in vit_fixture.items())


def test_converter_errors_name_the_file(page_files, model_workspace,
                                       monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(model_workspace)
    torch.save({'model.embed_tokens.weight': torch.zeros(2, 2)},
               tmp_path / 'plain.pth')
    with pytest.raises(SystemExit):
        run_tool('mmpretrain_to_mmllava.py', NAME, str(tmp_path / 'plain.pth'),
                 str(tmp_path / 'out.pth'), monkeypatch=monkeypatch)
    error = capsys.readouterr().err
    assert 'plain.pth is not an mmpretrain LLaVA file' in error
    assert 'model.lang_encoder.' in error


@pytest.mark.slow
def test_get_model_takes_mmpretrains_call_shapes(model_workspace,
                                                 monkeypatch):
    monkeypatch.chdir(model_workspace)
    saved = torch.load('ft.pth', weights_only=True)['state_dict']
    key = 'projector.0.weight'
    # url_mapping rewrites pretrained; device_map names one device.
    model = get_model(NAME, pretrained='https://example.org/ft.pth',
                      url_mapping=(r'https://example\.org/', ''),
                      device_map='cpu', offload_folder=None)
    assert torch.equal(model.state_dict()[key], saved[key])
    assert next(model.parameters()).device == torch.device('cpu')
    model = get_model(NAME, pretrained=False, device=torch.device('cpu'))
    assert not torch.equal(model.state_dict()[key], saved[key])
    with pytest.raises(ValueError, match='pretrained=True'):
        get_model(NAME, pretrained=True)
    with pytest.raises(ValueError, match="device_map='auto'"):
        get_model(NAME, device_map='auto')
    with pytest.raises(ValueError, match="mmpretrain's LLaVA file only"):
        get_model(NAME, pretrained='ft.pth', vision_tower='x.pth')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            get_model(NAME, pretrained='ft.pth', device='cuda')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_page_call_on_cuda(page_files, model_workspace, monkeypatch):
    monkeypatch.chdir(model_workspace)
    with pytest.warns(UserWarning, match='dropped rows'):
        model = get_model(NAME, pretrained=page_files['llava'],
                          vision_tower=page_files['vit'], device='cuda',
                          generation_cfg=dict(max_new_tokens=5))
    assert next(model.parameters()).is_cuda
    assert isinstance(inference_model(model, 'astronaut.png')['pred_caption'],
                      str)


def test_runner_checkpoint_for_tools_test(page_files, model_workspace,
                                          monkeypatch, tmp_path):
    monkeypatch.chdir(model_workspace)
    cfg = load_config(NAME)
    assert runner_checkpoint(cfg, 'ft.pth', tmp_path) == 'ft.pth'
    with pytest.warns(UserWarning, match='dropped rows'):
        path = runner_checkpoint(cfg, page_files['llava'], tmp_path,
                                 vision_tower=page_files['vit'])
    assert path == str(tmp_path / 'mmpretrain_converted.pth')
    saved = torch.load('ft.pth', weights_only=True)['state_dict']
    converted = torch.load(path, weights_only=True)['state_dict']
    assert converted.keys() == saved.keys()
    assert all(torch.equal(converted[key], value)
               for key, value in saved.items())
    with pytest.raises(ValueError, match='official_to_mmllava.py'):
        runner_checkpoint(cfg, page_files['delta'], tmp_path)
    # Without the config's tower folder, the final norm the tower file
    # lacks gets LayerNorm's initial values, said in a warning.
    with pytest.warns(UserWarning, match='no final norm'):
        state = to_mmllava_state(page_files['llava'], VOCAB,
                                 page_files['vit'])
    norm = 'vision_encoder.model.post_layernorm.'
    assert torch.equal(state[norm + 'weight'], torch.ones(32))
    assert torch.equal(state[norm + 'bias'], torch.zeros(32))
    with pytest.raises(FileNotFoundError, match='holds no vision tower'):
        to_mmllava_state(page_files['llava'], VOCAB)


@pytest.mark.slow
def test_tools_test_takes_mmpretrains_file(page_files, model_workspace,
                                           tmp_path):
    """The page's ``tools/test.py CONFIG PATH`` step with our tool: the
    file is converted into the work dir and the caption test runs on it."""
    data = model_workspace / 'data/demo'
    if not (data / 'eval').is_dir():
        generate_demo_dataset(data, num_train=2, num_eval=2, image_size=48)
        write_eval_files(str(data / 'eval.json'), str(data / 'eval'))
    work_dir = tmp_path / 'work'
    run = subprocess.run(
        [sys.executable, str(TOOLS.parent / 'test.py'),
         str(CONFIGS / f'{NAME}.py'), str(page_files['llava']),
         '--vision-tower', str(page_files['vit']), '--work-dir',
         str(work_dir), '--cfg-options', 'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False',
         'model.generation_cfg.max_new_tokens=4'],
        cwd=model_workspace, capture_output=True, text=True,
        timeout=scaled_timeout(600))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert (work_dir / 'mmpretrain_converted.pth').is_file()
    assert 'CIDEr' in run.stdout
    captions = json.loads(
        (work_dir / f'{NAME}_answers.json').read_text())
    assert len(captions) == 2
