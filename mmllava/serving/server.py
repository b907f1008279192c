"""uvicorn, configured so that slow or idle clients cannot hold the server:
a deadline for request headers, the keep-alive timeout, a cap on open
connections, and ``Host`` checked by the app."""
import asyncio

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_h11(header_timeout_s: float, max_connections: int) -> type:
    """An h11 protocol class that closes a connection whose request headers
    have not all arrived ``header_timeout_s`` after it opened (or after its
    last response), and any connection past ``max_connections``.

    uvicorn has no header timeout of its own: its keep-alive timeout starts
    only after a first response, and a byte every few seconds restarts
    nothing, so half-open connections would stay open for ever.
    """

    class GuardedH11Protocol(H11Protocol):

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def _arm_header_deadline(self) -> None:
            cycle = self.cycle
            self.loop.call_later(header_timeout_s, self._header_deadline,
                                 cycle)

        def _header_deadline(self, cycle_when_armed) -> None:
            # A new cycle means the next request's headers came in time.
            waiting = self.cycle is cycle_when_armed and (
                self.cycle is None or self.cycle.response_complete)
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_config(app, header_timeout_s: float = 10.0,
                   keep_alive_s: int = 5, max_connections: int = 256,
                   **options) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with the guards above.

    Args:
        app: The ASGI app.
        header_timeout_s (float): Most seconds for a request's headers.
        keep_alive_s (int): Most seconds an idle connection stays open.
        max_connections (int): Most open connections; past it new ones are
            closed at once, and uvicorn's ``limit_concurrency`` answers 503.
        **options: Other ``uvicorn.Config`` arguments (``log_level``).
    """
    if header_timeout_s <= 0 or max_connections < 1:
        raise ValueError('header_timeout_s must be > 0 and max_connections '
                         f'>= 1; got {header_timeout_s}, {max_connections}.')
    return uvicorn.Config(
        app, http=guarded_h11(header_timeout_s, max_connections),
        timeout_keep_alive=keep_alive_s, limit_concurrency=max_connections,
        # A request line or header block over 64 KiB is refused by h11.
        h11_max_incomplete_event_size=64 * 1024, **options)
