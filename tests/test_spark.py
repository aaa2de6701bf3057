"""The Spark backend (``medtext.spark``) in local mode, against the single-process pipeline.

One SparkSession ``local[2]`` for the module; its two Python workers each load the default
pipeline once (MEDTEXT_HOME comes from the session fixture in conftest, set before the JVM
starts, so the workers inherit it). Skipped when pyspark or Java is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyspark", reason="pip install 'medtext[spark]' to test the Spark backend")
if shutil.which("java") is None:
    pytest.skip("the Spark backend needs Java (java not on PATH)", allow_module_level=True)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from medtext.errors import ConfigError, OutputError  # noqa: E402
from medtext.records.tables import TABLE_SCHEMAS, records_to_tables  # noqa: E402

from .conftest import make_pdf  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")

NOTES = [
    ("n1", "HPI: 67 yo F with shortness of breath and chest pain for 2 days. Denies fever."),
    ("n2", "Assessment: Type 2 diabetes mellitus, poorly controlled.\nPlan: start metformin "
           "500 mg BID. Check HbA1c in 3 months."),
    ("n3", "No cough. History of asthma. Mother with breast cancer."),
    ("n4", ""),
    ("n5", "CXR shows right lower lobe pneumonia. Started ceftriaxone."),
    ("n6", "Pt reports headache; rule out migraine. Ibuprofen PRN."),
]


@pytest.fixture(scope="module")
def spark(medtext_home):
    from medtext.spark import get_session

    session = get_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _rows(table: pa.Table, drop: tuple[str, ...] = ()) -> list[tuple]:
    cols = [c for c in table.column_names if c not in drop]
    return sorted((tuple(r[c] for c in cols) for r in table.select(cols).to_pylist()),
                  key=repr)


def _spark_rows(df, drop: tuple[str, ...] = ()) -> list[tuple]:
    cols = [c for c in df.columns if c not in drop]
    return sorted((tuple(r[c] for c in cols) for r in df.select(*cols).collect()), key=repr)


def _local(inputs, nlp) -> tuple[dict[str, pa.Table], list[dict]]:
    import medtext

    out = list(medtext.process(inputs, nlp=nlp, errors="yield"))
    records = [r for r in out if "reason" not in r]
    return records_to_tables(records), [r for r in out if "reason" in r]


def _read_out(out: Path) -> tuple[dict[str, pa.Table], list[dict]]:
    tables = {name: pq.read_table(out / "parquet" / name, schema=schema)
              for name, schema in TABLE_SCHEMAS.items()}
    return tables, pq.read_table(out / "errors").to_pylist()


def _same_errors(spark_rows: list[dict], local_rows: list[dict]) -> None:
    key = ("doc_id", "source", "row", "reason", "message")
    assert sorted(tuple(r[k] for k in key) for r in spark_rows) == \
        sorted(tuple(r[k] for k in key) for r in local_rows)


def test_import_medtext_does_not_import_pyspark():
    code = "import sys, medtext, medtext.spark; assert 'pyspark' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_pyspark_is_a_config_error(monkeypatch):
    from medtext.spark import get_session

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(ConfigError, match=r"pip install 'medtext\[spark\]'"):
        get_session()


def test_device_auto_without_a_task_gpu():
    from medtext.spark import _with_device, resolve_device

    assert resolve_device("auto") == "cpu"  # no task context here: CPU
    assert resolve_device("cuda:1") == "cuda:1"
    assert _with_device({"medtext_linker": {"device": "auto", "top": 3}}, "cuda:0") == \
        {"medtext_linker": {"device": "cuda:0", "top": 3}}


def test_schemas_and_driver_checks(spark):
    from pyspark.sql import types as T

    from medtext.spark import annotate, output_tables, spark_schema

    st = spark_schema(TABLE_SCHEMAS["concepts"])
    assert [f.name for f in st] == TABLE_SCHEMAS["concepts"].names
    assert isinstance(st["rank"].dataType, T.LongType) and isinstance(st["score"].dataType, T.DoubleType)
    assert set(output_tables()) == {*TABLE_SCHEMAS, "records", "failures"}
    df = spark.createDataFrame(NOTES, "id string, text string")
    with pytest.raises(ConfigError, match="unknown table"):
        annotate(df, table="nope")
    with pytest.raises(ConfigError, match="unknown preset"):
        annotate(df, preset="nope")
    with pytest.raises(ConfigError, match="no column 'body'"):
        annotate(df, text_col="body")
    with pytest.raises(ConfigError, match="bad device"):
        annotate(df, device="tpu")


def test_failure_isolation_in_the_task(nlp, monkeypatch):
    """A document that breaks the pipeline becomes a failure row; its batch-mates still get
    records (the task itself, without Spark, using the session's pipeline)."""
    import medtext.pipeline
    from medtext import spark as ms

    real = medtext.pipeline.process_documents

    def flaky(nlp_, docs, **kw):
        if any("BOOM" in d.text for d in docs):
            raise RuntimeError("kaboom")
        return real(nlp_, docs, **kw)

    monkeypatch.setattr(medtext.pipeline, "process_documents", flaky)
    monkeypatch.setitem(ms._PIPELINES, ("default", "{}", "cpu", os.environ.get("MEDTEXT_HOME")), nlp)
    batch = pa.RecordBatch.from_pylist(
        [{"id": "ok", "text": "Denies chest pain."}, {"id": "bad", "text": "BOOM chest pain"},
         {"id": None, "text": "No id."}, {"id": "7", "text": "  "}],
        schema=pa.schema([("id", pa.string()), ("text", pa.string())]))
    out = list(ms._PipelineTask(output="results", batch_size=8)(iter([batch])))
    rows = {r["doc_id"]: r for b in out for r in b.to_pylist()}
    assert json.loads(rows["ok"]["record_json"])["doc_id"] == "ok"
    assert rows["bad"]["reason"] == "pipeline_error" and "kaboom" in rows["bad"]["message"]
    assert rows[None]["reason"] == "missing_id"
    assert rows["7"]["reason"] == "empty"


@pytest.mark.slow
def test_annotate_all_matches_local(spark, nlp):
    import medtext
    from medtext.spark import annotate, annotate_all

    df = spark.createDataFrame(NOTES, "id string, text string").repartition(2)
    tables = annotate_all(df, include_text=True)
    try:
        expected = list(medtext.process(NOTES, nlp=nlp, errors="yield"))
        local_records = {r["doc_id"]: r for r in expected if "reason" not in r}
        local_errors = [r for r in expected if "reason" in r]
        assert [r["reason"] for r in local_errors] == ["empty"]  # n4, as the local reader says
        got = {r.doc_id: json.loads(r.record_json) for r in tables["records"].collect()}
        assert got == local_records  # whole records, byte for byte as JSON values
        _same_errors([r.asDict() for r in tables["failures"].collect()], local_errors)
        local = records_to_tables(list(local_records.values()))
        assert local["entities"].num_rows > 5
        assert _spark_rows(tables["entities"]) == _rows(local["entities"])
        key = ("doc_id", "start", "end", "label", "assertion", "kb_id")
        assert _spark_rows(annotate(df, table="entities").select(*key)) == \
            _rows(local["entities"].select(list(key)))
    finally:
        tables["results"].unpersist()


@pytest.mark.slow
def test_run_spark_matches_local(spark, nlp, tmp_path):
    """A folder of notes (text, PDF, a CSV with a quoted CRLF, an empty and an unsupported file)
    and a Parquet file (a row without id, an empty text, a duplicate id) in one run, against
    ``medtext.process`` on the same inputs."""
    import medtext
    from medtext.spark import run_spark

    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    for i, (doc_id, text) in enumerate(NOTES):
        (notes / ("sub" if i % 2 else "") / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    make_pdf(notes / "scan.pdf", [["FINDINGS: No pleural effusion."], ["IMPRESSION: Normal chest."]])
    (notes / "letter.docx").write_bytes(b"PK\x03\x04 not really")
    (notes / "rows.csv").write_bytes(b'note_id,body\r\nc1,"Plan:\r\nstart ""lisinopril"" 10 mg '
                                     b'daily."\r\nc2,Knee pain without swelling.\r\n')
    table = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"note_id": [n for n, _ in NOTES] + [None, "n1"],
                             "body": [t for _, t in NOTES] + ["Severe back pain.",
                                                              "Duplicate: no chest pain."]}), table)
    out = tmp_path / "out"
    (out / "parquet" / "entities").mkdir(parents=True)  # an earlier run: replaced
    summary = run_spark([notes, table], out, id_field="note_id", text_field="body",
                        overwrite=True, partitions=2)

    got, errors = _read_out(out)
    expected = list(medtext.process([notes, table], nlp=nlp, errors="yield", id_field="note_id",
                                    text_field="body"))
    local = records_to_tables([r for r in expected if "reason" not in r])
    for name in TABLE_SCHEMAS:
        assert _rows(got[name]) == _rows(local[name]), name
    _same_errors(errors, [r for r in expected if "reason" in r])
    ids = got["documents"].column("doc_id").to_pylist()
    assert {"sub/n2.txt", "scan.pdf", "c1", "n1", f"{table}:7"} <= set(ids)
    assert sorted(r["reason"] for r in errors) == ["duplicate_id", "empty", "empty", "unsupported"]

    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["backend"] == "spark" and summary["master"] == "local[2]"
    assert (summary["documents"], summary["failed"]) == (len(ids), 4) == (14, 4)
    assert summary["entities"] == local["entities"].num_rows
    assert list((out / "parquet" / "entities").glob("part-*.parquet"))
    with pytest.raises(OutputError, match="earlier run"):
        run_spark([notes], out)


@pytest.mark.slow
def test_cli_backend_spark(spark, nlp, tmp_path):
    """`medtext run --backend spark` over a folder: the same entities as the local run."""
    from typer.testing import CliRunner

    from medtext.cli import app

    notes = tmp_path / "notes"
    notes.mkdir()
    for doc_id, text in NOTES:
        (notes / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(notes), "-o", str(tmp_path / "s"), "--backend", "spark",
                              "--partitions", "2", "-q"])
    assert res.exit_code == 1, res.output  # the empty note is a failure row
    assert "spark" in res.output
    got, errors = _read_out(tmp_path / "s")
    res = runner.invoke(app, ["run", str(notes), "-o", str(tmp_path / "l"), "-q", "--format", "parquet"])
    local = pq.read_table(tmp_path / "l" / "parquet" / "entities.parquet")
    assert _rows(got["entities"]) == _rows(local)
    assert [e["reason"] for e in errors] == ["empty"]
    res = runner.invoke(app, ["run", str(notes), "-o", str(tmp_path / "x"), "--backend", "spark",
                              "--format", "csv"])
    assert res.exit_code == 2 and "do not apply to --backend spark" in res.output
