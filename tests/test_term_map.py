"""``medtext map``: a table of terms in, the same rows with codes out (medtext/term_map.py)."""

import csv
import json

import pytest
from typer.testing import CliRunner

from medtext.cli import app
from medtext.term_map import OUT_COLUMNS, map_terms
from medtext.terminologies.index import ConceptIndex, Source, TerminologyData, write_index
from medtext.terminologies.linking import Linker


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "ix"
    data = TerminologyData(sources=[Source(name="tiny", version="1")])
    for code, term, kind in [("1", "Chest pain", "disorder"), ("2", "Cerebral palsy", "disorder"),
                             ("3", "Chest wall pain", "disorder"), ("4", "Laparoscopic cholecystectomy", "procedure")]:
        data.add_concept("snomed", code, term, kind=kind)
        data.add_synonym("snomed", code, term, "preferred")
    data.add_synonym("snomed", "4", "lap chole")
    write_index(data, path, name="tiny")
    return path


def _read(path, delimiter=","):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def test_map_keeps_every_row_in_order_with_its_status(tiny_index, tmp_path):
    src = tmp_path / "terms.csv"
    src.write_text('id,term,kind\n1,chest pian,PROBLEM\n2,,PROBLEM\n3,lap chole,PROCEDURE\n4,zzqxw,PROBLEM\n'
                   '5,"chest pian",PROBLEM\n6,thing,NOSUCH\n7,"pain, chest wall",PROBLEM\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    linker = Linker(ConceptIndex.load(tiny_index), bi_encoder=None)
    calls = []
    original = linker.link
    linker.link = lambda mentions: calls.append(len(mentions)) or original(mentions)
    summary = map_terms(linker, src, out, label_column="kind", k=2)
    rows = _read(out)
    assert list(rows[0]) == ["id", "term", "kind", *OUT_COLUMNS]
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6", "7"]
    assert [r["medtext_status"] for r in rows] == ["linked", "empty", "linked", "nil", "linked", "error", "linked"]
    assert rows[0]["medtext_code"] == "1" and rows[0]["medtext_display"] == "Chest pain"
    assert rows[0]["medtext_candidates"].startswith("snomed:1 Chest pain (")
    assert rows[0]["medtext_candidates"].count(" | ") == 1  # k = 2
    assert rows[2]["medtext_code"] == "4" and float(rows[2]["medtext_score"]) == 1.0
    assert rows[3]["medtext_code"] == "" and float(rows[3]["medtext_score"]) < 0.75  # NIL: below PROBLEM's 0.75
    assert rows[6]["medtext_code"] == "3"
    assert "no route for label 'NOSUCH'" in rows[5]["medtext_message"] and rows[5]["medtext_code"] == ""
    assert rows[1]["medtext_message"] == "no term in column 'term'"
    assert summary.rows == 7 and summary.distinct == 4 and sum(calls) == 4  # "chest pian" linked once
    assert summary.by_status == {"linked": 4, "empty": 1, "nil": 1, "error": 1}
    assert linker.top == 5  # restored after listing k candidates


def test_map_command_text_lists_tsv_output_and_bad_input(tiny_index, tmp_path, monkeypatch):
    ix = str(tiny_index)
    src = tmp_path / "terms.txt"
    src.write_text("lap chole\n\nchest pian\n", encoding="utf-8")
    out = tmp_path / "out.tsv"
    res = CliRunner().invoke(app, ["map", str(src), "-l", "PROCEDURE", "-o", str(out), "--index", ix, "-q"])
    assert res.exit_code == 0, res.output
    rows = _read(out, "\t")
    assert [(r["term"], r["medtext_status"]) for r in rows] == [("lap chole", "linked"), ("", "empty"),
                                                                ("chest pian", "nil")]  # no PROBLEM concept
    assert "3 rows (2 distinct terms)" in res.output and "linked 1, nil 1, empty 1, error 0" in res.output

    # mapping an earlier output again replaces the medtext_* columns, it does not add a second set
    again = tmp_path / "again.csv"
    res = CliRunner().invoke(app, ["map", str(out), "-l", "PROBLEM", "-o", str(again),
                                   "--index", ix, "-q"])
    assert res.exit_code == 0, res.output
    rows = _read(again)
    assert list(rows[0]) == ["term", *OUT_COLUMNS] and rows[2]["medtext_code"] == "1"

    def fails(args, code, message, output=None):
        target = output or tmp_path / "never.csv"
        res = CliRunner().invoke(app, ["map", *args, "-o", str(target), "--index", ix, "-q"])
        assert res.exit_code == code and message in res.output, res.output
        assert not target.exists()  # nothing half-written

    table = tmp_path / "t.csv"
    table.write_text("id,name\n1,chest pain\n", encoding="utf-8")
    fails([str(table), "-l", "PROBLEM"], 2, "no 'term' column (columns: id, name)")
    fails([str(table), "-l", "PROBLEM", "--column", "name", "--label-column", "kind"], 2, "give --label")
    fails([str(table), "--column", "name", "--label-column", "kind"], 2, "no 'kind' column")
    fails([str(table), "-l", "NOSUCH", "--column", "name"], 2, "no route for label 'NOSUCH'")
    latin1 = tmp_path / "l.csv"
    latin1.write_bytes("term\nd\xe9j\xe0 vu\n".encode("latin-1"))
    fails([str(latin1), "-l", "PROBLEM"], 2, "not UTF-8 text (byte 6, line 2)")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"term\n\x00\x01\x02")
    fails([str(binary), "-l", "PROBLEM"], 2, "binary file")
    ragged = tmp_path / "r.csv"
    ragged.write_text("term\nchest pain,extra\n", encoding="utf-8")
    fails([str(ragged), "-l", "PROBLEM"], 2, "row 2 has 2 fields, the header 1")
    fails([str(src), "--label-column", "kind"], 2, "a .txt list has one term per line and no columns")
    fails([str(tmp_path / "missing.csv"), "-l", "PROBLEM"], 2, "not found")
    fails([str(tmp_path / "terms.xlsx"), "-l", "PROBLEM"], 2, "must be .csv, .tsv, .jsonl, .parquet or .txt")
    fails([str(table), "-l", "PROBLEM", "--column", "name"], 3, "must be .csv, .tsv, .jsonl, .parquet",
          tmp_path / "out.txt")
    corrupt = tmp_path / "c.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    fails([str(corrupt), "-l", "PROBLEM"], 2, "corrupt or unreadable Parquet file")
    # a bad input or output name fails before the linker is loaded (seconds with a real preset)
    import medtext.cli as cli

    def no_load(*args):
        raise AssertionError("the linker was loaded")

    monkeypatch.setattr(cli, "_load_preset_linker", no_load)
    fails([str(latin1), "-l", "PROBLEM"], 2, "not UTF-8 text")
    fails([str(table), "-l", "PROBLEM"], 2, "no 'term' column")
    fails([str(table), "-l", "PROBLEM", "--column", "name"], 3, "must be .csv", tmp_path / "out.txt")


