"""The apis' models, built in the ``model_workspace`` folder (tests/conftest.py)
from its checkpoint."""
from pathlib import Path

import pytest

from mmllava.apis import get_model

#: Short answers keep generation fast.
MAX_NEW_TOKENS = 6


@pytest.fixture
def in_workspace(model_workspace, monkeypatch) -> Path:
    """Run in the workspace: the configs name their weights relative to the
    working directory."""
    monkeypatch.chdir(model_workspace)
    return model_workspace


def build_in(root: Path, name: str):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return get_model(name, pretrained='ft.pth', device='cpu',
                         generation_cfg=dict(max_new_tokens=MAX_NEW_TOKENS))


@pytest.fixture(scope='session')
def vqa_model(model_workspace):
    """``llava-tiny_demo_vqa`` with the checkpoint, answering in at most
    :data:`MAX_NEW_TOKENS` tokens."""
    return build_in(model_workspace, 'llava-tiny_demo_vqa')


@pytest.fixture(scope='session')
def caption_model(model_workspace):
    return build_in(model_workspace, 'llava-tiny_demo_caption')
