"""LLaVA v0/v1 delta weights: ``target = base + delta`` tensor by tensor.

The official ``apply_delta.py`` semantics: every tensor of the delta that the
base also holds gets the base added; the input embedding and the LM head of
the delta have more rows than the base (LLaVA added tokens), so the base is
added into their first rows; tensors only the delta holds (projector, vision
tower) pass unchanged. :func:`make_delta` is the inverse.

Arithmetic: each pair is added (subtracted) in float32, or float64 when
asked or when an input is float64, and the result is stored in
``dtype`` (default: the dtype of the delta for apply, of the target for make,
as the official tools do). ``apply(base, make(base, target)) == target``
bit for bit whenever the delta is stored wide enough to hold
``target - base`` exactly: with ``delta_dtype=torch.float64`` that holds for
every float16 checkpoint and for float32 / bfloat16 tensors whose values lie
within 2**29 / 2**45 of each other in magnitude (every real checkpoint). A
delta stored in the checkpoint's own dtype (the official choice) may differ
from the target by one unit in the last place for a few elements.
"""
from typing import Optional

import torch

from mmllava.converters.shards import (DEFAULT_SHARD_SIZE, Log, LazyCheckpoint,
                                       ShardWriter, copy_non_weight_files,
                                       iter_shards)

#: Tensors whose delta may have more rows than the base (added tokens).
GROWN_KEYS = ('model.embed_tokens.weight', 'lm_head.weight')


def _work_dtype(*tensors: torch.Tensor,
                wide: bool = False) -> torch.dtype:
    if wide or any(t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def combine(name: str, tensor: torch.Tensor, base: Optional[torch.Tensor],
            sign: int, out_dtype: Optional[torch.dtype] = None,
            wide: bool = False) -> torch.Tensor:
    """``tensor + sign * base`` with the embedding-row rule.

    Args:
        name (str): The key (named in errors; decides the row rule).
        tensor (Tensor): The delta (apply) or the target (make).
        base (Tensor, optional): The base tensor; None passes ``tensor``.
        sign (int): +1 to apply a delta, -1 to make one.
        out_dtype (torch.dtype, optional): Result dtype; defaults to
            ``tensor.dtype``.
        wide (bool): Compute in float64.
    """
    out_dtype = out_dtype or tensor.dtype
    if base is None:
        return tensor.to(out_dtype)
    work = _work_dtype(tensor, base, wide=wide or out_dtype == torch.float64)
    result = tensor.to(work, copy=True)
    if tensor.shape == base.shape:
        result += sign * base.to(work)
    elif name.endswith(GROWN_KEYS) and tensor.dim() == base.dim() and all(
            t >= b for t, b in zip(tensor.shape, base.shape)):
        rows = tuple(slice(0, size) for size in base.shape)
        result[rows] += sign * base.to(work)
    else:
        raise ValueError(
            f'{name}: shapes do not match: {tuple(tensor.shape)} vs base '
            f'{tuple(base.shape)} (only {" and ".join(GROWN_KEYS)} may have '
            'more rows than the base).')
    return result.to(out_dtype)


def _out_dtype(tensor, base, sign, dtype):
    """A make stores ``dtype`` for combined tensors only; an apply stores
    ``dtype``, else the delta's own, except that a float64 delta (made for an
    exact round trip) gives back the base's dtype."""
    if sign < 0:
        return dtype if base is not None and dtype is not None \
            else tensor.dtype
    if dtype is not None:
        return dtype
    if base is not None and tensor.dtype == torch.float64:
        return base.dtype
    return tensor.dtype


def _convert(base_dir: str, source_dir: str, out_dir: str, sign: int,
             dtype: Optional[torch.dtype], wide: bool,
             max_shard_size, log: Optional[Log]) -> dict:
    log = log or (lambda line: None)
    base = LazyCheckpoint(base_dir)
    writer = ShardWriter(out_dir, max_shard_size, log)
    used = set()
    for path, tensors in iter_shards(source_dir):
        log(f'{"apply" if sign > 0 else "make"} delta: {path} '
            f'({len(tensors)} tensors)')
        for name, tensor in tensors.items():
            base_tensor = base[name] if name in base else None
            if base_tensor is not None:
                used.add(name)
            writer.add(name, combine(
                name, tensor, base_tensor, sign,
                _out_dtype(tensor, base_tensor, sign, dtype), wide))
        del tensors
        # One output shard per input shard: memory holds about one shard.
        writer.flush()
    unused = sorted(set(base.keys()) - used)
    if unused:
        raise KeyError(f'{len(unused)} tensors of the base {base_dir} are '
                       f'not in {source_dir}: {unused[:5]}')
    index = writer.close()
    copied = copy_non_weight_files(source_dir, out_dir)
    log(f'wrote {out_dir}: {len(index["weight_map"])} tensors; copied '
        f'{", ".join(copied) or "no other files"}')
    return index


def apply_delta(base_dir: str, delta_dir: str, out_dir: str,
                dtype: Optional[torch.dtype] = None, wide: bool = False,
                max_shard_size=DEFAULT_SHARD_SIZE,
                log: Optional[Log] = None) -> dict:
    """Merge a base LLaMA folder and a LLaVA delta folder.

    Goes shard by shard over the delta; base tensors are read by name. The
    config and tokenizer files of the delta are copied.

    Args:
        base_dir (str): The base LLM (e.g. LLaMA-7B in transformers layout).
        delta_dir (str): The LLaVA delta.
        out_dir (str): Output folder (sharded safetensors with an index).
        dtype (torch.dtype, optional): Output dtype; defaults to each
            delta tensor's own (the base's for a float64 delta).
        wide (bool): Add in float64.
        max_shard_size (int | str): Largest output shard.
        log (Callable, optional): Gets progress lines.

    Returns:
        dict: The index written.
    """
    return _convert(base_dir, delta_dir, out_dir, +1, dtype, wide,
                    max_shard_size, log)


def make_delta(base_dir: str, target_dir: str, out_dir: str,
               dtype: Optional[torch.dtype] = None, wide: bool = False,
               max_shard_size=DEFAULT_SHARD_SIZE,
               log: Optional[Log] = None) -> dict:
    """The inverse of :func:`apply_delta`: ``delta = target - base``.

    Args:
        base_dir (str): The base LLM.
        target_dir (str): The trained LLaVA (official layout).
        out_dir (str): Output folder; config and tokenizer files of the
            target are copied.
        dtype (torch.dtype, optional): Dtype of the differences (tensors
            the base lacks keep their own); defaults to each target tensor's
            own. ``torch.float64`` makes the round trip exact (see
            the module docstring).
        wide (bool): Subtract in float64.
        max_shard_size (int | str): Largest output shard.
        log (Callable, optional): Gets progress lines.
    """
    return _convert(base_dir, target_dir, out_dir, -1, dtype, wide,
                    max_shard_size, log)
