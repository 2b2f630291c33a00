"""The fedntc file format: a small versioned header, then CompressAI's entropy-coded strings.

Layout (big-endian)::

    magic      4s   b"FNTC"
    version    B    FORMAT_VERSION
    model      16s  fingerprint of the shared + personal weights that encoded the file
    height     I    original image height
    width      I    original image width
    mode       B    colour mode to decode to (0 = L for grayscale input, 1 = RGB)
    pad_h      H    rows added at the bottom to reach the model's stride
    pad_w      H    columns added on the right
    ndims      B    then ndims x I: the latent shape CompressAI's decompress needs
    ngroups    B    then per group: nstrings I, then per string: length I + bytes
    crc32      I    CRC-32 of every byte before it

Every field is bounds-checked while parsing; any inconsistency raises
:class:`BitstreamError` (never a crash, hang or silently wrong image).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"FNTC"
FORMAT_VERSION = 1
MODES = ("L", "RGB")
FINGERPRINT_BYTES = 16
_HEAD = struct.Struct(">4sB16sIIBHH")
_MAX_SIDE = 1 << 16
# Largest image a header may declare, checked before anything is allocated: Pillow's own
# default limit (``PIL.Image.MAX_IMAGE_PIXELS``), raised with ``fedntc-codec --max-pixels``.
DEFAULT_MAX_PIXELS = 89_478_485
_MAX_STRINGS = 1 << 12


class BitstreamError(ValueError):
    """A bitstream is truncated, corrupted, of another version or for another model."""


@dataclass(frozen=True)
class Bitstream:
    """A decoded header plus CompressAI's strings (``strings[group][batch_item]``)."""

    fingerprint: bytes
    height: int
    width: int
    mode: str
    pad_h: int
    pad_w: int
    shape: tuple[int, ...]
    strings: list[list[bytes]]

    def to_bytes(self) -> bytes:
        """Serialize (header, strings, CRC-32)."""
        if len(self.fingerprint) != FINGERPRINT_BYTES:
            raise ValueError("fingerprint must be 16 bytes")
        parts = [
            _HEAD.pack(
                MAGIC,
                FORMAT_VERSION,
                self.fingerprint,
                self.height,
                self.width,
                MODES.index(self.mode),
                self.pad_h,
                self.pad_w,
            ),
            struct.pack(">B", len(self.shape)),
            struct.pack(f">{len(self.shape)}I", *self.shape),
            struct.pack(">B", len(self.strings)),
        ]
        for group in self.strings:
            parts.append(struct.pack(">I", len(group)))
            for string in group:
                parts.append(struct.pack(">I", len(string)))
                parts.append(string)
        body = b"".join(parts)
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def from_bytes(
        cls, data: bytes, source: str = "bitstream", max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> Bitstream:
        """Parse and verify; ``source`` (e.g. a file name) is named in errors. A header that
        declares more than ``max_pixels`` pixels is refused before anything is decoded."""
        reader = _Reader(data, source)
        if len(data) < 4 or data[:4] != MAGIC:
            raise BitstreamError(f"{source}: not a fedntc file (bad magic)")
        if len(data) < _HEAD.size + 4:
            raise BitstreamError(f"{source}: truncated header ({len(data)} bytes)")
        body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
        if data[4] != FORMAT_VERSION:
            raise BitstreamError(
                f"{source}: format version {data[4]} is not supported (this is {FORMAT_VERSION})"
            )
        if zlib.crc32(body) != crc:
            raise BitstreamError(f"{source}: checksum mismatch (truncated or corrupted file)")
        reader.data = body
        _, _, fingerprint, height, width, mode, pad_h, pad_w = reader.unpack(_HEAD)
        if mode >= len(MODES) or not (0 < height < _MAX_SIDE and 0 < width < _MAX_SIDE):
            raise BitstreamError(f"{source}: invalid image header")
        if height * width > max_pixels:
            raise BitstreamError(
                f"{source}: header declares {width}x{height} = {height * width} pixels, over "
                f"the decoder's limit of {max_pixels} (fedntc-codec --max-pixels)"
            )
        (ndims,) = reader.unpack(struct.Struct(">B"))
        shape = reader.unpack(struct.Struct(f">{ndims}I"))
        (ngroups,) = reader.unpack(struct.Struct(">B"))
        strings = []
        for _ in range(ngroups):
            (count,) = reader.unpack(struct.Struct(">I"))
            if count > _MAX_STRINGS:
                raise BitstreamError(f"{source}: invalid string count {count}")
            group = []
            for _ in range(count):
                (length,) = reader.unpack(struct.Struct(">I"))
                group.append(reader.take(length))
            strings.append(group)
        if reader.offset != len(body):
            raise BitstreamError(f"{source}: {len(body) - reader.offset} unexpected trailing bytes")
        return cls(fingerprint, height, width, MODES[mode], pad_h, pad_w, tuple(shape), strings)


class _Reader:
    """Bounds-checked sequential reads."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.offset = 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise BitstreamError(f"{self.source}: truncated at byte {self.offset}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, layout: struct.Struct) -> tuple:
        return layout.unpack(self.take(layout.size))
