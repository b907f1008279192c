"""A llava-hf export read by transformers 4.x, as many serving stacks still
run it: the same logits as transformers 5 gives for the export (which
``test_llava_hf.py`` and ``test_llava_next_hf.py`` hold equal to mmllava's),
for a LLaVA-1.5 whose LLM has a RoPE theta other than 4.x's default and for
an AnyRes model (``LlavaNextForConditionalGeneration``) on a photo that is
not square. Both sides build the class that ``config.json``'s
``architectures`` names, as vLLM and SGLang do.

transformers 4.57.1 (with its tokenizers and huggingface-hub) is installed
into a folder of its own and run in a subprocess beside the project's torch.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from skimage import data as photos
from transformers import AutoConfig, AutoProcessor

from mmllava.converters.llava_hf import export_model
from mmllava.testing.timeouts import scaled_timeout

pytestmark = pytest.mark.slow

#: The 4.x stack checked, as pip pins it.
TRANSFORMERS_4 = ('transformers==4.57.1', 'tokenizers==0.22.1',
                  'huggingface-hub==0.36.0')
PROMPT = 'USER: <image>\nWhat is in the picture? ASSISTANT:'

#: Run with the 4.x stack first on the path: the logits for PROMPT and the
#: image, and how the folder loaded, saved for the test to compare.
READ_WITH_4 = '''
import sys
import torch, transformers
from PIL import Image
from transformers import AutoConfig, AutoProcessor
folder, image, prompt, out = sys.argv[1:]
assert transformers.__version__.startswith('4.'), transformers.__version__
architecture = AutoConfig.from_pretrained(folder).architectures[0]
processor = AutoProcessor.from_pretrained(folder)
model, info = getattr(transformers, architecture).from_pretrained(
    folder, output_loading_info=True)
inputs = processor(images=Image.open(image), text=prompt,
                   return_tensors='pt')
with torch.no_grad():
    logits = model.eval()(**inputs).logits[0]
torch.save(dict(logits=logits, input_ids=inputs['input_ids'][0],
                architecture=architecture, processor=type(processor).__name__,
                loading={key: sorted(map(str, value))
                         for key, value in info.items()},
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
def export(llava_tests, tokenizer_folder, tmp_path_factory) -> Path:
    """A tiny LLaVA whose Llama has RoPE theta 500000 (Llama-3's)."""
    # test_llava_hf.py's model (the same export checked against transformers
    # 5 there).
    model = llava_tests.build_model(tokenizer_folder,
                                    llm=dict(rope_theta=500000.0))
    assert model.llm.config.rope_parameters['rope_theta'] == 500000.0
    out = tmp_path_factory.mktemp('export')
    export_model(model, str(out), tokenizer_dir=tokenizer_folder)
    return out


def read_with_4(transformers4: Path, folder: Path, tmp_path: Path,
                photo: str = 'astronaut') -> dict:
    image = tmp_path / f'{photo}.png'
    Image.fromarray(getattr(photos, photo)()).save(image)
    out = tmp_path / 'logits.pt'
    run = subprocess.run(
        [sys.executable, '-c', READ_WITH_4, str(folder), str(image), PROMPT,
         str(out)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(transformers4)),
        timeout=scaled_timeout(300))
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(out, weights_only=True)


def logits_with_5(folder: Path, photo: str = 'astronaut'
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    architecture = AutoConfig.from_pretrained(folder).architectures[0]
    processor = AutoProcessor.from_pretrained(folder)
    model = getattr(transformers, architecture).from_pretrained(folder)
    inputs = processor(images=Image.fromarray(getattr(photos, photo)()),
                       text=PROMPT, return_tensors='pt')
    with torch.no_grad():
        return model.eval()(**inputs).logits[0], inputs['input_ids'][0]


def assert_read_alike(read: dict, expected: torch.Tensor,
                      input_ids: torch.Tensor, architecture: str) -> float:
    """4.x built ``architecture`` and its processor from the folder, with
    every weight and no other, and gave 5's ids and 5's logits; returns the
    largest logit difference."""
    assert read['architecture'] == architecture
    assert read['processor'] == architecture.replace(
        'ForConditionalGeneration', 'Processor')
    assert not any(read['loading'].values()), read['loading']
    assert torch.equal(read['input_ids'], input_ids)
    diff = (read['logits'] - expected).abs().max().item()
    assert diff <= 1e-4, f'max abs logit difference {diff}'
    return diff


def test_transformers4_gives_the_logits_of_transformers5(
        transformers4, export, tmp_path):
    read = read_with_4(transformers4, export, tmp_path)
    expected, input_ids = logits_with_5(export)
    assert read['rope_theta'] == 500000.0
    diff = assert_read_alike(read, expected, input_ids,
                             'LlavaForConditionalGeneration')
    print(f'Llava: max abs logit difference 4.x - 5 {diff:.3g}')


def test_transformers4_reads_the_llava_next_export(
        transformers4, llava_next_export, llava_next_model, tmp_path):
    """The photo (451 x 300) takes two tiles and an unpadded grid: 4.x's
    processor must count the image tokens mmllava's model makes, and its
    model merge the tiles and ``image_newline`` as 5's does."""
    read = read_with_4(transformers4, llava_next_export, tmp_path, 'chelsea')
    expected, input_ids = logits_with_5(llava_next_export, 'chelsea')
    image_token = json.loads((llava_next_export / 'config.json').read_text())[
        'image_token_index']
    count = int((input_ids == image_token).sum())
    assert count == llava_next_model.image_token_count(
        photos.chelsea().shape[:2])
    diff = assert_read_alike(read, expected, input_ids,
                             'LlavaNextForConditionalGeneration')
    print(f'LlavaNext: {count} image tokens, max abs logit difference '
          f'4.x - 5 {diff:.3g}')


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
