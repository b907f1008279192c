import pytest

from mmllava.registry import MODELS
from mmllava.utils.files import require_local_folder


def test_existing_folder_passes(tmp_path):
    assert require_local_folder(str(tmp_path), 'LLM') == str(tmp_path)


@pytest.mark.parametrize('cfg,what', [
    (dict(type='HFCausalLM', pretrained='checkpoints/no-such-llm'), 'LLM'),
    (dict(type='CLIPVisionEncoder', pretrained='checkpoints/no-such-clip'),
     'Vision encoder'),
])
def test_missing_weights_name_the_folder(cfg, what):
    # A hub-style id or a typo must not turn into a download attempt.
    with pytest.raises(FileNotFoundError,
                       match=f"{what} folder not found: '{cfg['pretrained']}'"):
        MODELS.build(cfg)
