"""``medtext.to_frame``: records (or processed Docs, or a records.jsonl) as a pandas DataFrame.

    >>> import medtext
    >>> nlp = medtext.load()
    >>> docs = list(nlp.pipe(["No fever. Known COPD."]))
    >>> medtext.to_frame(docs, table="entities")[["text", "label", "assertion"]]

Tables and their columns are those of the Parquet/CSV output (``medtext.records.tables``):
documents, lines, sections, sentences, entities, concepts, relations, errors. Column types follow
the Parquet schema (nullable integers and floats as pandas' Arrow-backed dtypes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .records.tables import TABLE_SCHEMAS, record_rows


def _records(items: Any) -> Iterable[dict[str, Any]]:
    """Records (upgraded to the current schema version) from dicts, Docs or a records.jsonl."""
    from .errors import InputError
    from .records import upgrade_record

    if isinstance(items, (str, Path)):
        path = Path(items)
        if path.is_dir():
            path = path / "records.jsonl"
        if not path.is_file():
            raise InputError(str(path), "no such records file (a records.jsonl or the -o folder of "
                             "`medtext run --format jsonl`)")
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except ValueError as e:
                        raise InputError(f"{path}:{n}", f"not a JSON record ({e})") from None
                    yield upgrade_record(rec)
        return
    if isinstance(items, dict):
        items = [items]
    for item in items:
        if isinstance(item, dict):
            yield upgrade_record(item)
        elif hasattr(item, "_") and hasattr(item, "text"):  # a processed spaCy Doc
            from .pipeline import to_record

            yield to_record(item)
        else:
            raise InputError(type(item).__name__, "to_frame takes records (dicts), processed Docs or a "
                             "records.jsonl path")


def to_frame(items: Any, table: str = "entities"):
    """One flat table of ``items`` (records, processed Docs, a records.jsonl path or a run
    folder) as a pandas DataFrame keyed by ``doc_id``."""
    import pyarrow as pa

    from .errors import ConfigError
    from .records import validate_record

    if table not in TABLE_SCHEMAS:
        raise ConfigError(f"unknown table {table!r}; choose one of: {', '.join(TABLE_SCHEMAS)}")
    rows = []
    for rec in _records(items):
        validate_record(rec)
        rows.extend(row for name, row in record_rows(rec) if name == table)
    return pa.Table.from_pylist(rows, schema=TABLE_SCHEMAS[table]).to_pandas(types_mapper=_arrow_dtype)


def _arrow_dtype(t):
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_integer(t):
        return pd.Int64Dtype()
    if pa.types.is_floating(t):
        return pd.Float64Dtype()
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None
