"""Apache Spark backend: run a medtext pipeline over a Spark DataFrame of notes.

    from medtext.spark import annotate, annotate_all
    notes = spark.read.parquet("notes.parquet")                    # columns id, text
    entities = annotate(notes, preset="default", table="entities")  # a DataFrame of entity rows
    tables = annotate_all(notes)          # every table, the pipeline runs once per note

How it runs. The notes go through ``mapInArrow``: each Python worker of each executor loads the
pipeline once (a module-level cache keyed by preset, overrides, device and ``MEDTEXT_HOME``)
and keeps it while Spark reuses the worker (``spark.python.worker.reuse``, on by default), then
turns each Arrow batch of notes into Arrow batches of output rows (``mapInArrow`` rather than
``mapInPandas``: no pandas round trip, so nullable integer columns stay integers, and no
dependence on PySpark's pandas support). Output tables are the flat
tables of :mod:`medtext.records.tables` (``TABLE_SCHEMAS``), plus ``records`` (``doc_id``,
``record_json``: the whole record as JSON) and ``failures`` (``doc_id``, ``source``, ``row``,
``reason``, ``message``: the rows of ``errors.jsonl``).

Failure model. A note that yields no record (empty text, a pipeline exception, over
``max_length``...) becomes a ``failures`` row and is absent from every other table; it never
fails the Spark job. A wrong preset, override or device fails the job at once, with medtext's
message: in the driver where it can be checked there, else in the first task.

``run_spark`` is the ``medtext run --backend spark`` command: local (or shared-filesystem)
inputs to partitioned Parquet under ``OUT``, with the same document ids, sources and failure
rows as the single-process reader.

pyspark is imported lazily: ``import medtext`` never imports it, and this module only needs it
when a function here is called (``pip install 'medtext[spark]'``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import pyarrow as pa

from .errors import ConfigError, InputError, OutputError
from .readers import DEFAULT_MAX_BYTES, Document, InputFailure
from .records.tables import TABLE_SCHEMAS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_S, _I = pa.string(), pa.int64()

#: ``table="failures"``: one row per note that gave no record (the columns of ``errors.jsonl``)
FAILURES_SCHEMA = pa.schema([("doc_id", _S), ("source", _S), ("row", _I), ("reason", _S),
                             ("message", _S)])
#: ``table="records"``: one row per record, the record as JSON
RECORDS_SCHEMA = pa.schema([("doc_id", _S), ("record_json", _S)])
#: the pipeline's output in ``annotate_all``/``run_spark`` (cached once, every table derives from
#: it): a record (``record_json`` set) or a failure (``reason`` set), never both
RESULTS_SCHEMA = pa.schema([("doc_id", _S), ("record_json", _S), ("n_entities", _I),
                            ("source", _S), ("row", _I), ("reason", _S), ("message", _S),
                            ("input", _I)])
#: documents read from files by the executors, before the pipeline (internal to ``run_spark``)
_DOCS_SCHEMA = pa.schema([("doc_id", _S), ("text", _S), ("source_json", _S), ("lines_json", _S),
                          ("warnings_json", _S), ("reason", _S), ("message", _S), ("input", _I)])

#: failure reasons of inputs that were documents (they count for duplicate-id checks, as in
#: :func:`medtext.readers.iter_documents`)
_DOCUMENT_FAILURES = ("too_large", "pipeline_error")

INSTALL_HINT = "pip install 'medtext[spark]'"


def output_tables() -> list[str]:
    """The names ``annotate(table=...)`` accepts: the record tables, ``records``, ``failures``."""
    return [*TABLE_SCHEMAS, "records", "failures"]


def output_schema(table: str) -> pa.Schema:
    """The pyarrow schema of output ``table`` (see :func:`output_tables`)."""
    if table in TABLE_SCHEMAS:
        return TABLE_SCHEMAS[table]
    if table == "records":
        return RECORDS_SCHEMA
    if table == "failures":
        return FAILURES_SCHEMA
    if table == "results":
        return RESULTS_SCHEMA
    raise ConfigError(f"unknown table {table!r}: use one of {', '.join(output_tables())}")


# --- pyspark, lazily -----------------------------------------------------------------------
def _pyspark():
    """The ``pyspark`` module, or a :class:`ConfigError` that says how to install it."""
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"the Spark backend needs pyspark: {INSTALL_HINT} (and Java 17+ on "
                          "PATH for local mode)") from e
    return pyspark


def spark_schema(schema: pa.Schema):
    """The Spark ``StructType`` of a pyarrow schema (string, int64, float64 and bool columns)."""
    _pyspark()
    from pyspark.sql import types as T

    mapping = {pa.string(): T.StringType(), pa.int64(): T.LongType(),
               pa.float64(): T.DoubleType(), pa.bool_(): T.BooleanType()}
    fields = []
    for f in schema:
        if f.type not in mapping:
            raise ConfigError(f"column {f.name!r} has type {f.type}, which the Spark backend "
                              "does not map; use string, int64, float64 or bool")
        fields.append(T.StructField(f.name, mapping[f.type], nullable=True))
    return T.StructType(fields)


def get_session(master: str | None = None, *, app_name: str = "medtext") -> "SparkSession":
    """The active SparkSession (when ``master`` is None or matches it), else a new one on
    ``master`` (default ``local[*]``).

    A new local session runs its Python workers on this interpreter (``PYSPARK_PYTHON``), with
    the UI off and Python worker reuse on (each worker keeps its loaded pipeline).
    """
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if master is None or active.sparkContext.master == master:
            return active
        raise ConfigError(f"a SparkSession on master {active.sparkContext.master!r} is already "
                          f"running in this process; stop it or drop --master {master}")
    master = master or "local[*]"
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.python.worker.reuse", "true"))
    if master.startswith("local"):
        # same machine: the executors' Python must be this one (it has medtext installed)
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        builder = builder.config("spark.sql.shuffle.partitions", str(max(2, os.cpu_count() or 2)))
    try:
        return builder.getOrCreate()
    except Exception as e:  # noqa: BLE001 - JVM start-up problems surface as many types
        raise ConfigError(f"cannot start Spark on master {master!r}: {e}; local mode needs "
                          "Java 17+ on PATH (java -version)") from e


# --- executor side: one pipeline per Python worker -----------------------------------------
_PIPELINES: dict[tuple, Any] = {}


def resolve_device(device: str) -> str:
    """``device`` as the executor should use it: ``"auto"`` becomes ``cuda:<address>`` of the
    GPU Spark assigned to the running task (``TaskContext.resources()["gpu"]``), else ``cpu``;
    anything else is returned unchanged."""
    if device != "auto":
        return device
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        gpu = ctx.resources().get("gpu") if ctx is not None else None
    except Exception:  # noqa: BLE001 - no task context / resources API: run on CPU
        log.debug("no Spark task resources; device auto -> cpu", exc_info=True)
        gpu = None
    addresses = list(getattr(gpu, "addresses", None) or [])
    return f"cuda:{addresses[0]}" if addresses else "cpu"


def _with_device(overrides: dict[str, Any], device: str) -> dict[str, Any]:
    """Replace ``"device": "auto"`` in component overrides by the resolved ``device``."""
    out = {}
    for comp, values in overrides.items():
        if isinstance(values, dict) and values.get("device") == "auto":
            values = {**values, "device": device}
        out[comp] = values
    return out


def worker_pipeline(preset: str, overrides_json: str = "{}", device: str = "cpu",
                    medtext_home: str | None = None):
    """The pipeline of this Python process for ``(preset, overrides, device, medtext_home)``,
    loaded on first use and kept for the life of the process."""
    if medtext_home:
        os.environ["MEDTEXT_HOME"] = medtext_home
    key = (preset, overrides_json, device, os.environ.get("MEDTEXT_HOME"))
    nlp = _PIPELINES.get(key)
    if nlp is None:
        from .device import one_cpu_thread, use_device
        from .pipeline import load

        resolved = resolve_device(device)
        t0 = time.perf_counter()
        one_cpu_thread()  # one Python worker per task slot: no competing thread pools
        use_device(resolved)
        nlp = load(preset, **_with_device(json.loads(overrides_json), resolved))
        log.info("medtext: loaded preset %s on %s in %.1f s (pid %d)", preset, resolved,
                 time.perf_counter() - t0, os.getpid())
        _PIPELINES[key] = nlp
    return nlp


def _text_item(raw_id: Any, text: Any) -> Document | InputFailure:
    """A note given as (id, text), as :func:`medtext.readers.iter_documents` reads a pair;
    a null or empty id is a failure (a Spark row has no position to name it by)."""
    from .lines import text_lines

    src = {"path": None, "format": "text", "row": None, "encoding": None}
    if raw_id is None or raw_id == "":
        return InputFailure(None, src, "missing_id", "note without an id (null or empty id "
                            "column); give every note a unique id")
    doc_id = str(raw_id)
    if not isinstance(text, str) or not text.strip():
        return InputFailure(doc_id, src, "empty", f"{doc_id}: empty text")
    return Document(doc_id, text, src, text_lines(text))


def _doc_item(row: dict[str, Any]) -> Document | InputFailure:
    """A :data:`_DOCS_SCHEMA` row back to a Document or InputFailure."""
    from .lines import text_lines

    source = json.loads(row["source_json"]) if row["source_json"] else {}
    if row["reason"]:
        return InputFailure(row["doc_id"], source, row["reason"], row["message"])
    lines = json.loads(row["lines_json"]) if row["lines_json"] else text_lines(row["text"])
    warnings = json.loads(row["warnings_json"]) if row["warnings_json"] else []
    return Document(row["doc_id"], row["text"], source, lines, warnings)


def _safe_process(nlp, docs: list[Document], batch_size: int, include_text: bool) -> list:
    """``process_documents`` that never raises: whatever breaks is pinned on one document."""
    from .pipeline import Result, process_documents

    try:
        return process_documents(nlp, docs, batch_size=batch_size, include_text=include_text)
    except Exception:  # noqa: BLE001 - isolate the culprit below
        log.debug("batch failed outside the pipeline; retrying one by one", exc_info=True)
    results = []
    for d in docs:
        try:
            results.extend(process_documents(nlp, [d], batch_size=1, include_text=include_text))
        except Exception as e:  # noqa: BLE001 - becomes a failure row
            results.append(Result(failure=InputFailure(
                d.doc_id, d.source, "pipeline_error",
                f"{d.source.get('path') or d.doc_id}: pipeline failed "
                f"({type(e).__name__}: {e})")))
    return results


@dataclass(frozen=True)
class _PipelineTask:
    """The ``mapInArrow`` function: Arrow batches of notes in, Arrow batches of ``output`` rows
    out. A module-level class (pickled by reference, unlike a closure), so its methods use the
    worker's real module globals and the pipeline cache (:data:`_PIPELINES`) outlives tasks."""

    output: str
    mode: str = "columns"  # "columns": (id, text) rows; "docs": _DOCS_SCHEMA rows
    preset: str = "default"
    overrides_json: str = "{}"
    device: str = "cpu"
    medtext_home: str | None = None
    batch_size: int = 32
    include_text: bool = False

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = output_schema(self.output)
        chunk = max(self.batch_size, 1) * 4
        for batch in batches:
            items = self._items(batch)
            for i in range(0, len(items), chunk):
                rows = self._rows(items[i:i + chunk])
                if rows:
                    yield pa.RecordBatch.from_pylist(rows, schema=schema)

    def _items(self, batch: pa.RecordBatch) -> list[tuple[Document | InputFailure, int | None]]:
        if self.mode == "columns":
            ids, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            return [(_text_item(i, t), None) for i, t in zip(ids, texts)]
        return [(_doc_item(r), r.get("input")) for r in batch.to_pylist()]

    def _rows(self, items: list[tuple[Document | InputFailure, int | None]]) -> list[dict]:
        from .pipeline import Result

        docs = [d for d, _ in items if isinstance(d, Document)]
        done = iter(_safe_process(worker_pipeline(self.preset, self.overrides_json, self.device,
                                                  self.medtext_home),
                                  docs, self.batch_size, self.include_text) if docs else [])
        rows: list[dict] = []
        for item, input_no in items:
            res = next(done) if isinstance(item, Document) else Result(failure=item)
            rows.extend(self._result_rows(res, input_no))
        return rows

    def _result_rows(self, res, input_no: int | None) -> list[dict]:
        from .records.tables import record_rows

        out = self.output
        rec, failure = res.record, res.failure
        record_json = None
        if rec is not None and out in ("records", "results"):
            try:
                record_json = json.dumps(rec, ensure_ascii=False)
            except (TypeError, ValueError) as e:
                rec, failure = None, InputFailure(
                    rec.get("doc_id"), rec.get("source") or {}, "pipeline_error",
                    f"{rec.get('doc_id')}: record is not JSON-serialisable ({e})")
        if rec is not None:
            if out == "records":
                return [{"doc_id": rec["doc_id"], "record_json": record_json}]
            if out == "results":
                src = rec.get("source") or {}
                return [{"doc_id": rec["doc_id"], "record_json": record_json,
                         "n_entities": len(rec["entities"]), "source": src.get("path"),
                         "row": src.get("row"), "input": input_no}]
            return [row for table, row in record_rows(rec) if table == out]
        row = failure.to_row()
        if out == "failures":
            return [row]
        if out == "results":
            return [{**row, "input": input_no}]
        return []


