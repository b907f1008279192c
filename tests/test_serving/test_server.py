"""``mmllava/serving/server.py``: uvicorn closes connections whose headers
never finish, and connections past the cap (a trivial app, no model)."""
import socket
import threading
import time

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mmllava.serving.server import uvicorn_config

#: Generous: the check is that the server closes at all, not how fast.
WAIT_S = 30


async def hello(request):
    return PlainTextResponse('hello')


@pytest.fixture(scope='module')
def address():
    app = Starlette(routes=[Route('/', hello)])
    server = uvicorn.Server(uvicorn_config(
        app, header_timeout_s=1.0, max_connections=3, log_level='warning'))
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    thread = threading.Thread(target=server.run,
                              kwargs=dict(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    yield sock.getsockname()
    server.should_exit = True
    thread.join(10)


def closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closes the connection (reads until it does)."""
    connection.settimeout(WAIT_S)
    try:
        while data := connection.recv(4096):
            if b'hello' in data:
                return False
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@pytest.mark.slow
def test_headers_that_never_finish_are_cut_off(address):
    with socket.create_connection(address) as half_open:
        half_open.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n')
        assert closed_by_server(half_open)
    with socket.create_connection(address) as idle:
        assert closed_by_server(idle)
    # A whole request is answered.
    with socket.create_connection(address) as normal:
        normal.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        assert not closed_by_server(normal)


def test_connections_past_the_cap_are_closed(address):
    held = [socket.create_connection(address) for _ in range(3)]
    try:
        with socket.create_connection(address) as extra:
            extra.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
            assert closed_by_server(extra)
    finally:
        for connection in held:
            connection.close()
