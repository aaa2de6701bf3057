"""Readers: paths, folders, texts and (id, text) pairs to :class:`Document` or :class:`InputFailure`.

Supported files: ``.txt``/``.md``/``.text`` (UTF-8 with or without BOM; cp1252/latin-1 fallback
with a warning), ``.pdf`` (text layer with line geometry), ``.jsonl``/``.csv``/``.parquet`` (one
document per row, ``id_field``/``text_field`` columns). A folder is read recursively in sorted
order; its documents get ids relative to the folder (``notes/a.txt`` -> ``a.txt``). Anything
else, or anything unreadable, becomes an :class:`InputFailure` naming the file and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import InputError
from ..lines import text_lines
from .base import Document, InputFailure
from .tables import iter_rows, row_formats

TEXT_SUFFIXES = {".txt", ".md", ".text"}
PDF_SUFFIXES = {".pdf"}
DEFAULT_MAX_BYTES = 200 * 1024 * 1024

__all__ = ["Document", "InputFailure", "iter_documents", "read_file", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = TEXT_SUFFIXES | PDF_SUFFIXES | set(row_formats())


def read_file(path: Path, doc_id: str, source: str, *, id_field: str = "id",
              text_field: str = "text", max_bytes: int = DEFAULT_MAX_BYTES
              ) -> Iterator[Document | InputFailure]:
    """Read one file; yields one item per document (several for row formats)."""
    suffix = path.suffix.lower()
    src = {"path": source, "format": suffix.lstrip(".") or "txt", "row": None, "encoding": None}
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(source, f"file is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f}"
                             " MB limit; split it or raise max_bytes", reason="too_large")
        if suffix in row_formats():
            yield from iter_rows(path, source, row_formats()[suffix], id_field, text_field)
        elif suffix in PDF_SUFFIXES:
            from .pdf import read_pdf

            text, lines, warnings = read_pdf(path, source)
            yield Document(doc_id, text, {**src, "format": "pdf"}, lines, warnings)
        elif suffix in TEXT_SUFFIXES:
            from .text import decode_text

            text, encoding, warnings = decode_text(path.read_bytes(), source)
            yield Document(doc_id, text, {**src, "format": "txt", "encoding": encoding},
                           text_lines(text), warnings)
        else:
            raise InputError(source, f"unsupported file type {suffix or '(no extension)'}; "
                             f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
                             reason="unsupported")
    except InputError as e:
        yield InputFailure(doc_id, src, e.reason, str(e))
    except PermissionError as e:
        yield InputFailure(doc_id, src, "unreadable", f"{source}: permission denied ({e})")
    except OSError as e:
        yield InputFailure(doc_id, src, "unreadable", f"{source}: cannot read ({e})")


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def iter_documents(inputs: Iterable[Any], *, id_field: str = "id", text_field: str = "text",
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Document | InputFailure]:
    """Stream documents from ``inputs``.

    Each input is a :class:`pathlib.Path` (file or folder), a ``str`` (the text of a note), an
    ``(id, text)`` pair, or a :class:`Document`. Duplicate ids become failures.
    """
    seen: dict[str, str] = {}
    n_text = 0
    for item in inputs:
        for doc in _expand(item, id_field, text_field, max_bytes, n_text):
            if isinstance(doc, Document):
                first = seen.get(doc.doc_id)
                here = doc.source.get("path") or "<text>"
                if first is not None:
                    yield InputFailure(doc.doc_id, doc.source, "duplicate_id",
                                       f"{here}: duplicate document id {doc.doc_id!r} (first seen "
                                       f"in {first}); ids must be unique within a run")
                    continue
                seen[doc.doc_id] = here
            yield doc
        if isinstance(item, str):
            n_text += 1


def _expand(item, id_field, text_field, max_bytes, n_text):
    if isinstance(item, Document):
        yield item
    elif isinstance(item, os.PathLike):
        path = Path(item)
        if path.is_dir():
            for f in _walk(path):
                rel = f.relative_to(path).as_posix()
                yield from read_file(f, rel, str(f), id_field=id_field, text_field=text_field,
                                     max_bytes=max_bytes)
        elif path.exists():
            yield from read_file(path, path.name, str(path), id_field=id_field,
                                 text_field=text_field, max_bytes=max_bytes)
        else:
            yield InputFailure(path.name, {"path": str(path), "format": None, "row": None,
                                           "encoding": None}, "missing",
                               f"{path}: no such file or folder")
    elif isinstance(item, str):
        yield _from_text(f"text-{n_text + 1}", item)
    elif isinstance(item, tuple) and len(item) == 2:
        yield _from_text(str(item[0]), item[1])
    else:
        raise TypeError(f"cannot read input of type {type(item).__name__}: pass a pathlib.Path, "
                        "a str of text, an (id, text) pair or a medtext Document")


def _from_text(doc_id: str, text: Any) -> Document | InputFailure:
    src = {"path": None, "format": "text", "row": None, "encoding": None}
    if not isinstance(text, str) or not text.strip():
        return InputFailure(doc_id, src, "empty", f"{doc_id}: empty text")
    return Document(doc_id, text, src, text_lines(text))
