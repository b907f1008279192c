"""What several converter tests share: the tiny models of ``test_llava_hf.py``
(LLaVA-1.5) and ``test_llava_next_hf.py`` (AnyRes), and their llava-hf
exports."""
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from mmllava.converters.llava_hf import export_model


def sibling_module(name: str) -> ModuleType:
    """A test file of this folder as a module (test files are no package,
    so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).with_name(f'{name}.py'))
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
def llava_next_model(llava_next_tests, tokenizer_folder):
    return llava_next_tests.build_model(tokenizer_folder)


@pytest.fixture(scope='session')
def llava_next_export(llava_next_model, tokenizer_folder,
                      tmp_path_factory) -> Path:
    """``test_llava_next_hf.py``'s model as a llava-hf folder."""
    out = tmp_path_factory.mktemp('llava_next_export')
    export_model(llava_next_model, str(out), tokenizer_dir=tokenizer_folder)
    return out
