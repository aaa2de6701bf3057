"""brat standoff export/import and spaCy DocBin export (medtext.corpora.brat)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from medtext.corpora.brat import (brat_to_docbin, medtext_user_data, read_brat, record_to_doc,
                                  records_to_docbin, safe_name, write_brat)
from medtext.errors import InputError
from medtext.records import validate_record



def make_record(doc_id: str, text: str | None, entities: list[dict], relations=(), errors=(),
                sentences=(), sections=(), lines=()) -> dict:
    """A schema-valid record around ``text``; entity fields not given get defaults and
    ``text`` is cut from the record text."""
    ents = []
    for i, e in enumerate(entities, 1):
        ent = {"id": f"T{i}", "label": "PROBLEM", "section": None, "assertion": None,
               "flags": [], "kb_id": None, "concepts": [], "lay": None, **e}
        ent.setdefault("text", text[ent["start"]:ent["end"]] if text is not None else "")
        ents.append(ent)
    basis = text or ""
    record = {
        "schema_version": "1.1", "doc_id": doc_id,
        "source": {"path": None, "format": "txt", "row": None, "encoding": "utf-8"},
        "text_sha256": hashlib.sha256(basis.encode()).hexdigest(), "n_chars": len(basis),
        "pages": 1, "warnings": [], "text": text, "lines": list(lines),
        "sections": list(sections), "sentences": list(sentences), "entities": ents,
        "relations": [{"score": 1.0, **r} for r in relations],
        "errors": [{"correction": None, "score": None, "detector": "checks:test", **e}
                   for e in errors],
        "lay_text": None, "pipeline": None,
    }
    validate_record(record)
    return record


def _span(text: str, needle: str, nth: int = 0) -> dict:
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return {"start": start, "end": start + len(needle)}


TEXT = ("Patient: José 🙂 reports chest\r\npain and no fever.\n"
        "History: father had type 2 diabetes mellitus.\n\n"
        "Plan: aspirin 81 mg daily | follow-up.\n")


@pytest.fixture(scope="module")
def blank_nlp():
    import spacy

    return spacy.blank("en")


@pytest.fixture()
def rich_record() -> dict:
    t = TEXT
    ents = [
        {"id": "pain-1", **_span(t, "chest\r\npain"), "assertion": "present",
         "section": "hpi", "kb_id": "snomed:29857009",
         "concepts": [{"system": "snomed", "code": "29857009", "display": "Chest pain",
                       "score": 1.0},
                      {"system": "snomed", "code": "1 2", "display": "odd | display\nwith "
                       "breaks\\ and score=2", "score": 0.4321},
                      {"system": "hpo", "code": "HP:0100749", "display": None, "score": 0.5},
                      {"system": "icf", "code": "b280", "display": "", "score": 0.25}],
         "lay": {"term": "chest pain", "definition": "Pain | ache in the chest."}},
        {"id": "fever", **_span(t, "fever"), "assertion": "negated", "flags": ["negated"],
         "kb_id": "snomed:386661006",
         "concepts": [{"system": "snomed", "code": "386661006", "display": "Fever",
                       "score": 0.87}]},
        # overlapping: diabetes mellitus inside type 2 diabetes mellitus
        {"id": "dm2", **_span(t, "type 2 diabetes mellitus"), "assertion": "family",
         "flags": ["historical", "family"], "section": "family_history"},
        {"id": "dm", **_span(t, "diabetes mellitus"), "label": "Body part (custom)",
         "flags": ["uncertain"]},
        {"id": "x", **_span(t, "aspirin"), "label": "DRUG", "assertion": "hypothetical",
         "flags": ["conditional", "hypothetical"], "lay": "aspirin (a pain killer)"},
        {"id": "José", **_span(t, "José"), "label": "ERROR_like"},
        # starts with a line break: fragments cannot show it, the note carries span=
        {"id": "nl", "start": t.index("\nHistory"), "end": t.index("\nHistory") + 8,
         "label": "TEST"},
    ]
    return make_record(
        "notes/visit 1.txt", t, ents,
        relations=[{"head": "dm", "tail": "dm2", "label": "modify", "score": 0.9896},
                   {"head": "x", "tail": "pain-1", "label": "suggestive_of", "score": 0.5}],
        errors=[{"start": 0, "end": t.index("History"), "type": "diagnosis",
                 "message": "fever | pain\nmismatch", "correction": "corrected\tsentence",
                 "score": 0.75},
                {**_span(t, "aspirin 81 mg daily"), "type": "consistency",
                 "message": "dose", "detector": "checks:dose_range"}])


def _same_annotations(original: dict, back: dict) -> None:
    """Entities (all fields but id), relations (through the id mapping) and errors equal."""
    assert len(back["entities"]) == len(original["entities"])
    ids = {}
    for a, b in zip(original["entities"], back["entities"]):
        ids[a["id"]] = b["id"]
        assert {**a, "id": None} == {**b, "id": None}
    assert [{**r, "head": ids[r["head"]], "tail": ids[r["tail"]]}
            for r in original["relations"]] == back["relations"]
    assert original["errors"] == back["errors"]


def test_round_trip_is_lossless(tmp_path, rich_record):
    written = write_brat([rich_record], tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["annotation.conf", "index.jsonl", "notes_visit_1.ann", "notes_visit_1.txt",
                     "visual.conf"]
    # the text exactly, CRLF and all
    assert (tmp_path / "notes_visit_1.txt").read_bytes() == TEXT.encode("utf-8")
    ann = (tmp_path / "notes_visit_1.ann").read_text(encoding="utf-8")
    # a span crossing a line break is written as fragments, texts joined by a space
    s = TEXT.index("chest")
    assert f"T1\tPROBLEM {s} {s + 5};{s + 7} {s + 11}\tchest pain\n" in ann
    assert "A1\tAssertion T1 present\n" in ann
    assert "| hpo:HP:0100749 score=0.5 |" in ann and "snomed:1\\u00202 odd \\| display\\n" in ann
    assert "\tFlag_negated T2\n" in ann
    assert "\tAnnotatorNotes T1\tkb_id=snomed:29857009 | snomed:29857009 Chest pain score=1.0" \
        in ann
    assert "R1\tmodify Arg1:T4 Arg2:T3\n" in ann
    # labels brat cannot take as types are cleaned, the original kept in the note
    assert "T4\tBody_part__custom_ " in ann and "label=Body part (custom)" in ann
    assert "T6\tENTITY_ERROR_like " in ann
    assert "\tERROR_diagnosis 0 " in ann
    assert all("\r" not in line and "\u2028" not in line for line in ann.split("\n"))

    back = list(read_brat(tmp_path))
    assert len(back) == 1
    rec = back[0]
    validate_record(rec)
    assert rec["doc_id"] == "notes/visit 1.txt"  # from index.jsonl
    assert rec["text"] == TEXT and rec["n_chars"] == len(TEXT)
    assert rec["text_sha256"] == rich_record["text_sha256"]
    assert rec["source"] == {"path": str(tmp_path / "notes_visit_1.txt"), "format": "brat",
                             "row": None, "encoding": "utf-8"}
    assert rec["warnings"] == []
    assert [e["id"] for e in rec["entities"]] == [f"T{i}" for i in range(1, 8)]
    _same_annotations(rich_record, rec)

    conf = (tmp_path / "annotation.conf").read_text()
    for part in ("[entities]", "PROBLEM", "Body_part__custom_", "ERROR_diagnosis",
                 "ERROR_consistency", "modify\tArg1:<ENTITY>, Arg2:<ENTITY>",
                 "Assertion\tArg:<ENTITY>, Value:present|negated|", "Flag_family\tArg:<ENTITY>",
                 "<OVERLAP>"):
        assert part in conf
    visual = (tmp_path / "visual.conf").read_text()
    assert "Body_part__custom_ | Body part (custom)" in visual
    assert "PROBLEM\tbgColor:#" in visual and "ERROR_diagnosis\tbgColor:#" in visual


def test_unicode_offsets_are_code_points(tmp_path):
    text = "Été: 🙂🙂 naïve café 🙂 dyspnée\n"
    rec = make_record("u", text, [_span(text, "café"), _span(text, "dyspnée")])
    write_brat([rec], tmp_path)
    ann = (tmp_path / "u.ann").read_text(encoding="utf-8")
    s = text.index("café")
    assert f"T1\tPROBLEM {s} {s + 4}\tcafé" in ann
    (back,) = read_brat(tmp_path / "u.ann")
    _same_annotations(rec, back)


def test_names_are_safe_unique_and_mapped_back(tmp_path):
    assert safe_name("a b/c.PDF") == "a_b_c"
    assert safe_name("../x") == "doc_.._x"
    assert safe_name("CON.txt") == "doc_CON"
    recs = [make_record(d, "fever\n", [_span("fever\n", "fever")])
            for d in ("a b.txt", "a_b", "A_B.pdf", "ok")]
    write_brat(recs, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert rows == [{"doc_id": "a b.txt", "name": "a_b"}, {"doc_id": "a_b", "name": "a_b_2"},
                    {"doc_id": "A_B.pdf", "name": "A_B_3"}, {"doc_id": "ok", "name": "ok"}]
    assert sorted(r["doc_id"] for r in read_brat(tmp_path)) == sorted(
        ["a b.txt", "a_b", "A_B.pdf", "ok"])
    # without index.jsonl, the doc id is the file stem
    (tmp_path / "index.jsonl").unlink()
    assert sorted(r["doc_id"] for r in read_brat(tmp_path)) == ["A_B_3", "a_b", "a_b_2", "ok"]


def test_record_without_text_is_refused(tmp_path):
    rec = make_record("no-text-doc", None, [])
    with pytest.raises(InputError, match=r"no-text-doc.*--text"):
        write_brat([rec], tmp_path)


def _one_doc(tmp_path: Path, ann: str, text: str = "chest pain and fever\n") -> Path:
    (tmp_path / "d.txt").write_text(text, encoding="utf-8")
    (tmp_path / "d.ann").write_text(ann, encoding="utf-8")
    return tmp_path / "d.ann"


@pytest.mark.parametrize("bad", [
    "T2 PROBLEM 15 20\tfever",          # spaces instead of tabs
    "T2\tPROBLEM 15\tfever",            # one offset
    "R1\tmodify Arg1:T1",               # one argument
    "A1\tAssertion",                    # no target
    "X1\tsomething",                    # unknown line kind
    "R1\tmodify Arg1:T1 Arg2:T9",       # unknown target
    "A1\tAssertion T1 maybe",           # value outside the schema's enum
    "T1\tPROBLEM 0 5\tchest",           # id used twice
])
def test_malformed_ann_line_names_file_and_line(tmp_path, bad):
    ann = _one_doc(tmp_path, f"T1\tPROBLEM 0 10\tchest pain\n\n{bad}\n")
    with pytest.raises(InputError) as info:
        list(read_brat(ann))
    assert "d.ann:3" in str(info.value)


def test_text_mismatch_names_expected_and_found(tmp_path):
    _one_doc(tmp_path, "T1\tPROBLEM 0 10\tchest pain\nT2\tPROBLEM 15 20\tfeverish\n")
    with pytest.raises(InputError, match=r"d\.ann:2.*'feverish'.*expected 'fever'"):
        list(read_brat(tmp_path))
    _one_doc(tmp_path, "T1\tPROBLEM 0 99\tchest pain\n")
    with pytest.raises(InputError, match=r"d\.ann:1.*outside"):
        list(read_brat(tmp_path))
    (tmp_path / "d.txt").unlink()
    with pytest.raises(InputError, match="d.txt"):
        list(read_brat(tmp_path))


def test_hand_edited_brat_files(tmp_path):
    """What annotators do in brat: new entities without notes, discontinuous spans, relation
    labels outside the schema, brat normalizations, free-text notes, errors drawn by hand."""
    text = "chest pain and fever\nno cough\n"
    ann = _one_doc(tmp_path, "\n".join([
        "T1\tPROBLEM 0 10\tchest pain",
        "T5\tPROBLEM 0 5;11 14\tchest and",         # discontinuous across real text
        "T3\tPROBLEM 15 20\tfever",
        "T4\tERROR_diagnosis 21 29\tno cough",
        "R1\tcauses Arg1:T1 Arg2:T3",              # not in the schema
        "R2\tmodify Arg1:T1 Arg2:T3",
        "R3\tlocated_at Arg1:T1 Arg2:T4",          # onto an error
        "A1\tFlag_negated T3",
        "A2\tCertainty T3 high",                   # unknown attribute
        "#1\tAnnotatorNotes T1\tsnomed:29857009 Chest pain | check this later",
        "N1\tReference T3 snomed:386661006\tFever",
        "E1\tOnset:T3",
        "",
    ]) + "\n", text)
    (rec,) = read_brat(ann)
    validate_record(rec)
    assert [(e["id"], e["start"], e["end"], e["text"]) for e in rec["entities"]] == [
        ("T1", 0, 10, "chest pain"), ("T2", 0, 14, "chest pain and"), ("T3", 15, 20, "fever")]
    assert rec["entities"][0]["concepts"] == [
        {"system": "snomed", "code": "29857009", "display": "Chest pain", "score": 1.0}]
    assert rec["entities"][0]["kb_id"] is None
    assert rec["entities"][2]["flags"] == ["negated"]
    assert rec["entities"][2]["concepts"][0]["code"] == "386661006"
    assert rec["relations"] == [{"head": "T1", "tail": "T3", "label": "modify", "score": 1.0}]
    assert rec["errors"] == [{"start": 21, "end": 29, "type": "diagnosis", "message": "",
                              "correction": None, "score": None, "detector": "brat"}]
    joined = "\n".join(rec["warnings"])
    for part in ("discontinuous annotation T5", "'causes'", "R3", "'Certainty'",
                 "check this later", "E1"):
        assert part in joined
    assert len(rec["warnings"]) == 6


def test_single_file_paths(tmp_path, rich_record):
    write_brat([rich_record], tmp_path)
    (a,) = read_brat(tmp_path / "notes_visit_1.ann")
    (b,) = read_brat(tmp_path / "notes_visit_1.txt")
    assert a == b and a["doc_id"] == "notes/visit 1.txt"


def test_docbin_round_trip(tmp_path, rich_record, blank_nlp):
    from spacy.tokens import DocBin

    t = rich_record["text"]
    rec = dict(rich_record, sentences=[{"start": 0, "end": t.index("History") - 1},
                                       {"start": t.index("History"), "end": t.index("Plan") - 2}],
               sections=[{"label": "hpi", "start": 0, "end": t.index("History") - 1}])
    validate_record(rec)
    doc = record_to_doc(rec, blank_nlp)
    assert len(doc.spans["entities"]) == 7
    # the overlapping pair keeps only the longer span among doc.ents
    ents = [(e.text, e.label_, e.kb_id_) for e in doc.ents]
    assert ("type 2 diabetes mellitus", "PROBLEM", "") in ents
    assert not any(e[0] == "diabetes mellitus" for e in ents)
    assert ("fever", "PROBLEM", "snomed:386661006") in ents
    assert doc.user_data["medtext"]["warnings"]
    assert doc[doc.char_span(t.index("History"), t.index("History") + 7).start].is_sent_start
    out = tmp_path / "train.spacy"
    assert records_to_docbin([rec, rec], out, blank_nlp) == 2
    docs = list(DocBin().from_disk(out).get_docs(blank_nlp.vocab))
    assert len(docs) == 2
    for got in docs:
        assert [(e.start_char, e.end_char, e.label_, e.kb_id_) for e in got.ents] == \
            [(e.start_char, e.end_char, e.label_, e.kb_id_) for e in doc.ents]
        assert [(s.text, s.label_) for s in got.spans["entities"]] == \
            [(s.text, s.label_) for s in doc.spans["entities"]]
        data = medtext_user_data(got)
        assert data["entities"] == rec["entities"]
        assert data["relations"] == rec["relations"]
        assert data["errors"] == rec["errors"]
        assert data["doc_id"] == "notes/visit 1.txt"
        assert [s.label_ for s in got.spans["sections"]] == ["hpi"]
        assert [s.label_ for s in got.spans["errors"]] == ["diagnosis", "consistency"]
        assert len(list(got.sents)) >= 2
    with pytest.raises(InputError, match="--text"):
        record_to_doc(make_record("nt", None, []), blank_nlp)


def test_brat_to_docbin_is_ner_training_data(tmp_path, rich_record, blank_nlp):
    import spacy
    from spacy.training import Corpus

    write_brat([rich_record], tmp_path / "brat")
    out = tmp_path / "corrected.spacy"
    assert brat_to_docbin(tmp_path / "brat", out, blank_nlp) == 1
    examples = list(Corpus(str(out))(blank_nlp))
    assert len(examples) == 1
    labels = {e.label_ for e in examples[0].reference.ents}
    assert {"PROBLEM", "DRUG", "TEST"} <= labels
    # a blank pipeline with an ner learns from it (one update is enough to prove the shape)
    trainer = spacy.blank("en")
    trainer.add_pipe("ner")
    trainer.initialize(lambda: examples)
    losses = trainer.update(examples, sgd=trainer.create_optimizer())
    assert losses["ner"] > 0


def test_sample_records_round_trip(tmp_path, nlp, samples):
    import medtext
    from medtext.readers import iter_documents

    docs = [d for d in iter_documents(sorted(samples.glob("*.txt"))[::3]) if hasattr(d, "text")]
    records = [medtext.to_record(nlp(medtext.make_doc(nlp, d))) for d in docs]
    assert sum(len(r["entities"]) for r in records) > 100
    out = tmp_path / "brat"
    write_brat(records, out)
    back = {r["doc_id"]: r for r in read_brat(out)}
    for rec in records:
        got = back[rec["doc_id"]]
        assert got["warnings"] == []
        assert got["text"] == rec["text"]
        _same_annotations(rec, got)
