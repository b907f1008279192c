"""Fixtures shared by the test modules."""
import subprocess
import time
from pathlib import Path
from typing import Callable

import mmengine
import pytest
import torch
from PIL import Image
from skimage import data as photos
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from mmllava.apis import get_model
from mmllava.setup_env import register_all_modules

from mmllava.testing.demo.assets import (save_random_language_model,
                                         save_random_vision_encoder)
from mmllava.testing.demo.eval_files import write_eval_files
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset
from mmllava.testing.demo.tokenizer import write_llama_tokenizer

# Once for every test, as the tools do.
register_all_modules()
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


def nested_tensors(tree, prefix: str = '') -> dict:
    """Every tensor in nested dicts and lists, by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = (tree.items() if isinstance(tree, dict) else enumerate(tree)
             if isinstance(tree, (list, tuple)) else ())
    found = {}
    for key, value in items:
        found.update(nested_tensors(value, f'{prefix}/{key}'))
    return found


@pytest.fixture(scope='session')
def differing_tensors() -> Callable:
    """``differ(expected, actual)``: the paths of the tensors in two
    nested checkpoint parts (dicts and lists) that are not bit-exact
    equal; both must hold tensors at the same paths."""

    def differ(expected, actual) -> list:
        expected, actual = nested_tensors(expected), nested_tensors(actual)
        assert expected.keys() == actual.keys()
        return [key for key, value in expected.items()
                if not torch.equal(value, actual[key])]

    return differ


@pytest.fixture(scope='session')
def kill_after_records() -> Callable:
    """``kill(command, env, out, timeout)``: start ``command``, SIGKILL it
    once ``out`` holds 3 records (no cleanup runs), and return the process
    and its output."""

    def kill(command: list, env: dict, out: Path,
             timeout: float) -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while not (out.exists() and out.read_text().count('\n') >= 3):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, \
                f'no records in {timeout:.0f} s'
            time.sleep(0.02)
        process.kill()
        return process, process.communicate()[0]

    return kill


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def demo_workspace(tmp_path_factory) -> Path:
    """A folder laid out as the demo configs expect (see
    :func:`make_demo_workspace`). Tests write only their own work dirs in it.
    """
    return make_demo_workspace(tmp_path_factory.mktemp('demo_workspace'))


def make_demo_workspace(root: Path) -> Path:
    """Lay out ``root`` as the demo configs expect: data/demo (24 training
    scenes, 4 held-out ones and their test files in data/demo/eval) and
    checkpoints/demo/{tokenizer,vision_encoder,llm}.

    The LLM is random-init: what training and testing do with it does not
    depend on the demo's language pretraining, which would take minutes.
    """
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


#: Smaller than the demo's own model: the apis tests only run it.
SMALL_VISION = dict(hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=4,
                    image_size=48, patch_size=8)
SMALL_LLM = dict(model_type='llama', vocab_size=32000, hidden_size=64,
                 intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=512, bos_token_id=1, eos_token_id=2)


def make_small_demo_weights(root: Path) -> None:
    """checkpoints/demo/{tokenizer,vision_encoder,llm} under ``root``."""
    demo = mmengine.Config.fromfile(
        str(REPO / 'configs/llava/_base_/models/llava-tiny_demo.py')).demo
    write_llama_tokenizer(str(root / 'checkpoints/demo/tokenizer'))
    save_random_vision_encoder(SMALL_VISION, demo.image_processor,
                               str(root / 'checkpoints/demo/vision_encoder'))
    # A wide LM head: greedy decoding picks clear winners.
    save_random_language_model(SMALL_LLM, str(root / 'checkpoints/demo/llm'))


@pytest.fixture(scope='session')
def model_workspace(tmp_path_factory) -> Path:
    """The demo's weight layout with small random weights (a wide LM head),
    a checkpoint (``ft.pth``) whose weights differ from the folders' (a
    trained projector and LLM), and photos."""
    root = tmp_path_factory.mktemp('apis_workspace')
    make_small_demo_weights(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        model = get_model('llava-tiny_demo_vqa', device='cpu')
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.projector.parameters():
            parameter.normal_(0, 0.5)
        norm = model.llm.get_decoder().norm.weight
        norm.mul_(1 + torch.rand_like(norm))
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=1)),
               root / 'ft.pth')
    for name in ('astronaut', 'coffee', 'chelsea', 'rocket'):
        Image.fromarray(getattr(photos, name)()).save(root / f'{name}.png')
    return root