@dataclass(frozen=True)
class _TableTask:
    """``mapInArrow`` over (doc_id, record_json) rows: the rows of one record table."""

    table: str

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from .records.tables import record_rows

        schema = TABLE_SCHEMAS[self.table]
        for batch in batches:
            rows = [row for rj in batch.column("record_json").to_pylist() if rj
                    for table, row in record_rows(json.loads(rj)) if table == self.table]
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)


# --- the public DataFrame API --------------------------------------------------------------
def _check_columns(df, id_col: str, text_col: str) -> None:
    missing = [c for c in (id_col, text_col) if c not in df.columns]
    if missing:
        raise ConfigError(f"no column {missing[0]!r} in the DataFrame (columns: "
                          f"{', '.join(df.columns)}); set id_col/text_col")


def _notes(df: "DataFrame", id_col: str, text_col: str) -> "DataFrame":
    """The (id, text) columns the pipeline task reads; ids keep their type (Python turns
    them into strings, as ``str(id)`` locally), text is cast to string."""
    from pyspark.sql import functions as F

    return df.select(F.col(f"`{id_col}`").alias("id"),
                     F.col(f"`{text_col}`").cast("string").alias("text"))


def _check_options(preset: str, overrides: dict | None, device: str, batch_size: int) -> str:
    """Check what the driver can check; return the overrides as canonical JSON."""
    from .device import parse_device
    from .pipeline import PRESET_ALIASES, available_presets

    if (preset not in available_presets() and preset not in PRESET_ALIASES
            and "/" not in preset and os.sep not in preset
            and not preset.endswith(".cfg") and not Path(preset).is_dir()):
        raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(available_presets())}, "
                          "a path to a .cfg file, or a saved pipeline folder")
    if device != "auto":
        parse_device(device)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    overrides = overrides or {}
    if not all(isinstance(v, dict) for v in overrides.values()):
        raise ConfigError("overrides must map component names to dicts of config values")
    try:
        return json.dumps(overrides, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"overrides must be JSON-serialisable (they travel to the executors): {e}") from e


