"""Text lines of a document: the unit the layout component labels.

A line is a plain dict (so Docs stay serialisable with ``Doc.to_bytes`` and ``nlp.pipe(n_process=N)``):

``start``/``end``
    character offsets of the line in ``doc.text`` (without the newline).
``page``
    1-based page number (a form feed in text starts a new page; PDF pages are pages).
``number``
    1-based line number within its page.
``x0``, ``y0``, ``x1``, ``y1``, ``font_size``, ``page_width``, ``page_height``
    PDF geometry in points, origin at the top-left of the page; ``None`` for text input.
``indent``
    count of leading spaces/tabs (tab = 4), for text input; ``None`` for PDF.
``rotation``
    only on lines of rotated PDF pages (90, 180 or 270): their geometry is in the unrotated
    page's frame.
"""

from __future__ import annotations

import re
from typing import Any

#: what ``medtext_layout`` labels each line as (the generator in corpora/layout_gen.py uses the same)
LAYOUT_LABELS = ("body", "header", "footer", "side", "signature", "pagination", "other")

LINE_FIELDS = ("start", "end", "page", "number", "x0", "y0", "x1", "y1", "font_size",
               "page_width", "page_height", "indent")

_BREAK = re.compile(r"\r\n|\n|\r|\f")


def _indent(s: str) -> int:
    n = 0
    for ch in s:
        if ch == " ":
            n += 1
        elif ch == "\t":
            n += 4
        else:
            break
    return n


def text_lines(text: str) -> list[dict[str, Any]]:
    """Split ``text`` into lines with page numbers; a form feed ends a page.

    Empty lines are kept (they carry paragraph structure); offsets always point into ``text``.
    """
    lines: list[dict[str, Any]] = []
    page, number, pos = 1, 0, 0
    for m in _BREAK.finditer(text):
        number += 1
        lines.append(_text_line(text, pos, m.start(), page, number))
        if m.group() == "\f":
            page, number = page + 1, 0
        pos = m.end()
    if pos < len(text) or not lines:
        number += 1
        lines.append(_text_line(text, pos, len(text), page, number))
    return lines


def _text_line(text: str, start: int, end: int, page: int, number: int) -> dict[str, Any]:
    return {"start": start, "end": end, "page": page, "number": number, "x0": None, "y0": None,
            "x1": None, "y1": None, "font_size": None, "page_width": None, "page_height": None,
            "indent": _indent(text[start:end])}


def count_pages(lines: list[dict[str, Any]]) -> int:
    return max((ln["page"] for ln in lines), default=1)
