"""``mmllava/models/vision_encoders.py`` against transformers' own vision
models: the selected layer and feature are what LLaVA takes, weights load
from a local folder, and a frozen tower builds no graph."""
import pytest
import torch
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig,
                          CLIPVisionModel, SiglipConfig, SiglipModel,
                          SiglipVisionConfig, SiglipVisionModel)

from mmllava.models.vision_encoders import (CLIPVisionEncoder,
                                            SiglipVisionEncoder)
from mmllava.registry import MODELS

IMAGE_SIZE, PATCH_SIZE = 32, 8
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE)**2
CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=4, image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE, projection_dim=16)
SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=IMAGE_SIZE,
              patch_size=PATCH_SIZE)


# Tiny tensors: one thread runs this module twice as fast.
pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture
def pixel_values():
    return torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE,
                       generator=torch.Generator().manual_seed(0))


@pytest.fixture
def clip_folder(tmp_path):
    """A CLIP vision tower saved the transformers way."""
    torch.manual_seed(1)
    model = CLIPVisionModel(CLIPVisionConfig(**CLIP)).eval()
    model.save_pretrained(tmp_path / 'clip')
    return str(tmp_path / 'clip'), model


def reference_hidden_states(model, pixel_values):
    with torch.no_grad():
        return model(pixel_values, output_hidden_states=True).hidden_states


def test_clip_penultimate_patches_match_transformers(clip_folder,
                                                     pixel_values):
    folder, reference = clip_folder
    encoder = MODELS.build(
        dict(type='CLIPVisionEncoder', pretrained=folder, select_layer=-2))
    states = reference_hidden_states(reference, pixel_values)
    with torch.no_grad():
        features = encoder(pixel_values)
    # (N, 3, H, W) -> (N, N_patches, C_vision): the CLS row is dropped.
    assert features.shape == (2, NUM_PATCHES, CLIP['hidden_size'])
    torch.testing.assert_close(features, states[-2][:, 1:])
    # The layer matters: the last layer gives other features.
    assert not torch.allclose(features, states[-1][:, 1:], atol=1e-3)


def test_clip_cls_patch_keeps_the_cls_row(clip_folder, pixel_values):
    folder, reference = clip_folder
    encoder = CLIPVisionEncoder(pretrained=folder,
                                select_feature='cls_patch')
    with torch.no_grad():
        features = encoder(pixel_values)
    assert features.shape == (2, NUM_PATCHES + 1, CLIP['hidden_size'])
    torch.testing.assert_close(
        features, reference_hidden_states(reference, pixel_values)[-2])


def test_select_layer_picks_that_hidden_state(clip_folder, pixel_values):
    folder, reference = clip_folder
    encoder = CLIPVisionEncoder(pretrained=folder, select_layer=1)
    with torch.no_grad():
        features = encoder(pixel_values)
    torch.testing.assert_close(
        features, reference_hidden_states(reference, pixel_values)[1][:, 1:])


def test_siglip_patch_keeps_every_row(tmp_path, pixel_values):
    torch.manual_seed(2)
    reference = SiglipVisionModel(SiglipVisionConfig(**SIGLIP)).eval()
    reference.save_pretrained(tmp_path / 'siglip')
    encoder = SiglipVisionEncoder(pretrained=str(tmp_path / 'siglip'))
    with torch.no_grad():
        features = encoder(pixel_values)
    # SigLIP has no CLS token: all N_patches rows are patches.
    assert features.shape == (2, NUM_PATCHES, SIGLIP['hidden_size'])
    torch.testing.assert_close(
        features, reference_hidden_states(reference, pixel_values)[-2])


def test_siglip_cls_patch_raises():
    with pytest.raises(ValueError, match='no CLS token'):
        SiglipVisionEncoder(config=SIGLIP, select_feature='cls_patch')


def test_unknown_select_feature_raises():
    with pytest.raises(ValueError, match="'patch' or 'cls_patch', got 'cls'"):
        CLIPVisionEncoder(config=CLIP, select_feature='cls')


@pytest.mark.parametrize('kwargs', [dict(), dict(pretrained='x', config=CLIP)])
def test_exactly_one_of_pretrained_and_config(kwargs):
    with pytest.raises(ValueError, match='exactly one of'):
        CLIPVisionEncoder(**kwargs)


def test_pretrained_loads_identical_weights(clip_folder):
    folder, reference = clip_folder
    encoder = CLIPVisionEncoder(pretrained=folder)
    loaded, expected = encoder.model.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    assert encoder.hidden_size == CLIP['hidden_size']