def annotate(df: "DataFrame", *, id_col: str = "id", text_col: str = "text",
             preset: str = "default", table: str = "entities", batch_size: int = 32,
             overrides: dict[str, dict[str, Any]] | None = None, include_text: bool = False,
             device: str = "cpu", medtext_home: str | None = None) -> "DataFrame":
    """Run ``preset`` over the notes of ``df`` and return the rows of one output ``table``.

    ``df`` holds one note per row: ``id_col`` (a unique id; non-string ids are turned into
    strings) and ``text_col`` (the text). ``table`` is a record table (``documents``, ``lines``,
    ``sections``, ``sentences``, ``entities``, ``concepts``, ``relations``, ``errors``; columns as
    in :data:`medtext.records.tables.TABLE_SCHEMAS`), ``records`` (``doc_id``, ``record_json``) or
    ``failures`` (``doc_id``, ``source``, ``row``, ``reason``, ``message``). A note that fails
    (empty text, null id, a pipeline exception) is a ``failures`` row and is absent from the
    other tables. The result is lazy, like any DataFrame; each action runs the pipeline again
    (use :func:`annotate_all` for several tables).

    ``overrides`` are per-component config values (as in :func:`medtext.load`). ``device`` is
    ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (the GPU Spark assigned to the task, else CPU); a
    component override ``{"device": "auto"}`` gets the same resolved device. ``medtext_home``,
    when given, is set as ``MEDTEXT_HOME`` in the executors before the pipeline loads (else
    their own environment decides). Duplicate ids are not detected (that needs a shuffle).
    """
    _pyspark()
    _check_columns(df, id_col, text_col)
    overrides_json = _check_options(preset, overrides, device, batch_size)
    schema = output_schema(table)
    task = _PipelineTask(output=table, mode="columns", preset=preset,
                         overrides_json=overrides_json, device=device, medtext_home=medtext_home,
                         batch_size=batch_size, include_text=include_text)
    notes = _notes(df, id_col, text_col)
    return notes.mapInArrow(task, spark_schema(schema))


