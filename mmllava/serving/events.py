"""Carry jobs' events from the generation thread to the asyncio handler
that waits for them."""
import asyncio
from typing import AsyncIterator, Optional, Sequence, Union

from mmllava.serving.streaming import RowResult

Event = Union[str, RowResult, Exception]


class AsyncJobEvents:
    """One job's text pieces, then its result or its error, posted to an
    asyncio queue as ``(index, event)``; the ``n`` choices of a request
    share one queue (see :func:`choice_events`).

    Args:
        loop (asyncio.AbstractEventLoop): The handler's event loop.
        queue (asyncio.Queue, optional): The queue shared by a request's
            choices; a new one if not given.
        index (int): The job's choice index. Defaults to 0.

    Attributes:
        cancelled (bool): Set when the client is gone; the generation
            thread then ends the job's row.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 queue: Optional[asyncio.Queue] = None,
                 index: int = 0) -> None:
        self.loop = loop
        self.queue: asyncio.Queue = queue if queue is not None \
            else asyncio.Queue()
        self.index = index
        self.cancelled = False

    def delta(self, text: str) -> None:
        self._post(text)

    def finish(self, result: RowResult) -> None:
        self._post(result)

    def fail(self, error: Exception) -> None:
        self._post(error)

    def _post(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait,
                                           (self.index, event))
        except RuntimeError:
            # The loop has closed: the server is shutting down.
            self.cancelled = True

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Text pieces, then one :class:`RowResult` or exception (for a
        job that has its queue to itself)."""
        async for _, event in choice_events(self.queue, 1):
            yield event


async def choice_events(queue: asyncio.Queue, n: int
                        ) -> AsyncIterator[tuple[int, Event]]:
    """``(index, event)`` of ``n`` jobs sharing ``queue`` until each has
    given its result or error."""
    ended = 0
    while ended < n:
        index, event = await queue.get()
        yield index, event
        ended += not isinstance(event, str)


def cancel_all(events: Sequence[AsyncJobEvents]) -> None:
    for item in events:
        item.cancelled = True
