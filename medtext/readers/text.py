"""Plain text (``.txt``, ``.md``): bytes to exact text, with encoding fallbacks that leave a warning."""

from __future__ import annotations

import codecs

from ..errors import InputError

# bytes pdfium/latin-1 decode but cp1252 leaves undefined
_CP1252_UNDEFINED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}
_MAGIC = {b"%PDF": "a PDF", b"PK\x03\x04": "a ZIP/Office file", b"\x89PNG": "a PNG image",
          b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"\x7fELF": "an executable",
          b"\xd0\xcf\x11\xe0": "an old Office file"}


def decode_text(data: bytes, source: str) -> tuple[str, str, list[str]]:
    """Decode ``data`` (the bytes of ``source``) to text.

    Returns ``(text, encoding, warnings)``. UTF-8 (with or without BOM) and UTF-16/32 with a BOM
    decode silently; other bytes are decoded as cp1252, or latin-1 where cp1252 has holes, with a
    warning. Raises :class:`InputError` for empty or binary content.
    """
    if not data.strip():
        raise InputError(source, "empty file (no text to process)", reason="empty")
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return _check_text(data.decode(enc), source), enc, []
            except UnicodeDecodeError as e:
                raise InputError(source, f"starts with a {enc} byte-order mark but is not valid "
                                 f"{enc} at byte {e.start}", reason="bad_encoding") from e
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise InputError(source, f"binary file ({what}), not text; give it a matching "
                             "extension or convert it to text", reason="binary")
    head = data[:8192]
    if b"\x00" in head:
        raise InputError(source, "binary file (contains NUL bytes), not text", reason="binary")
    try:
        return _check_text(data.decode("utf-8"), source), "utf-8", []
    except UnicodeDecodeError as e:
        first_bad = e.start
    enc = "latin-1" if any(b in _CP1252_UNDEFINED for b in data) else "cp1252"
    text = data.decode(enc)
    warning = (f"not valid UTF-8 (first bad byte at offset {first_bad}); decoded as {enc}")
    return _check_text(text, source), enc, [warning]


def _check_text(text: str, source: str) -> str:
    if not text.strip():
        raise InputError(source, "empty file (no text to process)", reason="empty")
    sample = text[:8192]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f")
    if control > 0.05 * len(sample):
        raise InputError(source, f"binary file ({control} control characters in the first "
                         f"{len(sample)}), not text", reason="binary")
    return text
