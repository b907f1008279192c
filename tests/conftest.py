"""Fixtures shared by the test modules."""
from pathlib import Path

import mmengine
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from mmllava.demo.assets import save_random_vision_encoder
from mmllava.demo.eval_files import write_eval_files
from mmllava.demo.synthetic_scenes import generate_demo_dataset
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


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def demo_workspace(tmp_path_factory) -> Path:
    """A folder laid out as the demo configs expect: data/demo (24 training
    scenes, 4 held-out ones and their test files in data/demo/eval) and
    checkpoints/demo/{tokenizer,vision_encoder,llm}.

    The LLM is random-init: what training and testing do with it does not
    depend on the demo's language pretraining, which would take minutes.
    Tests write only their own work dirs inside it.
    """
    root = tmp_path_factory.mktemp('demo_workspace')
    demo = mmengine.Config.fromfile(
        str(REPO / 'configs/llava/llava-tiny_demo_pretrain.py')).demo
    generate_demo_dataset(root / 'data/demo', num_train=24, num_eval=4,
                          image_size=demo.image_size)
    write_eval_files(str(root / 'data/demo/eval.json'),
                     str(root / 'data/demo/eval'))
    tokenizer_dir = write_llama_tokenizer(
        str(root / 'checkpoints/demo/tokenizer'))
    save_random_vision_encoder(demo.vision_config, demo.image_processor,
                               str(root / 'checkpoints/demo/vision_encoder'))
    llm_config = dict(demo.llm_config)
    torch.manual_seed(0)
    llm = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(llm_config.pop('model_type'), **llm_config))
    llm.save_pretrained(root / 'checkpoints/demo/llm')
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(
        root / 'checkpoints/demo/llm')
    return root
