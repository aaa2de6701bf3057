"""Mapping a list of source terms to codes (``medtext map``).

A data team's usual first linking job is not a note but a column of local terms: a problem list,
lab test names, a procedure catalogue. :func:`map_terms` reads them from a table (``.csv``,
``.tsv``, ``.jsonl``, ``.parquet``, or ``.txt`` with one term per line), links each distinct
(term, label) once with a preset's linker, and writes the table back with the code, its name,
the score the decision was made on, a status and the top candidates for review
(``system:code name (score)``, ``|``-separated). Every input row yields an output row, in input
order: a blank term is ``empty``; a label the linker has no route for, or a JSONL line that is
not an object, is ``error`` with the reason; a term below the label's NIL threshold is ``nil``
(its candidates are still listed). The output is written atomically (a failed run leaves no
half-written file).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .atomic import atomic_path
from .errors import InputError, OutputError

# the columns added to each row (an input that has them already, e.g. an earlier output, gets them replaced)
OUT_COLUMNS = ("medtext_label", "medtext_system", "medtext_code", "medtext_display", "medtext_score",
               "medtext_status", "medtext_candidates", "medtext_message")
TEXT_COLUMN = "term"  # the default term column (and the name a .txt file's lines get)
BATCH = 256  # distinct terms per linker call


@dataclass
class MapSummary:
    rows: int = 0
    distinct: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".parquet": "parquet"}


def table_format(path: Path, what: str) -> str:
    """The table format of ``path`` by its extension (``.txt``, a list of terms, is input only)."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None or (fmt == "txt" and what == "output"):
        kinds = ".csv, .tsv, .jsonl, .parquet" + (" or .txt (one term per line)" if what == "input" else "")
        if what == "input":
            raise InputError(str(path), f"the input must be {kinds}", "unsupported")
        raise OutputError(f"{path}: the output must be {kinds}")
    return fmt


def _cell(value) -> str:
    """A table cell as text (a JSON or Parquet value may be a number or null)."""
    return "" if value is None else value if isinstance(value, str) else str(value)


def read_terms(path: Path, column: str, label_column: str | None) -> tuple[list[str], list[dict]]:
    """(header, rows) of ``path``: ``.csv`` / ``.tsv`` with a header row, ``.jsonl`` (one object per
    line; a line that is not one becomes a row with only ``_error``), ``.parquet``, or ``.txt``,
    one term per line under the column ``column`` (blank lines kept as empty rows, so line n is
    row n). Raises :class:`InputError` for a missing file or column, a text file that is not
    UTF-8, a binary or corrupt file, or a malformed table."""
    path = Path(path)
    source = str(path)
    fmt = table_format(path, "input")
    if not path.is_file():
        raise InputError(source, "not found", "not_found")
    needed = [column] + ([label_column] if label_column else [])

    def check(header: list[str]) -> None:
        for name in needed:
            if name not in header:
                raise InputError(source, f"no {name!r} column (columns: {', '.join(header)})", "missing_column")

    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise InputError(source, f"corrupt or unreadable Parquet file ({e})", "corrupt") from e
        check(table.schema.names)
        return list(table.schema.names), table.to_pylist()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(source, f"unreadable ({e.strerror or e})", "unreadable") from e
    if b"\x00" in raw[:65536]:
        raise InputError(source, "binary file, not a table of terms", "binary")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise InputError(source, f"not UTF-8 text (byte {e.start}, line {line}); re-export it as UTF-8",
                         "bad_encoding") from e
    if fmt == "txt":
        if label_column:
            raise InputError(source, "a .txt list has one term per line and no columns: give one label for all "
                             "(--label), or write a .csv with a label column", "missing_column")
        return [column], [{column: line} for line in text.splitlines()]
    if fmt == "jsonl":
        header: dict[str, None] = {}
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                obj = {"_error": f"line {n}: not JSON ({e.msg})"}
            if not isinstance(obj, dict):
                obj = {"_error": f"line {n}: not a JSON object"}
            if "_error" not in obj:
                header.update(dict.fromkeys(obj))
            rows.append(obj)
        if not header:
            raise InputError(source, "no JSON object in the file", "empty")
        check(list(header))
        return list(header), rows
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t")
        header = list(reader.fieldnames or [])
        if not header:
            raise InputError(source, "empty table (no header row)", "empty")
        check(header)
        rows = []
        for n, row in enumerate(reader, start=2):
            if None in row:  # more fields than the header
                raise InputError(source, f"row {n} has {len(header) + len(row[None])} fields, the header "
                                 f"{len(header)}", "corrupt")
            rows.append(row)
    except csv.Error as e:
        raise InputError(source, f"malformed table ({e})", "corrupt") from e
    return header, rows


