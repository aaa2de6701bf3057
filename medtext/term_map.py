"""Mapping a list of source terms to codes (``medtext map``).

A data team's usual first linking job is not a note but a column of local terms: a problem list,
lab test names, a procedure catalogue. :func:`map_terms` reads them from a table (``.csv``,
``.tsv``, or ``.txt`` with one term per line), links each distinct (term, label) once with a
preset's linker, and writes the table back with the code, its name, the score the decision was
made on, a status and the top candidates for review (``system:code name (score)``, ``|``-separated). Every input row yields an output row, in
input order: a blank term is ``empty``, a label the linker has no route for is ``error`` with
the reason, a term below the label's NIL threshold is ``nil`` (its candidates are still listed).
The output is written atomically (a failed run leaves no half-written file).
"""

from __future__ import annotations

import csv
import io
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


def _delimiter(path: Path, what: str) -> str | None:
    """``,`` / tab for a table, None for a ``.txt`` list; anything else is an error."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".txt" and what == "input":
        return None
    kinds = ".csv, .tsv or .txt (one term per line)" if what == "input" else ".csv or .tsv"
    raise (InputError(str(path), f"the {what} must be {kinds}", "unsupported") if what == "input"
           else OutputError(f"{path}: the output must be {kinds}"))


def read_terms(path: Path, column: str, label_column: str | None) -> tuple[list[str], list[dict]]:
    """(header, rows) of ``path``. A ``.txt`` file is one term per line under the column ``column``
    (blank lines kept as empty rows, so line n is row n). Raises :class:`InputError` for a missing
    file or column, a file that is not UTF-8 text, or a malformed table."""
    path = Path(path)
    source = str(path)
    delimiter = _delimiter(path, "input")
    if not path.is_file():
        raise InputError(source, "not found", "not_found")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise InputError(source, "binary file, not a table of terms", "binary")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise InputError(source, f"not UTF-8 text (byte {e.start}, line {line}); re-export it as UTF-8",
                         "bad_encoding") from e
    if delimiter is None:
        if label_column:
            raise InputError(source, "a .txt list has one term per line and no columns: give one label for all "
                             "(--label), or write a .csv with a label column", "missing_column")
        return [column], [{column: line} for line in text.splitlines()]
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = list(reader.fieldnames or [])
        if not header:
            raise InputError(source, "empty table (no header row)", "empty")
        for name in [column] + ([label_column] if label_column else []):
            if name not in header:
                raise InputError(source, f"no {name!r} column (columns: {', '.join(header)})", "missing_column")
        rows = []
        for n, row in enumerate(reader, start=2):
            if None in row:  # more fields than the header
                raise InputError(source, f"row {n} has {len(header) + len(row[None])} fields, the header "
                                 f"{len(header)}", "corrupt")
            rows.append(row)
    except csv.Error as e:
        raise InputError(source, f"malformed table ({e})", "corrupt") from e
    return header, rows


def map_terms(linker, input_path: Path, output_path: Path, *, column: str = TEXT_COLUMN,
              label: str | None = None, label_column: str | None = None, k: int = 3,
              progress: Callable[[int, int], None] | None = None) -> MapSummary:
    """Link every row's term (``column``) under ``label`` (or the row's ``label_column``) with
    ``linker`` and write the rows with :data:`OUT_COLUMNS` to ``output_path`` (``.csv`` / ``.tsv``).
    ``k``: candidates listed per row. ``progress(done, total)`` after each batch of distinct terms."""
    from .terminologies.linking import Mention

    if (label is None) == (label_column is None):
        raise ValueError("give exactly one of label and label_column")
    out_delimiter = _delimiter(Path(output_path), "output")
    header, rows = read_terms(Path(input_path), column, label_column)
    t0 = time.perf_counter()
    summary = MapSummary(rows=len(rows))
    routes = set(linker.routes)
    keys: list[tuple[str, str] | None] = []  # per row: (term, label) to link, or None
    status: list[tuple[str, str]] = []  # per row, for rows not linked: (status, message)
    for row in rows:
        term = (row.get(column) or "").strip()
        lab = (label if label is not None else (row.get(label_column) or "")).strip()
        if not term:
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
    with atomic_path(output_path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, delimiter=out_delimiter, extrasaction="ignore")
            writer.writeheader()
            for row, key, (st, message) in zip(rows, keys, status):
                out = dict(row)
                out.update(dict.fromkeys(OUT_COLUMNS, ""))
                if key is None:
                    out.update(medtext_status=st, medtext_message=message,
                               medtext_label=label if label is not None else (row.get(label_column) or ""))
                else:
                    res = results[key]
                    best = res.best
                    st = "linked" if best is not None else "nil"
                    out.update(medtext_label=key[1], medtext_status=st, medtext_score=f"{res.score:.4f}",
                               medtext_candidates=" | ".join(f"{c.system}:{c.code} {c.term} ({c.score:.3f})"
                                                             for c in res.candidates[:k]))
                    if best is not None:
                        out.update(medtext_system=best.system, medtext_code=best.code, medtext_display=best.term)
                summary.by_status[st] = summary.by_status.get(st, 0) + 1
                writer.writerow(out)
    summary.seconds = time.perf_counter() - t0
    return summary
