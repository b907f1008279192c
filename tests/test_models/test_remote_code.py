"""A model folder that ships its own python code is not run by default:
``HFCausalLM`` and ``PretrainedTokenizer`` leave ``trust_remote_code`` off."""
import json
from pathlib import Path

import pytest

from mmllava.registry import MODELS, TOKENIZERS


@pytest.fixture
def folder_with_code(tmp_path) -> tuple[Path, Path]:
    """A folder whose config maps to a module that, when imported, creates
    ``marker``."""
    marker = tmp_path / 'code_ran'
    folder = tmp_path / 'remote_code_llm'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps(dict(
        model_type='shipped_with_code',
        auto_map=dict(AutoConfig='configuration_shipped.ShippedConfig',
                      AutoModelForCausalLM='modeling_shipped.ShippedModel',
                      AutoTokenizer=['tokenization_shipped.ShippedTokenizer',
                                     None]))))
    code = f'import os\nos.makedirs({str(marker)!r}, exist_ok=True)\n'
    for module in ('configuration_shipped', 'modeling_shipped',
                   'tokenization_shipped'):
        (folder / f'{module}.py').write_text(code)
    (folder / 'tokenizer_config.json').write_text(json.dumps(dict(
        auto_map=dict(AutoTokenizer=['tokenization_shipped.ShippedTokenizer',
                                     None]))))
    return folder, marker


def test_llm_folder_code_is_not_run(folder_with_code):
    folder, marker = folder_with_code
    with pytest.raises(Exception) as info:
        MODELS.build(dict(type='HFCausalLM', pretrained=str(folder)))
    assert 'trust_remote_code' in str(info.value)
    assert not marker.exists()
    # Non-vacuous: opting in imports the folder's module (which then lacks
    # the classes it names).
    with pytest.raises(Exception):
        MODELS.build(dict(type='HFCausalLM', pretrained=str(folder),
                          trust_remote_code=True))
    assert marker.is_dir()


def test_tokenizer_folder_code_is_not_run(folder_with_code):
    folder, marker = folder_with_code
    with pytest.raises(Exception) as info:
        TOKENIZERS.build(dict(type='PretrainedTokenizer',
                              pretrained=str(folder)))
    assert 'trust_remote_code' in str(info.value)
    assert not marker.exists()
