"""What the server counts, as Prometheus text (``GET /metrics``): requests
by status, requests in flight, queue depth, batch sizes, tokens, tokens per
second and latency histograms."""
import bisect
import threading
import time
from collections import Counter, deque
from typing import Callable, Sequence

#: Latency bucket bounds in seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0)
#: Batch size bucket bounds.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
#: Seconds over which tokens per second is averaged.
RATE_WINDOW_S = 60.0


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus defines them."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        lines, total = [], 0
        for bound, count in zip(self.bounds + ('+Inf', ), self.counts):
            total += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {total}')
        return lines + [f'{name}_sum {self.sum:.6f}', f'{name}_count {total}']


class ServerMetrics:
    """Thread-safe counters of one server.

    Args:
        batcher_stats (Callable[[], dict]): The batcher's ``stats()``
            (``waiting`` and ``batch_sizes`` are read).
    """

    def __init__(self, batcher_stats: Callable[[], dict]) -> None:
        self.batcher_stats = batcher_stats
        self.lock = threading.Lock()
        self.requests: Counter = Counter()
        self.in_flight = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cancelled = 0
        self.latency = Histogram(LATENCY_BUCKETS)
        self.first_token = Histogram(LATENCY_BUCKETS)
        self.recent: deque = deque()

    def request_done(self, status: int, latency_s: float) -> None:
        with self.lock:
            self.requests[status] += 1
            self.latency.observe(latency_s)

    def first_token_after(self, seconds: float) -> None:
        with self.lock:
            self.first_token.observe(seconds)

    def tokens(self, prompt: int, completion: int, cancelled: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.cancelled += int(cancelled)
            self.recent.append((now, completion))

    def tokens_per_s(self) -> float:
        now = time.monotonic()
        with self.lock:
            while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
                self.recent.popleft()
            return sum(count for _, count in self.recent) / RATE_WINDOW_S

    def text(self) -> str:
        """The Prometheus text exposition."""
        stats = self.batcher_stats()
        batches = Histogram(BATCH_BUCKETS)
        for size, count in stats['batch_sizes'].items():
            for _ in range(count):
                batches.observe(size)
        rate = self.tokens_per_s()
        with self.lock:
            lines = ['# TYPE mmllava_requests_total counter']
            lines += [f'mmllava_requests_total{{status="{status}"}} {count}'
                      for status, count in sorted(self.requests.items())]
            lines += [
                '# TYPE mmllava_requests_in_flight gauge',
                f'mmllava_requests_in_flight {self.in_flight}',
                '# TYPE mmllava_requests_cancelled_total counter',
                f'mmllava_requests_cancelled_total {self.cancelled}',
                '# TYPE mmllava_queue_depth gauge',
                f'mmllava_queue_depth {stats["waiting"]}',
                '# TYPE mmllava_prompt_tokens_total counter',
                f'mmllava_prompt_tokens_total {self.prompt_tokens}',
                '# TYPE mmllava_generation_tokens_total counter',
                f'mmllava_generation_tokens_total {self.completion_tokens}',
                '# TYPE mmllava_generation_tokens_per_second gauge',
                f'mmllava_generation_tokens_per_second {rate:.3f}',
                '# TYPE mmllava_batch_size histogram',
                *batches.lines('mmllava_batch_size'),
                '# TYPE mmllava_request_latency_seconds histogram',
                *self.latency.lines('mmllava_request_latency_seconds'),
                '# TYPE mmllava_time_to_first_token_seconds histogram',
                *self.first_token.lines(
                    'mmllava_time_to_first_token_seconds'),
            ]
        return '\n'.join(lines) + '\n'