def annotate_all(df: "DataFrame", *, id_col: str = "id", text_col: str = "text",
                 preset: str = "default", batch_size: int = 32,
                 overrides: dict[str, dict[str, Any]] | None = None, include_text: bool = False,
                 device: str = "cpu", medtext_home: str | None = None,
                 eager: bool = True) -> dict[str, "DataFrame"]:
    """Every output table of ``df``'s notes, running the pipeline once per note.

    Returns ``{"results", "records", "failures", "documents", "lines", ..., "errors"}``.
    ``results`` is the pipeline's output (:data:`RESULTS_SCHEMA`), persisted (memory and disk)
    and, with ``eager`` (default), computed before this function returns, so that every other
    table is derived from it (parsing ``record_json``) without running the pipeline again. Call
    ``tables["results"].unpersist()`` when done. Arguments as in :func:`annotate`.
    """
    _pyspark()
    from pyspark import StorageLevel

    _check_columns(df, id_col, text_col)
    overrides_json = _check_options(preset, overrides, device, batch_size)
    task = _PipelineTask(output="results", mode="columns", preset=preset,
                         overrides_json=overrides_json, device=device, medtext_home=medtext_home,
                         batch_size=batch_size, include_text=include_text)
    notes = _notes(df, id_col, text_col)
    results = notes.mapInArrow(task, spark_schema(RESULTS_SCHEMA))
    results = results.persist(StorageLevel.MEMORY_AND_DISK)
    if eager:
        results.count()
    return _tables_from_results(results)


