from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtext.cli import app
from medtext.records import validate_record
from medtext.run import RunJournal

runner = CliRunner()


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _run(*args: str):
    return runner.invoke(app, ["run", *args, "-q"], catch_exceptions=False)


def test_samples_plus_bad_inputs_every_input_accounted(samples, bad_inputs, tmp_path):
    out = tmp_path / "out"
    res = _run(str(samples), str(bad_inputs), str(tmp_path / "missing"), "-o", str(out))
    assert res.exit_code == 1, res.output  # some inputs failed
    records = _read_jsonl(out / "records.jsonl")
    errors = _read_jsonl(out / "errors.jsonl")
    n_inputs = len([p for p in samples.iterdir()]) + len(list(bad_inputs.iterdir())) + 1
    assert len(records) + len(errors) == n_inputs
    for rec in records:
        validate_record(rec)
    reasons = {e["doc_id"]: e["reason"] for e in errors}
    assert reasons == {"empty.txt": "empty", "blank.txt": "empty", "binary.txt": "binary",
                       "image.txt": "binary", "corrupt.pdf": "corrupt_pdf",
                       "encrypted.pdf": "encrypted", "scanned.pdf": "no_text_layer",
                       "notes.docx": "unsupported", "missing": "missing"}
    assert all(e["message"] and e["source"] for e in errors)
    by_id = {r["doc_id"]: r for r in records}
    assert by_id["cp1252.txt"]["warnings"] and by_id["cp1252.txt"]["source"]["encoding"] == "cp1252"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"] == {"records": len(records), "failures": len(errors)}
    assert "failed inputs" in res.output


def test_pdf_samples_have_pages_and_geometry(samples, tmp_path):
    pdfs = sorted(samples.glob("*.pdf"))
    assert len(pdfs) >= 8
    out = tmp_path / "out"
    assert _run(*map(str, pdfs), "-o", str(out)).exit_code == 0
    for rec in _read_jsonl(out / "records.jsonl"):
        assert rec["pages"] >= 1 and rec["source"]["format"] == "pdf"
        assert all(ln["font_size"] for ln in rec["lines"] if ln["x0"] is not None)
    assert any(r["pages"] >= 2 for r in _read_jsonl(out / "records.jsonl"))


@pytest.mark.parametrize("fmt,expect", [("parquet", "parquet/entities.parquet"), ("csv", "csv/documents.csv"),
                                        ("fhir", "fhir/index.jsonl"), ("brat", "brat/cxr_01.ann"),
                                        ("spacy", "docs.spacy")])
def test_formats(samples, tmp_path, fmt, expect):
    out = tmp_path / "out"
    res = _run(str(samples / "cxr_01.txt"), "-o", str(out), "--format", fmt)
    assert res.exit_code == 0, res.output
    assert (out / expect).exists() and (out / "errors.jsonl").read_text() == ""


def test_resume_after_interruption(samples, tmp_path):
    notes = sorted(samples.glob("*.txt"))[:6]
    src = tmp_path / "in"
    src.mkdir()
    for p in notes:
        shutil.copy(p, src / p.name)
    out = tmp_path / "out"
    assert _run(str(src), "-o", str(out), "--limit", "4", "--chunk-size", "2").exit_code == 0
    journal = RunJournal(out)
    assert len(journal.done_ids()) == 4
    # a crash while committing leaves an unsealed part: resume must ignore and remove it
    (journal.dir / "part-00009.records.jsonl").write_text('{"doc_id": "half-written"')
    res = _run(str(src), "-o", str(out))
    assert res.exit_code == 2 and "--resume" in res.output
    res = _run(str(src), "-o", str(out), "--resume")
    assert res.exit_code == 0, res.output
    assert "4 already done" in res.output
    ids = [r["doc_id"] for r in _read_jsonl(out / "records.jsonl")]
    assert sorted(ids) == sorted(p.name for p in notes) and len(ids) == len(set(ids))
    assert not (journal.dir / "part-00009.records.jsonl").exists()
    res = _run(str(src), "-o", str(out), "--overwrite")
    assert res.exit_code == 0 and len(_read_jsonl(out / "records.jsonl")) == 6


