"""Flat tables derived from records (Parquet and CSV writers use these; nothing else is written).

Every table is keyed by ``doc_id``: ``documents``, ``lines``, ``sections``, ``sentences``,
``entities``, ``concepts`` (one row per candidate concept of an entity), ``relations`` and
``errors`` (clinical error findings of ``medtext_errors``; failed inputs go to ``errors.jsonl``).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pyarrow as pa

S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "documents": pa.schema([
        ("doc_id", S), ("schema_version", S), ("source_path", S), ("source_format", S),
        ("source_row", I), ("encoding", S), ("text_sha256", S), ("n_chars", I), ("pages", I),
        ("n_sentences", I), ("n_entities", I), ("n_relations", I), ("n_errors", I),
        ("warnings", S), ("text", S), ("lay_text", S), ("pipeline", S)]),
    "lines": pa.schema([
        ("doc_id", S), ("start", I), ("end", I), ("page", I), ("number", I), ("x0", F),
        ("y0", F), ("x1", F), ("y1", F), ("font_size", F), ("page_width", F),
        ("page_height", F), ("indent", I), ("label", S)]),
    "sections": pa.schema([("doc_id", S), ("label", S), ("start", I), ("end", I)]),
    "sentences": pa.schema([("doc_id", S), ("start", I), ("end", I)]),
    "entities": pa.schema([
        ("doc_id", S), ("entity_id", S), ("start", I), ("end", I), ("text", S), ("label", S),
        ("section", S), ("assertion", S), ("flags", S), ("kb_id", S), ("lay", S)]),
    "concepts": pa.schema([
        ("doc_id", S), ("entity_id", S), ("rank", I), ("system", S), ("code", S),
        ("display", S), ("score", F)]),
    "relations": pa.schema([("doc_id", S), ("head", S), ("tail", S), ("label", S),
                            ("score", F)]),
    "errors": pa.schema([
        ("doc_id", S), ("start", I), ("end", I), ("type", S), ("message", S),
        ("correction", S), ("score", F), ("detector", S)]),
}


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False)


def record_rows(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table name, row) for every row a record contributes."""
    d = record["doc_id"]
    src = record.get("source") or {}
    yield "documents", {
        "doc_id": d, "schema_version": record["schema_version"], "source_path": src.get("path"),
        "source_format": src.get("format"), "source_row": src.get("row"),
        "encoding": src.get("encoding"), "text_sha256": record["text_sha256"],
        "n_chars": record["n_chars"], "pages": record["pages"],
        "n_sentences": len(record["sentences"]), "n_entities": len(record["entities"]),
        "n_relations": len(record["relations"]), "n_errors": len(record["errors"]),
        "warnings": _json(record["warnings"]), "text": record.get("text"),
        "lay_text": record.get("lay_text"), "pipeline": _json(record.get("pipeline"))}
    for ln in record["lines"]:
        yield "lines", {"doc_id": d, **ln}
    for s in record["sections"]:
        yield "sections", {"doc_id": d, **s}
    for s in record["sentences"]:
        yield "sentences", {"doc_id": d, **s}
    for e in record["entities"]:
        lay = e.get("lay")
        yield "entities", {"doc_id": d, "entity_id": e["id"], "start": e["start"],
                           "end": e["end"], "text": e["text"], "label": e["label"],
                           "section": e.get("section"), "assertion": e.get("assertion"),
                           "flags": ",".join(e.get("flags") or []) or None,
                           "kb_id": e.get("kb_id"),
                           "lay": lay if isinstance(lay, str) or lay is None else _json(lay)}
        for rank, c in enumerate(e.get("concepts") or [], start=1):
            yield "concepts", {"doc_id": d, "entity_id": e["id"], "rank": rank, **c}
    for r in record["relations"]:
        yield "relations", {"doc_id": d, **r}
    for err in record["errors"]:
        yield "errors", {"doc_id": d, **err}


def records_to_tables(records: list[dict[str, Any]]) -> dict[str, pa.Table]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLE_SCHEMAS}
    for rec in records:
        for table, row in record_rows(rec):
            rows[table].append(row)
    return {name: pa.Table.from_pylist(rows[name], schema=schema)
            for name, schema in TABLE_SCHEMAS.items()}