def _tables_from_results(results: "DataFrame") -> dict[str, "DataFrame"]:
    from pyspark.sql import functions as F

    records = results.where(F.col("record_json").isNotNull()).select("doc_id", "record_json")
    failures = results.where(F.col("record_json").isNull()).select(
        *[f.name for f in FAILURES_SCHEMA])
    tables = {"results": results, "records": records, "failures": failures}
    for name, schema in TABLE_SCHEMAS.items():
        tables[name] = records.mapInArrow(_TableTask(name), spark_schema(schema))
    return tables


# --- run_spark: files -> partitioned Parquet -----------------------------------------------
def _uri_path(uri: str, *, encoded: bool) -> str:
    """A local path from a Spark ``file:`` URI (``_metadata.file_path`` is percent-encoded,
    ``binaryFile``'s ``path`` is not)."""
    from urllib.parse import unquote

    path = uri
    if path.startswith("file:"):
        path = path[5:]
        if path.startswith("//"):
            path = path[2:]
    return unquote(path) if encoded else path


@dataclass(frozen=True)
class _Input:
    """One input of ``run_spark``: where it is, as given and absolute."""

    number: int
    given: str  # the path as the user gave it (sources are named with it, as locally)
    absolute: str
    is_dir: bool

    def name(self, file_path: str) -> tuple[str, str]:
        """(doc_id, source) of a file under this input, as the local reader names them."""
        if not self.is_dir:
            return Path(self.given).name, self.given
        rel = Path(os.path.relpath(file_path, self.absolute)).as_posix()
        return rel, str(Path(self.given) / rel)


def _docs_row(item: Document | InputFailure, input_no: int) -> dict[str, Any]:
    if isinstance(item, InputFailure):
        return {"doc_id": item.doc_id, "source_json": json.dumps(item.source), "reason": item.reason,
                "message": item.message, "input": input_no}
    return {"doc_id": item.doc_id, "text": item.text, "source_json": json.dumps(item.source),
            "lines_json": json.dumps(item.lines), "warnings_json": json.dumps(item.warnings),
            "input": input_no}


@dataclass(frozen=True)
class _FileReadTask:
    """``mapInArrow`` over ``binaryFile`` rows (path, length, content): medtext's own readers
    (:func:`medtext.readers.read_file`) on the bytes, so text decoding, PDFs, row files and every
    failure match the local run."""

    source: _Input
    id_field: str
    text_field: str
    max_bytes: int

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = [r for b in batch.to_pylist() for r in self._read(b)]
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=_DOCS_SCHEMA)

    def _read(self, b: dict[str, Any]) -> list[dict[str, Any]]:
        from .readers import read_file

        doc_id, source = self.source.name(_uri_path(b["path"], encoded=False))
        suffix = Path(source).suffix
        if b["content"] is None:  # over max_bytes: not read
            src = {"path": source, "format": suffix.lower().lstrip(".") or "txt", "row": None,
                   "encoding": None}
            e = InputError(source, f"file is {b['length'] / 1e6:.0f} MB, over the "
                           f"{self.max_bytes / 1e6:.0f} MB limit; split it or raise max_bytes",
                           reason="too_large")
            return [_docs_row(InputFailure(doc_id, src, e.reason, str(e)), self.source.number)]
        with tempfile.TemporaryDirectory(prefix="medtext-spark-") as tmp:
            path = Path(tmp) / f"input{suffix}"
            path.write_bytes(b["content"])
            return [_docs_row(item, self.source.number)
                    for item in read_file(path, doc_id, source, id_field=self.id_field,
                                          text_field=self.text_field, max_bytes=self.max_bytes)]


