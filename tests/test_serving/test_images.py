"""``mmllava/serving/images.py``: data URLs, the pixel cap before decoding,
and bytes that are not images."""
import asyncio
import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from mmllava.serving.errors import APIError
from mmllava.serving.images import decode_data_url, decode_image, load_image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()


def test_a_photo_round_trips_through_a_data_url():
    pixels = photos.coffee()
    url = 'data:image/png;base64,' + base64.b64encode(
        png_bytes(Image.fromarray(pixels))).decode()
    image = asyncio.run(load_image(url, 'p', max_pixels=10**6,
                                   max_bytes=10**7, allow_remote=False))
    np.testing.assert_array_equal(np.asarray(image), pixels)


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` grey pixels (a few
    bytes of data follow: decoding it would fail, or allocate the size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_the_pixel_cap_applies_before_decoding():
    bomb = png_header_claiming(10_000, 10_000)
    with pytest.raises(APIError) as caught:
        decode_image(bomb, max_pixels=4_000_000, param='p')
    assert caught.value.status == 413
    assert caught.value.code == 'image_too_large'
    assert '10000x10000' in caught.value.message
    # A real image just over the cap is refused as well.
    with pytest.raises(APIError) as caught:
        decode_image(png_bytes(Image.new('RGB', (101, 100))),
                     max_pixels=100 * 100, param='p')
    assert caught.value.status == 413


def test_past_pil_own_bomb_limit_it_is_413_too():
    with pytest.raises(APIError) as caught:
        decode_image(png_header_claiming(100_000, 100_000),
                     max_pixels=10**12, param='p')
    assert caught.value.status == 413


@pytest.mark.parametrize('url, code', [
    ('data:text/plain;base64,aGk=', 'invalid_image_url'),
    ('data:image/png;base64,***', 'invalid_image_url'),
    ('data:image/png;base64,' + base64.b64encode(b'not an image').decode(),
     'invalid_image'),
    ('ftp://example.com/a.png', 'invalid_image_url'),
    ('https://example.com/a.png', 'remote_images_disabled'),
])
def test_bad_image_urls_are_400(url, code):
    with pytest.raises(APIError) as caught:
        asyncio.run(load_image(url, 'messages[0].content[0].image_url.url',
                               max_pixels=10**6, max_bytes=10**6,
                               allow_remote=False))
    assert (caught.value.status, caught.value.code) == (400, code)
    assert caught.value.param == 'messages[0].content[0].image_url.url'


def test_data_url_payload_is_base64_decoded():
    assert decode_data_url('data:image/png;base64,aGk=', 'p') == b'hi'
