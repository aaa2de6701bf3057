"""Linking evaluation harness: MedProcNER reader, coverage, acc@k, routing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medtext.cli import app
from medtext.corpora.linking_data import read_medprocner
from medtext.evaluate import evaluate_linking
from medtext.terminologies.default import default_index_dir
from medtext.terminologies.index import ConceptIndex


def _rows(tmp_path: Path) -> Path:
    rows = [
        {"filename": "d1", "label": "PROCEDIMIENTO", "start": 0, "end": 5, "text": "ecocardiografía",
         "text_en_machine_translated": "echocardiography", "snomed_ct": "40701008"},
        {"filename": "d1", "label": "PROCEDIMIENTO", "start": 9, "end": 12, "text": "x",
         "text_en_machine_translated": "colonoscopy", "snomed_ct": "73761001"},
        {"filename": "d2", "label": "PROCEDIMIENTO", "start": 0, "end": 3, "text": "y",
         "text_en_machine_translated": "something obscure", "snomed_ct": "999999999"},
        {"filename": "d2", "label": "PROCEDIMIENTO", "start": 5, "end": 8, "text": "z",
         "text_en_machine_translated": "whatever", "snomed_ct": "NO_CODE"},
    ]
    f = tmp_path / "link.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f


def test_reader_and_scores(tmp_path, medtext_home):
    mentions = read_medprocner(_rows(tmp_path))
    assert [m.codes for m in mentions][-1] == [] and mentions[0].label == "PROCEDURE"
    r = evaluate_linking(ConceptIndex.load(default_index_dir()), mentions)
    assert r["mentions"] == 3 and r["covered"] == 2  # NO_CODE skipped; 999999999 not in the index
    assert r["acc_covered"]["@1"] == 1.0 and r["acc_all"]["@1"] == round(2 / 3, 4)


def test_cli(tmp_path, medtext_home):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "linking", str(_rows(tmp_path)), "--json", str(out)])
    assert res.exit_code == 0 and "coverage 66.7%" in res.output, res.output
    assert json.loads(out.read_text())["acc_covered"]["@1"] == 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"filename": "x"}\n')
    res = CliRunner().invoke(app, ["evaluate", "linking", str(bad)])
    assert res.exit_code == 2 and "not a MedProcNER linking row" in res.output
