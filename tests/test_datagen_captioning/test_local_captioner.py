"""The local-model path: a small random captioner (``model_workspace``,
tests/conftest.py) captions photos in batches exactly as it captions them one
at a time, through the tool as through the library."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from mmllava.apis import batch_captioner, get_model, inference_model
from mmllava.datagen.captioning import (LOCAL_PROMPT, caption_with_model,
                                        draw_instruction, list_images)
from mmllava.datagen.output import AppendOnlyJsonl

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/data/caption_images.py'
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')
#: Short captions keep generation fast.
MAX_NEW_TOKENS = 6


@pytest.fixture(scope='module', autouse=True)
def in_workspace(model_workspace):
    """Run in the workspace: the configs name their weights (and the test
    pipeline its image processor) relative to the working directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(model_workspace)
        yield model_workspace


@pytest.fixture(scope='module')
def photo_folder(model_workspace, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('photos')
    for name in PHOTOS:
        shutil.copy(model_workspace / f'{name}.png', folder / f'{name}.png')
    (folder / 'broken.png').write_bytes(b'')
    return folder


@pytest.fixture(scope='module')
def captioner():
    return get_model('llava-tiny_demo_caption', pretrained='ft.pth',
                     device='cpu')


@pytest.fixture(scope='module')
def alone(captioner, photo_folder) -> dict:
    """Each photo's greedy caption, asked alone (the reference)."""
    return {f'{name}.png': inference_model(
        captioner, str(photo_folder / f'{name}.png'), LOCAL_PROMPT,
        max_new_tokens=MAX_NEW_TOKENS)['pred_caption'].strip()
        for name in PHOTOS}


def uncut(caption_batch):
    """``caption_batch`` with its captions taken as finished: the tiny random
    captioner never ends a caption, but batching is what is tested here."""
    return lambda paths, prompt: [str(caption)
                                  for caption in caption_batch(paths, prompt)]


@pytest.mark.slow
def test_batches_caption_as_one_at_a_time(captioner, photo_folder, alone,
                                          tmp_path):
    assert len(set(alone.values())) > 1  # the photos are told apart
    folder, entries = list_images(str(photo_folder))
    failures, done = [], []
    with AppendOnlyJsonl(str(tmp_path / 'out.jsonl')) as writer:
        summary = caption_with_model(
            entries,
            uncut(batch_captioner(captioner, max_new_tokens=MAX_NEW_TOKENS)),
            writer, batch_size=3, seed=2, on_done=lambda: done.append(1),
            on_failure=failures.append, source='tiny captioner')
        records = writer.records
    # broken.png sorts first; the four photos make a batch of 3 and one of 1.
    assert summary.batches == 2 and summary.written == 4
    assert len(done) == 5
    assert [(f.image, f.code) for f in failures] == [('broken.png',
                                                      'not_an_image')]
    assert {r['id']: r['conversations'][1]['value']
            for r in records} == alone
    for record in records:
        assert record['conversations'][0]['value'] == \
            '<image>\n' + draw_instruction(record['image'], 2)
        assert record['source'] == 'tiny captioner'


def test_a_caption_cut_at_the_budget_is_reported_not_written(
        captioner, photo_folder, tmp_path):
    """As the endpoint's finish_reason 'length': the random captioner never
    ends a caption within 6 tokens, so each one is cut."""
    _, entries = list_images(str(photo_folder))
    entries = [entry for entry in entries
               if entry.image in ('astronaut.png', 'chelsea.png')]
    with AppendOnlyJsonl(str(tmp_path / 'out.jsonl')) as writer:
        summary = caption_with_model(
            entries,
            batch_captioner(captioner, max_new_tokens=MAX_NEW_TOKENS),
            writer)
        assert writer.records == []
    assert [(f.image, f.code) for f in summary.failures] == [
        (entry.image, 'caption_cut') for entry in entries]
    assert 'reached the token budget' in summary.failures[0].message


def test_a_vqa_config_is_refused():
    model = get_model('llava-tiny_demo_vqa', device='cpu')
    with pytest.raises(ValueError, match="task 'vqa'"):
        batch_captioner(model)


def test_the_tool_reports_cut_captions_and_keeps_other_sources_apart(
        photo_folder, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('caption_images', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    listing = tmp_path / 'list.txt'
    listing.write_text('coffee.png\nastronaut.png\nrocket.png\n')
    out = tmp_path / 'captions.jsonl'
    # Captions another captioner wrote earlier.
    earlier = {'id': 'coffee.png', 'image': 'coffee.png', 'source':
               'gpt-4o at https://api.example', 'conversations': [
                   {'from': 'human', 'value': '<image>\nDescribe.'},
                   {'from': 'gpt', 'value': 'A cup of coffee.'}]}
    out.write_text(json.dumps(earlier) + '\n')
    command = [
        str(listing), '--image-folder', str(photo_folder), '--out', str(out),
        '--local-model', 'llava-tiny_demo_caption', '--checkpoint', 'ft.pth',
        '--device', 'cpu', '--batch-size', '2', '--max-tokens',
        str(MAX_NEW_TOKENS), '--no-progress']
    assert tool.main(command) == 2
    printed = capsys.readouterr().err
    assert (f'{out} holds captions of another captioner (1 by gpt-4o at '
            'https://api.example); this run captions with '
            'llava-tiny_demo_caption (ft.pth)') in printed
    assert out.read_text() == json.dumps(earlier) + '\n'  # untouched

    status = tool.main([*command, '--overwrite'])
    printed = capsys.readouterr().out
    assert f'set aside as {out}.replaced' in printed
    assert (tmp_path / 'captions.jsonl.replaced').read_text() == \
        json.dumps(earlier) + '\n'
    # The random captioner's captions all reach the budget: reported,
    # listed for the next run, none written.
    assert status == 1
    assert '0 written, 0 done before, 3 failed' in printed
    assert 'caption_cut' in printed and '2 batches' in printed
    assert out.read_text() == ''
    failures = tmp_path / 'captions.failures.jsonl'
    assert len(failures.read_text().splitlines()) == 3
