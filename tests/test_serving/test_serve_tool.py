"""``tools/serve.py`` as a process: it binds 127.0.0.1 unless told
otherwise, reads the API key from the environment and prints its URL."""
import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import psutil
import pytest

from mmllava.apis import ChatSession

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / 'tools/serve.py'
KEY_VARIABLE = 'MMLLAVA_TEST_SERVE_KEY'
KEY = 'k-7f3a91'


def load_serve_module():
    spec = importlib.util.spec_from_file_location('serve_tool', SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def wait_for_url(process: subprocess.Popen, lines: queue.Queue,
                 timeout: float) -> tuple[str, list[str]]:
    output, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            assert process.poll() is None, ''.join(output)
            continue
        output.append(line)
        if line.startswith('Serving '):
            return line.split(' at ')[-1].strip(), output
    raise AssertionError('no URL printed:\n' + ''.join(output))


# 10-20 s: a fresh interpreter imports torch and transformers.
@pytest.mark.slow
@pytest.mark.usefixtures('in_workspace')
def test_serve_py_binds_localhost_with_a_key_from_the_environment(
        model_workspace, serving_model, photo_url):
    env = dict(os.environ, **{KEY_VARIABLE: KEY})
    process = subprocess.Popen(
        [sys.executable, str(SERVE), 'llava-tiny_demo_vqa', 'ft.pth',
         '--port', '0', '--api-key-env', KEY_VARIABLE, '--device', 'cpu',
         '--max-tokens-cap', '64'],
        cwd=model_workspace, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines),
                     daemon=True).start()
    try:
        url, output = wait_for_url(process, lines, timeout=120)
        listening = [connection.laddr for connection in
                     psutil.Process(process.pid).net_connections('tcp')
                     if connection.status == psutil.CONN_LISTEN]
        assert [(address.ip, address.port) for address in listening] == \
            [('127.0.0.1', int(url.rsplit(':', 1)[1]))]
        assert url.startswith('http://127.0.0.1:')
        client = openai.OpenAI(base_url=url + '/v1', api_key=KEY,
                               max_retries=0, timeout=60)
        answer = client.chat.completions.create(
            model='llava-tiny_demo_vqa', temperature=0, max_tokens=6,
            messages=[{'role': 'user', 'content': [
                {'type': 'image_url',
                 'image_url': {'url': photo_url('rocket')}},
                {'type': 'text', 'text': 'What is this?'}]}])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + '/v1', api_key='guess',
                          max_retries=0).models.list()
    finally:
        process.terminate()
        process.wait(30)
    assert answer.choices[0].message.content == ChatSession(
        serving_model, 'rocket.png').ask('What is this?', max_new_tokens=6)
    # The key is neither on the command line nor in the output.
    assert not any(KEY in argument for argument in process.args)
    while not lines.empty():
        output.append(lines.get())
    assert KEY not in ''.join(output)
    # One access line per request, without the key or the body.
    access = [line for line in output if '"POST /v1/chat/completions"' in line]
    assert len(access) == 1 and ' 200 ' in access[0]
    assert 'What is this' not in ''.join(output)


def test_the_defaults_bind_localhost_and_a_missing_key_stops_the_tool(
        monkeypatch):
    serve = load_serve_module()
    args = serve.parse_args(['llava-tiny_demo_vqa'])
    assert (args.host, args.port, args.api_key_env,
            args.allow_remote_images) == ('127.0.0.1', 8000, None, False)
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    with pytest.raises(SystemExit, match=KEY_VARIABLE):
        serve.read_api_key(KEY_VARIABLE)


def test_the_host_header_is_checked_against_the_bound_address():
    serve = load_serve_module()
    assert serve.allowed_hosts('127.0.0.1', None) == (
        '127.0.0.1', 'localhost', '::1')
    assert serve.allowed_hosts('192.168.1.5', None) == ('192.168.1.5', )
    assert serve.allowed_hosts('0.0.0.0', None) == ('*', )
    assert serve.allowed_hosts('0.0.0.0', ['LLaVA.lab']) == ('llava.lab', )
    assert serve.allowed_hosts('myhost', None) == ('myhost', )
