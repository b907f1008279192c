"""The 7B-width stage-2 step and greedy generation: mmllava (packing on)
beside transformers' Llava, the same tensors and the same samples, with
gradient checkpointing off and on; MFU against the bf16 GEMM peak timed in
the same run.

Both models hold one set of bf16 tensors (models.build_speed_pair), and
every training step is a full AdamW step at learning rate 0: all the work
of a step (fused AdamW over bf16 weights and states), with the weights left
as they were, so each setting runs on the same weights and the second
model costs no memory for its own."""
import gc
import importlib.util
import math
import time
from typing import Callable, Optional

import torch

from benchmark_parts.batches import Sample, token_counts
from benchmark_parts.flops import epoch_flops
from benchmark_parts.generation import baseline_generate, mmllava_generate
from benchmark_parts.sizes import Sizes
from benchmark_parts.training import Run, Setting, synchronize, train_step

from gpu_check_parts.data import prompts, random_samples, steps_of
from gpu_check_parts.models import build_speed_pair, parameter_count
from gpu_check_parts.report import FAIL, MEASURED, Row, judged, skipped
from gpu_check_parts.sizes import Plan, with_layers

#: The issue's targets for the packed 7B-width step.
MFU_TARGET, SPEEDUP_TARGET = 0.45, 1.3
#: Share of the GPU's memory the fitted model may plan to use (the rest:
#: the CUDA context, the allocator's fragmentation).
MEMORY_SHARE = 0.9
SIDES = ('mmllava', 'transformers')


def llm_attention(device: str) -> str:
    """flash-attention 2 where it imports (both LLMs), else SDPA (mmllava's
    packing then runs its per-sample SDPA)."""
    if device.startswith('cuda') and \
            importlib.util.find_spec('flash_attn') is not None:
        return 'flash_attention_2'
    return 'sdpa'


def gemm_peak(size: int, device: str, dtype: torch.dtype = torch.bfloat16,
              seconds: float = 1.0, repeats: int = 8) -> float:
    """FLOP/s of a ``size`` x ``size`` matmul in ``dtype``: the best of timed
    runs of ``repeats`` products over about ``seconds``."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype)
            for _ in range(2))
    torch.mm(a, b)
    best = math.inf
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == math.inf:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * size**3 / best


def set_checkpointing(model, side: str, on: bool) -> None:
    """Gradient checkpointing of the LLM's layers (non-reentrant, as
    mmllava's ``gradient_checkpointing=True`` sets it)."""
    target = model.llm if side == 'mmllava' else model
    if on:
        target.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs=dict(use_reentrant=False))
    else:
        target.gradient_checkpointing_disable()


def release(device: str) -> None:
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()


def train_steps(model, side: str, batches: list[list[Sample]], sizes: Sizes,
                device: str, warmup: int) -> dict:
    """``warmup`` untimed steps, then the rest timed: throughput, model
    FLOP/s, losses, peak memory. Out of memory: ``error`` says so."""
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=0.0,
        fused=device.startswith('cuda'))
    packing = sizes.packing_max_length if side == 'mmllava' else None
    run = Run(Setting(side, 'mmllava' if side == 'mmllava' else 'baseline',
                      'random', packing), model, optimizer)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    losses = []
    try:
        for batch in batches[:warmup]:
            losses.append(train_step(run, batch, sizes, device))
        synchronize(device)
        start = time.perf_counter()
        for batch in batches[warmup:]:
            losses.append(train_step(run, batch, sizes, device))
        synchronize(device)
        seconds = time.perf_counter() - start
    except torch.OutOfMemoryError as error:
        return dict(error=f'out of memory ({str(error).splitlines()[0]})')
    finally:
        model.zero_grad(set_to_none=True)
        del run, optimizer
        release(device)
    timed = batches[warmup:]
    counts = [token_counts(batch, sizes.num_image_tokens, packing)
              for batch in timed]
    total = {key: sum(c[key] for c in counts) for key in counts[0]}
    return dict(
        seconds=seconds, steps=len(timed),
        tokens_per_s=total['real'] / seconds,
        supervised_tokens_per_s=total['supervised'] / seconds,
        samples_per_s=total['samples'] / seconds,
        padding_fraction=1 - total['real'] / total['padded'],
        model_flops_per_s=epoch_flops([s for b in timed for s in b], sizes)
        / seconds,
        losses=losses,
        peak_memory_gb=torch.cuda.max_memory_allocated() / 1e9
        if device.startswith('cuda') else None)


