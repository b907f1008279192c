"""mmllava/datagen/captioning.py through an endpoint: listing, encoding,
records, retries, and the images and replies that get no record."""
import asyncio
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.datagen.captioning import (CAPTION_INSTRUCTIONS, ImageEntry,
                                        caption_with_client,
                                        draw_instruction, encode_image,
                                        list_images)
from mmllava.datagen.client import ChatClient, ChatError
from mmllava.datagen.output import AppendOnlyJsonl
from mmllava.testing.replay_server import ReplayServer, Reply, Status

KEY_ENV = 'MMLLAVA_TEST_API_KEY'


def caption(entries, make_client, out, **kwargs):
    """Run :func:`caption_with_client` with a new client (its connections
    belong to one event loop); the summary and the records in ``out``."""
    async def run():
        async with make_client() as client:
            return await caption_with_client(entries, client, writer,
                                             **kwargs)

    with AppendOnlyJsonl(str(out)) as writer:
        summary = asyncio.run(run())
    return summary, [json.loads(line) for line in
                     out.read_text().splitlines()]


def client_for(server):
    return lambda: ChatClient(server.base_url, 'vision-model',
                              api_key_env=KEY_ENV, max_concurrency=2,
                              backoff_base=0.01, seed=0)


def test_list_images_from_a_folder_and_a_list_file(images, tmp_path):
    (images / 'notes.txt').write_text('not listed')
    (images / 'UPPER.PNG').write_bytes(b'')
    folder, entries = list_images(str(images))
    assert folder == str(images)
    assert [entry.image for entry in entries] == [
        'UPPER.PNG', 'img-00.png', 'img-01.jpg', 'img-03.jpg', 'img-04.png',
        'sub/img-02.png', 'sub/img-05.jpg']
    assert entries[-1].path == str(images / 'sub/img-05.jpg')

    listing = images / 'list.txt'
    listing.write_text('# chosen\nsub/img-02.png\n\nimg-00.png\n'
                       f'{images / "img-01.jpg"}\nimg-00.png\n')
    folder, entries = list_images(str(listing))
    assert folder == str(images)
    assert [entry.image for entry in entries] == [
        'img-00.png', 'img-01.jpg', 'sub/img-02.png']

    listing.write_text('img-00.png\n../elsewhere.png\n')
    with pytest.raises(ValueError, match=r'list.txt, line 2: '
                       r"'../elsewhere.png' is outside"):
        list_images(str(listing))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        list_images(str(tmp_path / 'nowhere'))


def test_encode_image_sends_the_same_pixels(tmp_path, helpers):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3),
                                               dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / 'small.png')
    url = encode_image(str(tmp_path / 'small.png'), max_side=64)
    assert url.startswith('data:image/png;base64,')
    # A PNG that fits goes byte for byte.
    sent = helpers['decode_data_url'](url)
    assert np.array_equal(np.asarray(sent), pixels)

    Image.fromarray(pixels).save(tmp_path / 'small.bmp')
    url = encode_image(str(tmp_path / 'small.bmp'), max_side=64)
    assert url.startswith('data:image/png;base64,')
    assert np.array_equal(np.asarray(helpers['decode_data_url'](url)),
                          pixels)

    Image.new('RGB', (300, 120), (200, 30, 60)).save(tmp_path / 'big.jpg')
    url = encode_image(str(tmp_path / 'big.jpg'), max_side=100)
    assert url.startswith('data:image/jpeg;base64,')
    sent = helpers['decode_data_url'](url)
    assert sent.format == 'JPEG' and sent.size == (100, 40)
    assert np.abs(np.asarray(sent, dtype=int) - (200, 30, 60)).max() <= 3


def test_draw_instruction_depends_on_seed_and_image_only():
    first = [draw_instruction(f'img-{i}.png', seed=3) for i in range(40)]
    assert first == [draw_instruction(f'img-{i}.png', seed=3)
                     for i in range(40)]
    assert set(first) <= set(CAPTION_INSTRUCTIONS['detailed'])
    assert len(set(first)) > 3
    assert first != [draw_instruction(f'img-{i}.png', seed=4)
                     for i in range(40)]
    assert draw_instruction('a.png', 0, 'brief') in \
        CAPTION_INSTRUCTIONS['brief']
    with pytest.raises(ValueError, match="got 'long'"):
        draw_instruction('a.png', 0, 'long')


