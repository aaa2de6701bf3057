"""Opening terminology source files: UTF-8 (BOM tolerated), any line ending, clear errors."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from .index import TerminologyError


def open_text(path: Path) -> io.TextIOWrapper:
    """Open ``path`` as UTF-8 text (BOM stripped, CRLF normalised); fail early on bad encoding."""
    path = Path(path)
    if not path.is_file():
        raise TerminologyError("file not found", path)
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the block edge
            line = head[:e.start].count(b"\n") + 1
            raise TerminologyError(f"not UTF-8 (byte {head[e.start]:#04x}); re-export the file as "
                                   "UTF-8", path, line) from e
    return open(path, encoding="utf-8-sig", errors="strict", newline=None)


def read_tsv(path: Path, required: tuple[str, ...], *, delimiter: str = "\t") -> Iterator[tuple[int, dict]]:
    """(line number, row dict) of a delimited file with a header; checks the required columns."""
    f = open_text(path)
    with f:
        reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        try:
            header = next(reader)
        except StopIteration:
            raise TerminologyError("empty file (no header row)", path, 1) from None
        except UnicodeDecodeError as e:
            raise TerminologyError(f"not UTF-8 ({e.reason})", path, 1) from e
        missing = [c for c in required if c not in header]
        if missing:
            raise TerminologyError(f"missing column(s) {', '.join(missing)}; found {', '.join(header)}",
                                   path, 1)
        n = 1
        try:
            for n, row in enumerate(reader, 2):
                if not row or row == [""]:
                    continue
                if len(row) != len(header):
                    raise TerminologyError(f"{len(row)} fields, the header has {len(header)}", path, n)
                yield n, dict(zip(header, row))
        except UnicodeDecodeError as e:
            raise TerminologyError(f"not UTF-8 ({e.reason}); re-export the file as UTF-8", path, n + 1) from e
