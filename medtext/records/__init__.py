"""Records: the versioned output schema (``record.schema.json``), its tables and writers.

A record is a plain dict; :func:`validate_record` checks one against the JSON Schema shipped in
the package. ``SCHEMA_VERSION`` changes with any change of shape (major: incompatible).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .build import SCHEMA_VERSION, to_record  # noqa: F401

__all__ = ["SCHEMA_VERSION", "to_record", "record_schema", "validate_record", "upgrade_record"]


def upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` in the current schema version: a 1.0 record (before entity ``flags``) gains
    ``flags`` from its assertion; a current record is returned as is; anything else is a
    :class:`~medtext.errors.SchemaError` that says what to do."""
    from ..errors import SchemaError

    version = record.get("schema_version") if isinstance(record, dict) else None
    if version == SCHEMA_VERSION:
        return record
    if version == "1.0":
        out = dict(record, schema_version=SCHEMA_VERSION)
        out["entities"] = [
            {**e, "flags": [] if e.get("assertion") in (None, "present") else [e["assertion"]]}
            for e in record.get("entities") or []]
        return out
    raise SchemaError(f"record {record.get('doc_id') if isinstance(record, dict) else None!r} has schema_version "
                      f"{version!r}; this medtext reads {SCHEMA_VERSION!r} (and upgrades 1.0): re-run medtext "
                      "on the source notes")


@lru_cache(maxsize=1)
def record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a record."""
    return json.loads((resources.files(__package__) / "record.schema.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(record_schema())


def validate_record(record: dict[str, Any]) -> None:
    """Raise :class:`~medtext.errors.SchemaError` naming the first problem, if any."""
    from ..errors import SchemaError

    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(f"record {record.get('doc_id')!r} has schema_version {version!r}; this "
                          f"medtext reads {SCHEMA_VERSION!r}: re-run medtext on the source notes"
                          + (" or upgrade the file with `medtext convert OLD.jsonl -o NEW --to jsonl`"
                             if version == "1.0" else ""))
    err = next(iter(sorted(_validator().iter_errors(record), key=lambda e: list(e.path))), None)
    if err is not None:
        where = "/".join(str(p) for p in err.path) or "(top level)"
        raise SchemaError(f"record {record.get('doc_id')!r} at {where}: {err.message}")
