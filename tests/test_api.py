"""The Python API: load with overrides, nlp(text), to_record, process over paths/texts/pairs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import medtext
from medtext.errors import ConfigError, InputError
from medtext.records import validate_record


def test_load_returns_language_with_default_components(nlp):
    from spacy.language import Language

    assert isinstance(nlp, Language)
    assert nlp.pipe_names == ["medtext_layout", "medtext_sections", "medtext_sentences", "tok2vec", "ner",
                              "medtext_ner", "medtext_context", "medtext_linker", "medtext_errors"]


def test_nlp_text_to_record(nlp):
    doc = nlp("CHIEF COMPLAINT: cough.\nHPI: Three days of cough. No fever.\n")
    rec = medtext.to_record(doc)
    validate_record(rec)
    assert [s["label"] for s in rec["sections"]] == ["chief_complaint", "hpi"]
    assert rec["doc_id"] and rec["schema_version"] == "1.1"
    assert doc._.record["text_sha256"] == rec["text_sha256"]


def test_component_overrides():
    custom = medtext.load(medtext_sections={"patterns": {"hpi": ["story so far"]},
                                            "detect_unknown": False})
    doc = custom("Story so far: fell at home.\nRANDOM HEADING\nmore text")
    assert [s.label_ for s in doc.spans["sections"]] == ["hpi"]


@pytest.mark.parametrize("overrides,message", [
    ({"medtext_nope": {}}, "no component 'medtext_nope'"),
    ({"medtext_sections": "yes"}, "must be a dict"),
    ({"medtext_sections": {"patterns": {"hpi": "story"}}}, "must be a list"),
])
def test_bad_overrides_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        medtext.load(**overrides)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        medtext.load("nope")


def test_process_texts_pairs_and_paths(nlp, samples: Path):
    recs = list(medtext.process(["HPI: cough.", ("note-7", "IMPRESSION: clear lungs.")], nlp=nlp))
    assert recs[1]["doc_id"] == "note-7" and recs[1]["sections"][0]["label"] == "impression"
    assert recs[0]["doc_id"] == "text-1"  # position when no id is given
    recs = list(medtext.process([samples / "cxr_01.txt", samples / "ct_02.pdf"], nlp=nlp))
    assert [r["source"]["format"] for r in recs] == ["txt", "pdf"]
    for r in recs:
        validate_record(r)


def test_process_error_modes(nlp, tmp_path: Path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "ok.txt").write_text("HPI: cough.")
    inputs = [tmp_path / "empty.txt", tmp_path / "ok.txt"]
    with pytest.raises(InputError, match="empty"):
        list(medtext.process(inputs, nlp=nlp))
    assert [r["doc_id"] for r in medtext.process(inputs, nlp=nlp, errors="skip")] == ["ok.txt"]
    rows = list(medtext.process(inputs, nlp=nlp, errors="yield"))
    assert rows[0]["reason"] == "empty" and rows[1]["doc_id"] == "ok.txt"
    with pytest.raises(ConfigError):
        list(medtext.process(inputs, nlp=nlp, errors="ignore"))


def test_doc_extensions_from_pdf(nlp, samples: Path):
    from medtext.readers import iter_documents

    [document] = list(iter_documents([samples / "discharge_01.pdf"]))
    doc = nlp(medtext.make_doc(nlp, document))
    assert doc._.doc_id == "discharge_01.pdf" and doc._.source["format"] == "pdf"
    line = doc._.lines[0]
    assert {"page", "x0", "y0", "x1", "y1", "font_size"} <= set(line)
    assert line["page"] == 1 and doc._.lines[-1]["page"] >= 2
    # line offsets index the doc text
    assert all(doc.text[ln["start"]:ln["end"]].strip() for ln in doc._.lines)


FORKED_TORCH = """
import spacy, torch
from spacy.language import Language
import medtext.pipeline as pl
from medtext.readers import iter_documents

torch.set_num_threads(2)
torch.nn.functional.gelu(torch.randn(2048, 2048)).sum()  # the parent runs multi-threaded PyTorch

@Language.component("torch_op")
def torch_op(doc):
    torch.nn.functional.gelu(torch.randn(2048, 2048)).sum()
    return doc

def tiny(*args, **kwargs):
    nlp = spacy.blank("en")
    nlp.add_pipe("torch_op")
    return nlp

pl.load = tiny  # the parent's pipeline, shared with the forked workers
docs = list(iter_documents([f"note {i}" for i in range(4)]))
print(sum(r.record is not None for r in pl.iter_results(docs, preset="x", n_process=2, chunk_size=1)), "records")
"""


def test_forked_workers_run_pytorch_after_the_parent_did(tmp_path):
    """The trf preset's linker runs PyTorch while it loads; n_process workers forked from that
    parent hung in their first multi-threaded PyTorch operation until they ran on one thread."""
    import os
    import signal

    pytest.importorskip("torch")
    script = tmp_path / "forked_torch.py"
    script.write_text(FORKED_TORCH)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and its hung workers
        proc.communicate()
        pytest.fail("the forked workers hung")
    assert proc.returncode == 0 and out.strip() == "4 records", err[-2000:]
