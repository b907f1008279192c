"""``tools/data/check_dataset.py`` on the faults of issue 18: warnings are
listed apart and do not fail the check; a fault of the file as a whole
(no records included) fails it and says what helps."""
import importlib.util
import json
from pathlib import Path

from PIL import Image

from mmllava.datasets.checks import FILE_FAULT_HINTS, WARNINGS

TOOL = Path(__file__).resolve().parents[2] / 'tools/data/check_dataset.py'


def load_tool():
    spec = importlib.util.spec_from_file_location('check_dataset', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(record_id: str, question: str) -> dict:
    return dict(id=record_id, image='photo.png', conversations=[
        {'from': 'human', 'value': question},
        {'from': 'gpt', 'value': 'A grey square.'}])


def test_warnings_are_listed_apart_and_exit_0(tmp_path, capsys):
    Image.new('RGB', (32, 24), (128, 128, 128)).save(tmp_path / 'photo.png')
    (tmp_path / 'data.json').write_text(json.dumps([
        record('once', '<image>\nWhat is it?'),
        record('twice', '<image>\nIs <image> grey?')]))
    status = load_tool().main([str(tmp_path / 'data.json'),
                               '--image-folder', str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "record 1 (id='twice'): warning: placeholders_merged: turn 0 " \
        'holds 2 <image>' in printed
    assert '2 records, 0 bad, 0 problems, 1 warnings' in printed
    assert 'warnings (not bad records: training takes them):\n  ' \
        f'placeholders_merged{1:>13}  {WARNINGS["placeholders_merged"]}' in \
        printed
    assert 'what helps' not in printed


def test_nested_tag_fails_the_check(tmp_path, capsys):
    (tmp_path / 'data.json').write_text(json.dumps([
        record('nested', 'What is <im<image>age>?')]))
    status = load_tool().main([str(tmp_path / 'data.json'),
                               '--image-folder', str(tmp_path)])
    assert status == 1
    assert "record 0 (id='nested'): nested_placeholder: turn 0 " in \
        capsys.readouterr().out


def test_no_records_fails_and_says_what_helps(tmp_path, capsys):
    (tmp_path / 'data.jsonl').write_text('')
    status = load_tool().main([str(tmp_path / 'data.jsonl'),
                               '--image-folder', str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 1
    assert f'file: no_records: no records in {tmp_path / "data.jsonl"}' in \
        printed
    assert '0 records, 0 bad, 1 problems' in printed
    assert f'what helps:\n  no_records: {FILE_FAULT_HINTS["no_records"]}' \
        in printed
