"""Image URLs -> RGB images: base64 data URLs, and http(s) URLs when the
server allows them; the pixel count is checked before anything is decoded."""
import asyncio
import base64
import binascii
import io
import warnings

import httpx
from PIL import Image, UnidentifiedImageError

from mmllava.serving.errors import APIError

#: Formats a client may send; PIL's rarer decoders stay out of reach.
FORMATS = ('PNG', 'JPEG', 'WEBP', 'GIF', 'BMP')
#: Seconds to wait for a remote image.
FETCH_TIMEOUT_S = 10.0


def decode_data_url(url: str, param: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL."""
    header, comma, payload = url.partition(',')
    if not comma or not header.startswith('data:image/') or \
            not header.endswith(';base64'):
        raise APIError(400, f'{param}: expected a data URL '
                       '"data:image/<format>;base64,<data>".', param=param,
                       code='invalid_image_url')
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise APIError(400, f'{param}: the base64 data is invalid: {error}',
                       param=param, code='invalid_image_url') from None


def decode_image(data: bytes, max_pixels: int, param: str) -> Image.Image:
    """Decode image bytes to RGB, refusing more than ``max_pixels``.

    The size comes from the file header, so an oversized image (a
    decompression bomb included) is refused before its pixels are decoded.
    An animated image gives its first frame.

    Raises:
        APIError: 413 for too many pixels, 400 for bytes that are not an
            image in :data:`FORMATS`.
    """
    try:
        with warnings.catch_warnings():
            # The cap below decides; PIL still raises its own error past
            # twice its MAX_IMAGE_PIXELS.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise APIError(
                    413, f'{param}: the image has {width}x{height} = '
                    f'{width * height} pixels; this server takes at most '
                    f'{max_pixels}.', param=param, code='image_too_large')
            return image.convert('RGB')
    except Image.DecompressionBombError as error:
        raise APIError(413, f'{param}: {error}', param=param,
                       code='image_too_large') from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            EOFError) as error:
        raise APIError(400, f'{param}: cannot decode the image '
                       f'({", ".join(FORMATS)} are accepted): {error}',
                       param=param, code='invalid_image') from None


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
        raise APIError(400, f'{param}: cannot fetch the image: {error}',
                       param=param, code='image_fetch_failed') from None


async def load_image(url: str, param: str, max_pixels: int, max_bytes: int,
                     allow_remote: bool) -> Image.Image:
    """The RGB image at a data URL, or at an http(s) URL when
    ``allow_remote``; decoding runs in a worker thread.

    Raises:
        APIError: 400 for a remote URL the server does not allow, another
            scheme or bad data; 413 for an image over the caps.
    """
    if url.startswith('data:'):
        data = decode_data_url(url, param)
    elif url.startswith(('http://', 'https://')):
        if not allow_remote:
            raise APIError(400, f'{param}: this server does not fetch '
                           'remote images; send the image as a base64 data '
                           'URL.', param=param, code='remote_images_disabled')
        data = await fetch_image_bytes(url, max_bytes, param)
    else:
        raise APIError(400, f'{param}: expected a data: or http(s) URL.',
                       param=param, code='invalid_image_url')
    return await asyncio.to_thread(decode_image, data, max_pixels, param)
