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


def test_a_thin_image_is_refused_for_the_square_it_would_pad_to():
    """1x20000 is 20,000 pixels, but pad-to-square makes 400,000,000 of
    them: refused from the header, before any pixel exists."""
    thin = png_bytes(Image.new('RGB', (1, 20_000)))
    assert len(thin) < 1000
    with pytest.raises(APIError) as caught:
        decode_image(thin, max_pixels=25_000_000, param='p',
                     pads_to_square=True)
    assert (caught.value.status, caught.value.code) == (413,
                                                        'image_too_large')
    assert '20000x20000' in caught.value.message
    # Without padding the same image passes the pixel cap; the side cap
    # still holds.
    assert decode_image(thin, max_pixels=25_000_000, param='p').size == \
        (1, 20_000)
    with pytest.raises(APIError) as caught:
        decode_image(thin, max_pixels=25_000_000, param='p',
                     max_side=10_000)
    assert caught.value.status == 413
    assert 'at most 10000 pixels a side' in caught.value.message


def test_mime_base64_and_capital_schemes_are_accepted():
    data = png_bytes(Image.new('RGB', (8, 8), (200, 10, 10)))
    encoded = base64.encodebytes(data).decode()  # lines of 76 + '\n'
    assert '\n' in encoded.strip()
    image = asyncio.run(load_image(
        'DATA:image/PNG;BASE64,' + encoded, 'p', max_pixels=10**6,
        max_bytes=10**6, allow_remote=False))
    assert image.getpixel((0, 0)) == (200, 10, 10)
    # An upper-case http scheme is a remote URL, not an unknown scheme.
    with pytest.raises(APIError) as caught:
        asyncio.run(load_image('HTTP://example.com/a.png', 'p',
                               max_pixels=10**6, max_bytes=10**6,
                               allow_remote=False))
    assert caught.value.code == 'remote_images_disabled'


@pytest.mark.parametrize('data', [
    b'not an image',
    png_header_claiming(4, 4)[:30],  # a cut-off PNG
])
def test_errors_hold_no_object_reprs(data):
    with pytest.raises(APIError) as caught:
        decode_image(data, max_pixels=10**6, param='p')
    assert caught.value.status == 400
    assert ' at 0x' not in caught.value.message
    assert 'object' not in caught.value.message