@dataclass(frozen=True)
class _RowReadTask:
    """``mapInArrow`` over rows Spark read from Parquet (id, text, file_path, row_index): ids,
    sources and row numbers as :mod:`medtext.readers.tables` gives them."""

    source: _Input
    text_field: str

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from .lines import text_lines

        for batch in batches:
            rows = []
            for r in batch.to_pylist():
                _, source = self.source.name(_uri_path(r["file_path"], encoded=True))
                rownum = r["row_index"] + 1
                src = {"path": source, "format": "parquet", "row": rownum, "encoding": None}
                raw_id, text = r["id"], r["text"]
                doc_id = str(raw_id) if raw_id not in (None, "") else f"{source}:{rownum}"
                if not isinstance(text, str) or not text.strip():
                    item: Document | InputFailure = InputFailure(
                        doc_id, src, "empty",
                        f"{source} row {rownum}: no text in column {self.text_field!r}")
                else:
                    item = Document(doc_id, text, src, text_lines(text))
                rows.append(_docs_row(item, self.source.number))
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=_DOCS_SCHEMA)


def _visible_files(root: Path) -> list[Path]:
    from .readers import _walk

    return list(_walk(root))


def _read_inputs(spark, inputs: list[Path], *, id_field: str, text_field: str,
                 max_bytes: int) -> "DataFrame":
    """The documents of ``inputs`` (:data:`_DOCS_SCHEMA` rows), read by the executors."""
    from pyspark.sql import functions as F

    from .readers import read_file

    docs_type = spark_schema(_DOCS_SCHEMA)
    frames: list[DataFrame] = []
    driver_rows: list[dict[str, Any]] = []
    for number, given in enumerate(inputs):
        path = Path(given)
        src = {"path": str(path), "format": None, "row": None, "encoding": None}
        if not path.exists():
            driver_rows.append(_docs_row(InputFailure(path.name, src, "missing",
                                                      f"{path}: no such file or folder"), number))
            continue
        inp = _Input(number, str(path), os.path.abspath(path), path.is_dir())
        files = _visible_files(path) if inp.is_dir else [path]
        spark_files = [f for f in files if not any(
            p.startswith("_") for p in (f.relative_to(path).parts if inp.is_dir else [f.name]))]
        if spark_files and all(f.suffix.lower() == ".parquet" for f in spark_files):
            frame, failures = _read_parquet_input(spark, inp, spark_files, id_field, text_field)
            driver_rows.extend(failures)
            if frame is not None:
                frames.append(frame)
            continue
        # Spark's listing skips empty files and names starting with "_": the driver reads those
        for f in files:
            if f.stat().st_size == 0 or f not in spark_files:
                doc_id, source = inp.name(os.path.abspath(f))
                driver_rows.extend(_docs_row(item, number) for item in read_file(
                    f, doc_id, source, id_field=id_field, text_field=text_field,
                    max_bytes=max_bytes))
        if not any(f.stat().st_size for f in spark_files):
            continue
        reader = spark.read.format("binaryFile")
        if inp.is_dir:
            reader = reader.option("recursiveFileLookup", "true")
        raw = reader.load(_file_uri(inp.absolute))
        small = raw.where(F.col("length") <= max_bytes).select("path", "length", "content")
        big = raw.where(F.col("length") > max_bytes).select(
            "path", "length", F.lit(None).cast("binary").alias("content"))
        frames.append(small.unionByName(big).mapInArrow(
            _FileReadTask(inp, id_field, text_field, max_bytes), docs_type))
    if driver_rows:
        frames.append(spark.createDataFrame(
            [tuple(r.get(f.name) for f in _DOCS_SCHEMA) for r in driver_rows], docs_type))
    if not frames:
        return spark.createDataFrame([], docs_type)
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def _read_parquet_input(spark, inp: _Input, files: list[Path], id_field: str,
                        text_field: str) -> tuple["DataFrame | None", list[dict[str, Any]]]:
    """A Parquet input (a file, or a folder of only Parquet files) read by Spark, split by row
    group across tasks; ids and rows as :mod:`medtext.readers.tables` gives them."""
    from pyspark.sql import functions as F

    fmt = "parquet"
    reader = spark.read
    if inp.is_dir:
        reader = reader.option("recursiveFileLookup", "true")
    uri = _file_uri(inp.absolute)

    def per_file(reason: str, message: str) -> list[dict[str, Any]]:
        rows = []
        for f in files:
            doc_id, source = inp.name(os.path.abspath(f))
            src = {"path": source, "format": fmt, "row": None, "encoding": None}
            rows.append(_docs_row(InputFailure(doc_id, src, reason, f"{source}: {message}"),
                                  inp.number))
        return rows

    try:
        df = reader.format(fmt).load(uri)
        columns = df.columns
    except Exception as e:  # noqa: BLE001 - Spark's AnalysisException and friends
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        return None, per_file("corrupt", f"corrupt or unreadable Parquet file ({first})")
    if text_field not in columns:
        return None, per_file("missing_column", f"no {text_field!r} column (columns: "
                                                f"{', '.join(columns)}); set --text-field")
    cols = [F.col(f"`{id_field}`").alias("id") if id_field in columns
            else F.lit(None).cast("string").alias("id"),
            F.col(f"`{text_field}`").cast("string").alias("text"),
            F.col("_metadata.file_path").alias("file_path"),
            F.col("_metadata.row_index").alias("row_index")]
    return df.select(*cols).mapInArrow(_RowReadTask(inp, text_field),
                                       spark_schema(_DOCS_SCHEMA)), []


