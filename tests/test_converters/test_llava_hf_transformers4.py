"""A llava-hf export read by transformers 4.x, as many serving stacks still
run it: the same logits as transformers 5 gives for the export (which
``test_llava_hf.py`` holds equal to mmllava's), for an LLM whose RoPE theta
is not 4.x's default.

transformers 4.57.1 (with its tokenizers and huggingface-hub) is installed
into a folder of its own and run in a subprocess beside the project's torch.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data as photos
from transformers import AutoProcessor, LlavaForConditionalGeneration

from mmllava.converters.llava_hf import export_model
from mmllava.testing.timeouts import scaled_timeout

pytestmark = pytest.mark.slow

#: The 4.x stack checked, as pip pins it.
TRANSFORMERS_4 = ('transformers==4.57.1', 'tokenizers==0.22.1',
                  'huggingface-hub==0.36.0')
PROMPT = 'USER: <image>\nWhat is in the picture? ASSISTANT:'

#: Run with the 4.x stack first on the path: the logits for PROMPT and the
#: image, saved for the test to compare.
READ_WITH_4 = '''
import sys
import torch, transformers
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration
folder, image, prompt, out = sys.argv[1:]
assert transformers.__version__.startswith('4.'), transformers.__version__
processor = AutoProcessor.from_pretrained(folder)
model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
inputs = processor(images=Image.open(image), text=prompt,
                   return_tensors='pt')
with torch.no_grad():
    logits = model(**inputs).logits[0]
torch.save(dict(logits=logits, input_ids=inputs['input_ids'][0],
                rope_theta=model.config.text_config.rope_theta), out)
'''


@pytest.fixture(scope='module')
def transformers4(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('transformers4')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                    '--no-deps', '--target', str(folder), *TRANSFORMERS_4],
                   check=True, timeout=scaled_timeout(600))
    return folder


@pytest.fixture(scope='module')
def export(tokenizer_folder, tmp_path_factory) -> Path:
    """A tiny LLaVA whose Llama has RoPE theta 500000 (Llama-3's)."""
    # test_llava_hf.py's model (the same export checked against transformers
    # 5 there); test files are no package, so it is loaded by path.
    spec = importlib.util.spec_from_file_location(
        'test_llava_hf', Path(__file__).with_name('test_llava_hf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build_model(tokenizer_folder,
                               llm=dict(rope_theta=500000.0))
    assert model.llm.config.rope_parameters['rope_theta'] == 500000.0
    out = tmp_path_factory.mktemp('export')
    export_model(model, str(out), tokenizer_dir=tokenizer_folder)
    return out


def read_with_4(transformers4: Path, folder: Path, tmp_path: Path) -> dict:
    image = tmp_path / 'astronaut.png'
    Image.fromarray(photos.astronaut()).save(image)
    out = tmp_path / 'logits.pt'
    run = subprocess.run(
        [sys.executable, '-c', READ_WITH_4, str(folder), str(image), PROMPT,
         str(out)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(transformers4)),
        timeout=scaled_timeout(300))
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(out, weights_only=True)


def logits_with_5(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    processor = AutoProcessor.from_pretrained(folder)
    model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    inputs = processor(images=Image.fromarray(photos.astronaut()),
                       text=PROMPT, return_tensors='pt')
    with torch.no_grad():
        return model(**inputs).logits[0], inputs['input_ids'][0]


def test_transformers4_gives_the_logits_of_transformers5(
        transformers4, export, tmp_path):
    read = read_with_4(transformers4, export, tmp_path)
    expected, input_ids = logits_with_5(export)
    assert read['rope_theta'] == 500000.0
    assert torch.equal(read['input_ids'], input_ids)
    diff = (read['logits'] - expected).abs().max().item()
    assert diff <= 1e-4, f'max abs logit difference {diff}'


def test_without_rope_theta_transformers4_would_be_wrong(
        transformers4, export, tmp_path):
    """The field matters: without it 4.x takes theta 10000."""
    stripped = tmp_path / 'stripped'
    stripped.mkdir()
    for path in export.iterdir():
        (stripped / path.name).symlink_to(path)
    (stripped / 'config.json').unlink()
    config = json.loads((export / 'config.json').read_text())
    del config['text_config']['rope_theta']
    (stripped / 'config.json').write_text(json.dumps(config))
    read = read_with_4(transformers4, stripped, tmp_path)
    expected, _ = logits_with_5(export)
    assert read['rope_theta'] == 10000.0
    assert (read['logits'] - expected).abs().max().item() > 1e-2
