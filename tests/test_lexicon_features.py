"""medtext.LexiconHashEmbed.v1: drug and phenotype name flags beside the CNN's hashed embeddings."""

from __future__ import annotations

import numpy
import pytest
import spacy
from spacy.util import registry

from medtext.components.lexicon_features import LISTS, name_list, phenotype_names, token_features
from medtext.errors import ConfigError


def test_phenotype_names_are_hpo_phenotypic_abnormalities_only():
    names = phenotype_names()
    assert len(names) > 20_000
    assert {"seizure", "hypotension", "hepatitis", "ataxia"} <= names
    # other HPO branches (inheritance, onset, frequency, modifiers) are not phenotypes
    assert not {"autosomal dominant inheritance", "adult onset", "frequent", "mild"} & names
    assert all(len(n) >= 4 and n == n.lower() for n in names)


def test_short_drug_names_are_a_separate_list():
    short = name_list("drug_short")[0]
    assert short and all(3 <= len(n) <= 4 for n in short)
    assert not short & name_list("drug")[0]


def test_token_flags_mark_the_start_and_the_rest_of_each_name():
    nlp = spacy.blank("en")
    doc = nlp("Ethambutol caused hepatitis and orthostatic hypotension in XEthambutol users")
    F = token_features(doc, ("drug", "phenotype"))
    assert F.shape == (len(doc), 4) and F.dtype == numpy.float32
    rows = {t.text: tuple(F[t.i]) for t in doc}
    assert rows["Ethambutol"] == (1, 0, 0, 0)
    assert rows["hepatitis"] == (0, 0, 1, 0)
    # "hypotension" continues "orthostatic hypotension" and is a name itself
    assert rows["orthostatic"] == (0, 0, 1, 0) and rows["hypotension"] == (0, 0, 1, 1)
    assert rows["XEthambutol"] == rows["caused"] == (0, 0, 0, 0)
    assert token_features(nlp(""), LISTS).shape == (0, 6)


def test_the_embedding_adds_a_learnt_projection_of_the_flags():
    nlp = spacy.blank("en")
    docs = [nlp("ethambutol for seizures"), nlp(""), nlp("no drugs here")]
    make = registry.architectures.get("medtext.LexiconHashEmbed.v1")
    model = make(width=8, attrs=["NORM", "SHAPE"], rows=[50, 50], include_static_vectors=False,
                 lists=["drug", "phenotype"])
    model.initialize(X=docs)
    Y, backprop = model(docs, is_train=True)
    assert [y.shape for y in Y] == [(3, 8), (0, 8), (3, 8)]
    base = model.layers[0].predict(docs)
    proj = model.layers[1]
    # tokens without a flag get the projection's bias only; flagged ones also get its weights
    assert numpy.allclose(Y[2] - base[2], proj.get_param("b"))
    W = proj.get_param("W")
    assert numpy.allclose(Y[0][0] - base[0][0], proj.get_param("b") + W[:, 0])
    backprop([numpy.ones_like(y) for y in Y])
    assert proj.get_grad("W")[:, 0].sum() == pytest.approx(8.0)  # one drug start, gradient 1 per unit
    with pytest.raises(ConfigError, match="unknown NER name list"):
        make(width=8, attrs=["NORM"], rows=[50], include_static_vectors=False, lists=["genes"])