def test_duplicate_ids_in_rows(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "1", "text": "HPI: a"}\n{"id": "1", "text": "HPI: b"}\n')
    out = tmp_path / "out"
    assert _run(str(tmp_path / "a.jsonl"), "-o", str(out)).exit_code == 1
    [err] = _read_jsonl(out / "errors.jsonl")
    assert err["reason"] == "duplicate_id" and err["row"] == 2


def test_huge_note(tmp_path, samples):
    base = (samples / "discharge_01.txt").read_text()
    big = tmp_path / "big.txt"
    big.write_text((base + "\n") * (5_000_000 // len(base) + 1))
    assert big.stat().st_size > 5_000_000
    out = tmp_path / "out"
    assert _run(str(big), "-o", str(out)).exit_code == 0
    [rec] = _read_jsonl(out / "records.jsonl")
    assert rec["n_chars"] == len(big.read_text()) and len(rec["sections"]) > 100


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the file case")
def test_unwritable_output_dir_permissions(tmp_path, samples):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    res = _run(str(samples / "cxr_01.txt"), "-o", str(ro / "out"))
    assert res.exit_code == 3


def test_unwritable_output_dir(tmp_path, samples):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = runner.invoke(app, ["run", str(samples / "cxr_01.txt"), "-o", str(blocker / "out")])
    assert res.exit_code == 3 and "cannot write to output folder" in res.output


def test_bad_preset_and_format(samples, tmp_path):
    res = runner.invoke(app, ["run", str(samples / "cxr_01.txt"), "-o", str(tmp_path), "--preset", "nope"])
    assert res.exit_code == 2 and "unknown preset" in res.output
    res = runner.invoke(app, ["run", str(samples / "cxr_01.txt"), "-o", str(tmp_path), "--format", "xml"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["run", str(samples / "cxr_01.txt"), "-o", str(tmp_path), "--device", "gpu"])
    assert res.exit_code == 2 and "bad device" in res.output


def test_n_process_matches_single_process(samples, tmp_path):
    inputs = [str(p) for p in sorted(samples.glob("c*.txt"))]
    assert _run(*inputs, "-o", str(tmp_path / "a")).exit_code == 0
    assert _run(*inputs, "-o", str(tmp_path / "b"), "--n-process", "2", "--chunk-size", "3",
                "--batch-size", "2").exit_code == 0
    a = _read_jsonl(tmp_path / "a" / "records.jsonl")
    b = _read_jsonl(tmp_path / "b" / "records.jsonl")
    assert a == b and len(a) == len(inputs)


def test_worker_crash_loses_only_that_document(tmp_path, monkeypatch):
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(6):
        text = "CRASH-THIS-WORKER here." if i == 3 else f"Note {i}: no fever, mild cough."
        (notes / f"n{i}.txt").write_text(text + "\n", encoding="utf-8")
    monkeypatch.setenv("MEDTEXT_FAULT_INJECT_CRASH", "CRASH-THIS-WORKER")
    res = _run(str(notes), "-o", str(tmp_path / "out"), "--n-process", "2", "--chunk-size", "2")
    assert res.exit_code == 1, res.output
    records = _read_jsonl(tmp_path / "out" / "records.jsonl")
    errors = _read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert [r["doc_id"] for r in records] == ["n0.txt", "n1.txt", "n2.txt", "n4.txt", "n5.txt"]
    assert [(e["doc_id"], e["reason"]) for e in errors] == [("n3.txt", "worker_crash")]


def test_console_script_and_info():
    exe = Path(sys.executable).parent / "medtext"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "medtext"]
    out = subprocess.run([*cmd, "info"], capture_output=True, text=True, check=True).stdout
    assert "medtext_sections" in out and "record schema 1.1" in out
    out = subprocess.run([*cmd, "run", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--resume" in out and "--n-process" in out
