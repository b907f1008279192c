"""A served model (``model_workspace``'s checkpoint) and servers running in
threads of the test process."""
import base64
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import uvicorn

from mmllava.apis import get_model
from mmllava.serving import ServerSettings, build_app
from mmllava.serving.server import uvicorn_config

MODEL_NAME = 'llava-tiny_demo_vqa'


@pytest.fixture(scope='session')
def serving_model(model_workspace):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(model_workspace)
        return get_model(MODEL_NAME, pretrained='ft.pth', device='cpu')


@pytest.fixture(scope='session')
def start_server(model_workspace) -> Callable:
    """``start(model, **settings)`` serves the model on an ephemeral port of
    127.0.0.1 and returns ``(base_url, ChatServer)``; every server stops at
    the end of the session."""
    running = []

    def start(model, **settings):
        # The config names the image processor's folder relative to the
        # workspace; the app reads it once, here.
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(model_workspace)
            app = build_app(model, ServerSettings(model_name=MODEL_NAME,
                                                  **settings))
        server = uvicorn.Server(uvicorn_config(app, log_level='warning'))
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        thread = threading.Thread(target=server.run,
                                  kwargs=dict(sockets=[sock]), daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, \
                'the server did not start'
            time.sleep(0.02)
        running.append((server, thread))
        port = sock.getsockname()[1]
        return f'http://127.0.0.1:{port}', app.state.server

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope='session')
def photo_url(model_workspace) -> Callable[[str], str]:
    """``photo_url('astronaut')``: a workspace photo as a data URL."""
    def url(name: str) -> str:
        data = Path(model_workspace, f'{name}.png').read_bytes()
        return 'data:image/png;base64,' + base64.b64encode(data).decode()
    return url


@pytest.fixture
def in_workspace(model_workspace, monkeypatch) -> Path:
    """Run in the workspace: ``ChatSession`` and ``inference_model`` read
    the config's image processor folder relative to it at every call."""
    monkeypatch.chdir(model_workspace)
    return model_workspace
