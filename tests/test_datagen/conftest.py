"""Fixtures of the data-generation tests: a secret API key in the
environment, a small COCO-format annotation pair, image contexts with their
image files, and the scripted replay server."""
import json
from pathlib import Path

import pytest
from PIL import Image

from mmllava.testing.replay_server import ReplayServer, demo_reply

KEY_ENV = 'MMLLAVA_TEST_API_KEY'
KEY = 'sk-test-8d1f0c2e-do-not-leak'


@pytest.fixture
def api_key(monkeypatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


@pytest.fixture
def coco_files(tmp_path) -> tuple[Path, Path]:
    """Captions and instances of three images; image 3 has no caption."""
    images = [dict(id=1, file_name='000000000001.jpg', width=640, height=480),
              dict(id=2, file_name='000000000002.jpg', width=500, height=400),
              dict(id=3, file_name='000000000003.jpg', width=100, height=100)]
    captions = dict(images=images, annotations=[
        dict(id=10, image_id=1, caption='A dog runs on grass.'),
        dict(id=11, image_id=2, caption=' Two cups on a table. '),
        dict(id=12, image_id=1, caption='A brown dog in a park.')])
    instances = dict(images=images, categories=[
        dict(id=18, name='dog'), dict(id=47, name='cup')], annotations=[
        dict(id=20, image_id=1, category_id=18, bbox=[64, 48, 256, 192]),
        dict(id=21, image_id=2, category_id=47, bbox=[450, 300, 60, 120]),
        dict(id=22, image_id=1, category_id=18, bbox=[101, 37, 200, 150]),
        dict(id=23, image_id=3, category_id=47, bbox=[0, 0, 10, 10])])
    (tmp_path / 'captions.json').write_text(json.dumps(captions))
    (tmp_path / 'instances.json').write_text(json.dumps(instances))
    return tmp_path / 'captions.json', tmp_path / 'instances.json'


def write_contexts(folder: Path, count: int) -> Path:
    """``count`` simple-json contexts (ids ``img-00`` ...) and their image
    files in ``folder/images``; each caption names its image id, so a
    scripted server can tell the images apart."""
    (folder / 'images').mkdir(exist_ok=True)
    records = []
    for index in range(count):
        image_id = f'img-{index:02d}'
        Image.new('RGB', (8, 6), (index * 10, 80, 120)).save(
            folder / 'images' / f'{image_id}.png')
        records.append(dict(
            id=image_id, image=f'{image_id}.png',
            captions=[f'Scene {image_id} has a red ball on a table.'],
            boxes=[dict(category='sports ball',
                        bbox=[0.1, 0.2, 0.3, 0.4])]))
    path = folder / 'contexts.json'
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def demo_server():
    """A replay server answering every generation request well."""
    with ReplayServer(demo_reply) as server:
        yield server


@pytest.fixture
def make_contexts(tmp_path):
    """``make_contexts(count)`` -> the path of :func:`write_contexts`'s
    file in this test's folder."""
    return lambda count: write_contexts(tmp_path, count)
