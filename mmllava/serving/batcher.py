"""Dynamic batching: requests that arrive together run as one batch.

A bounded queue takes requests; one worker thread takes whatever has
arrived, waiting at most a short gather window for more, up to a maximum
batch size. Requests whose batch keys differ (different sampling settings)
run as separate batches, one after another.
"""
import logging
import math
import queue
import threading
import time
from collections import Counter
from typing import Callable, Hashable, Sequence

from mmengine.logging import print_log

_STOP = object()


class QueueFull(Exception):
    """The batcher's queue holds as many requests as it may."""


class DynamicBatcher:
    """Group queued items into batches and run them on one worker thread.

    Args:
        run_batch (Callable[[list], None]): Runs one batch; it reports
            results (and its own errors) to the items.
        batch_key (Callable[[object], Hashable]): Items with equal keys may
            share a batch.
        max_batch_size (int): Most items in one batch.
        queue_size (int): Most items waiting (not yet taken by the worker);
            :meth:`submit` refuses more.
        gather_window_s (float): How long the worker waits for more items
            after the first one of a batch arrives.
    """

    def __init__(self, run_batch: Callable[[list], None],
                 batch_key: Callable[[object], Hashable],
                 max_batch_size: int, queue_size: int,
                 gather_window_s: float) -> None:
        if max_batch_size < 1 or queue_size < 1 or gather_window_s < 0:
            raise ValueError(
                'max_batch_size and queue_size must be >= 1 and '
                f'gather_window_s >= 0; got {max_batch_size}, {queue_size}, '
                f'{gather_window_s}.')
        self.run_batch = run_batch
        self.batch_key = batch_key
        self.max_batch_size = max_batch_size
        self.gather_window_s = gather_window_s
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = None
        self._lock = threading.Lock()
        self._batch_sizes: Counter = Counter()
        self._last_batch_s = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work,
                                            name='dynamic-batcher',
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the items taken so far and end the worker."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def running(self) -> bool:
        """Whether the worker is alive (``/health`` reports it)."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item) -> None:
        """Queue ``item``; raises :class:`QueueFull` when the queue is."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise QueueFull(f'{self._queue.maxsize} requests are waiting.') \
                from None

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: one batch's duration."""
        return max(1, math.ceil(self._last_batch_s))

    def stats(self) -> dict:
        """``num_batches``, ``num_items``, ``largest_batch``, ``waiting``
        and ``batch_sizes`` (size -> how many batches had it), counting
        batches started so far."""
        with self._lock:
            sizes = dict(self._batch_sizes)
        return dict(num_batches=sum(sizes.values()),
                    num_items=sum(size * count
                                  for size, count in sizes.items()),
                    largest_batch=max(sizes, default=0),
                    waiting=self._queue.qsize(), batch_sizes=sizes)

    def _gather(self, first) -> tuple[list, bool]:
        """``first`` and what arrives within the window; whether to stop."""
        items = [first]
        deadline = time.monotonic() + self.gather_window_s
        while len(items) < self.max_batch_size:
            # After the window, still take what is already waiting.
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 \
                    else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
        return items, False

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            items, stopping = self._gather(first)
            for group in group_by_key(items, self.batch_key):
                self._run(group)

    def _run(self, batch: list) -> None:
        # Counted when it starts: its requests may be answered before
        # run_batch returns.
        with self._lock:
            self._batch_sizes[len(batch)] += 1
        start = time.monotonic()
        try:
            self.run_batch(batch)
        except Exception as error:  # the worker must outlive a bad batch
            print_log(f'A batch of {len(batch)} failed: {error!r}',
                      logger='current', level=logging.ERROR)
        self._last_batch_s = time.monotonic() - start


def group_by_key(items: Sequence, key: Callable[[object], Hashable]
                 ) -> list[list]:
    """Items split by key, groups in order of first arrival."""
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())
