"""Image URLs -> RGB images: base64 data URLs, and http(s) URLs when the
server allows them; the size is checked before anything is decoded."""
import asyncio
import base64
import binascii
import io
import re
import warnings

import httpx
from PIL import Image, UnidentifiedImageError

from mmllava.serving.errors import APIError

#: Formats a client may send; PIL's rarer decoders stay out of reach.
FORMATS = ('PNG', 'JPEG', 'WEBP', 'GIF', 'BMP')
#: Seconds to wait for a remote image.
FETCH_TIMEOUT_S = 10.0
#: Python object reprs (``<_io.BytesIO object at 0x7f...>``) that library
#: errors carry: clients get neither them nor the addresses in them.
_OBJECT_REPR = re.compile(r'<[^<>]* at 0x[0-9a-fA-F]+>')
#: Whitespace that MIME base64 (line-wrapped at 76 characters) holds.
_WHITESPACE = re.compile(r'\s+')


def describe(error: BaseException) -> str:
    """An error's message for a client, object reprs taken out."""
    return _OBJECT_REPR.sub('the image', str(error)) or type(error).__name__


def check_image_size(width: int, height: int, max_pixels: int,
                     max_side: int, pads_to_square: bool,
                     param: str) -> None:
    """Refuse (413) an image over the caps, before its pixels exist.

    A pipeline that pads to a square makes a ``side x side`` canvas of the
    longer side: a 1x20000 image is 20,000 pixels but a 400,000,000-pixel
    canvas, so the canvas is what counts there.
    """
    side = max(width, height)
    if side > max_side:
        raise APIError(413, f'{param}: the image is {width}x{height}; this '
                       f'server takes at most {max_side} pixels a side.',
                       param=param, code='image_too_large')
    if width * height > max_pixels:
        raise APIError(
            413, f'{param}: the image has {width}x{height} = '
            f'{width * height} pixels; this server takes at most '
            f'{max_pixels}.', param=param, code='image_too_large')
    if pads_to_square and side * side > max_pixels:
        raise APIError(
            413, f'{param}: the image is {width}x{height}; the model pads it '
            f'to a {side}x{side} square, {side * side} pixels, over this '
            f"server's {max_pixels}.", param=param, code='image_too_large')


def decode_data_url(url: str, param: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL."""
    header, comma, payload = url.partition(',')
    header = header.lower()
    if not comma or not header.startswith('data:image/') or \
            not header.endswith(';base64'):
        raise APIError(400, f'{param}: expected a data URL '
                       '"data:image/<format>;base64,<data>".', param=param,
                       code='invalid_image_url')
    try:
        # Line breaks (MIME base64) are allowed; other stray characters are
        # not.
        return base64.b64decode(_WHITESPACE.sub('', payload), validate=True)
    except (binascii.Error, ValueError) as error:
        raise APIError(400, f'{param}: the base64 data is invalid: '
                       f'{describe(error)}',
                       param=param, code='invalid_image_url') from None


def decode_image(data: bytes, max_pixels: int, param: str,
                 max_side: int = 2**31, pads_to_square: bool = False
                 ) -> Image.Image:
    """Decode image bytes to RGB, refusing an image over the caps (see
    :func:`check_image_size`).

    The size comes from the file header, so an oversized image (a
    decompression bomb included) is refused before its pixels are decoded.
    An animated image gives its first frame.

    Raises:
        APIError: 413 for an image over the caps, 400 for bytes that are not
            an image in :data:`FORMATS`.
    """
    try:
        with warnings.catch_warnings():
            # The cap below decides; PIL still raises its own error past
            # twice its MAX_IMAGE_PIXELS.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            check_image_size(*image.size, max_pixels, max_side,
                             pads_to_square, param)
            return image.convert('RGB')
    except Image.DecompressionBombError as error:
        raise APIError(413, f'{param}: {describe(error)}', param=param,
                       code='image_too_large') from None
    except UnidentifiedImageError:
        raise APIError(400, f'{param}: the data is not an image in a format '
                       f'this server decodes ({", ".join(FORMATS)}).',
                       param=param, code='invalid_image') from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise APIError(400, f'{param}: cannot decode the image '
                       f'({", ".join(FORMATS)} are accepted): '
                       f'{describe(error)}', param=param,
                       code='invalid_image') from None


async def fetch_image_bytes(url: str, max_bytes: int, param: str) -> bytes:
    """Download ``url``, refusing more than ``max_bytes``."""
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S,
                                     follow_redirects=True,
                                     max_redirects=3) as client:
            async with client.stream('GET', url) as response:
                if response.status_code != 200:
                    raise APIError(400, f'{param}: fetching the image gave '
                                   f'HTTP {response.status_code}.',
                                   param=param, code='image_fetch_failed')
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise APIError(
                            413, f'{param}: the image is larger than '
                            f'{max_bytes} bytes.', param=param,
                            code='image_too_large')
                return bytes(data)
    except httpx.HTTPError as error:
        raise APIError(400, f'{param}: cannot fetch the image: '
                       f'{describe(error)}',
                       param=param, code='image_fetch_failed') from None


async def load_image(url: str, param: str, max_pixels: int, max_bytes: int,
                     allow_remote: bool, max_side: int = 2**31,
                     pads_to_square: bool = False) -> Image.Image:
    """The RGB image at a data URL, or at an http(s) URL when
    ``allow_remote``; decoding runs in a worker thread. Schemes are
    case-insensitive (``HTTP://``, ``DATA:``), as URLs are.

    Raises:
        APIError: 400 for a remote URL the server does not allow, another
            scheme or bad data; 413 for an image over the caps.
    """
    scheme = url[:8].lower()
    if scheme.startswith('data:'):
        data = decode_data_url(url, param)
    elif scheme.startswith(('http://', 'https://')):
        if not allow_remote:
            raise APIError(400, f'{param}: this server does not fetch '
                           'remote images; send the image as a base64 data '
                           'URL.', param=param, code='remote_images_disabled')
        data = await fetch_image_bytes(url, max_bytes, param)
    else:
        raise APIError(400, f'{param}: expected a data: or http(s) URL.',
                       param=param, code='invalid_image_url')
    return await asyncio.to_thread(decode_image, data, max_pixels, param,
                                   max_side, pads_to_square)
