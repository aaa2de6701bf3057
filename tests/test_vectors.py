"""Static word vectors distilled from a sentence-transformer, and the CNN NER reading them."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtext.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_bi(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    from tests.test_linker import _tiny_models

    return _tiny_models(tmp_path_factory.mktemp("tiny_vec"))[0]


def test_distilled_vectors_are_keyed_by_lower_case(tiny_bi, tmp_path):
    import numpy
    import spacy
    from spacy.attrs import LOWER

    from medtext.train_vectors import build_vectors

    out, n = build_vectors(tmp_path / "vec", ["Aspirin and ibuprofen for fever.", "ASPIRIN 81 mg; 2024"],
                           model=tiny_bi)
    assert n == 6  # aspirin, and, ibuprofen, for, fever, mg: tokens with a letter, once each
    nlp = spacy.load(out)
    v = nlp.vocab.vectors
    assert v.shape == (6, 32) and v.name.startswith("medtext_distilled_")
    rows = v.find(keys=nlp.make_doc("ASPIRIN aspirin Aspirin 81 zebra").to_array(LOWER))
    assert rows[0] == rows[1] == rows[2] >= 0 and rows[3] == rows[4] == -1
    assert numpy.allclose(numpy.linalg.norm(v.data, axis=1), 1.0, atol=1e-4)


def test_vector_arguments_are_checked(tmp_path):
    from medtext.train import train_ner

    with pytest.raises(ConfigError, match="--vectors is for the CNN"):
        train_ner(data_dir=tmp_path, arch="trf", vectors="minilm")


@pytest.mark.slow
def test_cnn_trains_with_vectors(tiny_bi, tmp_path, medtext_home):
    import spacy

    from medtext.train import train_ner
    from medtext.train_vectors import build_vectors

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    with pytest.raises(ConfigError, match="not a spaCy pipeline folder with vectors"):
        train_ner(data_dir=data, vectors=str(tmp_path))
    vec, _ = build_vectors(tmp_path / "vec", ["chest pain", "aspirin for fever", "breast cancer"], model=tiny_bi)
    path = train_ner(data_dir=data, max_steps=4, eval_frequency=2, vectors=str(vec))
    nlp = spacy.load(path)
    assert nlp.vocab.vectors.shape[0] == 7 and nlp.get_pipe("ner").labels
    nlp("Aspirin for chest pain.")
