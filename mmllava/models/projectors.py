"""Projectors from vision features to the LLM's embedding width."""
import re

from torch import nn

from mmllava.registry import MODELS


@MODELS.register_module()
class LinearProjector(nn.Linear):
    """One linear layer (LLaVA v1; the official ``linear``).

    Args:
        in_channels (int): Vision feature width.
        out_channels (int): LLM hidden width.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)


@MODELS.register_module()
class MLPProjector(nn.Sequential):
    """``depth`` linear layers with GELU between (the official
    ``mlp{depth}x_gelu``; LLaVA-1.5 uses depth 2). Parameter names follow the
    official ``nn.Sequential`` layout (``0``, ``2``, ...).

    Args:
        in_channels (int): Vision feature width.
        out_channels (int): LLM hidden width.
        depth (int): Number of linear layers. Defaults to 2.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f'MLPProjector depth must be >= 1, got {depth}')
        layers = [nn.Linear(in_channels, out_channels)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_channels, out_channels)]
        super().__init__(*layers)


@MODELS.register_module()
class IdentityProjector(nn.Identity):
    """Features pass unchanged; the widths must already agree.

    Args:
        in_channels (int): Vision feature width.
        out_channels (int): LLM hidden width; must equal ``in_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        if in_channels != out_channels:
            raise ValueError('IdentityProjector needs equal widths, got '
                             f'{in_channels} -> {out_channels}')
        super().__init__()


def build_projector(cfg: dict, in_channels: int, out_channels: int) -> nn.Module:
    """Build a projector from its registry name or its official name.

    ``type`` may be ``'linear'``, ``'identity'`` or ``'mlp{N}x_gelu'`` (the
    official ``mm_projector_type`` values) or a registered class name.
    """
    cfg = dict(cfg)
    name = cfg.pop('type')
    mlp = re.fullmatch(r'mlp(\d+)x_gelu', name)
    if mlp:
        cfg.update(type='MLPProjector', depth=int(mlp.group(1)))
    elif name in ('linear', 'identity'):
        cfg['type'] = f'{name.capitalize()}Projector'
    else:
        cfg['type'] = name
    return MODELS.build(cfg, default_args=dict(
        in_channels=in_channels, out_channels=out_channels))
