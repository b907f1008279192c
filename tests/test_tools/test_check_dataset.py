"""``tools/data/check_dataset.py``: settings from a config (the image-token
count derived from its tower), the printed report and summary, ``--out``
and the exit status."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from PIL import Image
from transformers import CLIPVisionConfig

from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/data/check_dataset.py'


def load_tool():
    spec = importlib.util.spec_from_file_location('check_dataset', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(record_id: str, image: str = 'photo.png',
           answer: str = 'A grey square.') -> dict:
    return dict(id=record_id, image=image, conversations=[
        {'from': 'human', 'value': '<image>\nWhat is it?'},
        {'from': 'gpt', 'value': answer}])


def write_config(path: Path, workspace: Path, tokenizer_folder: str,
                 model: Optional[dict] = None, step_extra: str = '') -> str:
    """A config whose TokenizeConversation truncates, with ``model`` (if
    given) and ``step_extra`` (more arguments of the step) written in."""
    model_line = '' if model is None else f'model = {model!r}\n'
    path.write_text(model_line + f'''
train_dataloader = dict(dataset=dict(
    type='LLaVADataset', data_file='unused.json',
    image_folder={str(workspace / 'images')!r},
    pipeline=[
        dict(type='LoadImage'),
        dict(type='TokenizeConversation',
             tokenizer=dict(type='PretrainedTokenizer',
                            pretrained={tokenizer_folder!r}),
             template='vicuna_v1', max_length=128{step_extra}),
    ]))
''')
    return str(path)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, tokenizer_folder) -> Path:
    """Images, a clean and a broken data file, and a config whose dataset
    names the image folder and tokenizes with the test tokenizer."""
    root = tmp_path_factory.mktemp('check_dataset')
    (root / 'images').mkdir()
    Image.new('RGB', (32, 24), (128, 128, 128)).save(root / 'images/photo.png')
    (root / 'images/text.jpg').write_text('not an image')
    (root / 'clean.json').write_text(json.dumps(
        [record('a'), record('b')]))
    (root / 'broken.jsonl').write_text('\n'.join(json.dumps(line) for line in [
        record('a'), record('b', image='missing.png'),
        record('c', image='text.jpg'), record('a'),
        record('d', answer=' '.join(['long'] * 150))]))
    write_config(root / 'config.py', root, tokenizer_folder,
                 step_extra=', num_image_tokens=16')
    return root


def test_clean_file_exits_0(workspace, capsys):
    status = load_tool().main([str(workspace / 'clean.json'), '--config',
                               str(workspace / 'config.py')])
    assert status == 0
    assert '2 records, 0 bad, 0 problems' in capsys.readouterr().out


def test_broken_file_report_and_out(workspace, capsys):
    out = workspace / 'report.json'
    status = load_tool().main([str(workspace / 'broken.jsonl'), '--config',
                               str(workspace / 'config.py'), '--workers',
                               '2', '--out', str(out)])
    assert status == 1
    printed = capsys.readouterr().out
    assert "record 1 (id='b'): missing_file: " in printed
    assert '5 records, 4 bad, 4 problems' in printed
    report = json.loads(out.read_text())
    # The image folder, max_length and num_image_tokens came from the config.
    assert report['image_folder'] == str(workspace / 'images')
    assert (report['max_length'], report['num_image_tokens']) == (128, 16)
    assert report['summary'] == dict(duplicate_id=1, over_max_length=1,
                                     missing_file=1, not_an_image=1)
    assert [(p['index'], p['id'], p['code']) for p in report['problems']] == [
        (1, 'b', 'missing_file'), (2, 'c', 'not_an_image'),
        (3, 'a', 'duplicate_id'), (4, 'd', 'over_max_length')]


def test_command_line_overrides_config(workspace, capsys):
    status = load_tool().main([
        str(workspace / 'clean.json'), '--config',
        str(workspace / 'config.py'), '--max-length', '20'])
    assert status == 1
    assert 'truncated_to_nothing' in capsys.readouterr().out


def test_the_image_count_is_derived_from_the_tower(
        workspace, tmp_path, tokenizer_folder, capsys):
    CLIPVisionConfig(image_size=48, patch_size=16).save_pretrained(
        tmp_path / 'tower')
    encoder = dict(type='CLIPVisionEncoder',
                   pretrained=str(tmp_path / 'tower'))
    clean, out = str(workspace / 'clean.json'), tmp_path / 'out.json'
    tool = load_tool()
    config = write_config(tmp_path / 'config.py', workspace,
                          tokenizer_folder,
                          dict(type='LLaVA', vision_encoder=encoder))
    assert tool.main([clean, '--config', config, '--out', str(out)]) == 0
    assert json.loads(out.read_text())['num_image_tokens'] == 9
    # Without the tower the error names the step's key and the folder.
    config = write_config(tmp_path / 'no_tower.py', workspace,
                          tokenizer_folder,
                          dict(type='LLaVA', vision_encoder=dict(
                              encoder, pretrained=str(tmp_path / 'none'))))
    assert tool.main([clean, '--config', config]) == 2
    assert 'train_dataloader.dataset.pipeline.1.num_image_tokens is ' \
        f'derived from the tower\'s config.json, but {tmp_path}/none/' \
        'config.json is not here' in capsys.readouterr().err
    # An AnyRes model counts each image from its size: one count is asked.
    config = write_config(tmp_path / 'anyres.py', workspace,
                          tokenizer_folder,
                          dict(type='LLaVA', vision_encoder=encoder,
                               image_aspect_ratio='anyres',
                               image_grid_pinpoints=[(48, 96)]))
    assert tool.main([clean, '--config', config]) == 2
    assert 'give --num-image-tokens' in capsys.readouterr().err
    assert tool.main([clean, '--config', config,
                      '--num-image-tokens', '9']) == 0


def test_cannot_run_exits_2(workspace, capsys):
    tool = load_tool()
    assert tool.main([str(workspace / 'nowhere.json'), '--image-folder',
                      str(workspace)]) == 2
    assert 'nowhere.json' in capsys.readouterr().err
    assert tool.main([str(workspace / 'clean.json')]) == 2
    assert '--image-folder' in capsys.readouterr().err


@pytest.mark.slow
def test_as_a_command(workspace):
    """Run as a user would: the exit status and the summary."""
    run = subprocess.run(
        [sys.executable, str(TOOL), 'broken.jsonl', '--image-folder',
         'images'], cwd=workspace, env=dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=scaled_timeout(120))
    assert run.returncode == 1, run.stdout
    # Without a tokenizer, lengths are not checked.
    assert '5 records, 3 bad, 3 problems' in run.stdout
    assert 'missing_file' in run.stdout and 'over_max_length' not in run.stdout
