"""medtext_ner.drug_lexicon: drug names from the drug-named-entity-recognition package's data."""

from __future__ import annotations

import bz2
import collections
import pickle

import numpy
import pytest
import spacy

from medtext.components import drug_lexicon
from medtext.components.biluo_ner import P_OUTSIDE
from medtext.components.drug_lexicon import drug_names, match_drugs
from medtext.errors import ConfigError


def _ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_names_are_read_as_plain_data():
    names = drug_names()
    assert len(names) > 50_000
    assert {"fluconazole", "ethambutol", "lasix", "acetaminophen"} <= names
    assert all(len(n) >= 5 and n == n.lower() for n in names)
    assert not {"pain", "normal", "water"} & names


def test_a_data_file_with_any_class_is_refused(tmp_path):
    bad = tmp_path / "bad.pkl.bz2"
    with bz2.open(bad, "wb") as f:
        pickle.dump({"drug_variant_to_canonical": collections.OrderedDict(aspirin=["aspirin"])}, f)
    with pytest.raises(ConfigError, match="plain data only"):
        drug_names(bad)
    junk = tmp_path / "junk.pkl.bz2"
    junk.write_bytes(b"not bz2")
    with pytest.raises(ConfigError, match="cannot read"):
        drug_names(junk)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(drug_lexicon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install drug-named-entity-recognition"):
        drug_lexicon.data_path()


def test_match_whole_tokens_any_case_longest_first():
    nlp = spacy.blank("en")
    names = frozenset({"fluconazole", "ajmaline", "ajmaline hydrochloride", "lasix"})
    doc = nlp("Fluconazole-induced TdP; ajmaline hydrochloride, LASIX and xfluconazole.")
    assert [(s.text, s.label_) for s in match_drugs(doc, names)] == [
        ("Fluconazole", "DRUG"), ("ajmaline hydrochloride", "DRUG"), ("LASIX", "DRUG")]


def test_in_medtext_ner_other_entities_win_and_the_cnn_can_veto():
    def run(p_out=None, veto=0.99):
        nlp = spacy.blank("en")
        ruler = nlp.add_pipe("entity_ruler")  # stands in for the statistical NER
        ruler.add_patterns([{"label": "TREATMENT", "pattern": "Lasix"}])
        nlp.add_pipe("medtext_ner", config={"use_matcher": False, "drug_lexicon": True,
                                            "drug_lexicon_veto": veto})
        doc = nlp.make_doc("Lasix and fluconazole given.")
        doc = nlp.get_pipe("entity_ruler")(doc)
        if p_out is not None:
            doc.user_data[P_OUTSIDE] = numpy.array(p_out, dtype="float32")
        return _ents(nlp.get_pipe("medtext_ner")(doc))

    assert run() == [("Lasix", "TREATMENT"), ("fluconazole", "DRUG")]
    sure = [0.5, 0.5, 0.995, 0.5, 0.5]  # tokens: Lasix and fluconazole given .
    assert run(sure) == [("Lasix", "TREATMENT")]
    assert run(sure, veto=None) == [("Lasix", "TREATMENT"), ("fluconazole", "DRUG")]
    with pytest.raises(ConfigError, match="drug_lexicon_veto"):
        spacy.blank("en").add_pipe("medtext_ner", config={"use_matcher": False, "drug_lexicon_veto": 2.0})
