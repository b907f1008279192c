"""The stage-2 data variants and the learning-curve tool that trains on
them."""
import json
import random
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.testing.demo.feature_probe import demo_scenes
from mmllava.testing.demo.scene_text import caption
from mmllava.testing.demo.stage2_variants import (SCENE_PREFIX,
                                                  single_question_records,
                                                  text_scene_records,
                                                  write_variant)
from mmllava.testing.demo.synthetic_scenes import (CAPTION_PROMPT,
                                                   SHORT_ANSWER_PROMPT)

TOOL = Path(__file__).parents[2] / 'tools/analysis/demo_learning_curves.py'
KINDS = {'colour', 'shape', 'size', 'position', 'count', 'count_shape',
         'exists'}


def three_shape_scene():
    """A training scene of the demo with three shapes (so every kind,
    relation included, can be asked)."""
    return next(scene for scene in demo_scenes('train', 50, 48)
                if len(scene.objects) == 3)


def test_single_records_hold_one_question_each():
    scene = three_shape_scene()
    records = single_question_records(scene, random.Random(0))
    kinds = [record['id'].split('_', 2)[2] for record in records]
    assert set(kinds) == KINDS | {'relation', 'caption'}
    for record in records:
        human, gpt = record['conversations']
        assert record['image'] == scene.image
        assert human['value'].startswith(IMAGE_PLACEHOLDER + '\n')
        if record['id'].endswith('_caption'):
            assert human['value'].endswith(CAPTION_PROMPT)
            assert gpt['value'] == caption(scene)
        else:
            assert human['value'].endswith(SHORT_ANSWER_PROMPT)
            # A short answer: a word or two, or a number.
            assert len(gpt['value'].split()) <= 2
            assert gpt['value'][0].isupper() or gpt['value'].isdigit()


def test_text_records_write_the_scene_in_place_of_the_image():
    scene = three_shape_scene()
    records = text_scene_records(scene, random.Random(0))
    assert len(records) == len(KINDS) + 1
    for record in records:
        assert 'image' not in record
        human = record['conversations'][0]['value']
        assert human.startswith(f'{SCENE_PREFIX}{caption(scene)}\n')
        assert IMAGE_PLACEHOLDER not in human


def test_variant_file_covers_every_training_scene(tmp_path):
    out_file = tmp_path / 'single.json'
    number = write_variant('single', str(out_file), 6, 48)
    records = json.loads(out_file.read_text())
    assert len(records) == number
    assert {record['image'] for record in records} == {
        f'images/train_{index:05d}.png' for index in range(6)}
    with pytest.raises(ValueError, match="'pairs'.*single"):
        write_variant('pairs', str(out_file), 6, 48)


def test_tool_writes_curves_per_kind(demo_workspace, monkeypatch, capsys):
    out_dir = demo_workspace / 'work_dirs/curves_test'
    monkeypatch.chdir(demo_workspace)
    monkeypatch.setattr(sys, 'argv', [
        str(TOOL), '--data', 'single', '--steps', '4', '--batch-size', '2',
        '--eval-every', '2', '--num-questions', '6', '--warmup', '2',
        '--out', str(out_dir)])
    runpy.run_path(str(TOOL), run_name='__main__')
    curves = json.loads((out_dir / 'curves.json').read_text())
    assert [row['step'] for row in curves['rows']] == [2, 4]
    assert [row['seen'] for row in curves['rows']] == [4, 8]
    for row in curves['rows']:
        accuracy = row['accuracy']
        assert 0 <= accuracy['all'] <= 100
        # The first six held-out questions, one row per kind among them.
        assert set(accuracy) - {'all'} <= KINDS | {'relation'}
    assert Image.open(out_dir / 'curves.png').size == (800, 450)
    printed = capsys.readouterr().out
    assert 'No stage-1 projector' in printed
    assert printed.count('exact match') == 2


def test_tool_trains_another_llm_shape(demo_workspace, monkeypatch, capsys):
    """``--llm-config``: a random-init LLM of another width, with a
    projector made for it (a stage-1 one would not fit)."""
    out_dir = demo_workspace / 'work_dirs/curves_wide_test'
    monkeypatch.chdir(demo_workspace)
    monkeypatch.setattr(sys, 'argv', [
        str(TOOL), '--data', 'text', '--steps', '1', '--batch-size', '2',
        '--num-questions', '4', '--warmup', '1', '--out', str(out_dir),
        '--llm-config', '{"hidden_size": 64, "intermediate_size": 128}'])
    runpy.run_path(str(TOOL), run_name='__main__')
    curves = json.loads((out_dir / 'curves.json').read_text())
    assert curves['settings']['llm_config'] == dict(hidden_size=64,
                                                    intermediate_size=128)
    assert len(curves['rows']) == 1
    assert 'the projector starts random too' in capsys.readouterr().out
