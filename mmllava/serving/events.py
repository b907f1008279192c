"""Carry a job's events from the generation thread to the asyncio handler
that waits for them."""
import asyncio
from typing import AsyncIterator, Union

from mmllava.serving.streaming import RowResult

Event = Union[str, RowResult, Exception]


class AsyncJobEvents:
    """A job's text pieces, then its result or its error, as an async
    iterator for the request handler.

    Args:
        loop (asyncio.AbstractEventLoop): The handler's event loop.

    Attributes:
        cancelled (bool): Set when the client is gone; the generation
            thread then ends the job's row.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = False

    def delta(self, text: str) -> None:
        self._post(text)

    def finish(self, result: RowResult) -> None:
        self._post(result)

    def fail(self, error: Exception) -> None:
        self._post(error)

    def _post(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:
            # The loop has closed: the server is shutting down.
            self.cancelled = True

    async def __aiter__(self) -> AsyncIterator[Event]:
        """Text pieces, then one :class:`RowResult` or exception."""
        while True:
            event = await self.queue.get()
            yield event
            if not isinstance(event, str):
                return
