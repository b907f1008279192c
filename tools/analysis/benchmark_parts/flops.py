"""Model FLOPs of a training epoch, counted from the configs, and the GEMM
peak of the device, timed.

Training FLOPs per sample (the usual 6 FLOPs per parameter per token for
forward and backward, 2 for a forward only):

- LLM: ``6 * P * T`` over its ``T`` real positions (image rows included),
  ``P`` its matmul parameters (layers and LM head; not the input embedding,
  a lookup), plus causal attention, ``6 * layers * width * T**2``;
- projector (trains): ``6 * P_proj`` per image row;
- vision tower (frozen): a forward of the layers up to the selected one,
  ``2 * P_layer * t`` each plus ``4 * t**2 * width`` of attention, and the
  patch embedding.

Padding is never counted: MFU is what the model needs, not what a batch
layout makes the device do.
"""
import time
from typing import Sequence

import torch

from benchmark_parts.batches import Sample
from benchmark_parts.sizes import Sizes


def llm_matmul_params(llm: dict) -> int:
    width, ffn = llm['hidden_size'], llm['intermediate_size']
    kv_width = width * llm['num_key_value_heads'] // llm[
        'num_attention_heads']
    per_layer = 2 * width * width + 2 * width * kv_width + 3 * width * ffn
    return llm['num_hidden_layers'] * per_layer + llm['vocab_size'] * width


def image_flops(sizes: Sizes) -> float:
    """Vision forward and projector forward + backward, one image."""
    vision, width = sizes.vision, sizes.llm['hidden_size']
    side, patches = vision['hidden_size'], sizes.num_image_tokens
    tokens = patches + 1  # CLS
    layer = 4 * side * side + 2 * side * vision['intermediate_size']
    # select_layer=-2: the last layer's output is never used.
    used_layers = vision['num_hidden_layers'] - 1
    tower = used_layers * (2 * layer * tokens + 4 * tokens**2 * side) + \
        2 * 3 * vision['patch_size']**2 * side * patches
    projector = side * width + width * width
    return tower + 6 * projector * patches


def sample_flops(sample: Sample, sizes: Sizes) -> float:
    llm = sizes.llm
    positions = sample.length(sizes.num_image_tokens)
    return (6 * llm_matmul_params(llm) * positions
            + 6 * llm['num_hidden_layers'] * llm['hidden_size'] * positions**2
            + sample.num_images * image_flops(sizes))


def epoch_flops(samples: Sequence[Sample], sizes: Sizes) -> float:
    """Every sample once."""
    return sum(sample_flops(sample, sizes) for sample in samples)


def gemm_peak(size: int, device: str, seconds: float = 1.0) -> float:
    """FLOP/s of an fp32 ``size x size`` matmul: the best of timed repeats
    over about ``seconds``."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    best = float('inf')
    deadline = time.perf_counter() + seconds
    while True:
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            return 2 * size**3 / best
