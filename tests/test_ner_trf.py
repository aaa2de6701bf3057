"""The trf preset's transformer NER: training from a Hugging Face backbone, loading without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import medtext
from medtext.errors import ConfigError


def test_train_ner_rejects_bad_arguments(tmp_path):
    from medtext.train import train_ner

    with pytest.raises(ConfigError, match="unknown NER architecture 'lstm'"):
        train_ner(data_dir=tmp_path, arch="lstm")
    with pytest.raises(ConfigError, match="--arch trf"):
        train_ner(data_dir=tmp_path, arch="cnn", model="bert-base-uncased")
    with pytest.raises(ConfigError, match="--ensemble 2"):
        train_ner(data_dir=tmp_path, arch="trf", ensemble=2)
    with pytest.raises(ConfigError, match="--ensemble 0"):
        train_ner(data_dir=tmp_path, ensemble=0)


def _trf_classifier(home: Path) -> None:
    """A small stand-in for the trf preset's mention classifier (n-grams + MiniLM embeddings)."""
    from medtext.terminologies.mention_classifier import MentionClassifier

    MentionClassifier.train([("amb 40 ft FWW", "icf", "d4500"), ("LB dressing min A", "icf", "d5402")],
                            min_df=1, steps=5, encoder="all-MiniLM-L6-v2").save(home / "models" / "linker_clf_trf")


def test_trf_preset_without_models_says_how_to_build_them(medtext_home):
    pytest.importorskip("sentence_transformers")
    if not (medtext_home / "models" / "linker_clf_trf").is_dir():
        with pytest.raises(ConfigError, match=r"linker-clf --encoder all-MiniLM-L6-v2.*make train-linker-clf-trf"):
            medtext.load("trf")
        _trf_classifier(medtext_home)
    if not (medtext_home / "models" / "ner_trf").is_dir():
        with pytest.raises(ConfigError, match=r"medtext train ner --arch trf.*make train-ner-trf"):
            medtext.load("trf")


@pytest.mark.slow
def test_train_tiny_trf_ner_and_trf_preset(medtext_home, tmp_path):
    pytest.importorskip("spacy_transformers")
    from medtext.train import train_ner
    from tests.conftest import tiny_bert

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    bert = tiny_bert(tmp_path / "tiny_bert")

    path = train_ner(data_dir=data, arch="trf", model=str(bert), max_steps=4, eval_frequency=2)
    assert path.name == "ner_trf" and (path / "transformer").is_dir()
    shutil.rmtree(bert)  # the saved pipeline carries the weights: the backbone path is not needed
    if not (medtext_home / "models" / "linker_clf_trf").is_dir():
        _trf_classifier(medtext_home)
    nlp = medtext.load("trf")
    assert nlp.pipe_names == ["medtext_layout", "medtext_sections", "medtext_sentences", "transformer", "ner",
                              "medtext_ner", "medtext_context", "medtext_linker", "medtext_errors"]
    assert set(nlp.get_pipe("ner").labels) == {"PROBLEM", "TEST", "DRUG", "TREATMENT", "PROCEDURE",
                                                "ANATOMY", "FUNCTION"}
    doc = nlp("HPI: chest pain and fever since Monday.\n")
    # four steps teach a tiny random model nothing useful: check that it ran, not what it found
    assert doc._.trf_data.width == 32
    assert doc.ents and all(e.label_ in nlp.get_pipe("ner").labels for e in doc.ents)
    info = medtext.to_record(doc)["pipeline"]
    assert any(c["name"] == "transformer" and c["model"] == str(path) for c in info["components"])
