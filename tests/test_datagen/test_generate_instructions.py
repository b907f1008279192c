"""tools/data/generate_instructions.py as a process: killed mid-run with
SIGKILL and rerun, every image ends up exactly once; a malformed image is
reported and never written; the key appears in no output."""
import asyncio
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from mmllava.testing.replay_server import (ReplayServer, Reply, by_marker,
                                           demo_reply)

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/data/generate_instructions.py'
KEY_ENV = 'MMLLAVA_TEST_API_KEY'
CONCURRENCY = 2


def load_tool():
    spec = importlib.util.spec_from_file_location('generate_instructions',
                                                  TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def image_of(request) -> str:
    return request.body['messages'][-1]['content'].split()[1]


def slow_demo_reply(body, index):
    return dataclasses.replace(demo_reply(body), delay=0.4)


@pytest.mark.slow  # a tool process (imports torch): ~6 s on an idle machine
def test_kill_then_rerun_writes_every_image_once(make_contexts, tmp_path,
                                                 api_key, capsys,
                                                 kill_after_records):
    contexts = make_contexts(12)
    out = tmp_path / 'out.jsonl'
    malformed = {'img-07': [Reply('I cannot help with that.')]}
    command = ['--contexts', str(contexts),
               '--output', str(out), '--format', 'json',
               '--image-prefix', 'images', '--model', 'gen-model',
               '--api-key-env', KEY_ENV, '--concurrency', str(CONCURRENCY),
               '--no-progress', '--seed', '1']
    env = dict(os.environ, **{KEY_ENV: api_key})
    with ReplayServer(by_marker(malformed, slow_demo_reply)) as server:
        command += ['--base-url', server.base_url]
        first, first_log = kill_after_records(
            [sys.executable, str(TOOL)] + command, env, out, 60)
        assert first.returncode == -9
        first_requests = list(server.requests)
        written_first = [json.loads(line)['id']
                         for line in out.read_text().splitlines()]

        # The rerun in this process (a second process would import torch
        # again); the key is in the environment here too (the fixture).
        server.respond = by_marker(malformed, demo_reply)
        capsys.readouterr()
        returncode = asyncio.run(load_tool().run(
            load_tool().parse_args(command)))
        second = capsys.readouterr()
        second_requests = server.requests[len(first_requests):]

    assert returncode == 1, second.out + second.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [record['id'] for record in records]
    expected = [f'img-{i:02d}' for i in range(12) if i != 7]
    assert sorted(ids) == expected  # each image once, img-07 never
    assert ids[:len(written_first)] == written_first  # appended, not redone
    asked_again = {image_of(r) for r in second_requests}
    assert not asked_again & set(written_first)
    # Lost to the kill: at most the requests in flight.
    answered_first = {image_of(r) for r in first_requests if r.answered}
    lost = (answered_first - set(written_first)) - {'img-07'}
    assert len(lost) <= CONCURRENCY
    assert len(({image_of(r) for r in first_requests} & asked_again)
               - {'img-07'}) <= CONCURRENCY

    # img-07: reported with its id, listed, never kept.
    assert "failed: image 'img-07'" in second.err
    assert 'the reply does not parse' in second.err
    failures = [json.loads(line) for line in
                (tmp_path / 'out.failures.jsonl').read_text().splitlines()]
    assert [f['image_id'] for f in failures] == ['img-07']
    assert f'{12 - len(written_first) - 1} written, ' \
        f'{len(written_first)} done before, 1 failed' in second.out
    exported = json.loads((tmp_path / 'out.json').read_text())
    assert [record['id'] for record in exported] == expected

    # The key went only into the Authorization header.
    for request in server.requests:
        assert request.headers['authorization'] == f'Bearer {api_key}'
    logs = first_log + second.out + second.err
    assert api_key not in logs
    assert 'usage: ' in second.out


def test_the_key_has_no_command_line_option(capsys):
    with pytest.raises(SystemExit):
        load_tool().parse_args(['--help'])
    help_text = capsys.readouterr().out
    assert '--api-key-env' in help_text
    options = [word for word in help_text.split() if word.startswith('--')]
    assert not [o for o in options if 'key' in o and o != '--api-key-env']
