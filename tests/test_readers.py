from __future__ import annotations

import codecs
import json

import pytest

from medtext.errors import InputError
from medtext.lines import text_lines
from medtext.readers import Document, InputFailure, iter_documents
from medtext.readers.text import decode_text

from .conftest import make_pdf


def test_utf8_with_and_without_bom():
    assert decode_text("Café 5 mg".encode(), "a.txt") == ("Café 5 mg", "utf-8", [])
    text, enc, warnings = decode_text(codecs.BOM_UTF8 + "Café".encode(), "a.txt")
    assert (text, enc, warnings) == ("Café", "utf-8-sig", [])


def test_utf16_bom():
    text, enc, _ = decode_text("HPI: dyspnoea".encode("utf-16"), "a.txt")
    assert text == "HPI: dyspnoea" and enc == "utf-16"


def test_cp1252_fallback_warns():
    text, enc, warnings = decode_text("Temp 38\u00b0C \u2013 febrile".encode("cp1252"), "a.txt")
    assert text == "Temp 38\u00b0C \u2013 febrile"
    assert enc == "cp1252" and "not valid UTF-8" in warnings[0]


def test_latin1_when_cp1252_has_holes():
    data = b"Mass \x81 noted \xe9"
    text, enc, warnings = decode_text(data, "a.txt")
    assert enc == "latin-1" and text.endswith("\u00e9") and warnings


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"), (b"  \n\t ", "empty"), (b"abc\x00def" * 10, "binary"),
    (b"%PDF-1.7 ...", "binary"), (bytes(range(1, 32)) * 50, "binary"),
])
def test_bad_text(data, reason):
    with pytest.raises(InputError) as e:
        decode_text(data, "x.txt")
    assert e.value.reason == reason and "x.txt" in str(e.value)


def test_text_lines_pages_and_offsets():
    text = "Header\r\n  body line\n\fPage two\nend"
    lines = text_lines(text)
    assert [(ln["page"], ln["number"]) for ln in lines] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    assert [text[ln["start"]:ln["end"]] for ln in lines] == ["Header", "  body line", "", "Page two", "end"]
    assert lines[1]["indent"] == 2


def test_pdf_lines_geometry(tmp_path):
    from medtext.readers.pdf import read_pdf

    pdf = make_pdf(tmp_path / "a.pdf", [["FINDINGS: clear lungs.", "No effusion."], ["Page two text"]],
                   font_size=12)
    text, lines, _ = read_pdf(pdf, "a.pdf")
    assert text.split("\f") == ["FINDINGS: clear lungs.\nNo effusion.", "Page two text"]
    assert [text[ln["start"]:ln["end"]] for ln in lines] == ["FINDINGS: clear lungs.", "No effusion.", "Page two text"]
    first = lines[0]
    assert first["page"] == 1 and lines[2]["page"] == 2
    assert first["font_size"] == pytest.approx(12, abs=0.1)
    assert 71 <= first["x0"] <= 75 and first["x1"] > first["x0"] + 50
    # top-left origin: y = 792 - 720 baseline, the glyph box sits just above it
    assert 60 < first["y0"] < first["y1"] < 75
    assert lines[1]["y0"] > first["y0"]
    assert first["page_width"] == 612 and first["page_height"] == 792


@pytest.mark.parametrize("name,reason", [("corrupt.pdf", "corrupt_pdf"), ("encrypted.pdf", "encrypted"),
                                         ("scanned.pdf", "no_text_layer")])
def test_bad_pdfs(bad_inputs, name, reason):
    [item] = list(iter_documents([bad_inputs / name]))
    assert isinstance(item, InputFailure)
    assert item.reason == reason and name in item.message


def test_folder_ids_and_failures(bad_inputs):
    items = list(iter_documents([bad_inputs]))
    assert len(items) == len(list(bad_inputs.iterdir()))
    by_id = {it.doc_id: it for it in items}
    assert isinstance(by_id["good.txt"], Document)
    assert isinstance(by_id["good.pdf"], Document) and by_id["good.pdf"].source["format"] == "pdf"
    assert by_id["cp1252.txt"].warnings and by_id["cp1252.txt"].source["encoding"] == "cp1252"
    assert by_id["notes.docx"].reason == "unsupported"
    assert by_id["empty.txt"].reason == "empty" and by_id["blank.txt"].reason == "empty"
    assert by_id["binary.txt"].reason == by_id["image.txt"].reason == "binary"


def test_missing_path_and_duplicates(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "n.txt").write_text("note one")
    (b / "n.txt").write_text("note two")
    items = list(iter_documents([a, b, tmp_path / "nope.txt"]))
    assert isinstance(items[0], Document)
    assert items[1].reason == "duplicate_id" and str(a / "n.txt") in items[1].message
    assert items[2].reason == "missing" and "nope.txt" in items[2].message


def test_rows_jsonl_csv_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"note_id": "n1", "body": "HPI: cough."}, {"note_id": "n2", "body": ""},
            {"note_id": "", "body": "PLAN: rest."}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    (tmp_path / "b.csv").write_text("note_id,body\nc1,\"Line one\nline two\"\nc2,\n")
    pq.write_table(pa.Table.from_pylist([{"note_id": "p1", "body": "IMPRESSION: normal."}]),
                   tmp_path / "c.parquet")
    items = list(iter_documents([tmp_path / "a.jsonl", tmp_path / "b.csv", tmp_path / "c.parquet"],
                                id_field="note_id", text_field="body"))
    kinds = [(type(i).__name__, i.doc_id) for i in items]
    assert kinds == [("Document", "n1"), ("InputFailure", "n2"), ("Document", f"{tmp_path / 'a.jsonl'}:3"),
                     ("InputFailure", f"{tmp_path / 'a.jsonl'}:4"), ("Document", "c1"),
                     ("InputFailure", "c2"), ("Document", "p1")]
    assert items[4].text == "Line one\nline two" and items[4].source["row"] == 2


def test_rows_missing_text_column(tmp_path):
    (tmp_path / "a.csv").write_text("id,note\n1,hello\n")
    [item] = list(iter_documents([tmp_path / "a.csv"]))
    assert item.reason == "missing_column" and "'text'" in item.message and "note" in item.message


def test_texts_and_pairs():
    items = list(iter_documents(["first note", ("abc", "second note"), ("e", " ")]))
    assert [i.doc_id for i in items] == ["text-1", "abc", "e"]
    assert isinstance(items[2], InputFailure)
    with pytest.raises(TypeError):
        list(iter_documents([42]))
