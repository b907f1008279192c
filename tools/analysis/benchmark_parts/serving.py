"""The serving part of the benchmark: 32 concurrent clients against one
model, static batches against continuous batching, in one run.

The model is the demo recipe (``llava-tiny_demo_vqa``: CLIP 4 x 128, Llama
4 x 128, 9 image rows) with random weights and a wide LM head (clear greedy
winners), laid out in a work dir as the recipe expects. Each client sends
``requests_per_client`` greedy questions about real photos one after
another, with answer lengths that vary from request to request; prompts are
prepared once, so the two schedulers get the same jobs and only the
scheduling differs. Reported per scheduler: time to first token (p50, p95),
request latency, generated tokens per second over the whole run; and
whether every answer equals the one generated alone.
"""
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import mmengine
import numpy as np
from PIL import Image
from skimage import data as photos

from mmllava.apis import get_model
from mmllava.serving.batcher import DynamicBatcher
from mmllava.serving.continuous import ContinuousBatcher
from mmllava.serving.engine import GenerationEngine, GenerationJob
from mmllava.serving.streaming import RowResult
from mmllava.testing.demo.assets import (save_random_language_model,
                                         save_random_vision_encoder)
from mmllava.testing.demo.tokenizer import write_llama_tokenizer

RECIPE = 'llava-tiny_demo_vqa'
PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket')
QUESTIONS = ('What is in the image?', 'Describe the colours.',
             'What is unusual here?', 'Where was this taken?')
#: Answer lengths, cycled over the requests.
LENGTHS = (8, 48, 16, 32, 24, 40)


@contextmanager
def working_directory(path: str):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def build_served_model(work_dir: str, repo: str, device: str = 'cpu'):
    """The demo recipe with random weights under ``work_dir`` (its weight
    folders and four photos), loaded as ``get_model`` loads it."""
    root = Path(work_dir)
    demo = mmengine.Config.fromfile(
        str(Path(repo, 'configs/llava/_base_/models/llava-tiny_demo.py'))).demo
    write_llama_tokenizer(str(root / 'checkpoints/demo/tokenizer'))
    save_random_vision_encoder(demo.vision_config, demo.image_processor,
                               str(root / 'checkpoints/demo/vision_encoder'))
    save_random_language_model(
        dict(demo.llm_config, tie_word_embeddings=False),
        str(root / 'checkpoints/demo/llm'))
    for name in PHOTOS:
        Image.fromarray(getattr(photos, name)()).save(root / f'{name}.png')
    with working_directory(work_dir):
        return get_model(RECIPE, device=device)


class Timing:
    """A job's events: when it was sent, its first text, its end."""

    def __init__(self) -> None:
        self.cancelled = False
        self.index = 0
        self.sent = self.first = self.end = None
        self.result = None
        self.done = threading.Event()

    def delta(self, text: str) -> None:
        if self.first is None:
            self.first = time.monotonic()

    def finish(self, result: RowResult) -> None:
        self.end = time.monotonic()
        self.result = result
        self.done.set()

    def fail(self, error: Exception) -> None:
        self.end = time.monotonic()
        self.result = error
        self.done.set()


