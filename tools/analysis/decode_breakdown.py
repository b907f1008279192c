"""Where a decode step's time goes: the benchmark's LLM (Llama 8 x 512,
32001-token head) decoding greedily, at batch 1 and 8, on CPU.

    python tools/analysis/decode_breakdown.py [--batch-sizes 1,8]
        [--prompt-tokens 300] [--new-tokens 32] [--repeats 5] [--threads N]
        [--quick]

For each batch size it times, each as the median of ``--repeats``:

- the prefill (one forward over the prompt, the KV cache filled);
- a decode step inside transformers' ``generate`` (the time of
  ``--new-tokens`` new tokens less that of one, per step), and the same
  step in a bare loop (forward with the cache, argmax): their difference is
  ``generate``'s own per-step work (logits processors, stopping criteria,
  cache and mask bookkeeping);
- inside the bare step: the decoder layers' linear layers, the LM head and
  the attention over the cache, each run alone on the shapes of a step;
  the rest of the step (norms, rotary embeddings, residual adds, module
  calls and Python) is the bare step less those;
- the whole generation and its decode step again with mmllava's lean loop
  (``lean_decoding``: each new token through the model's modules, without
  ``model.forward``'s and ``generate``'s per-step work);

on torch's kernels and on oneDNN-packed weights (``packed_cpu_kernels``,
what mmllava's generation uses on CPU). The same prompt embeddings go in
everywhere, as a spliced LLaVA prompt would.
"""
import argparse
import statistics
import time
from contextlib import nullcontext
from typing import Callable


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-sizes', default='1,8')
    parser.add_argument('--prompt-tokens', type=int, default=300,
                        help='prompt length (LLaVA-1.5-like: 256 image '
                        'tokens and a question)')
    parser.add_argument('--new-tokens', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int,
                        help='torch threads (default: torch\'s choice)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--quick', action='store_true',
                        help='the benchmark\'s --quick LLM (a smoke run)')
    return parser.parse_args()


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` over ``repeats`` runs, after one
    warm-up run."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    # torch and transformers take seconds to import: not for --help.
    import torch
    from torch import nn
    from transformers import (DynamicCache, LlamaConfig,
                              LlamaForCausalLM, LogitsProcessorList)

    from mmllava.models.decode_loop import lean_decoding
    from mmllava.models.packed_linears import packed_cpu_kernels

    from benchmark_parts.sizes import FULL, QUICK

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    llm_cfg = dict((QUICK if args.quick else FULL)['llm'])
    llm_cfg.pop('model_type')
    model = LlamaForCausalLM(LlamaConfig(**llm_cfg)).eval()
    with torch.no_grad():
        # Clear greedy winners (the benchmark widens its head the same way).
        model.lm_head.weight.normal_()
    config = model.config
    heads, width = config.num_attention_heads, config.hidden_size
    head_dim = width // heads
    decoder_linears = [module for name, module in model.named_modules()
                       if isinstance(module, nn.Linear) and name != 'lm_head']
    print(f'Llama {config.num_hidden_layers} x {width} (ffn '
          f'{config.intermediate_size}, head {config.vocab_size} x {width}), '
          f'prompt {args.prompt_tokens} tokens, {args.new_tokens} new, '
          f'{torch.get_num_threads()} threads, median of {args.repeats}')

    def bare_step_times(embeds, steps: int) -> list[float]:
        """A bare greedy loop (forward with the cache, argmax, next): the
        seconds of each step."""
        cache = DynamicCache()
        out = model(inputs_embeds=embeds, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            out = model(input_ids=token, past_key_values=cache,
                        use_cache=True)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            times.append(time.perf_counter() - start)
        return times

    def generate_step_times(embeds, mask, steps: int) -> list[float]:
        """``generate``'s steps, timed between the calls of a logits
        processor (called once a step, after the forward)."""
        stamps = []

        def stamp(input_ids, scores):
            stamps.append(time.perf_counter())
            return scores
        model.generate(inputs_embeds=embeds, attention_mask=mask,
                       max_new_tokens=steps + 1, min_new_tokens=steps + 1,
                       do_sample=False, pad_token_id=0, eos_token_id=2,
                       logits_processor=LogitsProcessorList([stamp]))
        return [later - earlier for earlier, later in zip(stamps, stamps[1:])]

    def generation_and_step_times(embeds, mask, steps: int
                                  ) -> tuple[float, float]:
        """The median seconds of a whole generation of ``steps + 1`` new
        tokens and of a decode step inside it."""
        whole = median_seconds(
            lambda: model.generate(
                inputs_embeds=embeds, attention_mask=mask,
                max_new_tokens=steps + 1, min_new_tokens=steps + 1,
                do_sample=False, pad_token_id=0, eos_token_id=2),
            args.repeats)
        step = statistics.median(
            step for _ in range(args.repeats)
            for step in generate_step_times(embeds, mask, steps))
        return whole, step

    weights = [module.weight for module in model.modules()
               if isinstance(module, nn.Linear)]
    weight_bytes = sum(weight.numel() * weight.element_size()
                       for weight in weights)
    # The machine's read bandwidth, on a buffer the size of those weights.
    buffer = torch.ones(weight_bytes // 4)
    read_seconds = median_seconds(buffer.sum, 10 * args.repeats)
    del buffer
    print(f'A decode step reads {weight_bytes / 1e6:.0f} MB of linear '
          f'weights; this machine reads '
          f'{weight_bytes / read_seconds / 1e9:.1f} GB/s (a sum over a buffer '
          'that size), so no step takes less than '
          f'{read_seconds * 1e3:.2f} ms')

    rows = []
    for batch in (int(size) for size in args.batch_sizes.split(',')):
        embeds = torch.randn(batch, args.prompt_tokens, width) * 0.02
        mask = torch.ones(batch, args.prompt_tokens, dtype=torch.long)
        step_rows = {size: torch.randn(batch, 1, size)
                     for size in (width, config.intermediate_size)}
        cache_length = args.prompt_tokens + args.new_tokens // 2
        query = torch.randn(batch, heads, 1, head_dim)
        keys = torch.randn(batch, heads, cache_length, head_dim)
        values = torch.randn(batch, heads, cache_length, head_dim)
        result = {}
        for kernels in ('torch', 'packed'):
            kernel_context = nullcontext() if kernels == 'torch' else \
                packed_cpu_kernels(model, only_if_faster=False)
            with torch.no_grad(), kernel_context:
                prefill = median_seconds(
                    lambda: model(inputs_embeds=embeds, use_cache=True,
                                  logits_to_keep=1), args.repeats)
                steps = args.new_tokens - 1
                whole, generate_step = generation_and_step_times(
                    embeds, mask, steps)
                bare_step = statistics.median(
                    step for _ in range(args.repeats)
                    for step in bare_step_times(embeds, steps))
                with lean_decoding(model):
                    lean_whole, lean_step = generation_and_step_times(
                        embeds, mask, steps)
                # One op takes about a millisecond: more repeats.
                op_repeats = 20 * args.repeats
                # All of them in the model's order, as a step runs them: their
                # weights (100 MB at the benchmark's size) do not stay in the
                # CPU's caches from one layer to the next, as a single layer
                # timed again and again would.
                linears = median_seconds(lambda: [
                    linear(step_rows[linear.in_features])
                    for linear in decoder_linears], op_repeats)
                head = median_seconds(lambda: model.lm_head(step_rows[width]),
                                      op_repeats)
                attention = config.num_hidden_layers * median_seconds(
                    lambda: nn.functional.scaled_dot_product_attention(
                        query, keys, values), op_repeats)
            result[kernels] = dict(
                prefill=prefill, generation=whole, generate_step=generate_step,
                generate_overhead=generate_step - bare_step,
                bare_step=bare_step, linears=linears, head=head,
                attention=attention,
                rest=bare_step - linears - head - attention,
                lean_generation=lean_whole, lean_step=lean_step)
        rows.append((batch, result))

    names = (('prefill', 'prefill (whole prompt)'),
             ('generation', f'generate, {args.new_tokens} new tokens'),
             ('generate_step', 'decode step in generate'),
             ('generate_overhead', '  generate\'s own work'),
             ('bare_step', '  bare step (forward + argmax)'),
             ('linears', '    decoder linear layers'),
             ('head', '    LM head'),
             ('attention', '    attention over the cache'),
             ('rest', '    rest (norms, rotary, adds, Python)'),
             ('lean_generation',
              f'generate with the lean loop, {args.new_tokens} new tokens'),
             ('lean_step', 'decode step in the lean loop'))
    for batch, result in rows:
        print(f'\nbatch {batch}: ms (share of the decode step in generate)')
        print('| part | torch kernels | oneDNN packed | packed / torch |')
        print('|---|---|---|---|')
        for key, label in names:
            cells = []
            for kernels in ('torch', 'packed'):
                value = result[kernels][key]
                share = '' if key in ('prefill', 'generation',
                                      'lean_generation') else \
                    f' ({value / result[kernels]["generate_step"]:.0%})'
                cells.append(f'{value * 1e3:.2f}{share}')
            ratio = result['packed'][key] / result['torch'][key] \
                if result['torch'][key] > 0 else float('nan')
            print(f'| {label} | {cells[0]} | {cells[1]} | {ratio:.2f} |')
        for kernels in ('torch', 'packed'):
            prefill = result[kernels]['prefill']
            for loop, key in (('transformers\' loop', 'generation'),
                              ('lean loop', 'lean_generation')):
                whole = result[kernels][key]
                rate = batch * args.new_tokens / whole
                print(f'{kernels}, {loop}: {rate:.1f} new tokens/s; the '
                      f'prefill is {prefill / whole:.0%} '
                      f'of the generation, decoding '
                      f'{(whole - prefill) / whole:.0%}')


if __name__ == '__main__':
    main()
