"""Fixtures shared by the test modules."""
import pytest
import torch

from mmllava.demo.tokenizer import write_llama_tokenizer
from mmllava.models.tokenizer import build_tokenizer


@pytest.fixture(scope='session')
def tokenizer_folder(tmp_path_factory) -> str:
    """The real LLaMA-format tokenizer (mistral-common wheel) as a folder."""
    return write_llama_tokenizer(str(tmp_path_factory.mktemp('tokenizer')))


@pytest.fixture(scope='session')
def tokenizer_cfg(tokenizer_folder) -> dict:
    return dict(type='PretrainedTokenizer', pretrained=tokenizer_folder)


@pytest.fixture(scope='session')
def tokenizer(tokenizer_cfg):
    """Built once: loading the sentencepiece model is the slow part, and the
    model and the transforms take a built tokenizer as well as a config."""
    return build_tokenizer(tokenizer_cfg)


@pytest.fixture(scope='module')
def one_thread():
    """For modules of tiny tensors: extra threads cost more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