def _write(path: Path, fmt: str, columns: list[str], rows: list[dict]) -> None:
    """Write ``rows`` (``columns`` in order) to ``path`` as ``fmt``; the score is a number in
    JSONL and Parquet, four decimals in CSV / TSV. A Parquet column whose values mix types (a
    JSONL input) is written as text."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = []
        for c in columns:
            values = [row.get(c) for row in rows]
            try:
                arrays.append(pa.array(values, None if c not in OUT_COLUMNS
                                       else pa.float64() if c == "medtext_score" else pa.string()))
            except (pa.ArrowException, TypeError, ValueError):  # mixed types (JSONL): the column as text
                arrays.append(pa.array([None if v is None else _cell(v) if not isinstance(v, (dict, list))
                                        else json.dumps(v, ensure_ascii=False) for v in values], pa.string()))
        pq.write_table(pa.Table.from_arrays(arrays, names=columns), path)
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for row in rows:
                f.write(json.dumps({c: row.get(c) for c in columns if c in row}, ensure_ascii=False,
                                   default=str) + "\n")  # a Parquet timestamp or decimal as text
            return
        writer = csv.DictWriter(f, fieldnames=columns, delimiter="," if fmt == "csv" else "\t", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            score = row.get("medtext_score")
            writer.writerow({**row, "medtext_score": "" if score is None else f"{score:.4f}"})


def map_terms(linker, input_path: Path, output_path: Path, *, column: str = TEXT_COLUMN,
              label: str | None = None, label_column: str | None = None, k: int = 3,
              progress: Callable[[int, int], None] | None = None,
              table: tuple[list[str], list[dict]] | None = None) -> MapSummary:
    """Link every row's term (``column``) under ``label`` (or the row's ``label_column``) with
    ``linker`` and write the rows with :data:`OUT_COLUMNS` to ``output_path`` (``.csv``, ``.tsv``,
    ``.jsonl`` or ``.parquet``).
    ``k``: candidates listed per row. ``progress(done, total)`` after each batch of distinct terms.
    ``table``: ``input_path`` as :func:`read_terms` already read it (the CLI reads the input
    before it loads the linker, so a bad input fails at once)."""
    from .terminologies.linking import Mention

    if (label is None) == (label_column is None):
        raise ValueError("give exactly one of label and label_column")
    out_format = table_format(Path(output_path), "output")
    header, rows = table if table is not None else read_terms(Path(input_path), column, label_column)
    t0 = time.perf_counter()
    summary = MapSummary(rows=len(rows))
    routes = set(linker.routes)
    keys: list[tuple[str, str] | None] = []  # per row: (term, label) to link, or None
    status: list[tuple[str, str]] = []  # per row, for rows not linked: (status, message)
    for row in rows:
        term = _cell(row.get(column)).strip()
        lab = (label if label is not None else _cell(row.get(label_column))).strip()
        if "_error" in row:
            keys.append(None)
            status.append(("error", row["_error"]))
        elif not term:
            keys.append(None)
            status.append(("empty", f"no term in column {column!r}"))
        elif lab not in routes:
            keys.append(None)
            status.append(("error", f"no route for label {lab!r}; this linker links {', '.join(sorted(routes))}"
                           if lab else f"no label in column {label_column!r}"))
        else:
            keys.append((term, lab))
            status.append(("", ""))
    distinct = list(dict.fromkeys(key for key in keys if key is not None))
    summary.distinct = len(distinct)
    results = {}
    top = linker.top
    linker.top = max(top, k)  # decisions do not depend on top (the pool holds MIN_POOL concepts)
    try:
        for s in range(0, len(distinct), BATCH):
            batch = distinct[s:s + BATCH]
            for key, res in zip(batch, linker.link([Mention(t, lab) for t, lab in batch])):
                results[key] = res
            if progress:
                progress(min(s + BATCH, len(distinct)), len(distinct))
    finally:
        linker.top = top
    columns = header + [c for c in OUT_COLUMNS if c not in header]
    out_rows = []
    for row, key, (st, message) in zip(rows, keys, status):
        out = {c: v for c, v in row.items() if c != "_error"}
        out.update(dict.fromkeys(OUT_COLUMNS, None))
        if key is None:
            out.update(medtext_status=st, medtext_message=message,
                       medtext_label=label if label is not None else _cell(row.get(label_column)))
        else:
            res = results[key]
            best = res.best
            st = "linked" if best is not None else "nil"
            out.update(medtext_label=key[1], medtext_status=st, medtext_score=round(float(res.score), 4),
                       medtext_candidates=" | ".join(f"{c.system}:{c.code} {c.term} ({c.score:.3f})"
                                                     for c in res.candidates[:k]))
            if best is not None:
                out.update(medtext_system=best.system, medtext_code=best.code, medtext_display=best.term)
        summary.by_status[st] = summary.by_status.get(st, 0) + 1
        out_rows.append(out)
    with atomic_path(output_path) as tmp:
        _write(tmp, out_format, columns, out_rows)
    summary.seconds = time.perf_counter() - t0
    return summary
