"""``mmllava/serving/batcher.py``: gathering, grouping by key, the bounded
queue and stats, with a batch runner the test controls."""
import threading
import time

import pytest

from mmllava.serving.batcher import DynamicBatcher, QueueFull


class Runner:
    """Records batches; holds each one until ``release`` when gated."""

    def __init__(self, gated: bool = False) -> None:
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not gated:
            self.release.set()

    def __call__(self, batch: list) -> None:
        self.batches.append(list(batch))
        self.entered.set()
        assert self.release.wait(10)


def make(runner, **kwargs) -> DynamicBatcher:
    options = dict(batch_key=lambda item: item[0], max_batch_size=3,
                   queue_size=10, gather_window_s=0.5)
    options.update(kwargs)
    return DynamicBatcher(runner, **options)


def test_waiting_items_fill_batches_up_to_the_maximum():
    runner = Runner()
    batcher = make(runner)
    for index in range(5):
        batcher.submit(('greedy', index))
    batcher.start()
    batcher.stop()
    assert [[index for _, index in batch] for batch in runner.batches] == \
        [[0, 1, 2], [3, 4]]
    assert batcher.stats() == dict(num_batches=2, num_items=5,
                                   largest_batch=3, waiting=0,
                                   batch_sizes={3: 1, 2: 1})


def test_different_keys_run_as_separate_batches_in_arrival_order():
    runner = Runner()
    batcher = make(runner, max_batch_size=4)
    for item in [('greedy', 0), ('t=0.7', 1), ('greedy', 2), ('t=0.7', 3)]:
        batcher.submit(item)
    batcher.start()
    batcher.stop()
    assert runner.batches == [[('greedy', 0), ('greedy', 2)],
                              [('t=0.7', 1), ('t=0.7', 3)]]


def test_items_arriving_within_the_window_join_the_batch():
    runner = Runner()
    batcher = make(runner, gather_window_s=0.4)
    batcher.start()
    batcher.submit(('greedy', 0))
    time.sleep(0.05)
    batcher.submit(('greedy', 1))
    assert runner.entered.wait(5)
    batcher.submit(('greedy', 2))
    batcher.stop()
    assert runner.batches == [[('greedy', 0), ('greedy', 1)],
                              [('greedy', 2)]]


def test_a_full_queue_refuses_and_the_worker_outlives_a_failed_batch():
    runner = Runner(gated=True)
    batcher = make(runner, max_batch_size=1, queue_size=2,
                   gather_window_s=0.0)
    batcher.start()
    batcher.submit(('greedy', 0))
    assert runner.entered.wait(5)  # taken: the queue is empty again
    batcher.submit(('greedy', 1))
    batcher.submit(('greedy', 2))
    with pytest.raises(QueueFull):
        batcher.submit(('greedy', 3))
    assert batcher.stats()['waiting'] == 2
    assert batcher.retry_after_s() >= 1
    runner.release.set()
    batcher.stop()
    assert len(runner.batches) == 3

    failed = []

    def fail_first(batch):
        if not failed:
            failed.append(batch)
            raise RuntimeError('boom')
        runner.batches.append(batch)

    batcher = make(fail_first, max_batch_size=1)
    batcher.submit(('greedy', 'a'))
    batcher.submit(('greedy', 'b'))
    batcher.start()
    batcher.stop()
    assert runner.batches[-1] == [('greedy', 'b')]
    assert batcher.stats()['num_batches'] == 2


def test_bad_sizes_fail_loudly():
    with pytest.raises(ValueError, match='queue_size'):
        make(Runner(), queue_size=0)
