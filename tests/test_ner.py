"""medtext_ner: terminology matcher, overlap rule with a statistical NER, evaluation, training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

import medtext
from medtext.cli import app
from medtext.corpora.ner_data import parse_markup, read_annotated
from medtext.errors import ConfigError
from medtext.evaluate import evaluate_spans

runner = CliRunner()


def _ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


@pytest.fixture(scope="module")
def fast(medtext_home):
    """The matcher alone (the default preset's CNN would find some of these entities first)."""
    return medtext.load("fast")


def test_matcher_labels_case_plural_and_headers(fast):
    doc = fast("HISTORY OF PRESENT ILLNESS: 70M with HTN and bilateral pleural effusions. "
              "Took aspirin. Seen in the ED.\nFUNCTIONAL STATUS: transfers with min assist.\n")
    ents = _ents(doc)
    assert ("HTN", "PROBLEM") in ents and ("aspirin", "DRUG") in ents
    assert ("bilateral pleural effusions", "PROBLEM") in ents  # plural of the last word
    assert ("transfers", "FUNCTION") in ents  # ICF d420 therapist synonym
    assert not any(t.upper() in ("ED", "ILLNESS", "HISTORY OF PRESENT ILLNESS") for t, _ in ents)
    hit = next(e for e in doc.ents if e.text == "HTN")
    assert ("snomed", "38341003") in hit._.matched_concepts


def test_model_entities_win_overlaps(medtext_home):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")  # stands in for a statistical NER
    ruler.add_patterns([{"label": "PROBLEM", "pattern": "pleural"}])
    nlp.add_pipe("medtext_ner")
    doc = nlp("Left pleural effusion; chest pain.")
    # the model's "pleural" blocks the longer matcher hit "pleural effusion"; hits elsewhere stay
    assert _ents(doc) == [("pleural", "PROBLEM"), ("effusion", "PROBLEM"), ("chest pain", "PROBLEM")]


def test_veto_outside_drops_hits_the_model_is_sure_are_not_entities(medtext_home):
    import numpy

    from medtext.components.biluo_ner import P_OUTSIDE

    def run(veto, p_out):
        nlp = spacy.blank("en")
        nlp.add_pipe("medtext_ner", config={"veto_outside": veto})
        doc = nlp.make_doc("Left pleural effusion; chest pain.")
        if p_out is not None:
            doc.user_data[P_OUTSIDE] = numpy.array(p_out, dtype="float32")
        doc = nlp.get_pipe("medtext_ner")(doc)
        assert P_OUTSIDE not in doc.user_data  # read and removed
        return _ents(doc)

    both = [("pleural effusion", "PROBLEM"), ("chest pain", "PROBLEM")]
    sure = [0.99] * 3 + [0.5] + [0.99] * 3  # tokens: Left pleural effusion ; chest pain .
    assert run(None, sure) == both  # no veto configured
    assert run(0.9, None) == both  # no model probabilities: nothing to veto
    assert run(0.9, sure) == []  # every token of both hits >= 0.9 outside
    assert run(0.9, [0.99, 0.99, 0.6, 0.99, 0.99, 0.99, 0.99]) == both[:1]  # one unsure token keeps a hit
    assert run(1.0, sure) == both
    with pytest.raises(ConfigError, match="veto_outside"):
        spacy.blank("en").add_pipe("medtext_ner", config={"veto_outside": 1.5})


def test_labels_filter_and_config_errors(tmp_path, medtext_home):
    nlp = spacy.blank("en")
    nlp.add_pipe("medtext_ner", config={"labels": ["DRUG"]})
    assert _ents(nlp("aspirin for chest pain")) == [("aspirin", "DRUG")]
    with pytest.raises(ConfigError, match="unknown label"):
        spacy.blank("en").add_pipe("medtext_ner", config={"labels": ["DISEASE"]})
    with pytest.raises(ConfigError, match="terminology build default"):
        spacy.blank("en").add_pipe("medtext_ner", config={"index": str(tmp_path)})
    blank = spacy.blank("en")
    blank.add_pipe("medtext_ner", config={"use_matcher": False})
    assert _ents(blank("aspirin")) == []


def test_markup_parser_and_team_corpus():
    text, spans = parse_markup("Pt denies [chest pain](PROBLEM); on [aspirin](DRUG).")
    assert text == "Pt denies chest pain; on aspirin." and spans == [(10, 20, "PROBLEM"), (25, 32, "DRUG")]
    notes = list(read_annotated())
    assert len(notes) >= 60 and {n.split for n in notes} == {"train", "dev"}
    labels = {lab for n in notes for *_, lab in n.spans}
    assert labels == {"PROBLEM", "TEST", "DRUG", "TREATMENT", "PROCEDURE", "ANATOMY", "FUNCTION"}
    for n in notes:
        assert "](" not in n.text and all(n.text[s:e].strip() == n.text[s:e] for s, e, _ in n.spans)


def test_span_scores():
    gold = [(0, 10, "PROBLEM"), (20, 27, "DRUG")]
    pred = [(0, 10, "PROBLEM"), (18, 27, "DRUG"), (40, 45, "TEST")]
    r = evaluate_spans([(gold, pred)])
    assert r["strict"]["PROBLEM"]["f1"] == 1.0 and r["strict"]["DRUG"]["f1"] == 0.0
    assert r["lenient"]["DRUG"]["f1"] == 1.0 and r["strict"]["micro"]["tp"] == 1
    assert r["strict"]["TEST"]["fp"] == 1


def test_cli_evaluate_ner(tmp_path):
    f = tmp_path / "gold.jsonl"
    f.write_text(json.dumps({"id": "x", "split": "dev", "text": "Denies [chest pain](PROBLEM). On [aspirin](DRUG)."}) + "\n")
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", "ner", str(f), "--format", "medtext", "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["strict"]["micro"]["f1"] == 1.0
    res = runner.invoke(app, ["evaluate", "ner", str(f), "--format", "brat"])
    assert res.exit_code == 2 and "unknown corpus format" in res.output


def test_record_entities_carry_assertion(nlp):
    rec = medtext.to_record(nlp("HPI: denies chest pain. Mother had breast cancer.\n"))
    got = {(e["text"], e["assertion"]) for e in rec["entities"]}
    assert ("chest pain", "negated") in got and ("breast cancer", "family") in got


@pytest.mark.slow
def test_train_tiny_ner_and_default_preset(medtext_home, tmp_path, monkeypatch):
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    from medtext import pipeline
    from medtext.train import train_ner

    # a private models folder: the session's other pipelines keep the shipped CNN
    monkeypatch.setattr(pipeline, "models_dir", lambda: tmp_path / "models")
    path = train_ner(data_dir=data, max_steps=30, eval_frequency=15)  # two taggers, as shipped
    assert path == tmp_path / "models" / "ner_cnn" and (path / "ner").is_dir()
    member = path / "ner" / "members" / "1"
    assert (member / "config.cfg").is_file() and not (path / "ner" / "members" / "2").exists()
    assert spacy.util.load_config(member / "config.cfg", interpolate=False)["system"]["seed"] == 1
    config = spacy.util.load_config(path / "config.cfg", interpolate=False)
    assert config["components"]["ner"]["factory"] == "medtext_biluo_ner"
    assert config["paths"]["train"] is None and config["paths"]["dev"] is None  # no local paths kept
    nlp = medtext.load("default")
    assert nlp.pipe_names == ["medtext_layout", "medtext_sections", "medtext_sentences", "tok2vec", "ner",
                              "medtext_ner", "medtext_context", "medtext_linker", "medtext_errors"]
    assert len(nlp.get_pipe("ner").members) == 1
    info = medtext.to_record(nlp("HPI: chest pain."))["pipeline"]
    assert any(c["name"] == "ner" and c["model"] == str(path) for c in info["components"])


def test_default_preset_runs_the_shipped_cnn_without_training(nlp, tmp_path, monkeypatch):
    from medtext import pipeline
    from medtext.pipeline import PACKAGED_MODELS

    monkeypatch.setattr(pipeline, "models_dir", lambda: tmp_path / "models")  # nothing trained here
    assert nlp.meta["medtext_models"]["ner"] == str(PACKAGED_MODELS / "ner_cnn")
    assert nlp.get_pipe("ner").__class__.__name__ == "BiluoNER"
    doc = nlp("HPI: chest pain and fever. PT: needs help putting on socks.")
    got = {(e.text, e.label_) for e in doc.ents}
    assert {("chest pain", "PROBLEM"), ("needs help putting on socks", "FUNCTION")} <= got


def test_fast_preset_is_the_matcher_alone_and_clinical_is_default(fast):
    from medtext.pipeline import available_presets

    assert "ner" not in fast.pipe_names and "tok2vec" not in fast.pipe_names
    assert "clinical" not in available_presets()
    clinical = medtext.load("clinical")  # the former name of the CNN preset
    assert clinical.pipe_names[3:5] == ["tok2vec", "ner"] and clinical.meta["name"] == "medtext_default"
    text = "HPI: 70M with chest pain, SOB and fever. Started on ceftriaxone."
    cnn = [(e.start, e.end) for e in clinical(text).ents]
    # the overlap rule: each matcher hit is kept or lies under a CNN entity
    assert all(any(s < e2 and s2 < e for s2, e2 in cnn) for s, e in ((x.start, x.end) for x in fast(text).ents))


def test_cnn_runs_on_numpy_blas_with_the_same_output(medtext_home, monkeypatch):
    """medtext.load gives thinc's CPU models numpy's BLAS (faster here than the bundled BLIS):
    same entities, vectors equal up to float rounding; MEDTEXT_BLIS=1 keeps BLIS."""
    import numpy

    from medtext.device import use_numpy_blas

    nlp = medtext.load("default")
    ops = {type(n.ops).__name__ + str(n.ops.use_blis) for n in nlp.get_pipe("tok2vec").model.walk()}
    assert ops == {"NumpyOpsFalse"}
    text = "HPI: 70M with chest pain, SOB and fever. Started on ceftriaxone. PT: needs help putting on socks."
    fast = nlp(text)
    monkeypatch.setenv("MEDTEXT_BLIS", "1")
    blis = medtext.load("default")
    assert use_numpy_blas(blis) == 0 and blis.get_pipe("tok2vec").model.ops.use_blis
    slow = blis(text)
    assert [(e.start, e.end, e.label_) for e in fast.ents] == [(e.start, e.end, e.label_) for e in slow.ents]
    assert numpy.allclose(fast.tensor, slow.tensor, atol=1e-4)


def test_long_documents_are_encoded_in_chunks_with_the_same_vectors(nlp):
    """A CNN tok2vec on a 5 MB note held > 20 GB; medtext.load makes it encode documents over
    MAX_TOKENS in overlapping chunks: the same vectors, bounded memory."""
    import numpy

    from medtext.chunking import MAX_TOKENS, predict_in_chunks

    t2v = nlp.get_pipe("tok2vec")
    doc = nlp.make_doc("HPI: 70M with chest pain, SOB and fever. Started on ceftriaxone. " * 40)
    whole = t2v.model.predict([doc])[0]
    chunked = predict_in_chunks(t2v.model, [doc], max_tokens=50, context=8)[0]
    assert chunked.shape == whole.shape and numpy.allclose(chunked, whole, atol=1e-4)
    # without context the chunk edges lose their neighbours: the overlap is what keeps them equal
    assert not numpy.allclose(predict_in_chunks(t2v.model, [doc], max_tokens=50, context=0)[0], whole, atol=1e-4)
    big = nlp.make_doc("Denies chest pain. " * (MAX_TOKENS // 4 + 10))
    assert len(big) > MAX_TOKENS
    assert numpy.allclose(t2v.predict([big])[0], t2v.model.predict([big])[0], atol=1e-4)


@pytest.mark.slow
def test_one_megabyte_single_line_note(nlp):
    text = "Denies chest pain; started on aspirin for fever. " * 21_000  # ~1 MB, no newline
    assert len(text) > 1_000_000 and "\n" not in text
    doc = nlp(text)
    got = {(e.text, e.label_) for e in doc.ents}
    assert {("chest pain", "PROBLEM"), ("aspirin", "DRUG")} <= got
    assert all(e._.is_negated for e in doc.ents if e.text == "chest pain")