def heaviest(batches: list[list[Sample]], side: str,
             num_image_tokens: int) -> list[Sample]:
    """The batch of the most positions the side's LLM runs: real ones when
    packed (mmllava), the padded rectangle for transformers."""
    def positions(batch: list[Sample]) -> int:
        lengths = [s.length(num_image_tokens) for s in batch]
        return sum(lengths) if side == 'mmllava' else \
            len(lengths) * max(lengths)
    return max(batches, key=positions)


def fit_layers(plan: Plan, tokenizer_dir: str, device: str, attention: str,
               batches: list[list[Sample]], seed: int,
               log: Callable[[str], None]) -> tuple[int, dict]:
    """The most LLM layers (up to the plan's) with which both models take
    their heaviest step with checkpointing off: the peak memory of 1- and
    2-layer probes gives the cost of a layer and of the rest."""
    most = plan.speed.llm['num_hidden_layers']
    if not plan.attempt_fit or not device.startswith('cuda'):
        return most, dict(fitted=False)
    peaks = []
    for layers in (1, 2):
        sizes = with_layers(plan.speed, layers)
        pair = build_speed_pair(sizes, tokenizer_dir, device, attention, seed)
        peak = 0
        for side, model in zip(SIDES, pair):
            set_checkpointing(model, side, False)
            batch = heaviest(batches, side, sizes.num_image_tokens)
            result = train_steps(model, side, [batch], sizes, device, 0)
            if 'error' in result:
                raise RuntimeError(f'{layers}-layer probe: {result["error"]}')
            peak = max(peak, result['peak_memory_gb'] * 1e9)
        peaks.append(peak)
        del pair
        release(device)
    layers, fit = layers_that_fit(
        peaks, torch.cuda.get_device_properties(device).total_memory, most)
    log(f'memory: {fit["gb_per_layer"]:.2f} GB a layer, '
        f'{fit["gb_fixed"]:.1f} GB the rest; {layers} layers fit '
        f'{MEMORY_SHARE:.0%} of the GPU')
    if layers < 1:
        raise RuntimeError(f'not one layer fits ({fit})')
    return layers, fit