@pytest.mark.parametrize('encoder_class, model_class, config_class, vision', [
    (CLIPVisionEncoder, CLIPModel, CLIPConfig, CLIP),
    (SiglipVisionEncoder, SiglipModel, SiglipConfig, SIGLIP),
])
def test_full_checkpoint_loads_the_vision_tower(tmp_path, encoder_class,
                                                model_class, config_class,
                                                vision):
    torch.manual_seed(3)
    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, vocab_size=64, bos_token_id=1,
                eos_token_id=2)
    full = model_class(config_class(text_config=text, vision_config=vision))
    full.save_pretrained(tmp_path / 'full')
    encoder = encoder_class(pretrained=str(tmp_path / 'full'))
    expected = full.vision_model.state_dict()
    loaded = encoder.model.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_frozen_encoder_builds_no_graph(pixel_values):
    encoder = CLIPVisionEncoder(config=CLIP)
    encoder.freeze()
    assert not any(p.requires_grad for p in encoder.parameters())
    # Even an input that asks for gradients gets none through a frozen tower.
    features = encoder(pixel_values.requires_grad_(True))
    assert not features.requires_grad


def test_trainable_from_layer_trains_only_later_layers(pixel_values):
    encoder = CLIPVisionEncoder(config=CLIP, select_layer=-1,
                                trainable_from_layer=1)
    encoder.freeze()
    trainable = {name for name, p in encoder.named_parameters()
                 if p.requires_grad}
    expected = {name for name, _ in encoder.named_parameters()
                if name.startswith(('model.encoder.layers.1.',
                                    'model.encoder.layers.2.'))}
    assert trainable == expected and expected
    features = encoder(pixel_values)
    assert features.requires_grad
    features.sum().backward()
    for name, parameter in encoder.named_parameters():
        if name in expected:
            assert parameter.grad is not None, name
            assert parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name


def test_torch_dtype_sets_parameters_and_casts_pixels(pixel_values):
    encoder = CLIPVisionEncoder(config=CLIP, torch_dtype='bfloat16')
    assert encoder.model.dtype == torch.bfloat16
    with torch.no_grad():
        assert encoder(pixel_values).dtype == torch.bfloat16


@pytest.mark.parametrize('encoder_class, model_class, config_class, vision', [
    (CLIPVisionEncoder, CLIPVisionModel, CLIPVisionConfig, CLIP),
    (SiglipVisionEncoder, SiglipVisionModel, SiglipVisionConfig, SIGLIP),
])
@pytest.mark.parametrize('select_layer', [-2, -1, -4, 0, 1, 3])
def test_features_are_bitwise_transformers_hidden_state(
        encoder_class, model_class, config_class, vision, select_layer,
        pixel_values):
    """Only the layers before the selected state run, yet the features are
    exactly transformers' ``output_hidden_states=True`` selection."""
    torch.manual_seed(4)
    reference = model_class(config_class(**vision)).eval()
    encoder = encoder_class(config=vision, select_layer=select_layer,
                            select_feature='cls_patch'
                            if encoder_class.has_cls_token else 'patch')
    encoder.model.load_state_dict(reference.state_dict())
    with torch.no_grad():
        features = encoder(pixel_values)
    expected = reference_hidden_states(reference, pixel_values)[select_layer]
    assert torch.equal(features, expected)


def test_layers_after_the_selected_state_do_not_run(pixel_values):
    encoder = CLIPVisionEncoder(config=CLIP, select_layer=-2)
    calls = []
    for index, layer in enumerate(encoder.layers):
        layer.register_forward_hook(
            lambda module, args, output, index=index: calls.append(index))
    with torch.no_grad():
        encoder(pixel_values)
    assert calls == [0, 1]


@pytest.mark.parametrize('encoder_class, model_class, config_class, vision', [
    (CLIPVisionEncoder, CLIPVisionModel, CLIPVisionConfig, CLIP),
    (SiglipVisionEncoder, SiglipVisionModel, SiglipVisionConfig, SIGLIP),
])
def test_state_dict_keeps_every_transformers_key(encoder_class, model_class,
                                                 config_class, vision):
    """Unused layers, the final norm and SigLIP's head stay in the weights:
    checkpoints and converters see the whole tower."""
    expected = {f'model.{key}'
                for key in model_class(config_class(**vision)).state_dict()}
    assert set(encoder_class(config=vision).state_dict()) == expected
    assert any('.head.' in key for key in expected) == (
        encoder_class is SiglipVisionEncoder)


@pytest.mark.parametrize('select_layer', [-5, 4])
def test_select_layer_out_of_range_raises(select_layer):
    with pytest.raises(ValueError, match='out of range: the tower has 3 '
                       'layers'):
        CLIPVisionEncoder(config=CLIP, select_layer=select_layer)
