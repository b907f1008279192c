"""Training settings, one optimizer step each, and interleaved epochs."""
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from benchmark_parts.batches import (Sample, baseline_batch, epoch_batches,
                                     mmllava_batch, token_counts)
from benchmark_parts.models import build_baseline, build_mmllava
from benchmark_parts.sizes import Sizes


@dataclass(frozen=True)
class Setting:
    """One way to train: which model, how batches are drawn.

    Args:
        name (str): Key in the results.
        side (str): ``'mmllava'`` or ``'baseline'``.
        batching (str): ``'random'`` or ``'grouped'`` (see
            :func:`epoch_batches`).
        packing_max_length (int, optional): mmllava's ``packing`` key.
    """

    name: str
    side: str
    batching: str
    packing_max_length: Optional[int] = None


@dataclass
class Run:
    """A setting with its model and optimizer, and what it measured."""

    setting: Setting
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    seconds: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    counts: list = field(default_factory=list)


def build_run(setting: Setting, sizes: Sizes, tokenizer_dir: str,
              weights: dict, device: str) -> Run:
    """The setting's model with ``weights``, AdamW over what trains."""
    if setting.side == 'mmllava':
        model = build_mmllava(sizes, tokenizer_dir, weights,
                              setting.packing_max_length)
    elif setting.side == 'baseline':
        model = build_baseline(sizes, weights)
    else:
        raise ValueError(f'Unknown side {setting.side!r}')
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=sizes.lr)
    return Run(setting, model, optimizer)


def train_step(run: Run, samples: Sequence[Sample], sizes: Sizes,
               device: str) -> float:
    """Forward, backward and AdamW step on one batch; returns the loss."""
    if run.setting.side == 'mmllava':
        loss = run.model(**mmllava_batch(run.model, samples),
                         mode='loss')['loss']
    else:
        # use_cache=False: a training forward needs no KV cache.
        loss = run.model(**baseline_batch(samples, sizes.num_image_tokens,
                                          device), use_cache=False).loss
    loss.backward()
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss.item()


def synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def run_epoch(run: Run, samples: Sequence[Sample], sizes: Sizes, seed: int,
              epoch: int, device: str) -> None:
    """One timed epoch; appends its seconds, step losses and token counts."""
    batches = [[samples[i] for i in indices] for indices in epoch_batches(
        samples, sizes.batch_size, run.setting.batching, seed, epoch)]
    losses, counts = [], []
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        losses.append(train_step(run, batch, sizes, device))
    synchronize(device)
    run.seconds.append(time.perf_counter() - start)
    for batch in batches:
        counts.append(token_counts(batch, sizes.num_image_tokens,
                                   run.setting.packing_max_length))
    run.losses.append(losses)
    run.counts.append(counts)


def train_interleaved(runs: Sequence[Run], samples: Sequence[Sample],
                      sizes: Sizes, seed: int, device: str,
                      log=print) -> None:
    """Every run's epochs in turn (A B C, then C B A, ...), so that a
    machine that speeds up or slows down during the benchmark weighs on all
    settings alike."""
    for epoch in range(sizes.epochs):
        order = runs if epoch % 2 == 0 else list(reversed(runs))
        for run in order:
            run_epoch(run, samples, sizes, seed, epoch, device)
            log(f'epoch {epoch} {run.setting.name}: '
                f'{run.seconds[-1]:.1f} s, mean loss '
                f'{sum(run.losses[-1]) / len(run.losses[-1]):.4f}')


def summarize(run: Run) -> dict:
    """Throughput over all epochs, padding, and the last epoch's loss."""
    seconds = sum(run.seconds)
    counts = [c for epoch in run.counts for c in epoch]
    total = {key: sum(c[key] for c in counts) for key in counts[0]}
    last = run.losses[-1]
    return dict(
        samples_per_s=sum(c['samples'] for c in counts) / seconds,
        supervised_tokens_per_s=total['supervised'] / seconds,
        tokens_per_s=total['real'] / seconds,
        padding_fraction=1 - total['real'] / total['padded'],
        final_loss=sum(last) / len(last),
        seconds=seconds,
        epoch_seconds=run.seconds,
        step_losses=run.losses)