def layers_that_fit(peaks: list[float], total_memory: float,
                    most: int) -> tuple[int, dict]:
    """Layers whose step stays within :data:`MEMORY_SHARE` of
    ``total_memory``, at most ``most``, from the peak bytes of the 1- and
    2-layer probes (each layer costs their difference; the rest is the
    1-layer peak less one layer)."""
    per_layer = peaks[1] - peaks[0]
    if per_layer <= 0:
        raise ValueError(f'the 2-layer probe peaked at {peaks[1]:.3g} bytes, '
                         f'no more than the 1-layer one ({peaks[0]:.3g})')
    fixed, budget = peaks[0] - per_layer, MEMORY_SHARE * total_memory
    layers = min(most, int((budget - fixed) // per_layer))
    return layers, dict(fitted=True, gb_per_layer=per_layer / 1e9,
                        gb_fixed=fixed / 1e9, budget_gb=budget / 1e9)


def generate_rates(pair, questions: list[Sample], sizes: Sizes,
                   device: str) -> dict:
    """New tokens/s of greedy decoding at batch 1 (each prompt alone) and
    batch ``len(questions)``, after an untimed warm-up call of each."""
    model, baseline = pair
    for side in pair:
        side.eval()
    calls = dict(
        mmllava=lambda batch: mmllava_generate(model, batch,
                                               sizes.new_tokens),
        transformers=lambda batch: baseline_generate(
            baseline, batch, sizes, model.tokenizer, device))
    for call in calls.values():
        call(questions[:1])
    rates, answers = {}, {}
    for size, layout in ((1, [[q] for q in questions]),
                         (len(questions), [questions])):
        for side, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            answers[side, size] = [a for batch in layout for a in call(batch)]
            synchronize(device)
            rates[f'{side}_batch{size}'] = len(questions) * \
                sizes.new_tokens / (time.perf_counter() - start)
    agree = sum(a == b for a, b in zip(answers['mmllava', 1],
                                       answers['transformers', 1]))
    return dict(tokens_per_s=rates, answers_agree=agree,
                prompts=len(questions))


def measure(plan: Plan, tokenizer_dir: str, device: str, seed: int,
            log: Callable[[str], None]) -> dict:
    """Everything the speed rows show."""
    attention = llm_attention(device)
    samples = random_samples(plan.speed, plan.speed.num_samples, seed + 2)
    batches = steps_of(samples, plan.speed.batch_size)
    layers, fit = fit_layers(plan, tokenizer_dir, device, attention, batches,
                             seed, log)
    sizes = with_layers(plan.speed, layers)
    pair = build_speed_pair(sizes, tokenizer_dir, device, attention, seed)
    parameters = parameter_count(pair[0])
    log(f'speed model: {layers} layers x {sizes.llm["hidden_size"]}, '
        f'{parameters / 1e9:.2f}B parameters, bf16, LLM attention '
        f'{attention!r}')
    peak = gemm_peak(sizes.gemm_size, device)
    generation = generate_rates(pair, prompts(sizes, plan.prompts, seed + 3),
                                sizes, device)
    log('generation measured: ' + ', '.join(
        f'{key} {value:.1f}' for key, value in
        generation['tokens_per_s'].items()) + ' new tokens/s')
    training = {}
    # mmllava first with checkpointing off, last with it on, so that a
    # device that speeds up or slows down weighs on both sides alike.
    for checkpointing, order in ((False, SIDES), (True, SIDES[::-1])):
        for side in order:
            model = pair[SIDES.index(side)]
            set_checkpointing(model, side, checkpointing)
            key = f'{side}_checkpointing_{"on" if checkpointing else "off"}'
            training[key] = result = train_steps(
                model, side, batches, sizes, device, plan.warmup_steps)
            log(f'{key}: ' + (result['error'] if 'error' in result else
                              f'{result["tokens_per_s"]:.0f} tokens/s'))
    peak = max(peak, gemm_peak(sizes.gemm_size, device))
    for result in training.values():
        if 'error' not in result:
            result['mfu'] = result['model_flops_per_s'] / peak
    return dict(layers=layers, fit=fit, parameters=parameters,
                attention=attention, gemm_peak_flops=peak,
                sizes=sizes.to_dict(), training=training,
                generation=generation)


def speed_rows(result: dict, judge: bool) -> list[Row]:
    """Throughput and MFU with checkpointing off and on, then generation;
    against the targets when ``judge`` (a full run on CUDA)."""
    rows = []
    training = result['training']
    for state in ('off', 'on'):
        ours = training[f'mmllava_checkpointing_{state}']
        theirs = training[f'transformers_checkpointing_{state}']
        name = f'7B-width step, packing, checkpointing {state}'
        error = ours.get('error') or theirs.get('error')
        target = f'>= {SPEEDUP_TARGET}x transformers'
        if error:
            rows.append(skipped(f'{name}: tokens/s', error, target, 'speed'))
        else:
            ratio = ours['tokens_per_s'] / theirs['tokens_per_s']
            rows.append(Row(
                f'{name}: tokens/s', judged(ratio >= SPEEDUP_TARGET, judge),
                f'mmllava {ours["tokens_per_s"]:.4g} / transformers '
                f'{theirs["tokens_per_s"]:.4g} = {ratio:.2f}x', target,
                kind='speed'))
        mfu_target = f'>= {MFU_TARGET:.0%}' if state == 'off' else '-'
        if 'error' in ours:
            rows.append(skipped(f'{name}: MFU', ours['error'], mfu_target,
                                'speed'))
            continue
        status = judged(ours['mfu'] >= MFU_TARGET, judge) \
            if state == 'off' else MEASURED
        rows.append(Row(
            f'{name}: MFU', status, f'mmllava {ours["mfu"]:.1%}' + (
                f' (transformers {theirs["mfu"]:.1%})' if 'mfu' in theirs
                else ''), mfu_target, kind='speed'))
    rates = result['generation']['tokens_per_s']
    for size in (1, result['generation']['prompts']):
        ours, theirs = rates[f'mmllava_batch{size}'], \
            rates[f'transformers_batch{size}']
        rows.append(Row(
            f'generation, batch {size}: new tokens/s', MEASURED,
            f'mmllava {ours:.4g} / transformers {theirs:.4g} = '
            f'{ours / theirs:.2f}x', '-', kind='speed'))
    return rows


def failed_speed(error: Exception) -> list[Row]:
    """The speed part's row when it raised: the run fails, as the figures
    it owes are missing."""
    return [Row('7B-width step and generation', FAIL,
                reason=f'{type(error).__name__}: {error}'[:300],
                kind='speed')]


def describe(result: Optional[dict]) -> str:
    if not result:
        return ''
    return (f'speed model: {result["layers"]} layers, '
            f'{result["parameters"] / 1e9:.2f}B parameters, attention '
            f'{result["attention"]!r}; bf16 GEMM peak '
            f'{result["gemm_peak_flops"] / 1e12:.3g} TFLOP/s')
