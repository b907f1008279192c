"""tools/data/caption_images.py: the json output passes the data checks and
loads as a dataset; killed with SIGKILL mid-run and rerun, every image ends
up exactly once; the key appears in no output."""
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

from mmllava.datasets import LLaVADataset
from mmllava.testing.replay_server import ReplayServer, Reply

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/data/caption_images.py'
CHECK_TOOL = REPO / 'tools/data/check_dataset.py'
KEY_ENV = 'MMLLAVA_TEST_API_KEY'
CONCURRENCY = 2


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_json_output_passes_check_dataset_and_loads(images, tmp_path,
                                                    api_key, caption_server,
                                                    tokenizer_folder,
                                                    capsys):
    (images / 'text.jpg').write_text('not an image')
    out = tmp_path / 'captions.json'
    status = load(TOOL, 'caption_images').main([
        str(images), '--out', str(out), '--base-url', caption_server.base_url,
        '--model', 'vision-model', '--api-key-env', KEY_ENV,
        '--no-progress', '--instructions', 'brief'])
    printed = capsys.readouterr()
    assert status == 1, printed.out + printed.err
    assert f'failed (not_an_image): {images / "text.jpg"}' in printed.err
    assert '6 written, 0 done before, 1 failed' in printed.out
    assert re.search(r'\n +not_an_image +1 +a file that is not an image\n',
                     printed.out)
    assert 'usage: 6 requests (0 retried)' in printed.out
    assert api_key not in printed.out + printed.err
    failures = [json.loads(line) for line in (
        tmp_path / 'captions.failures.jsonl').read_text().splitlines()]
    assert [f['image'] for f in failures] == ['text.jpg']

    records = json.loads(out.read_text())
    # In listing order.
    assert [r['id'] for r in records] == sorted(r['id'] for r in records)
    assert len(records) == 6 and (tmp_path / 'captions.jsonl').exists()
    status = load(CHECK_TOOL, 'check_dataset').main([
        str(out), '--image-folder', str(images), '--tokenizer',
        tokenizer_folder, '--template', 'plain', '--max-length', '128',
        '--num-image-tokens', '16', '--workers', '1'])
    assert status == 0, capsys.readouterr().out
    dataset = LLaVADataset(str(out), image_folder=str(images),
                           check_images=True)
    assert len(dataset) == 6
    assert dataset.get_data_info(0)['img_path'] == str(images / records[0][
        'image'])


def test_the_modes_and_formats_are_checked(capsys):
    tool = load(TOOL, 'caption_images')
    for argv, message in [
            (['x', '--out', 'o.jsonl'], 'give either --base-url'),
            (['x', '--out', 'o.jsonl', '--base-url', 'u', '--model', 'm',
              '--local-model', 'n'], 'give either --base-url'),
            (['x', '--out', 'o.jsonl', '--base-url', 'u'], 'needs --model'),
            (['x', '--out', 'o.jsonl', '--format', 'json', '--local-model',
              'n'], '--out must be a .json file'),
            (['x', '--out', 'o.jsonl', '--local-model', 'n', '--rpm', '5',
              '--max-side', '10'], '--rpm, --max-side do nothing with '
             '--local-model'),
            (['x', '--out', 'o.jsonl', '--base-url', 'u', '--model', 'm',
              '--batch-size', '2'], '--batch-size do nothing with '
             '--base-url')]:
        with pytest.raises(SystemExit):
            tool.parse_args(argv)
        assert message in capsys.readouterr().err
    assert tool.parse_args(['x', '--out', 'o.json', '--local-model',
                            'n']).format == 'json'


@pytest.mark.slow  # a tool process (imports torch): ~6 s on an idle machine
def test_kill_then_rerun_captions_every_image_once(tmp_path, api_key,
                                                   helpers, capsys,
                                                   kill_after_records):
    images = tmp_path / 'images'
    names = helpers['write_images'](images, 10)
    out = tmp_path / 'out.jsonl'

    def slow_reply(body, index):
        return Reply(helpers['caption_reply'](body).content, delay=0.3)

    command = [str(images), '--out', str(out), '--model', 'vision-model',
               '--api-key-env', KEY_ENV, '--concurrency', str(CONCURRENCY),
               '--no-progress']
    env = dict(os.environ, **{KEY_ENV: api_key})
    with ReplayServer(slow_reply) as server:
        command += ['--base-url', server.base_url]
        first, first_log = kill_after_records(
            [sys.executable, str(TOOL)] + command, env, out, 90)
        assert first.returncode == -9
        first_requests = list(server.requests)
        written_first = [json.loads(line)['id']
                         for line in out.read_text().splitlines()]

        # The rerun in this process: a second one would import torch again.
        server.respond = helpers['caption_reply']
        capsys.readouterr()
        status = load(TOOL, 'caption_images').main(command)
        second = capsys.readouterr()
        second_requests = server.requests[len(first_requests):]

    assert status == 0, second.out + second.err
    ids = [json.loads(line)['id'] for line in out.read_text().splitlines()]
    assert sorted(ids) == names  # every image exactly once
    assert ids[:len(written_first)] == written_first  # appended, not redone
    asked_again = {helpers['index_of'](r.body) for r in second_requests}
    done_first = {int(name[-6:-4]) for name in written_first}
    assert not asked_again & done_first
    # Lost to the kill: at most the requests in flight.
    assert len(asked_again & {helpers['index_of'](r.body)
                              for r in first_requests}) <= CONCURRENCY
    assert f'{10 - len(written_first)} written, {len(written_first)} done ' \
        'before, 0 failed' in second.out
    for request in server.requests:
        assert request.headers['authorization'] == f'Bearer {api_key}'
    assert api_key not in first_log + second.out + second.err


def test_the_key_has_no_command_line_option(capsys):
    with pytest.raises(SystemExit):
        load(TOOL, 'caption_images').parse_args(['--help'])
    options = [word.strip(',[]') for word in capsys.readouterr().out.split()
               if word.startswith(('--', '[--'))]
    assert '--api-key-env' in options
    assert not [o for o in options if 'key' in o and o != '--api-key-env']
