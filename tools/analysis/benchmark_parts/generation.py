"""Greedy generation, both models, the same prompts: new tokens per second
at batch 1 and batch 8, and whether the answers agree. mmllava runs twice:
as it is (on CPU its linear layers on oneDNN-packed weights and its LLM on
the lean decoding loop) and with the lean loop on torch's own kernels, the
baseline's."""
import statistics
import time
from typing import Sequence

import torch

from mmllava.constants import IGNORE_INDEX
from mmllava.conversation import build_generation_prompt
from mmllava.models.cpu_generation import fast_cpu_generation
from mmllava.models.decode_loop import lean_decoding
from mmllava.templates import cut_at_stop, get_template

from benchmark_parts.batches import Sample, baseline_batch, mmllava_batch
from benchmark_parts.sizes import Sizes
from benchmark_parts.training import synchronize


def prompt_samples(records: Sequence[dict], samples: Sequence[Sample],
                   tokenizer, count: int) -> list[Sample]:
    """The first question of the first ``count`` samples with an image, as
    vicuna_v1 generation prompts with the samples' processed images.

    Args:
        records (Sequence[dict]): The datasets' data infos, in the order of
            ``samples``.
    """
    template = get_template('vicuna_v1')
    prompts = []
    for record, sample in zip(records, samples):
        if not sample.num_images:
            continue
        input_ids = torch.tensor(build_generation_prompt(
            record['conversations'][:1], template, tokenizer, True,
            record['sample_id']))
        prompts.append(Sample(sample.sample_id, input_ids,
                              torch.full_like(input_ids, IGNORE_INDEX),
                              sample.pixel_values, sample.modality_length))
        if len(prompts) == count:
            break
    return prompts


def mmllava_generate(model, prompts: Sequence[Sample], new_tokens: int,
                     packed: bool = True) -> list[str]:
    """mmllava's generation as its inference API and server run it
    (:func:`~mmllava.models.cpu_generation.fast_cpu_generation`: on CPU,
    oneDNN-packed weights where they are faster on this machine and the lean
    decoding loop), or with ``packed=False`` the lean loop alone, on torch's
    kernels."""
    batch = mmllava_batch(model, prompts)
    batch.pop('labels')
    with fast_cpu_generation(model) if packed else lean_decoding(model):
        return model.generate_answers(
            **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens)


def baseline_generate(model, prompts: Sequence[Sample], sizes: Sizes,
                      tokenizer, device: str) -> list[str]:
    """transformers' Llava, prompts left-padded as its generate expects;
    the answers decoded and cut at the template's stop as mmllava does."""
    batch = baseline_batch(prompts, sizes.num_image_tokens, device,
                           padding_side='left')
    batch.pop('labels')
    generated = model.generate(
        **batch, max_new_tokens=sizes.new_tokens,
        min_new_tokens=sizes.new_tokens, do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id)
    texts = tokenizer.batch_decode(generated[:, batch['input_ids'].shape[1]:],
                                   skip_special_tokens=True)
    stop = get_template('vicuna_v1').stop
    return [cut_at_stop(text, stop) for text in texts]


@torch.no_grad()
def benchmark_generation(mmllava_model, mmllava_torch_kernels,
                         baseline_model, prompts: Sequence[Sample],
                         sizes: Sizes, tokenizer, device: str) -> dict:
    """Batch 1 (each prompt alone) and batch ``len(prompts)``, the models
    interleaved ``sizes.generation_rounds`` times; each figure is the median
    and the lowest of its rounds' new tokens/s.

    Args:
        mmllava_torch_kernels: ``mmllava_model``'s twin, run on torch's
            kernels.
    """
    calls = {
        'mmllava': lambda batch: mmllava_generate(
            mmllava_model, batch, sizes.new_tokens, packed=True),
        'mmllava_torch_kernels': lambda batch: mmllava_generate(
            mmllava_torch_kernels, batch, sizes.new_tokens, packed=False),
        'baseline': lambda batch: baseline_generate(
            baseline_model, batch, sizes, tokenizer, device),
    }
    layouts = {1: [[prompt] for prompt in prompts], len(prompts): [prompts]}
    seconds = {(side, size): [] for side in calls for size in layouts}
    answers = {}
    for _ in range(sizes.generation_rounds):
        for size, batches in layouts.items():
            for side, call in calls.items():
                synchronize(device)
                start = time.perf_counter()
                texts = [text for batch in batches for text in call(batch)]
                synchronize(device)
                seconds[side, size].append(time.perf_counter() - start)
                answers[side, size] = texts
    new_tokens = len(prompts) * sizes.new_tokens
    rates = {f'{side}_batch{size}': sorted(new_tokens / value
                                           for value in rounds)
             for (side, size), rounds in seconds.items()}
    reference = answers['mmllava', 1]
    return dict(
        tokens_per_s={key: statistics.median(values)
                      for key, values in rates.items()},
        lowest_tokens_per_s={key: values[0] for key, values in rates.items()},
        rounds=sizes.generation_rounds,
        outputs_equal=all(texts == reference for texts in answers.values()),
        answers={f'{side}_batch{size}': texts
                 for (side, size), texts in answers.items()})
