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


def load_tool(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_caption_images_through_the_served_model(served_demo_model,
                                                 model_workspace, tmp_path,
                                                 capsys):
    """Real photos go to the server as data URLs; the model's captions are
    nonsense but text, so each photo ends up written or reported, once."""
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in ('astronaut', 'coffee', 'chelsea'):
        (photos / f'{name}.png').write_bytes(
            (model_workspace / f'{name}.png').read_bytes())
    out = tmp_path / 'captions.jsonl'
    tool = load_tool(REPO / 'tools/data/caption_images.py', 'caption_images')
    status = tool.main([
        str(photos), '--out', str(out), '--base-url', served_demo_model,
        '--model', MODEL_NAME, '--max-tokens', '12', '--concurrency', '3',
        '--no-progress'])
    printed = capsys.readouterr()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    failures_file = tmp_path / 'captions.failures.jsonl'
    failures = [json.loads(line) for line in failures_file.read_text(
    ).splitlines()] if failures_file.exists() else []
    done = sorted([record['image'] for record in records]
                  + [Path(failure['path']).name for failure in failures])
    assert done == ['astronaut.png', 'chelsea.png', 'coffee.png'], printed
    assert status == (1 if failures else 0)
    # The server answered every request: nothing failed at the HTTP level.
    assert all(failure['code'] != 'request_failed' for failure in failures)
    for record in records:
        assert record['conversations'][1]['value'].strip()


def test_gpt_review_with_the_served_model_as_judge(served_demo_model,
                                                   tmp_path, capsys):
    """A judge whose replies hold no scores: every question is reported,
    no review is kept."""
    def jsonl(name, rows):
        path = tmp_path / name
        path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
        return str(path)

    ids = ['q1', 'q2']
    tool = load_tool(REPO / 'tools/eval/gpt_review.py', 'gpt_review')
    out = tmp_path / 'reviews.jsonl'
    args = tool.parse_args([
        '--questions', jsonl('questions.jsonl', [dict(
            question_id=qid, image=f'{qid}.jpg', category='conv',
            text='What is it?') for qid in ids]),
        '--contexts', jsonl('context.jsonl', [dict(
            image=f'{qid}.jpg', caption=['A cup.'], instances=[])
            for qid in ids]),
        '--references', jsonl('reference.jsonl', [dict(
            question_id=qid, text='A cup.') for qid in ids]),
        '--answers', jsonl('answers.jsonl', [dict(
            question_id=qid, text='A mug.') for qid in ids]),
        '--output', str(out), '--base-url', served_demo_model,
        '--model', MODEL_NAME, '--max-tokens', '12', '--parse-retries', '0',
        '--no-progress', '--no-system-role'])
    assert asyncio.run(tool.run(args)) == 1
    printed = capsys.readouterr()
    assert out.read_text() == ''
    failures = [line for line in printed.err.splitlines()
                if line.startswith('failed: ')]
    assert len(failures) == len(ids), printed.err
    for qid, failure in zip(ids, sorted(failures)):
        assert qid in failure
        # Answered (not refused): what failed is the judge's reply.
        assert 'HTTP ' not in failure and 'does not parse' in failure, failure
