"""The append-only jsonl: durable appends, resume, a torn last line."""
import json
import os

import pytest

from mmllava.datagen.output import AppendOnlyJsonl, export_json


def test_appends_are_on_disk_at_once_and_resume(tmp_path, monkeypatch):
    path = tmp_path / 'sub' / 'out.jsonl'
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: (synced.append(fd),
                                                 real_fsync(fd)))
    writer = AppendOnlyJsonl(str(path))
    writer.append(dict(id='a', text='é'))
    # Readable by another reader before close: flushed and fsynced.
    assert json.loads(path.read_text(encoding='utf-8')) == \
        dict(id='a', text='é')
    assert len(synced) == 1
    writer.append(dict(id='b'))
    writer.close()
    with AppendOnlyJsonl(str(path)) as again:
        assert again.done == {'a', 'b'}
        again.append(dict(id='c'))
    assert [json.loads(line)['id'] for line in
            path.read_text().splitlines()] == ['a', 'b', 'c']


def test_torn_last_line_is_cut_off(tmp_path):
    path = tmp_path / 'out.jsonl'
    path.write_text('{"id": "a"}\n{"id": "b", "conver')
    with AppendOnlyJsonl(str(path)) as writer:
        assert writer.done == {'a'}
        assert writer.torn_line == '{"id": "b", "conver'
        writer.append(dict(id='b'))
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / 'out.jsonl'
    path.write_text('{"id": "a"}\n{"id": "b"}')
    with AppendOnlyJsonl(str(path)) as writer:
        assert writer.done == {'a', 'b'} and writer.torn_line is None
        writer.append(dict(id='c'))
    assert path.read_text().splitlines() == \
        ['{"id": "a"}', '{"id": "b"}', '{"id": "c"}']


def test_a_broken_middle_line_is_an_error(tmp_path):
    path = tmp_path / 'out.jsonl'
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(ValueError, match=r'out.jsonl, line 2: not valid '
                       'json'):
        AppendOnlyJsonl(str(path))
    path.write_text('{"name": "a"}\n')
    with pytest.raises(ValueError, match="line 1: a record needs a "
                       "'question_id' field"):
        AppendOnlyJsonl(str(path), key='question_id')


def test_export_json(tmp_path):
    path = tmp_path / 'out.json'
    export_json([dict(id='a'), dict(id='b')], str(path))
    assert json.loads(path.read_text()) == [dict(id='a'), dict(id='b')]
    assert not (tmp_path / 'out.json.tmp').exists()
