"""Documents stored as rows: ``.jsonl``, ``.csv`` and ``.parquet`` with configurable id/text columns.

Rows are streamed (memory stays bounded whatever the file size). A row without text becomes an
:class:`InputFailure`; a row without an id gets ``<file>:<row number>``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..lines import text_lines
from .base import Document, InputFailure


def iter_rows(path: Path, source: str, fmt: str, id_field: str, text_field: str
              ) -> Iterator[Document | InputFailure]:
    rows = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}[fmt]
    for rownum, row, err in rows(path, source, id_field, text_field):
        src = {"path": source, "format": fmt, "row": rownum, "encoding": None}
        if err:
            yield InputFailure(f"{source}:{rownum}", src, "bad_row", f"{source} row {rownum}: {err}")
            continue
        raw_id = row.get(id_field)
        doc_id = str(raw_id) if raw_id not in (None, "") else f"{source}:{rownum}"
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            yield InputFailure(doc_id, src, "empty",
                               f"{source} row {rownum}: no text in column {text_field!r}")
            continue
        yield Document(doc_id, text, src, text_lines(text))


def _jsonl_rows(path: Path, source: str, id_field: str, text_field: str):
    with open(path, "rb") as f:
        for rownum, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if rownum == 1 else "utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                yield rownum, None, f"not a JSON object ({e})"
                continue
            if not isinstance(obj, dict):
                yield rownum, None, f"not a JSON object (got {type(obj).__name__})"
                continue
            if rownum == 1 and text_field not in obj:
                raise InputError(source, f"no {text_field!r} field in line 1 (fields: "
                                 f"{', '.join(sorted(obj))}); set --text-field",
                                 reason="missing_column")
            yield rownum, obj, None


def _csv_rows(path: Path, source: str, id_field: str, text_field: str):
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise InputError(source, "empty CSV file (no header row)", reason="empty")
            if text_field not in reader.fieldnames:
                raise InputError(source, f"no {text_field!r} column (columns: "
                                 f"{', '.join(reader.fieldnames)}); set --text-field",
                                 reason="missing_column")
            for rownum, row in enumerate(reader, start=2):  # row 1 is the header
                yield rownum, row, None
    except UnicodeDecodeError as e:
        raise InputError(source, f"CSV is not UTF-8 (byte {e.start}); re-export it as UTF-8",
                         reason="bad_encoding") from e
    except csv.Error as e:
        raise InputError(source, f"malformed CSV ({e})", reason="corrupt") from e


def _parquet_rows(path: Path, source: str, id_field: str, text_field: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(source, f"corrupt or unreadable Parquet file ({e})", reason="corrupt") from e
    names = pf.schema_arrow.names
    if text_field not in names:
        raise InputError(source, f"no {text_field!r} column (columns: {', '.join(names)}); set "
                         "--text-field", reason="missing_column")
    columns = [c for c in (id_field, text_field) if c in names]
    rownum = 0
    for batch in pf.iter_batches(columns=columns, batch_size=1024):
        for row in batch.to_pylist():
            rownum += 1
            yield rownum, row, None


def row_formats() -> dict[str, str]:
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


