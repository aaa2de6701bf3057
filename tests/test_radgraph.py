"""RadGraph-style gold data (team format and RadGraph JSON) and the RadGraph scorers."""

from __future__ import annotations

import json

import pytest

from medtext.corpora.radgraph_data import (RADGRAPH_DIR, from_radgraph, parse_report, read_reports,
                                           to_radgraph)
from medtext.errors import InputError
from medtext.evaluate_radgraph import score_radgraph

REPORT = {"id": "t-1", "split": "test", "kind": "cxr",
          "text": "FINDINGS: The [heart](ANAT-DP T1) is [normal](OBS-DP T2). [Right](ANAT-DP T3) "
                  "[lower](ANAT-DP T4) [lobe](ANAT-DP T5) [opacity](OBS-DP T6) may represent "
                  "[pneumonia](OBS-U T7). No [effusion](OBS-DA T8).",
          "relations": ["T2 located_at T1", "T3 modify T5", "T4 modify T5", "T6 located_at T5",
                        "T6 suggestive_of T7"]}


def test_parse_and_radgraph_round_trip():
    rep = parse_report(REPORT, "x")
    assert rep.text.startswith("FINDINGS: The heart is normal.") and len(rep.entities) == 8
    assert rep.entity("T7").text == "pneumonia" and ("T6", "suggestive_of", "T7") in rep.relations
    data = to_radgraph([rep])["t-1"]
    assert data["text"].startswith("FINDINGS : The heart is normal .")  # RadGraph-style tokens
    heart = data["entities"]["1"]
    assert (heart["tokens"], heart["label"], heart["start_ix"], heart["end_ix"]) == ("heart", "ANAT-DP", 3, 3)
    assert data["entities"]["6"]["relations"] == [["located_at", "5"], ["suggestive_of", "7"]]
    back = from_radgraph({"t-1": data})[0]
    assert [(e.label, e.text) for e in back.entities] == [(e.label, e.text) for e in rep.entities]
    assert len(back.relations) == len(rep.relations)


@pytest.mark.parametrize("change, message", [
    ({"text": "[heart](ANAT T1)"}, "markup left"),
    ({"text": "[heart](ANAT-DP T1) [big](OBS-DP T1)"}, "used twice"),
    ({"text": "[heart](ANAT-DP T1)", "relations": ["T1 near T1"]}, "bad relation"),
    ({"text": "[heart](ANAT-DP T1)", "relations": ["T2 modify T1"]}, "unknown entity T2"),
    ({"text": "car[dio](ANAT-DP T1)megaly"}, "word boundaries"),
    ({"text": "[ heart](ANAT-DP T1)"}, "spaces"),
])
def test_bad_team_reports_name_the_report(change, message):
    with pytest.raises(InputError, match=message):
        parse_report({**REPORT, "relations": [], **change}, "file.jsonl:1")


def test_malformed_radgraph_json_names_the_doc_key():
    good = to_radgraph([parse_report(REPORT, "x")])
    bad = json.loads(json.dumps(good))
    bad["t-1"]["entities"]["2"]["end_ix"] = 999
    with pytest.raises(InputError, match="doc 't-1'"):
        from_radgraph(bad)
    bad = json.loads(json.dumps(good))
    bad["t-1"]["entities"]["2"]["label"] = "Observation"
    with pytest.raises(InputError, match="doc 't-1'.*label"):
        from_radgraph(bad)
    with pytest.raises(InputError, match="doc 'k'"):
        from_radgraph({"k": {"entities": {}}})


def test_scores_by_hand():
    gold = to_radgraph([parse_report({"id": "r", "text": "[heart](ANAT-DP T1) [normal](OBS-DP T2)",
                                      "relations": ["T2 located_at T1"]}, "x")])
    pred = to_radgraph([parse_report({"id": "r", "text": "[heart](ANAT-DP T1) [normal](OBS-U T2)"}, "x")])
    s = score_radgraph(gold, pred)
    assert s["entities"]["f1"] == 0.5 and s["relations"]["f1"] == 0.0
    assert s["radgraph_f1"] == {"RG_E": 0.5, "RG_ER": 0.5, "full": 0.5}
    perfect = score_radgraph(gold, gold)
    assert perfect["entities"]["f1"] == perfect["relations"]["f1"] == 1.0
    assert set(perfect["radgraph_f1"].values()) == {1.0}
    # a normal one-word report with nothing annotated, predicted empty: perfect, not 0/0
    empty = {"n": {"text": "Normal .", "entities": {}}}
    assert score_radgraph(empty, empty)["radgraph_f1"]["full"] == 1.0
    # a missing prediction is an empty graph
    assert score_radgraph(gold, {})["radgraph_f1"]["RG_E"] == 0.0
    with pytest.raises(InputError, match="differs from the gold text"):
        score_radgraph(gold, {"r": {"text": "other words", "entities": {}}})


def test_evaluate_radgraph_cli(tmp_path):
    from typer.testing import CliRunner

    from medtext.cli import app

    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps(REPORT) + "\n")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(to_radgraph([parse_report(REPORT, "x")])))
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "radgraph", str(gold), "-p", str(pred), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "RG_E 1.000" in res.output and json.loads(out.read_text())["relations"]["f1"] == 1.0
    pred.write_text(json.dumps({"t-1": {"text": "x", "entities": {"1": {"label": "ANAT-DP"}}}}))
    res = CliRunner().invoke(app, ["evaluate", "radgraph", str(gold), "-p", str(pred)])
    assert res.exit_code == 2 and "t-1" in res.output


def test_team_gold_set_is_valid_and_large_enough():
    reps = read_reports([RADGRAPH_DIR])
    splits = {r.split for r in reps}
    assert len(reps) >= 150 and splits == {"train", "dev", "test"}
    assert {e.label for r in reps for e in r.entities} == {"ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA"}
    assert {t for r in reps for _, t, _ in r.relations} == {"modify", "located_at", "suggestive_of"}
    assert any(len(r.text.split()) <= 3 for r in reps)  # one-line reports ("Normal chest.")
    to_radgraph(reps)  # every entity sits on word tokens
