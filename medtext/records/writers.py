"""Record writers: JSONL (one record a line), Parquet and CSV tables, FHIR R4 Bundles, BRAT
standoff and a spaCy DocBin. Every output is atomic.

Each writer takes an iterable of record *batches* (lists of dicts), so memory stays bounded by one
batch whatever the size of the run.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any, Iterable

from ..atomic import atomic_path
from .tables import TABLE_SCHEMAS, record_rows


class RecordWriter:
    """Writes batches of records under ``out_dir``; ``paths`` lists what it wrote."""

    format = ""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.paths: list[Path] = []

    def write(self, batches: Iterable[list[dict[str, Any]]]) -> list[Path]:
        raise NotImplementedError


class JsonlRecordWriter(RecordWriter):
    format = "jsonl"

    def write(self, batches):
        target = self.out_dir / "records.jsonl"
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for batch in batches:
                for rec in batch:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.paths = [target]
        return self.paths


def _table_tmp_paths(stack: contextlib.ExitStack, folder: Path, suffix: str) -> dict[str, Path]:
    """A temporary path per table under ``folder``; each is renamed into place when ``stack`` closes."""
    return {name: stack.enter_context(atomic_path(folder / f"{name}{suffix}")) for name in TABLE_SCHEMAS}


class ParquetRecordWriter(RecordWriter):
    """One Parquet file per table under ``OUT/parquet/``, one row group per batch."""

    format = "parquet"

    def write(self, batches):
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.out_dir / "parquet"
        with contextlib.ExitStack() as stack:
            tmps = _table_tmp_paths(stack, folder, ".parquet")
            writers = {name: pq.ParquetWriter(tmps[name], schema, compression="zstd")
                       for name, schema in TABLE_SCHEMAS.items()}
            try:
                for batch in batches:
                    rows: dict[str, list] = {name: [] for name in TABLE_SCHEMAS}
                    for rec in batch:
                        for table, row in record_rows(rec):
                            rows[table].append(row)
                    for name, table_rows in rows.items():
                        if table_rows:
                            writers[name].write_table(
                                pa.Table.from_pylist(table_rows, schema=TABLE_SCHEMAS[name]))
            finally:
                for w in writers.values():
                    w.close()
        self.paths = [folder / f"{name}.parquet" for name in TABLE_SCHEMAS]
        return self.paths


class CsvRecordWriter(RecordWriter):
    """One CSV file per table under ``OUT/csv/`` (UTF-8, header row, RFC 4180 quoting)."""

    format = "csv"

    def write(self, batches):
        folder = self.out_dir / "csv"
        with contextlib.ExitStack() as stack:
            writers = {}
            tmps = _table_tmp_paths(stack, folder, ".csv")
            for name, schema in TABLE_SCHEMAS.items():
                f = stack.enter_context(open(tmps[name], "w", encoding="utf-8", newline=""))
                w = csv.DictWriter(f, fieldnames=schema.names, extrasaction="raise")
                w.writeheader()
                writers[name] = w
            for batch in batches:
                for rec in batch:
                    for table, row in record_rows(rec):
                        writers[table].writerow(row)
        self.paths = [folder / f"{name}.csv" for name in TABLE_SCHEMAS]
        return self.paths


class BratRecordWriter(RecordWriter):
    """BRAT standoff under ``OUT/brat/``: ``<name>.txt`` + ``<name>.ann`` per record, with
    ``annotation.conf`` and ``visual.conf`` (``medtext.corpora.brat``). Needs the note text."""

    format = "brat"

    def write(self, batches):
        from ..corpora.brat import write_brat

        self.paths = write_brat((rec for batch in batches for rec in batch), self.out_dir / "brat")
        return self.paths


class DocBinRecordWriter(RecordWriter):
    """A spaCy ``DocBin`` (``OUT/docs.spacy``): entities as ``doc.ents`` (non-overlapping) and
    ``doc.spans["entities"]``, sentences, sections, layout, and the record's assertions, codes
    and relations in ``doc.user_data["medtext"]`` — training data for ``spacy train``."""

    format = "spacy"

    def write(self, batches):
        from ..corpora.brat import records_to_docbin

        target = self.out_dir / "docs.spacy"
        records_to_docbin((rec for batch in batches for rec in batch), target)
        self.paths = [target]
        return self.paths


def _fhir_writer() -> type[RecordWriter]:
    from .fhir import FhirRecordWriter, index_crossmap  # fhir.py imports RecordWriter from here

    class IndexFhirRecordWriter(FhirRecordWriter):
        """FHIR bundles whose codings add the default terminology index's cross-maps (SNOMED CT
        -> ICD-10-CM) when that index is built."""

        def __init__(self, out_dir):
            from ..terminologies.default import default_index_dir

            crossmap = None
            where = default_index_dir()
            if (where / "metadata.json").exists():
                from ..terminologies.index import ConceptIndex

                crossmap = index_crossmap(ConceptIndex.load(where))
            super().__init__(out_dir, crossmap=crossmap)

    return IndexFhirRecordWriter


WRITERS: dict[str, type[RecordWriter] | object] = {
    "jsonl": JsonlRecordWriter, "parquet": ParquetRecordWriter, "csv": CsvRecordWriter, "fhir": _fhir_writer,
    "brat": BratRecordWriter, "spacy": DocBinRecordWriter}


def get_writer(fmt: str, out_dir: str | Path) -> RecordWriter:
    from ..errors import ConfigError

    if fmt not in WRITERS:
        raise ConfigError(f"unknown output format {fmt!r}; choose one of: {', '.join(WRITERS)}")
    cls = WRITERS[fmt]
    if not isinstance(cls, type):
        cls = cls()
    return cls(out_dir)
