"""Whether a checkpoint's tensors fit a model, said in one message.

Loading a checkpoint non-strictly leaves every missing or mis-shaped tensor
at its random initial value and goes on; the only sign is a log line. Every
load in mmllava compares first and stops with :class:`PartialLoadError`
unless a partial load was asked for.
"""
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import nn

#: How many names of each kind a message lists.
NAMES_SHOWN = 5


class PartialLoadError(RuntimeError):
    """A checkpoint's tensors do not fit the model it is loaded into."""


@dataclass
class StateDictMismatch:
    """How a checkpoint's state dict differs from a model's.

    Args:
        missing (list[str]): Model keys the checkpoint lacks.
        unexpected (list[str]): Checkpoint keys the model lacks.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``
            of keys both hold with different shapes.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """Counts and the first few names of each kind, one kind a line."""
        lines = []
        if self.mismatched:
            shown = ', '.join(
                f'{key} (checkpoint {tuple(given)}, model {tuple(expected)})'
                for key, given, expected in self.mismatched[:NAMES_SHOWN])
            lines.append(f'{len(self.mismatched)} with another shape: '
                         f'{shown}{_more(self.mismatched)}')
        if self.missing:
            lines.append(f'{len(self.missing)} missing from the checkpoint: '
                         f'{", ".join(self.missing[:NAMES_SHOWN])}'
                         f'{_more(self.missing)}')
        if self.unexpected:
            lines.append(f'{len(self.unexpected)} unexpected (not in the '
                         f'model): {", ".join(self.unexpected[:NAMES_SHOWN])}'
                         f'{_more(self.unexpected)}')
        return '\n'.join(f'  - {line}' for line in lines)


def _more(names: Sequence) -> str:
    return f' and {len(names) - NAMES_SHOWN} more' \
        if len(names) > NAMES_SHOWN else ''


def model_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """The shape of every tensor in ``model.state_dict()``.

    A parameter that DeepSpeed ZeRO-3 partitioned has an empty local tensor;
    its full shape is its ``ds_shape``.
    """
    return {key: getattr(tensor, 'ds_shape', tensor.shape)
            for key, tensor in model.state_dict(keep_vars=True).items()}


def compare_state_dict(expected: Mapping[str, Sequence[int]],
                       state_dict: Mapping[str, torch.Tensor]
                       ) -> StateDictMismatch:
    """Compare a state dict with the shapes a model expects.

    Args:
        expected (Mapping): Key -> shape, as :func:`model_shapes` gives.
        state_dict (Mapping): The checkpoint's tensors.
    """
    mismatch = StateDictMismatch(
        missing=[key for key in expected if key not in state_dict],
        unexpected=[key for key in state_dict if key not in expected])
    for key, shape in expected.items():
        tensor = state_dict.get(key)
        if tensor is not None and tuple(tensor.shape) != tuple(shape):
            mismatch.mismatched.append((key, tuple(tensor.shape),
                                        tuple(shape)))
    return mismatch


def strip_prefixes(state_dict: Mapping[str, torch.Tensor],
                   revise_keys: Sequence[tuple[str, str]] = (
                       (r'^module\.', ''), )) -> dict[str, torch.Tensor]:
    """Keys revised as mmengine's loader revises them (by default the
    ``module.`` of a wrapped model removed)."""
    revised = dict(state_dict)
    for pattern, replacement in revise_keys:
        revised = {re.sub(pattern, replacement, key): value
                   for key, value in revised.items()}
    return revised


def partial_load_message(source: str, mismatch: StateDictMismatch,
                         allow_partial_hint: str) -> str:
    """What a partial load of ``source`` leaves at initial values, and the
    option that allows it on purpose."""
    return (f'{source} does not fit the model; loading it would leave these '
            f'tensors at their initial values:\n{mismatch.describe()}\n'
            'Check that the config matches the one the checkpoint was '
            f'trained with. To load only what fits, on purpose: '
            f'{allow_partial_hint}.')


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
               source: str, allow_partial_hint: str) -> None:
    """Raise :class:`PartialLoadError` unless ``state_dict`` fits
    ``model`` key for key and shape for shape.

    Args:
        model (nn.Module): The model to load into (unwrapped).
        state_dict (Mapping): The checkpoint's tensors.
        source (str): The file, named in the message.
        allow_partial_hint (str): The option that allows a partial load on
            purpose, named in the message.
    """
    mismatch = compare_state_dict(model_shapes(model), state_dict)
    if mismatch:
        raise PartialLoadError(
            partial_load_message(source, mismatch, allow_partial_hint))
