"""medtext_context: the team's gold cases, scope rules, config errors, degenerate docs."""

from __future__ import annotations

import pytest
import spacy
from typer.testing import CliRunner

import medtext
from medtext.cli import app
from medtext.components.context import FLAGS
from medtext.corpora.context_cases import ContextCase, case_doc, read_cases
from medtext.errors import ConfigError
from medtext.evaluate import evaluate_context


@pytest.fixture(scope="module")
def cases():
    return read_cases()


def test_at_least_150_team_cases(cases):
    assert len(cases) >= 150
    covered = {f for c in cases for f, v in c.flags.items() if v}
    assert covered == set(FLAGS)


def test_gold_cases(nlp, cases):
    r = evaluate_context(nlp, cases)
    assert r["all_flags_correct"] >= 0.95, r["failures"]
    for flag, v in r["per_flag"].items():
        assert v["f1"] >= 0.9, (flag, v)


def _flags(nlp, text: str, target: str, occurrence: int = 1) -> set[str]:
    start = -1
    for _ in range(occurrence):
        start = text.index(target, start + 1)
    doc = case_doc(nlp, ContextCase("t", text, start, start + len(target), "PROBLEM", {}))
    ent = doc.ents[0]
    return {f for f in FLAGS if getattr(ent._, f"is_{f}")}


@pytest.mark.parametrize("text,target,expected", [
    ("No fever, chills or rigors.", "chills", {"negated"}),
    ("No fever but reports cough.", "cough", set()),
    ("Cough improved; no fever.", "Cough", set()),
    ("No increase in pain.", "pain", set()),
    ("Pulmonary embolism was ruled out.", "Pulmonary embolism", {"negated"}),
    ("Rash has resolved.", "Rash", {"negated", "historical"}),
    ("r/o sepsis", "sepsis", {"uncertain"}),
    ("Mother had breast cancer. Patient has anemia.", "anemia", set()),
    ("Return if chest pain recurs.", "chest pain", {"hypothetical"}),
    ("Chest pain on exertion.", "Chest pain", {"conditional"}),
    ("No history of diabetes.", "diabetes", {"negated"}),
    ("Pt ambulates 100 ft without assistive device.", "ambulates 100 ft without assistive device", set()),
])
def test_scope_rules(nlp, text, target, expected):
    assert _flags(nlp, text, target) == expected


def test_sections_imply_flags(nlp):
    doc = nlp.make_doc("PAST MEDICAL HISTORY:\nAsthma\n\nFAMILY HISTORY:\nColon cancer\n\nHPI: wheezing")
    for name, proc in nlp.pipeline:
        if name == "medtext_context":
            doc.ents = [doc.char_span(doc.text.index(t), doc.text.index(t) + len(t), label="PROBLEM")
                        for t in ("Asthma", "Colon cancer", "wheezing")]
        doc = proc(doc)
    assert [e._.assertion for e in doc.ents] == ["historical", "family", "present"]


def test_status_and_record(nlp):
    doc = nlp.make_doc("Denies chest pain. Mother had a stroke.")
    for name, proc in nlp.pipeline:
        if name == "medtext_context":
            doc.ents = [doc.char_span(7, 17, label="PROBLEM"), doc.char_span(32, 38, label="PROBLEM")]
        doc = proc(doc)
    rec = medtext.to_record(doc)
    assert [(e["assertion"], e["flags"]) for e in rec["entities"]] == [("negated", ["negated"]), ("family", ["family"])]


def test_blank_pipeline_and_config_errors():
    nlp = spacy.blank("en")
    ctx = nlp.add_pipe("medtext_context", config={"extra_rules": [["nkda", "negated", "backward"]]})
    doc = nlp.make_doc("penicillin nkda")
    doc.ents = [doc.char_span(0, 10, label="DRUG")]
    doc = ctx(doc)  # no sentence splitter: lines are sentences
    assert doc.ents[0]._.is_negated
    for bad in ([["x", "sad", "forward"]], [["x", "negated", "sideways"]], ["x"]):
        with pytest.raises(ConfigError):
            spacy.blank("en").add_pipe("medtext_context", config={"extra_rules": bad})


@pytest.mark.parametrize("text", ["", "   \n\n  ", "...,;;!!", "x" * 1_000_000, "Le patient nie la fièvre."])
def test_degenerate_docs(nlp, text):
    doc = nlp(text)
    assert list(doc.ents) == []


def test_cli_evaluate_context(tmp_path):
    out = tmp_path / "ctx.json"
    res = CliRunner().invoke(app, ["evaluate", "context", "--json", str(out), "--no-show-failures"])
    assert res.exit_code == 0, res.output
    assert "all six flags right" in res.output and out.exists()