def _mark_duplicates(results: "DataFrame") -> "DataFrame":
    """Later documents with an id seen before become ``duplicate_id`` failures, as in
    :func:`medtext.readers.iter_documents` ("first" = by input, then source path, then row)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    is_doc = F.col("record_json").isNotNull() | F.col("reason").isin(*_DOCUMENT_FAILURES)
    docs = results.where(is_doc & F.col("doc_id").isNotNull())
    dup_ids = docs.groupBy("doc_id").count().where(F.col("count") > 1).select("doc_id")
    if dup_ids.isEmpty():
        return results
    flagged = results.join(F.broadcast(dup_ids.withColumn("_dup", F.lit(True))), "doc_id", "left")
    clean = flagged.where(F.col("_dup").isNull() | ~is_doc).drop("_dup")
    w = Window.partitionBy("doc_id").orderBy("input", "source", "row")
    dups = (flagged.where(F.col("_dup").isNotNull() & is_doc).drop("_dup")
            .withColumn("_rank", F.row_number().over(w))
            .withColumn("_first", F.first("source").over(w)))
    here = F.coalesce(F.col("source"), F.lit("<text>"))
    message = F.format_string("%s: duplicate document id '%s' (first seen in %s); ids must be "
                              "unique within a run", here, F.col("doc_id"),
                              F.coalesce(F.col("_first"), F.lit("<text>")))
    later = dups.where(F.col("_rank") > 1).select(
        "doc_id", F.lit(None).cast("string").alias("record_json"),
        F.lit(None).cast("long").alias("n_entities"), "source", "row",
        F.lit("duplicate_id").alias("reason"), message.alias("message"), "input")
    first = dups.where(F.col("_rank") == 1).drop("_rank", "_first")
    return clean.unionByName(first).unionByName(later)


def _file_uri(path: str | os.PathLike) -> str:
    """``file://`` + the absolute path, unescaped (Hadoop paths take it literally); explicit so
    a cluster whose default filesystem is HDFS still reads and writes the local path."""
    return "file://" + os.path.abspath(path)


def _medtext_error(e: Exception, out_dir: Path) -> Exception:
    """A Spark failure as the medtext error the CLI reports: a ConfigError raised in an executor
    (e.g. the preset's index is missing there) stays a ConfigError, anything else is an
    OutputError naming the run."""
    text = str(e)
    for line in text.splitlines():
        if "ConfigError: " in line:
            return ConfigError(f"in a Spark executor: {line.split('ConfigError: ', 1)[1]}")
    first = next((ln for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return OutputError(f"Spark run into {out_dir} failed: {first}")


def _write_tables(tables: dict[str, "DataFrame"], out_dir: Path, mode: str) -> list[str]:
    """Write every record table to ``OUT/parquet/<table>`` and the failures to ``OUT/errors``.
    Returns the folders written, relative to ``out_dir``."""
    jobs = {f"parquet/{name}": tables[name] for name in TABLE_SCHEMAS}
    jobs["errors"] = tables["failures"]
    for rel, df in jobs.items():
        df.write.mode(mode).parquet(_file_uri(out_dir / rel))
    return list(jobs)


def run_spark(inputs: list[Path], out_dir: Path, *, preset: str = "default",
              id_field: str = "id", text_field: str = "text", master: str | None = None,
              batch_size: int = 32, overwrite: bool = False, include_text: bool = True,
              partitions: int | None = None, overrides: dict[str, dict[str, Any]] | None = None,
              device: str = "cpu", max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """``medtext run --backend spark``: process ``inputs`` on Spark into ``out_dir``.

    ``inputs`` are local paths (on a cluster: paths the driver and every executor see the same
    way, on a shared filesystem), read as the single-process reader reads them, with the same
    ids, sources and failure rows:

    - a ``.parquet`` file, or a folder holding only Parquet files (e.g. Spark's own output):
      read by Spark and split by row group across tasks; ``id_field``/``text_field`` columns,
      ids from the id column, else ``<file>:<row>``;
    - any other file or folder (``.txt``, ``.md``, ``.pdf``, ``.csv``, ``.jsonl``...): Spark
      ships each file's bytes (``binaryFile``) to an executor, which reads it with medtext's own
      readers (so encodings, PDFs, CSV quoting and every failure match; each file is read whole,
      under ``max_bytes`` like locally); ids in a folder are paths relative to it. Files Spark's
      listing skips (empty, or named ``_*``) are read by the driver instead.

    The documents are then spread over ``partitions`` tasks (default: two per core of the
    session) for the pipeline. Writes

    ``OUT/parquet/<table>/part-*.parquet``
        every table of :data:`~medtext.records.tables.TABLE_SCHEMAS`;
    ``OUT/errors/part-*.parquet``
        one row per input that gave no record (``doc_id``, ``source``, ``row``, ``reason``,
        ``message``, as ``errors.jsonl``);
    ``OUT/summary.json``
        the returned summary: documents, failed, entities, seconds, backend, master...

    An earlier run in ``OUT`` is an :class:`~medtext.errors.OutputError` unless ``overwrite``.
    ``master`` defaults to the active SparkSession, else ``local[*]``; a session this function
    starts, it stops. Duplicate ids: the first (by input, source path, row) keeps its record,
    the others become ``duplicate_id`` failures, as locally.
    """
    from .atomic import atomic_write_text
    from .run import check_writable

    _pyspark()
    from pyspark import StorageLevel
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    overrides_json = _check_options(preset, overrides, device, batch_size)
    out_dir = Path(out_dir)
    targets = [out_dir / "parquet", out_dir / "errors"]
    if not overwrite and any(t.exists() for t in targets):
        raise OutputError(f"{out_dir} holds an earlier run ({out_dir / 'parquet'}); pass "
                          "--overwrite to replace it or choose another -o")
    check_writable(out_dir)
    if partitions is not None and partitions < 1:
        raise ConfigError(f"partitions must be at least 1, not {partitions}")
    started = SparkSession.getActiveSession() is None
    spark = get_session(master)
    local = spark.sparkContext.master.startswith("local")
    try:
        docs = _read_inputs(spark, [Path(p) for p in inputs], id_field=id_field,
                            text_field=text_field, max_bytes=max_bytes)
        n_parts = partitions or 2 * spark.sparkContext.defaultParallelism
        docs = docs.repartition(n_parts)  # a stage boundary: one Python worker per pipeline task
        task = _PipelineTask(output="results", mode="docs", preset=preset,
                             overrides_json=overrides_json, device=device,
                             medtext_home=os.environ.get("MEDTEXT_HOME") if local else None,
                             batch_size=batch_size, include_text=include_text)
        level = StorageLevel.MEMORY_AND_DISK
        raw = docs.mapInArrow(task, spark_schema(RESULTS_SCHEMA)).persist(level)
        cached = [raw]
        try:
            n_results = raw.count()  # the pipeline runs here, once
            log.info("spark: %d results in %.1f s", n_results, time.perf_counter() - t0)
            results = _mark_duplicates(raw)
            if results is not raw:
                results = results.coalesce(n_parts).persist(level)
                cached.append(results)
                results.count()
            tables = _tables_from_results(results)
            outputs = _write_tables(tables, out_dir, "overwrite" if overwrite else "errorifexists")
            log.info("spark: wrote %d outputs at %.1f s", len(outputs), time.perf_counter() - t0)
            by_reason = results.groupBy("reason").agg(
                F.count(F.lit(1)).alias("n"), F.sum("n_entities").alias("entities")).collect()
        finally:
            for df in cached:
                df.unpersist()
        reasons = {r["reason"]: r["n"] for r in by_reason if r["reason"] is not None}
        done = [r for r in by_reason if r["reason"] is None]
        summary = {
            "backend": "spark", "master": spark.sparkContext.master, "preset": preset,
            "documents": done[0]["n"] if done else 0, "failed": sum(reasons.values()),
            "entities": int(done[0]["entities"] or 0) if done else 0,
            "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "partitions": n_parts, "outputs": outputs,
            "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as e:
        if type(e).__module__.startswith(("pyspark", "py4j")):
            raise _medtext_error(e, out_dir) from e
        raise
    finally:
        if started:
            spark.stop()
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
