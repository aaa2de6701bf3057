"""``medtext_relations`` and the radiology preset: trained here on a slice of the team's reports
given as RadGraph JSON (the path a user with the licensed RadGraph data takes)."""

from __future__ import annotations

import json

import pytest

from medtext.corpora.radgraph_data import read_reports, to_radgraph


@pytest.fixture(scope="module")
def radgraph_model(tmp_path_factory, medtext_home):
    from medtext.pipeline import models_dir
    from medtext.train_relations import train_relations

    root = tmp_path_factory.mktemp("radgraph")
    train = read_reports(split="train")[:24]
    dev = read_reports(split="dev")[:6]
    (root / "train.json").write_text(json.dumps(to_radgraph(train)))
    (root / "dev.json").write_text(json.dumps(to_radgraph(dev)))
    out = models_dir() / "radgraph"  # where the radiology preset finds it
    report = train_relations(train_json=root / "train.json", dev_json=root / "dev.json", epochs=12, out=out)
    return out, report, root


def test_training_learns(radgraph_model):
    _, report, _ = radgraph_model
    assert report["train_reports"] == 24 and len(report["history"]) == 12
    # 24 reports, 12 epochs: far from the full model, well above chance (relation F1 0 for "none")
    assert report["best_dev_entity_f1"] > 0.6 and report["best_dev_relation_f1_gold_entities"] > 0.2, report


def test_radiology_preset_records_and_serialisation(radgraph_model):
    from spacy.tokens import Doc

    import medtext

    nlp = medtext.load("radiology")
    assert nlp.pipe_names == ["medtext_layout", "medtext_sections", "medtext_sentences", "ner", "medtext_ner",
                              "medtext_relations"]
    text = ("FINDINGS: There is a patchy opacity in the left lower lobe, which may represent pneumonia. "
            "No pleural effusion.")
    doc = nlp(text)
    assert {e.label_ for e in doc.ents} <= {"ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA"} and doc.ents
    assert all(isinstance(x, (int, str, float)) for rel in doc._.relations for x in rel)
    rec = medtext.to_record(doc)
    ids = {e["id"] for e in rec["entities"]}
    assert all(r["head"] in ids and r["tail"] in ids for r in rec["relations"])
    assert len(rec["relations"]) == len(doc._.relations)
    back = Doc(nlp.vocab).from_bytes(doc.to_bytes())  # relations are plain values: docs serialise
    assert [list(r) for r in back._.relations] == [list(r) for r in doc._.relations]
    for text in ("Normal.", "", "Heart normal\n\nlungs clear"):
        assert medtext.to_record(nlp(text))["relations"] is not None


def test_radiology_preset_masks_page_furniture(radgraph_model):
    """Entities the CNN puts on letterhead / footer lines are dropped before relations."""
    import medtext

    nlp = medtext.load("radiology")
    text = ("NORTHBROOK VALLEY IMAGING CENTER - CHEST AND LUNG RADIOLOGY\n"
            "Tel (555) 010-4400 | Fax (555) 010-4401\n\n"
            "FINDINGS: Patchy opacity in the left lower lobe. No pleural effusion.\n\n"
            "Electronically signed by Dr. M. Okafor, MD\nPage 1 of 1")
    doc = nlp.make_doc(text)
    for name in ("medtext_layout", "medtext_sections", "medtext_sentences"):
        doc = nlp.get_pipe(name)(doc)
    assert doc._.line_labels[0] == "header" and doc._.line_labels[3] == "body"
    lung = text.index("LUNG")
    opacity = text.index("opacity")
    lobe = text.index("lobe")
    doc.ents = [doc.char_span(lung, lung + 4, "ANAT-DP"), doc.char_span(opacity, opacity + 7, "OBS-DP"),
                doc.char_span(lobe, lobe + 4, "ANAT-DP")]
    doc = nlp.get_pipe("medtext_relations")(nlp.get_pipe("medtext_ner")(doc))
    assert [e.text for e in doc.ents] == ["opacity", "lobe"]
    kept = {(e.start, e.end) for e in doc.ents}
    assert all((hs, he) in kept and (ts, te) in kept for hs, he, ts, te, *_ in doc._.relations)


def test_evaluate_radgraph_runs_the_preset(radgraph_model):
    from typer.testing import CliRunner

    from medtext.cli import app

    _, _, root = radgraph_model
    out = root / "scores.json"
    res = CliRunner().invoke(app, ["evaluate", "radgraph", str(root / "dev.json"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["predictions"] == "preset radiology" and r["reports"] == 6 and r["relations_per_s"]
    assert 0 < r["entities"]["f1"] <= 1 and set(r["radgraph_f1"]) == {"RG_E", "RG_ER", "full"}


def test_missing_model_says_how_to_build_it(tmp_path, monkeypatch):
    import medtext
    from medtext.errors import ConfigError

    monkeypatch.setenv("MEDTEXT_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="medtext train relations"):
        medtext.load("radiology")


def test_missing_trf_model_says_how_to_build_it(tmp_path, monkeypatch):
    import medtext
    from medtext.errors import ConfigError

    monkeypatch.setenv("MEDTEXT_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"radgraph_trf.*medtext train relations --arch trf.*make train-relations-trf"):
        medtext.load("radiology_trf")


def test_bad_arch_is_a_config_error():
    from medtext.errors import ConfigError
    from medtext.train_relations import new_pipeline

    with pytest.raises(ConfigError, match="unknown relations architecture 'lstm'"):
        new_pipeline("lstm")
    with pytest.raises(ConfigError, match="--arch trf"):
        new_pipeline("cnn", "bert-base-uncased")


@pytest.mark.slow
def test_trf_relations_train_save_and_load_without_the_backbone(radgraph_model, tmp_path, monkeypatch):
    """A tiny random BERT under both RadGraph models: trains, is saved with its weights (the
    backbone folder is deleted before loading) and runs as the radiology_trf preset."""
    pytest.importorskip("spacy_transformers")
    import shutil

    import medtext
    from medtext.train_relations import train_relations
    from tests.conftest import tiny_bert

    _, _, root = radgraph_model
    bert = tiny_bert(tmp_path / "bert")
    home = tmp_path / "home"
    monkeypatch.setenv("MEDTEXT_HOME", str(home))
    report = train_relations(train_json=root / "train.json", dev_json=root / "dev.json", epochs=2, arch="trf",
                             model=str(bert))
    assert report["arch"] == "trf" and report["path"] == str(home / "models" / "radgraph_trf")
    losses = [h["losses"] for h in report["history"]]
    assert len(losses) == 2 and losses[0] != losses[1]  # the warm-up schedule advances: weights move
    shutil.rmtree(bert)
    nlp = medtext.load("radiology_trf")
    assert nlp.pipe_names[0] == "medtext_layout" and nlp.pipe_names[-1] == "medtext_relations"
    doc = nlp("FINDINGS: Small right pleural effusion. No pneumothorax.")
    assert isinstance(doc._.relations, list) and doc._.record["text"].startswith("FINDINGS")
