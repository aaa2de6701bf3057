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
    """A small stand-in for the trf preset's fine-tuned mention classifier (one short epoch)."""
    from medtext.terminologies.finetuned_classifier import FinetunedClassifier

    FinetunedClassifier.train([("amb 40 ft FWW", "icf", "d4500"), ("LB dressing min A", "icf", "d5402")],
                              epochs=1).save(home / "models" / "linker_clf_ft")


def test_trf_preset_without_models_says_how_to_build_them(medtext_home):
    pytest.importorskip("sentence_transformers")
    if not (medtext_home / "models" / "linker_clf_ft").is_dir():
        with pytest.raises(ConfigError, match=r"linker-clf --finetune.*make train-linker-clf-ft"):
            medtext.load("trf")
        _trf_classifier(medtext_home)
    # its SNOMED CT labels' dense candidates need the default index embedded
    with pytest.raises(ConfigError, match=r"needs an index with embeddings.*--model all-MiniLM-L6-v2.*make embed-index"):
        medtext.load("trf")
    if not (medtext_home / "models" / "ner_trf").is_dir():
        with pytest.raises(ConfigError, match=r"medtext train ner --arch trf.*make train-ner-trf"):
            medtext.load("trf", medtext_linker={"bi_encoder": None})


@pytest.mark.slow
def test_train_tiny_trf_ner_and_trf_preset(medtext_home, tmp_path):
    pytest.importorskip("spacy_transformers")
    from medtext.components.biluo_ner import BiluoNER
    from medtext.train import train_ner
    from tests.conftest import tiny_bert

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    bert = tiny_bert(tmp_path / "tiny_bert")
    # the linker's dense candidates: a copy of the default index embedded with a tiny sentence encoder
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import embed_index
    from tests.test_linker import _tiny_models

    index = tmp_path / "index"
    shutil.copytree(default_index_dir(), index)
    embed_index(index, _tiny_models(tmp_path / "tiny_bi")[0])

    path = train_ner(data_dir=data, arch="trf", model=str(bert), max_steps=4, eval_frequency=2)
    assert path.name == "ner_trf" and (path / "transformer").is_dir()
    shutil.rmtree(bert)  # the saved pipeline carries the weights: the backbone path is not needed
    if not (medtext_home / "models" / "linker_clf_ft").is_dir():
        _trf_classifier(medtext_home)
    nlp = medtext.load("trf", medtext_linker={"index": str(index)})
    # default's CNN taggers with the transformer tagger averaged in
    assert nlp.pipe_names == ["medtext_layout", "medtext_sections", "medtext_sentences", "tok2vec", "ner",
                              "medtext_ner", "medtext_context", "medtext_linker", "medtext_errors"]
    ner = nlp.get_pipe("ner")
    assert isinstance(ner, BiluoNER) and ner.members[-1].pipe_names == ["transformer", "ner"]
    assert ner.entity_labels == ("ANATOMY", "DRUG", "FUNCTION", "PROBLEM", "PROCEDURE", "TEST", "TREATMENT")
    text = "HPI: chest pain and fever since Monday. Started aspirin 81 mg daily.\n"
    doc = nlp(text)
    linker = nlp.get_pipe("medtext_linker").linker
    assert linker.bi_model is not None and linker.dense_w("PROBLEM") > 0 and linker.dense_w("FUNCTION") == 0
    # four steps teach a tiny random model nothing useful: check that it ran, not what it found
    assert doc.ents and all(e.label_ in ner.entity_labels for e in doc.ents)
    assert not doc.has_extension("trf_data") or doc._.trf_data is None or not len(doc._.trf_data.all_outputs)
    info = medtext.to_record(doc)["pipeline"]
    assert any(c["name"] == "ner" and str(path) in c["model"] for c in info["components"])
    import numpy

    def scores(pipeline):
        d = pipeline.make_doc(text)
        pipeline.get_pipe("tok2vec")(d)
        return numpy.asarray(pipeline.get_pipe("ner").predict([d])[0])

    assert not numpy.allclose(scores(nlp), scores(medtext.load("default")))  # the member counts

    # spaCy's transition-based ner on the transformer (--arch trf-parser) trains too, but cannot
    # be averaged with BILUO taggers: the trf preset says so
    path = train_ner(data_dir=data, arch="trf-parser", model=str(tiny_bert(tmp_path / "tiny_bert2")),
                     max_steps=2, eval_frequency=2)
    assert path.name == "ner_trf" and (path / "ner").is_dir()
    with pytest.raises(ConfigError, match="cannot join 'ner'.*needs a medtext_biluo_ner"):
        medtext.load("trf", medtext_linker={"index": str(index)})
