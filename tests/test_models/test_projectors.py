"""``mmllava/models/projectors.py``: every projector name maps
``(B, N, C_in)`` to ``(B, N, C_out)`` and keeps the official parameter
layout, so official ``mm_projector`` weights load by name."""
import pytest
import torch
from torch import nn

from mmllava.models.projectors import (IdentityProjector, LinearProjector,
                                       MLPProjector, build_projector)
from mmllava.registry import MODELS

C_IN, C_OUT = 12, 20


@pytest.mark.parametrize('cfg, names', [
    (dict(type='linear'), ['weight', 'bias']),
    (dict(type='mlp2x_gelu'), ['0.weight', '0.bias', '2.weight', '2.bias']),
    (dict(type='mlp3x_gelu'),
     ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']),
    (dict(type='LinearProjector'), ['weight', 'bias']),
    (dict(type='MLPProjector', depth=1), ['0.weight', '0.bias']),
])
def test_projector_shapes_and_parameter_names(cfg, names):
    projector = build_projector(cfg, C_IN, C_OUT)
    features = torch.randn(2, 7, C_IN)
    # (B, N, C_in) -> (B, N, C_out)
    assert projector(features).shape == (2, 7, C_OUT)
    assert [name for name, _ in projector.named_parameters()] == names
    assert projector.state_dict()[names[0]].shape == (C_OUT, C_IN)


def test_official_names_build_the_official_modules():
    assert type(build_projector(dict(type='linear'), 4, 8)) is LinearProjector
    mlp = build_projector(dict(type='mlp2x_gelu'), 4, 8)
    assert type(mlp) is MLPProjector
    # Linear, GELU, Linear: the official nn.Sequential of mlp2x_gelu.
    assert [type(layer) for layer in mlp] == [nn.Linear, nn.GELU, nn.Linear]
    identity = build_projector(dict(type='identity'), 8, 8)
    assert type(identity) is IdentityProjector


def test_mlp_computes_linear_gelu_linear():
    projector = build_projector(dict(type='mlp2x_gelu'), C_IN, C_OUT)
    features = torch.randn(3, 5, C_IN)
    weights = projector.state_dict()
    hidden = torch.nn.functional.gelu(
        features @ weights['0.weight'].T + weights['0.bias'])
    expected = hidden @ weights['2.weight'].T + weights['2.bias']
    torch.testing.assert_close(projector(features), expected)


def test_identity_passes_features_unchanged():
    projector = build_projector(dict(type='identity'), C_IN, C_IN)
    features = torch.randn(2, 3, C_IN)
    assert torch.equal(projector(features), features)
    assert list(projector.parameters()) == []


def test_identity_with_unequal_widths_raises():
    with pytest.raises(ValueError, match='equal widths.*12 -> 20'):
        build_projector(dict(type='identity'), C_IN, C_OUT)


@pytest.mark.parametrize('cfg', [
    dict(type='mlp0x_gelu'), dict(type='MLPProjector', depth=0)])
def test_depth_below_one_raises(cfg):
    with pytest.raises(ValueError, match='depth must be >= 1, got 0'):
        build_projector(cfg, C_IN, C_OUT)


def test_unknown_keys_and_names_fail_loudly():
    with pytest.raises(TypeError, match='bias'):
        build_projector(dict(type='linear', bias=False), C_IN, C_OUT)
    with pytest.raises(KeyError, match='mlp2x_relu'):
        build_projector(dict(type='mlp2x_relu'), C_IN, C_OUT)


@pytest.fixture
def registered_projector():
    """A projector registered by a user, removed again afterwards."""
    name = 'TestOnlyScaledProjector'

    class ScaledProjector(nn.Linear):

        def __init__(self, in_channels, out_channels, scale=1.0):
            super().__init__(in_channels, out_channels, bias=False)
            self.scale = scale

        def forward(self, features):
            return super().forward(features) * self.scale

    MODELS.register_module(name=name, module=ScaledProjector)
    yield name
    MODELS._module_dict.pop(name)


def test_registered_projector_gets_the_widths(registered_projector):
    projector = build_projector(
        dict(type=registered_projector, scale=2.0), C_IN, C_OUT)
    assert projector.scale == 2.0
    assert projector.weight.shape == (C_OUT, C_IN)
    features = torch.randn(2, 4, C_IN)
    torch.testing.assert_close(projector(features),
                               2.0 * features @ projector.weight.T)
