"""Layout filtering: line features, the trainable ``medtext_layout`` (trained here on a small
synthetic corpus), save/load, the body mask in ``medtext_ner``, records, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtext.components.layout_features import N_FEATURES, extract
from medtext.lines import text_lines

LETTER = """St. Example Hospital - 1 Main Road - Tel (555) 010-0000
Department of Medicine
DISCHARGE SUMMARY
Patient admitted with chest pain and fever.
Electronically signed by Dr. A. Person, MD
Page 1 of 2
\fSt. Example Hospital - 1 Main Road - Tel (555) 010-0000
Follow-up in two weeks for hypertension.
Page 2 of 2"""


def test_features_shape_repetition_and_patterns():
    lines = text_lines(LETTER + "\n\n")
    f = extract(LETTER + "\n\n", lines)
    assert f.feats.shape == (9, N_FEATURES) and f.pages == [6, 3]
    assert len(f.rows) == 9 and all(LETTER.split("\n")[0] != "" for _ in f.rows)  # blank lines are not rows
    assert int(f.token_lengths.sum()) == len(f.token_ids)
    rows = {LETTER[lines[r]["start"]:lines[r]["end"]].strip(): k for k, r in enumerate(f.rows)}
    page_no = f.feats[rows["Page 1 of 2"]]
    body = f.feats[rows["Follow-up in two weeks for hypertension."]]
    assert page_no[10] == 1.0 and body[10] == 0.0  # "Page # of #" occurs on the other page
    assert page_no[37] == 1.0 and body[37] == 0.0  # page-number pattern
    assert f.feats[rows["Electronically signed by Dr. A. Person, MD"]][40] == 1.0  # signature pattern
    empty = extract("", text_lines(""))
    assert empty.feats.shape == (0, N_FEATURES) and empty.pages == []


def test_lines_out_of_order_are_refused():
    lines = text_lines(LETTER)
    with pytest.raises(ValueError, match="reading order"):
        extract(LETTER, [lines[-1]] + lines[:-1])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("reportlab")
    from medtext.corpora.layout_gen import FAMILIES, generate

    out = tmp_path_factory.mktemp("layout_corpus")
    return generate(out, 3 * len(FAMILIES), seed=3)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from medtext.train_layout import train_layout

    out = tmp_path_factory.mktemp("layout_model") / "layout"
    report = train_layout(docs=0, epochs=10, out=out, corpus=corpus)
    return out, report


def test_generator_labels_cover_the_furniture(corpus):
    from medtext.corpora.layout_gen import LABELS, read_labels

    recs = read_labels(corpus)
    seen = {label for r in recs for label in r["labels"] if label}
    assert {"body", "header", "footer", "pagination", "side", "signature"} <= seen <= set(LABELS)
    bad = corpus.parent / "bad.jsonl"
    bad.write_text(json.dumps({**recs[0], "labels": ["nonsense"] * len(recs[0]["labels"])}) + "\n")
    with pytest.raises(ValueError, match=recs[0]["id"]):
        read_labels(bad)


def test_training_learns_and_saved_model_agrees(trained, corpus):
    import spacy

    from medtext.train_layout import evaluate, load_examples

    out, report = trained
    assert report["train_examples"] > 0 and len(report["history"]) == 10
    nlp = spacy.load(out)
    exs = load_examples(nlp, corpus)
    scores = evaluate(nlp, exs)
    # trained and scored on the same small corpus: well above the all-body baseline (body F1
    # ~0.89, macro-F1 ~0.13)
    assert scores["layout_body_f"] > 0.95 and scores["layout_macro_f"] > 0.6, scores
    doc = nlp(exs[0].predicted.copy())
    assert len(doc._.line_labels) == len(doc._.lines)
    assert {s.label_ for s in doc.spans["layout"]} <= set(nlp.get_pipe("medtext_layout").labels)
    assert nlp(exs[0].predicted.copy())._.line_labels == doc._.line_labels  # deterministic


def test_body_mask_drops_entities_in_furniture(nlp):
    from spacy.tokens import Doc

    text = "Cardiology Hospital for chest pain\nPatient has chest pain and fever."
    def run(doc: Doc) -> Doc:  # the preset's components after the layout classifier
        for name, proc in nlp.pipeline:
            if name != "medtext_layout":
                doc = proc(doc)
        return doc

    doc = nlp.make_doc(text)
    doc._.line_labels = ["header", "body"]
    doc = run(doc)
    assert [e.text for e in doc.ents if e.label_ == "PROBLEM"] == ["chest pain", "fever"]
    assert all(e.start_char > text.index("\n") for e in doc.ents)
    assert [ln["label"] for ln in doc._.record["lines"]] == ["header", "body"]
    # without layout labels nothing is dropped
    plain = run(nlp.make_doc(text))
    assert sum(e.text == "chest pain" for e in plain.ents) == 2


def test_bad_input_shapes(trained):
    import spacy

    nlp = spacy.load(trained[0])
    for text in ("", "\n\n\n", "Normal.", "x" * 5000):
        doc = nlp(text)
        assert len(doc._.line_labels) == len(text_lines(text))
    for text in ("Normal.", "Page 1 of 2", "x" * 5000, "\n\nElectronically signed by Dr. A. Smith, MD\n"):
        assert "body" in nlp(text)._.line_labels, text  # a document always has a body line
    long_doc = "\f".join(f"Page {i} of 200\nThe patient is stable today.\n" for i in range(1, 201))
    doc = nlp(long_doc)
    assert doc._.line_labels.count(None) < len(doc._.line_labels)
    assert len(doc.spans["layout"]) == sum(x is not None for x in doc._.line_labels)


def test_train_layout_cli_errors(tmp_path):
    from typer.testing import CliRunner

    from medtext.cli import app

    res = CliRunner().invoke(app, ["train", "layout", "--holdout", "nosuchfamily", "--out", str(tmp_path / "m")])
    assert res.exit_code != 0 and "unknown template family" in res.output
    assert not Path(tmp_path / "m").exists()


def test_rotated_pdf_pages_warn_and_are_read_without_geometry(trained, tmp_path):
    pytest.importorskip("reportlab")
    import spacy
    from reportlab.pdfgen import canvas

    from medtext.components.layout_features import extract
    from medtext.readers.pdf import read_pdf

    path = tmp_path / "rotated.pdf"
    c = canvas.Canvas(str(path), pagesize=(612, 792))
    for rotation in (0, 90):
        c.setPageRotation(rotation)
        c.setFont("Helvetica", 10)
        for i in range(4):
            c.drawString(60, 700 - 14 * i, f"Line {i}: the patient reports chest pain.")
        c.drawString(280, 30, "Page 1 of 2")
        c.showPage()
    c.save()
    text, lines, warnings = read_pdf(path, "rotated.pdf")
    assert len(warnings) == 1 and "rotated page(s) 2 (90°)" in warnings[0]
    assert {ln.get("rotation") for ln in lines if ln["page"] == 2} == {90}
    f = extract(text, lines)
    on_page2 = [k for k, r in enumerate(f.rows) if lines[r]["page"] == 2]
    assert on_page2 and (f.feats[on_page2, 12] == 0).all() and (f.feats[:4, 12] == 1).all()
    nlp = spacy.load(trained[0])
    doc = nlp.make_doc(text)
    doc._.lines = lines
    assert len(nlp(doc)._.line_labels) == len(lines)


def test_rule_lines_follow_the_furniture_they_border():
    from medtext.components.layout import _label_rules

    text = ("=====\nST. EXAMPLE HOSPITAL\n=====\nHPI: chest pain.\n-----\nPlan: aspirin.\n"
            "* * *\n- - -\nPage 1 of 1\n")
    lines = text_lines(text)
    f = extract(text, lines)
    assert f.texts[:2] == ["=====", "ST. EXAMPLE HOSPITAL"]
    labels = [None] * len(lines)
    for r, label in zip(f.rows, ["body", "header", "body", "body", "header", "body", "body", "body",
                                 "pagination"]):
        labels[r] = label
    _label_rules(f, labels)
    # furniture before or after wins; between body lines a rule is body; content lines keep theirs
    assert [labels[r] for r in f.rows] == ["header", "header", "header", "body", "body", "body",
                                           "pagination", "pagination", "pagination"]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    from tests.test_linker import _tiny_models

    return _tiny_models(tmp_path_factory.mktemp("tiny_layout_enc"))[0]


def test_text_encoder_model_trains_saves_and_loads_by_name(corpus, tiny_encoder, tmp_path, medtext_home):
    import spacy

    from medtext.components import layout
    from medtext.train_layout import evaluate, load_examples, train_layout

    out = tmp_path / "layout_trf"
    report = train_layout(docs=0, epochs=10, out=out, corpus=corpus, text_encoder=tiny_encoder)
    assert report["text_encoder"] == tiny_encoder and len(report["history"]) == 10
    cfg = (out / "config.cfg").read_text()
    assert f'text_encoder = "{tiny_encoder}"' in cfg  # the encoder is saved by name, not copied
    layout._TEXT_CACHE.clear()
    nlp = spacy.load(out)
    exs = load_examples(nlp, corpus, kinds=("txt",))
    scores = evaluate(nlp, exs)
    assert scores["layout_body_f"] > 0.9 and scores["layout_macro_f"] > 0.4, scores  # it learnt furniture
    assert any(key[0] == tiny_encoder for key in layout._TEXT_CACHE)  # the encoder did run
    long_line = "x" * 5000
    assert nlp(long_line)._.line_labels == ["body"]
    assert all(len(t) <= layout.MAX_TEXT_CHARS for _, t in layout._TEXT_CACHE)



def test_shipped_model_keeps_a_note_without_furniture_all_body():
    import spacy

    from medtext.pipeline import PACKAGED_MODELS

    nlp = spacy.load(PACKAGED_MODELS / "layout")
    note = ("HPI: 67F with 3 days of productive cough and fever to 38.6 C.\n"
            "Denies chest pain or hemoptysis.\n\n"
            "Exam: crackles at the right base, SpO2 93% on room air.\n"
            "CXR: right lower lobe consolidation.\n\n"
            "Assessment and plan:\n"
            "1. Community-acquired pneumonia: amoxicillin 1 g PO TID for 5 days.\n"
            "2. Recheck in 48 hours, sooner if short of breath.\n")
    labels = nlp(note)._.line_labels
    assert [x for x in labels if x is not None] == ["body"] * 7


def test_200_page_pdf_is_read_and_classified(tmp_path):
    pytest.importorskip("reportlab")
    import spacy
    from reportlab.pdfgen import canvas

    from medtext.pipeline import PACKAGED_MODELS
    from medtext.readers.pdf import read_pdf

    path = tmp_path / "long.pdf"
    c = canvas.Canvas(str(path), pagesize=(612, 792))
    for page in range(1, 201):
        c.setFont("Helvetica-Bold", 12)
        c.drawString(60, 750, "NORTHBROOK VALLEY MEDICAL CENTER")
        c.setFont("Helvetica", 10)
        for i in range(20):
            c.drawString(60, 720 - 14 * i, f"Day {page}: vitals stable, mild chest pain, plan unchanged ({i}).")
        c.drawString(280, 30, f"Page {page} of 200")
        c.showPage()
    c.save()
    text, lines, _ = read_pdf(path, "long.pdf")
    nlp = spacy.load(PACKAGED_MODELS / "layout")
    doc = nlp.make_doc(text)
    doc._.lines = lines
    labels = nlp(doc)._.line_labels
    assert len(labels) == len(lines) == 200 * 22
    assert labels.count("body") == 200 * 20  # the running letterhead and page numbers are furniture
    assert labels.count("pagination") + labels.count("header") + labels.count("footer") == 400
