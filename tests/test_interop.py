"""Interoperability: medtext.to_frame, `medtext convert` between records, FHIR, BRAT and DocBin,
and upgrading records of an older schema version."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import medtext
from medtext.cli import app
from medtext.errors import ConfigError, InputError, SchemaError
from medtext.records import SCHEMA_VERSION, upgrade_record, validate_record

runner = CliRunner()

NOTES = [("n1", "HPI: 70 yo F with cough and fever. No chest pain. Started amoxicillin 500 mg PO TID.\n"),
         ("n2", "Assessment: Atrial fibrillation. Type 2 diabetes mellitus. Mother had breast cancer.\n")]


@pytest.fixture(scope="module")
def records(nlp):
    return [medtext.to_record(nlp(medtext.make_doc(nlp, d))) for d in _documents()]


def _documents():
    from medtext.readers import iter_documents

    return list(iter_documents(NOTES))


def test_to_frame_tables_from_records_docs_and_files(records, nlp, tmp_path):
    ents = medtext.to_frame(records, table="entities")
    assert len(ents) == sum(len(r["entities"]) for r in records) > 0
    assert set(ents["doc_id"]) == {"n1", "n2"} and str(ents["start"].dtype) == "Int64"
    neg = ents[ents["text"] == "chest pain"]
    assert list(neg["assertion"]) == ["negated"]
    docs = medtext.to_frame(records, table="documents")
    assert list(docs["n_entities"]) == [len(r["entities"]) for r in records]
    concepts = medtext.to_frame(records, "concepts")
    assert {"system", "code", "display", "score", "rank"} <= set(concepts.columns)
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert medtext.to_frame(tmp_path, "entities").equals(ents)  # a run folder or the file itself
    doc = nlp(medtext.make_doc(nlp, _documents()[0]))
    assert len(medtext.to_frame([doc], "entities")) == len(records[0]["entities"])
    with pytest.raises(ConfigError, match="unknown table"):
        medtext.to_frame(records, table="nope")
    with pytest.raises(InputError, match="no such records file"):
        medtext.to_frame(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:1"):
        medtext.to_frame(tmp_path / "bad.jsonl")


def test_older_schema_versions_upgrade_or_fail_clearly(records):
    old = json.loads(json.dumps(records[0]))
    old["schema_version"] = "1.0"
    for e in old["entities"]:
        del e["flags"]
    with pytest.raises(SchemaError, match="medtext convert"):
        validate_record(old)
    new = upgrade_record(old)
    validate_record(new)
    assert new["schema_version"] == SCHEMA_VERSION
    assert [e["flags"] for e in new["entities"]] == [
        [] if e["assertion"] in (None, "present") else [e["assertion"]] for e in old["entities"]]
    with pytest.raises(SchemaError, match="re-run medtext"):
        upgrade_record({**old, "schema_version": "0.3"})
    assert len(medtext.to_frame([old], "entities")) == len(old["entities"])


def test_convert_between_formats(records, tmp_path):
    from medtext.corpora.brat import medtext_user_data
    from medtext.records.fhir import validate_bundle

    src = tmp_path / "records.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    res = runner.invoke(app, ["convert", str(src), "-o", str(tmp_path / "fhir"), "--to", "fhir"])
    assert res.exit_code == 0, res.output
    index = [json.loads(x) for x in (tmp_path / "fhir" / "fhir" / "index.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in index] == ["n1", "n2"]
    for row in index:
        bundle = json.loads((tmp_path / "fhir" / "fhir" / row["file"]).read_text())
        validate_bundle(bundle)
        kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
        assert "DocumentReference" in kinds
    b1 = json.loads((tmp_path / "fhir" / "fhir" / index[0]["file"]).read_text())
    refuted = [e["resource"] for e in b1["entry"] if e["resource"]["resourceType"] == "Condition"
               and e["resource"]["verificationStatus"]["coding"][0]["code"] == "refuted"]
    assert [c["code"]["text"] for c in refuted] == ["chest pain"]
    b2 = json.loads((tmp_path / "fhir" / "fhir" / index[1]["file"]).read_text())
    htn = next(e["resource"] for e in b2["entry"] if e["resource"]["resourceType"] == "Condition"
               and e["resource"]["code"]["text"] == "Type 2 diabetes mellitus")  # SNOMED CT + ICD-10-CM cross-map
    systems = [c["system"] for c in htn["code"]["coding"]]
    assert systems[0] == "http://snomed.info/sct" and "http://hl7.org/fhir/sid/icd-10-cm" in systems
    # records -> BRAT -> records is lossless for entities and assertions
    res = runner.invoke(app, ["convert", str(src), "-o", str(tmp_path / "b"), "--to", "brat"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["convert", str(tmp_path / "b" / "brat"), "-o", str(tmp_path / "back"), "--to", "jsonl"])
    assert res.exit_code == 0, res.output
    back = [json.loads(x) for x in (tmp_path / "back" / "records.jsonl").read_text().splitlines()]
    key = ("start", "end", "text", "label", "assertion", "flags", "kb_id")
    assert [[tuple(e[k] for k in key) for e in r["entities"]] for r in back] == \
        [[tuple(e[k] for k in key) for e in r["entities"]] for r in records]
    # BRAT -> DocBin for `spacy train`
    res = runner.invoke(app, ["convert", str(tmp_path / "b" / "brat"), "-o", str(tmp_path / "sp"), "--to", "spacy"])
    assert res.exit_code == 0, res.output
    import spacy
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(tmp_path / "sp" / "docs.spacy").get_docs(spacy.blank("en").vocab))
    assert [len(d.spans["entities"]) for d in docs] == [len(r["entities"]) for r in records]
    assert medtext_user_data(docs[0])["doc_id"] == "n1"
    # bad input: an old record with a missing field, a missing path
    (tmp_path / "old.jsonl").write_text(json.dumps({"schema_version": "0.9", "doc_id": "x"}) + "\n")
    res = runner.invoke(app, ["convert", str(tmp_path / "old.jsonl"), "-o", str(tmp_path / "o"), "--to", "fhir"])
    assert res.exit_code == 2 and "schema_version" in res.output
    res = runner.invoke(app, ["convert", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--to", "fhir"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_brat_output_needs_text(tmp_path):
    (tmp_path / "n.txt").write_text("No fever.\n", encoding="utf-8")
    res = runner.invoke(app, ["run", str(tmp_path / "n.txt"), "-o", str(tmp_path / "o"), "--format", "brat",
                              "--no-text", "-q"])
    assert res.exit_code == 2 and "needs the note text" in res.output
