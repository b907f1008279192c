"""Fixtures shared by the ``tests/test_datasets`` modules."""
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

#: The size the bomb's header claims: 10^10 pixels, over PIL's refusal
#: limit (2 * Image.MAX_IMAGE_PIXELS, about 1.8 * 10^8).
BOMB_SIZE = (100_000, 100_000)


@pytest.fixture
def decompression_bomb(tmp_path) -> Path:
    """A real 8x8 PNG whose header is patched to claim :data:`BOMB_SIZE`,
    so that PIL raises ``DecompressionBombError`` on open."""
    buffer = io.BytesIO()
    Image.new('RGB', (8, 8), (200, 30, 30)).save(buffer, 'PNG')
    raw = bytearray(buffer.getvalue())
    # After the 8-byte signature: IHDR's length, type (bytes 12-16), body
    # (16-29, width and height first) and the CRC of type and body (29-33).
    raw[16:24] = struct.pack('>II', *BOMB_SIZE)
    raw[29:33] = struct.pack('>I', zlib.crc32(bytes(raw[12:29])))
    path = tmp_path / 'bomb.png'
    path.write_bytes(bytes(raw))
    return path
