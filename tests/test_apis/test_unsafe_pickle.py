"""``get_model`` refuses a checkpoint that would run code when unpickled,
and loads it when ``allow_unsafe_pickle=True``."""
import os

import pytest
import torch

from mmllava.apis import get_model
from mmllava.utils.safe_load import ALLOW_UNSAFE_PICKLE_ENV, UnsafePickleError


class MakesADirectory:

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path, )


@pytest.mark.slow
def test_get_model_refuses_then_loads_when_allowed(in_workspace, tmp_path,
                                                   monkeypatch):
    monkeypatch.delenv(ALLOW_UNSAFE_PICKLE_ENV, raising=False)
    checkpoint = torch.load(in_workspace / 'ft.pth', weights_only=True)
    marker = tmp_path / 'code_ran'
    checkpoint['meta'] = MakesADirectory(str(marker))
    hostile = tmp_path / 'hostile.pth'
    torch.save(checkpoint, hostile)

    with pytest.raises(UnsafePickleError, match='allow_unsafe_pickle=True'):
        get_model('llava-tiny_demo_vqa', pretrained=str(hostile),
                  device='cpu')
    assert not marker.exists()

    with pytest.warns(UserWarning, match='full unpickling'):
        model = get_model('llava-tiny_demo_vqa', pretrained=str(hostile),
                          device='cpu', allow_unsafe_pickle=True)
    assert marker.is_dir()
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint['state_dict'][key]), key