def test_endpoint_records_retries_and_key(images, tmp_path, api_key,
                                          helpers):
    folder, entries = list_images(str(images))
    rate_limited = []

    def respond(body, index):
        image = helpers['index_of'](body)
        if image == 3 and not rate_limited:
            rate_limited.append(index)
            return Status(429, {'Retry-After': '0'})
        if image == 4:
            return Reply('   ')
        return helpers['caption_reply'](body)

    failures = []
    with ReplayServer(respond) as server:
        client = client_for(server)
        summary, records = caption(entries, client, tmp_path / 'out.jsonl',
                                   seed=5, prompt='Describe it.',
                                   on_failure=failures.append)

    # Image 4's caption was blank: reported with its path, not kept.
    assert summary.written == 5 and summary.skipped == 0
    assert [(f.image, f.code) for f in summary.failures] == [
        ('img-04.png', 'empty_caption')]
    assert str(images / 'img-04.png') in summary.failures[0].message
    assert failures == summary.failures
    # Image 3 was rate limited once, then captioned.
    assert summary.usage.retries == 1 and summary.usage.requests == 7
    assert summary.usage.completion_tokens == 20 * 6

    by_id = {record['id']: record for record in records}
    assert sorted(by_id) == sorted(e.image for e in entries
                                   if e.image != 'img-04.png')
    for entry in entries:
        if entry.image == 'img-04.png':
            continue
        record = by_id[entry.image]
        index = int(entry.image[-6:-4])
        assert record['image'] == entry.image
        human, gpt = record['conversations']
        assert human == {'from': 'human', 'value': f'{IMAGE_PLACEHOLDER}\n'
                         f'{draw_instruction(entry.image, 5)}'}
        # Stripped of the reply's surrounding blanks.
        assert gpt == {'from': 'gpt',
                       'value': f'A flat picture, image number {index}.'}

    for request in server.requests:
        # The image arrives as a data URL of the file's very pixels.
        url = helpers['image_url_of'](request.body)
        index = helpers['index_of'](request.body)
        entry = [e for e in entries if int(e.image[-6:-4]) == index][0]
        with Image.open(entry.path) as original:
            assert np.array_equal(
                np.asarray(helpers['decode_data_url'](url).convert('RGB')),
                np.asarray(original.convert('RGB')))
        assert request.body['messages'][-1]['content'][-1] == dict(
            type='text', text='Describe it.')
        assert request.body['model'] == 'vision-model'
        # The key only in the Authorization header.
        assert request.headers['authorization'] == f'Bearer {api_key}'
        assert api_key not in json.dumps(request.body)
        assert api_key not in json.dumps({k: v for k, v in
                                          request.headers.items()
                                          if k != 'authorization'})


def test_a_rerun_asks_only_for_the_missing_images(images, tmp_path,
                                                  caption_server):
    folder, entries = list_images(str(images))
    out = tmp_path / 'out.jsonl'
    client = client_for(caption_server)
    caption(entries[:4], client, out)
    summary, records = caption(entries, client, out)
    assert summary.skipped == 4 and summary.written == 2
    # Written in completion order.
    assert sorted(r['id'] for r in records[:4]) == \
        [e.image for e in entries[:4]]
    assert sorted(r['id'] for r in records) == [e.image for e in entries]
    assert len(caption_server.requests) == 6


def test_bad_files_are_reported_with_their_path(images, tmp_path,
                                                caption_server):
    (images / 'empty.jpg').write_bytes(b'')
    (images / 'text.jpg').write_text('this is not a JPEG')
    Image.new('RGB', (40, 40)).save(buffer := io.BytesIO(), 'PNG')
    (images / 'cut.png').write_bytes(buffer.getvalue()[:60])
    folder, entries = list_images(str(images))
    client = client_for(caption_server)
    summary, records = caption(entries, client, tmp_path / 'out.jsonl')
    failures = {f.image: f for f in summary.failures}
    assert {name: f.code for name, f in failures.items()} == {
        'empty.jpg': 'not_an_image', 'text.jpg': 'not_an_image',
        'cut.png': 'unreadable_image'}
    for name, failure in failures.items():
        assert failure.path == str(images / name)
        assert str(images / name) in failure.message
    assert summary.by_reason() == {'not_an_image': 2,
                                   'unreadable_image': 1}
    assert not {r['id'] for r in records} & set(failures)
    # No request was spent on them.
    assert len(caption_server.requests) == 6 == summary.written


def test_a_malformed_reply_is_reported_with_the_image_path(images,
                                                           tmp_path):
    def handler(request):
        return httpx.Response(200, text='<html>busy</html>')

    def client() -> ChatClient:
        return ChatClient('http://replay.invalid/v1', 'vision-model',
                          api_key_env=None,
                          transport=httpx.MockTransport(handler))

    entry = ImageEntry('img-00.png', str(images / 'img-00.png'))
    summary, records = caption([entry], client, tmp_path / 'out.jsonl')
    assert records == []
    [failure] = summary.failures
    assert failure.code == 'request_failed'
    assert f'image {entry.path}' in failure.message
    assert 'not a chat completion' in failure.message


def test_a_refusing_endpoint_stops_the_run(images, tmp_path):
    folder, entries = list_images(str(images))
    with ReplayServer(lambda body, index: Status(401)) as server:
        client = client_for(server)
        with pytest.raises(ChatError, match='HTTP 401'):
            caption(entries, client, tmp_path / 'out.jsonl')
    # Not one request per image: the first refusal ends the run.
    assert len(server.requests) <= 2
