"""Vision towers from transformers (CLIP, SigLIP), with LLaVA's feature
selection and a named freeze policy."""
from typing import Optional

import torch
from torch import nn
from transformers import (CLIPVisionConfig, CLIPVisionModel,
                          SiglipVisionConfig, SiglipVisionModel)

from mmllava.registry import MODELS
from mmllava.utils.files import require_local_folder
from mmllava.utils.rng import rng_left_as_found


class HFVisionEncoder(nn.Module):
    """A transformers vision tower that returns one layer's patch features.

    Args:
        pretrained (str, optional): Local folder with the tower (a full CLIP
            or SigLIP checkpoint works too).
        config (dict, optional): Vision config kwargs for a random
            initialisation. Exactly one of ``pretrained`` and ``config``.
        select_layer (int): Which hidden state to take; ``-2`` is the
            penultimate layer, as LLaVA does. Defaults to -2.
        select_feature (str): ``'patch'`` drops the CLS token,
            ``'cls_patch'`` keeps it. Defaults to ``'patch'``.
        trainable_from_layer (int, optional): When the encoder is frozen,
            layers from this index on still train (ShareGPT4V trains the
            latter half). Defaults to None.
        attn_implementation (str): Defaults to ``'sdpa'``.
        torch_dtype (str): Parameter dtype. Defaults to ``'float32'``.
    """

    model_class: type
    config_class: type
    has_cls_token: bool

    def __init__(self,
                 pretrained: Optional[str] = None,
                 config: Optional[dict] = None,
                 select_layer: int = -2,
                 select_feature: str = 'patch',
                 trainable_from_layer: Optional[int] = None,
                 attn_implementation: str = 'sdpa',
                 torch_dtype: str = 'float32') -> None:
        super().__init__()
        if (pretrained is None) == (config is None):
            raise ValueError('Give the vision encoder exactly one of '
                             '`pretrained` (a local folder) and `config`.')
        if select_feature not in ('patch', 'cls_patch'):
            raise ValueError("select_feature must be 'patch' or 'cls_patch', "
                             f'got {select_feature!r}')
        if select_feature == 'cls_patch' and not self.has_cls_token:
            raise ValueError(f'{type(self).__name__} has no CLS token; use '
                             "select_feature='patch'")
        dtype = getattr(torch, torch_dtype)
        if pretrained is not None:
            with rng_left_as_found():
                self.model = self.model_class.from_pretrained(
                    require_local_folder(pretrained, 'Vision encoder'),
                    attn_implementation=attn_implementation,
                    dtype=dtype)
        else:
            self.model = self.model_class._from_config(
                self.config_class(**config),
                attn_implementation=attn_implementation, dtype=dtype)
        num_layers = len(self.layers)
        if not -num_layers - 1 <= select_layer <= num_layers:
            raise ValueError(
                f'select_layer {select_layer} is out of range: the tower has '
                f'{num_layers} layers, so {num_layers + 1} hidden states '
                f'(-{num_layers + 1} to {num_layers}).')
        self.select_layer = select_layer
        self.select_feature = select_feature
        self.trainable_from_layer = trainable_from_layer

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layers

    @property
    def num_used_layers(self) -> int:
        """Layers that feed the selected hidden state (hidden state 0 is the
        embedding output, hidden state i the output of layer i - 1)."""
        if self.select_layer < 0:
            return len(self.layers) + 1 + self.select_layer
        return self.select_layer

    def freeze(self) -> None:
        """Stop gradients, except in layers from ``trainable_from_layer`` up
        to the selected one (layers after it never reach the output)."""
        self.requires_grad_(False)
        if self.trainable_from_layer is not None:
            for layer in self.layers[self.trainable_from_layer:
                                     self.num_used_layers]:
                layer.requires_grad_(True)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Hidden state 0: the input of the first layer."""
        return self.model.embeddings(pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, N_patches[+1], C_vision)``."""
        pixel_values = pixel_values.to(self.model.dtype)
        any_trainable = any(p.requires_grad for p in self.parameters())
        with torch.set_grad_enabled(any_trainable and torch.is_grad_enabled()):
            # Hidden state i is the input of layer i, so only the layers
            # before the selected state run: the ones after it, the final
            # norm and any pooling head would not change the features.
            features = self.embed(pixel_values)
            for layer in self.layers[:self.num_used_layers]:
                features = layer(features, None)
        if self.select_feature == 'patch' and self.has_cls_token:
            features = features[:, 1:]
        return features


@MODELS.register_module()
class CLIPVisionEncoder(HFVisionEncoder):
    """transformers' ``CLIPVisionModel`` (LLaVA's CLIP ViT-L/14)."""

    model_class = CLIPVisionModel
    config_class = CLIPVisionConfig
    has_cls_token = True

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.pre_layrnorm(self.model.embeddings(pixel_values))


@MODELS.register_module()
class SiglipVisionEncoder(HFVisionEncoder):
    """transformers' ``SiglipVisionModel`` (no CLS token)."""

    model_class = SiglipVisionModel
    config_class = SiglipVisionConfig
    has_cls_token = False
