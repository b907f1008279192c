"""Work through items with a fixed number of concurrent workers."""
import asyncio
from typing import Awaitable, Callable, Iterable, Optional, TypeVar

Item = TypeVar('Item')


async def run_pool(items: Iterable[Item],
                   handle: Callable[[Item], Awaitable[None]],
                   concurrency: int,
                   on_done: Optional[Callable[[], None]] = None) -> None:
    """Await ``handle(item)`` for every item, ``concurrency`` at a time.

    Workers take the next item when they finish one, so only
    ``concurrency`` coroutines exist however many items there are. An
    exception in ``handle`` stops the other workers and propagates.

    Args:
        items: The work.
        handle: Does one item.
        concurrency: Workers.
        on_done: Called after each item.
    """
    queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await handle(queue.get_nowait())
            if on_done is not None:
                on_done()

    workers = [asyncio.ensure_future(worker())
               for _ in range(min(concurrency, queue.qsize()))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
