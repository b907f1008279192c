"""What several converter tests share: the tiny models of ``test_llava_hf.py``
(LLaVA-1.5), ``test_llava_next_hf.py`` (AnyRes) and
``../test_models/test_llava_onevision.py`` (AnyRes with ``anyres_max``),
their llava-hf exports, and how transformers loads an export."""
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

from mmllava.converters.llava_hf import export_model


def sibling_module(name: str, folder: str = 'test_converters') -> ModuleType:
    """A test file of ``tests/<folder>`` as a module (test files are no
    package, so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[1] / folder / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def llava_tests() -> ModuleType:
    return sibling_module('test_llava_hf')


@pytest.fixture(scope='session')
def llava_next_tests() -> ModuleType:
    return sibling_module('test_llava_next_hf')


@pytest.fixture(scope='session')
def onevision_tests() -> ModuleType:
    return sibling_module('test_llava_onevision', 'test_models')


@pytest.fixture(scope='session')
def load_export() -> Callable:
    """``load(model_class, folder)``: ``model_class.from_pretrained``,
    which must read every weight of the folder and leave none of the model
    unread; in eval mode."""

    def load(model_class, folder: Path):
        model, info = model_class.from_pretrained(folder,
                                                  output_loading_info=True)
        assert not any(info.values()), info
        return model.eval()

    return load


@pytest.fixture(scope='session')
def llava_next_model(llava_next_tests, tokenizer_folder):
    return llava_next_tests.build_model(tokenizer_folder)


@pytest.fixture(scope='session')
def llava_next_export(llava_next_model, tokenizer_folder,
                      tmp_path_factory) -> Path:
    """``test_llava_next_hf.py``'s model as a llava-hf folder."""
    out = tmp_path_factory.mktemp('llava_next_export')
    export_model(llava_next_model, str(out), tokenizer_dir=tokenizer_folder)
    return out
