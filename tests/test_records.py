from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import medtext
from medtext.errors import SchemaError
from medtext.records import record_schema, validate_record
from medtext.records.tables import TABLE_SCHEMAS, records_to_tables
from medtext.records.writers import get_writer


def test_record_shape_and_schema(nlp):
    text = "HPI: cough for 3 days.\fIMPRESSION: normal."
    doc = nlp(text)
    rec = medtext.to_record(doc)
    validate_record(rec)
    assert rec["pages"] == 2 and rec["n_chars"] == len(text)
    assert [(s["label"], text[s["start"]:s["end"]]) for s in rec["sections"]] == [
        ("hpi", "HPI: cough for 3 days."), ("impression", "IMPRESSION: normal.")]
    assert [text[s["start"]:s["end"]] for s in rec["sentences"]] == [
        "HPI:", "cough for 3 days.", "IMPRESSION:", "normal."]
    assert [c["factory"] for c in rec["pipeline"]["components"][:2]] == ["medtext_layout", "medtext_sections"]
    assert [ln["label"] for ln in rec["lines"]] == ["body", "body"]
    assert doc._.record == rec


def test_schema_rejects_bad_records(nlp):
    rec = medtext.to_record(nlp("HPI: cough."))
    with pytest.raises(SchemaError, match="schema_version"):
        validate_record({**rec, "schema_version": "0.9"})
    with pytest.raises(SchemaError, match="sections/0"):
        validate_record({**rec, "sections": [{"label": "hpi", "start": -1, "end": 3}]})
    with pytest.raises(SchemaError, match="Additional properties"):
        validate_record({**rec, "surprise": 1})


def test_entities_relations_errors_in_record(nlp):
    """Fields later components fill are carried through records and tables."""
    from spacy.tokens import Doc, Span

    for ext in ("relations", "errors"):
        if not Doc.has_extension(ext):
            Doc.set_extension(ext, default=None)
    for ext in ("assertion", "concepts"):
        if not Span.has_extension(ext):
            Span.set_extension(ext, default=None)
    doc = nlp("FINDINGS: Right lower lobe opacity.")
    anat = Span(doc, 2, 5, label="ANAT-DP")
    obs = Span(doc, 5, 6, label="OBS-DP")
    doc.ents = [anat, obs]
    obs._.assertion = "uncertain"
    obs._.concepts = [("SNOMEDCT", "129134004", "Opacity", 0.9)]
    doc._.relations = [(obs.start, obs.end, anat.start, anat.end, "located_at", 0.8)]
    doc._.errors = [{"start": 10, "end": 35, "type": "diagnosis", "message": "m", "correction": None,
                     "score": 0.5, "detector": "test"}]
    rec = medtext.to_record(doc)
    validate_record(rec)
    assert rec["entities"][1]["section"] == "findings"
    assert rec["relations"] == [{"head": "T2", "tail": "T1", "label": "located_at", "score": 0.8}]
    tables = records_to_tables([rec])
    assert tables["concepts"].to_pylist()[0]["code"] == "129134004"
    assert tables["entities"].num_rows == 2 and tables["errors"].num_rows == 1
    doc._.relations = None
    doc._.errors = None


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_writers_round_trip(nlp, tmp_path, fmt):
    recs = [medtext.to_record(nlp(t)) for t in ("HPI: a.", "PLAN: b.\nFINDINGS: c.")]
    recs[1]["doc_id"] = "second"
    writer = get_writer(fmt, tmp_path)
    paths = writer.write([recs[:1], recs[1:]])
    assert all(p.exists() for p in paths)
    assert not list(tmp_path.rglob("*.tmp"))
    if fmt == "jsonl":
        assert [json.loads(x) for x in paths[0].read_text().splitlines()] == recs
    elif fmt == "parquet":
        docs = pq.read_table(tmp_path / "parquet" / "documents.parquet")
        assert docs.column("doc_id").to_pylist() == [recs[0]["doc_id"], "second"]
        assert pq.read_table(tmp_path / "parquet" / "sections.parquet").num_rows == 3
    else:
        import csv

        with open(tmp_path / "csv" / "sections.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["label"] for r in rows] == ["hpi", "plan", "findings"]
        assert set(rows[0]) == set(TABLE_SCHEMAS["sections"].names)


def test_schema_file_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(record_schema())