def prepare_requests(engine: GenerationEngine, work_dir: str,
                     num_clients: int, per_client: int) -> list[list[tuple]]:
    """Per client, its ``(sample, prompt_tokens, max_tokens)`` in order."""
    images = {name: Image.open(Path(work_dir, f'{name}.png')).convert('RGB')
              for name in PHOTOS}
    clients = []
    for client in range(num_clients):
        requests = []
        for turn in range(per_client):
            index = client * per_client + turn
            photo = PHOTOS[index % len(PHOTOS)]
            question = QUESTIONS[(index // len(PHOTOS)) % len(QUESTIONS)]
            sample = engine.prepare(
                [{'from': 'human', 'value': '<image>\n' + question}],
                images[photo], f'request-{index}')
            requests.append((sample, engine.prompt_tokens(sample),
                             LENGTHS[index % len(LENGTHS)]))
        clients.append(requests)
    return clients


def run_clients(batcher, clients: list[list[tuple]],
                arrival_gap_s: float) -> dict:
    """Every client sends its requests one after another; client ``i``
    starts ``i * arrival_gap_s`` after the first (users do not all press
    Enter at once). Returns the timings and answers."""
    records = [[None] * len(requests) for requests in clients]

    def client(number: int) -> None:
        time.sleep(number * arrival_gap_s)
        for turn, (sample, prompt_tokens, max_tokens) in enumerate(
                clients[number]):
            events = Timing()
            job = GenerationJob(sample=sample, prompt_tokens=prompt_tokens,
                                max_tokens=max_tokens, events=events)
            events.sent = time.monotonic()
            batcher.submit(job)
            events.done.wait()
            records[number][turn] = events

    batcher.start()
    threads = [threading.Thread(target=client, args=(number, ))
               for number in range(len(clients))]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    batcher.stop()
    flat = [record for client_records in records
            for record in client_records]
    failed = [record.result for record in flat
              if isinstance(record.result, Exception)]
    if failed:
        raise RuntimeError(f'{len(failed)} requests failed: {failed[0]!r}')
    first = np.array([record.first - record.sent for record in flat])
    latency = np.array([record.end - record.sent for record in flat])
    tokens = sum(record.result.completion_tokens for record in flat)
    return dict(answers=[record.result.text for record in flat],
                ttft_p50_s=float(np.percentile(first, 50)),
                ttft_p95_s=float(np.percentile(first, 95)),
                latency_p50_s=float(np.percentile(latency, 50)),
                latency_p95_s=float(np.percentile(latency, 95)),
                tokens=tokens, seconds=seconds, tokens_per_s=tokens / seconds,
                batch_sizes=batcher.stats()['batch_sizes'])


def benchmark_serving(model, work_dir: str, num_clients: int = 32,
                      per_client: int = 2, max_batch_size: int = 8,
                      arrival_gap_s: float = 0.05) -> dict:
    """Static against continuous batching on the same jobs and arrivals,
    and the answers of both against each request generated alone."""
    with working_directory(work_dir):
        engine = GenerationEngine(model)
    clients = prepare_requests(engine, work_dir, num_clients, per_client)
    alone = []
    for requests in clients:
        for sample, prompt_tokens, max_tokens in requests:
            events = Timing()
            engine.run_batch([GenerationJob(sample, prompt_tokens,
                                            max_tokens, events)])
            alone.append(events.result.text)
    size = num_clients * per_client
    static = run_clients(DynamicBatcher(
        engine.run_batch, batch_key=lambda job: job.sampling,
        max_batch_size=max_batch_size, queue_size=size,
        gather_window_s=0.02), clients, arrival_gap_s)
    continuous = run_clients(ContinuousBatcher(
        model, max_batch_size=max_batch_size, queue_size=size), clients,
        arrival_gap_s)
    return dict(
        clients=num_clients, requests=size, max_batch_size=max_batch_size,
        arrival_gap_s=arrival_gap_s,
        static={k: v for k, v in static.items() if k != 'answers'},
        continuous={k: v for k, v in continuous.items() if k != 'answers'},
        ttft_p95_ratio=continuous['ttft_p95_s'] / static['ttft_p95_s'],
        tokens_per_s_ratio=continuous['tokens_per_s']
        / static['tokens_per_s'],
        equal=static['answers'] == alone and continuous['answers'] == alone)


def format_serving_table(result: dict) -> str:
    """The two schedulers side by side, ratios against static."""
    lines = [f'serving: {result["clients"]} concurrent clients (one '
             f'starting every {result["arrival_gap_s"] * 1000:.0f} ms), '
             f'{result["requests"]} greedy requests, batches of at most '
             f'{result["max_batch_size"]}',
             '| scheduler | TTFT p50 s | TTFT p95 s | latency p50 s | '
             'latency p95 s | tokens/s |', '|---|---|---|---|---|---|']
    for name in ('static', 'continuous'):
        run = result[name]
        lines.append(f'| {name} | {run["ttft_p50_s"]:.2f} | '
                     f'{run["ttft_p95_s"]:.2f} | {run["latency_p50_s"]:.2f} '
                     f'| {run["latency_p95_s"]:.2f} | '
                     f'{run["tokens_per_s"]:.0f} |')
    lines.append(f'continuous / static: TTFT p95 '
                 f'{result["ttft_p95_ratio"]:.2f}x (target <= 0.5x), '
                 f'tokens/s {result["tokens_per_s_ratio"]:.2f}x (target >= '
                 f'1x); greedy answers equal to alone: '
                 f'{"yes" if result["equal"] else "NO"}')
    return '\n'.join(lines)
