"""Fixtures of the captioning tests: a secret API key in the environment, a
folder of small images (each a different colour, so a scripted server can
tell them apart from the pixels it receives) and a replay server captioning
them."""
import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from mmllava.testing.replay_server import ReplayServer, Reply

KEY_ENV = 'MMLLAVA_TEST_API_KEY'
KEY = 'sk-test-5b2e91aa-do-not-leak'


@pytest.fixture
def api_key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def colour_of(index: int) -> tuple[int, int, int]:
    return (index * 20, 200 - index * 10, 90)


def write_images(folder: Path, count: int) -> list[str]:
    """``count`` images in ``folder`` (PNG and JPEG, some in a subfolder),
    image ``i`` filled with :func:`colour_of(i) <colour_of>`; their paths
    relative to ``folder``, sorted."""
    names = []
    for index in range(count):
        suffix = '.png' if index % 2 == 0 else '.jpg'
        name = f'sub/img-{index:02d}{suffix}' if index % 3 == 2 \
            else f'img-{index:02d}{suffix}'
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (12, 9), colour_of(index)).save(path)
        names.append(name)
    return sorted(names)


def decode_data_url(url: str) -> Image.Image:
    """The image a ``data:image/...;base64,...`` URL holds."""
    header, encoded = url.split(',', 1)
    assert header.startswith('data:image/') and header.endswith(';base64')
    return Image.open(io.BytesIO(base64.b64decode(encoded)))


def image_url_of(body: dict) -> str:
    """The data URL of a vision request."""
    parts = body['messages'][-1]['content']
    return [part['image_url']['url'] for part in parts
            if part['type'] == 'image_url'][0]


def index_of(body: dict) -> int:
    """Which :func:`write_images` image a request carries, from its pixels
    (JPEG shifts colours a little, so the nearest red wins)."""
    image = decode_data_url(image_url_of(body)).convert('RGB')
    return round(image.getpixel((0, 0))[0] / 20)


def caption_reply(body: dict, index: int = 0) -> Reply:
    """A caption naming the image's index."""
    return Reply(f'  A flat picture, image number {index_of(body)}.  ')


@pytest.fixture
def images(tmp_path) -> Path:
    """A folder of six images (see :func:`write_images`)."""
    folder = tmp_path / 'images'
    write_images(folder, 6)
    return folder


@pytest.fixture
def helpers():
    """The module's helpers, for the test files (conftest modules are not
    importable under --import-mode=importlib)."""
    return dict(write_images=write_images, colour_of=colour_of,
                decode_data_url=decode_data_url, image_url_of=image_url_of,
                index_of=index_of, caption_reply=caption_reply)


@pytest.fixture
def caption_server():
    """A replay server captioning every image."""
    with ReplayServer(caption_reply) as server:
        yield server
