"""generate_instructions against tools/serve.py's app serving the tiny
random demo model: its replies are nonsense, so every image must be
reported as failed and none written."""
import asyncio
import importlib.util
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from mmllava.apis import get_model
from mmllava.serving import ServerSettings, build_app

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/data/generate_instructions.py'
MODEL_NAME = 'llava-tiny_demo_vqa'


@pytest.fixture
def served_demo_model(model_workspace, monkeypatch):
    """The workspace's tiny model behind the serving app, on an ephemeral
    port of 127.0.0.1; yields the API root."""
    monkeypatch.chdir(model_workspace)
    model = get_model(MODEL_NAME, pretrained='ft.pth', device='cpu')
    app = build_app(model, ServerSettings(model_name=MODEL_NAME))
    server = uvicorn.Server(uvicorn.Config(app, log_level='warning'))
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    thread = threading.Thread(target=server.run, kwargs=dict(sockets=[sock]),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, \
            'the server did not start'
        time.sleep(0.02)
    yield f'http://127.0.0.1:{sock.getsockname()[1]}/v1'
    server.should_exit = True
    thread.join(10)


def test_nonsense_replies_are_all_reported(served_demo_model, make_contexts,
                                           tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('MMLLAVA_TEST_API_KEY', 'unused-by-this-server')
    contexts = make_contexts(3)
    # One short example per type: the demo model's context holds 512 tokens.
    shots = {'conv': 'Q: What is it?\nA: A cup.',
             'detail': 'A cup on a table.',
             'complex': 'Q: Why is it there?\nA: Someone drank from it.'}
    for kind, response in shots.items():
        (tmp_path / 'shots' / kind).mkdir(parents=True)
        (tmp_path / 'shots' / kind / 'cup.json').write_text(json.dumps(
            dict(context='A cup on a table.', response=response)))
    spec = importlib.util.spec_from_file_location('generate_instructions',
                                                  TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'out.jsonl'
    args = tool.parse_args([
        '--contexts', str(contexts), '--output', str(out),
        '--base-url', served_demo_model, '--model', MODEL_NAME,
        '--api-key-env', 'MMLLAVA_TEST_API_KEY', '--concurrency', '3',
        '--max-tokens', '12', '--parse-retries', '0', '--no-progress',
        '--no-system-role', '--fewshot-dir', str(tmp_path / 'shots')])
    assert asyncio.run(tool.run(args)) == 1
    printed = capsys.readouterr()
    assert out.read_text() == ''
    failures = [json.loads(line) for line in
                (tmp_path / 'out.failures.jsonl').read_text().splitlines()]
    assert sorted(f['image_id'] for f in failures) == \
        ['img-00', 'img-01', 'img-02']
    for image_id in ('img-00', 'img-01', 'img-02'):
        assert f"failed: image '{image_id}'" in printed.err
    assert '0 written, 0 done before, 3 failed' in printed.out
    # Answered (not refused): what failed is the replies.
    for failure in failures:
        assert 'the reply ' in failure['reason'], failure['reason']