def test_map_jsonl_and_parquet_keep_types_and_bad_lines(tiny_index, tmp_path):
    """JSONL in, Parquet out and back: the other columns keep their types, the score is a number,
    a line that is not a JSON object is an ``error`` row in its place, a numeric term is text."""
    import pyarrow.parquet as pq

    src = tmp_path / "terms.jsonl"
    src.write_text('{"id": 1, "term": "lap chole", "n": 2.5}\n'
                   '{"id": 2, "term": "chest pian"\n'
                   '[1, 2]\n'
                   '\n'
                   '{"id": 4, "term": 12345}\n', encoding="utf-8")
    out = tmp_path / "out.parquet"
    linker = Linker(ConceptIndex.load(tiny_index), bi_encoder=None)
    summary = map_terms(linker, src, out, label="PROCEDURE")
    table = pq.read_table(out)
    assert table.schema.names == ["id", "term", "n", *OUT_COLUMNS]
    assert str(table.schema.field("medtext_score").type) == "double"
    one = tmp_path / "one.jsonl"
    one.write_text('{"term": "lap chole"}\n', encoding="utf-8")
    map_terms(linker, one, tmp_path / "one.parquet", label="PROCEDURE")
    assert str(pq.read_table(tmp_path / "one.parquet").schema.field("medtext_message").type) == "string"  # all null
    rows = table.to_pylist()
    assert [r["medtext_status"] for r in rows] == ["linked", "error", "error", "nil"]
    assert rows[0]["id"] == 1 and rows[0]["n"] == 2.5 and rows[0]["medtext_score"] == 1.0
    assert rows[0]["medtext_code"] == "4" and rows[1]["medtext_score"] is None
    assert rows[1]["medtext_message"].startswith("line 2: not JSON") and rows[2]["medtext_message"] == \
        "line 3: not a JSON object"
    assert summary.by_status == {"linked": 1, "error": 2, "nil": 1}
    back = tmp_path / "back.jsonl"
    map_terms(linker, out, back, label="PROCEDURE")  # Parquet in, JSONL out: the same decisions
    again = [json.loads(line) for line in back.read_text(encoding="utf-8").splitlines()]
    assert [r["medtext_status"] for r in again] == ["linked", "empty", "empty", "nil"]  # the bad lines had no term
    assert again[0]["medtext_score"] == 1.0 and again[0]["n"] == 2.5
