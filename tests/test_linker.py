"""Entity linking: the engine (routing, lexical + dense candidates, NIL, cache, bad input), the
``medtext_linker`` component, the mismatch guard, cross-encoder re-ranking and training plumbing
with tiny models built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest

from medtext.terminologies.default import default_index_dir
from medtext.terminologies.index import ConceptIndex, Source, TerminologyData, TerminologyError, write_index
from medtext.terminologies.linking import SUBSTITUTION_PENALTIES, Linker, Mention


@pytest.fixture(scope="module")
def lexical(medtext_home):
    return Linker(ConceptIndex.load(default_index_dir()), bi_encoder=None)


def test_routing_and_codes(lexical):
    r = lexical.link([Mention("chest pain", "PROBLEM"), Mention("needs help putting on socks", "FUNCTION"),
                      Mention("CABG", "PROCEDURE"), Mention("chest pain", "ANATOMY")])
    assert (r[0].best.system, r[0].best.code) == ("snomed", "29857009")
    assert (r[1].best.system, r[1].best.code) == ("icf", "d5402")  # FUNCTION routes to ICF
    assert r[2].best.term == "Coronary artery bypass grafting"  # abbreviation synonym
    # ANATOMY routes to body structures only: never the disorder
    assert all(c.kind == "body structure" for c in r[3].candidates)


def test_nil_and_bad_mentions(lexical):
    r = lexical.link([Mention("zzqxw vlorp", "PROBLEM"), Mention("x", "PROBLEM"), Mention("心臓病", "PROBLEM"),
                      Mention("word " * 400, "PROBLEM"), Mention("", "PROBLEM"), Mention("chest pain", "NOLABEL")])
    assert r[0].nil and r[0].best is None
    assert r[1].nil and not r[1].candidates  # one character: exact matches only, and "x" has none
    assert r[2].nil and r[3].nil and r[4].nil
    assert r[5].nil and not r[5].candidates  # unrouted label: not linked


def test_cache_and_batch_equivalence(medtext_home):
    lk = Linker(ConceptIndex.load(default_index_dir()), bi_encoder=None, cache_size=2)
    ms = [Mention(t, "PROBLEM") for t in ("chest pain", "Chest  Pain", "fever", "cough", "chest pain")]
    batch = lk.link(ms)
    assert len(lk.cache) <= 2
    single = [lk.link([m])[0] for m in ms]
    assert [b.best.code for b in batch] == [s.best.code for s in single]
    assert batch[0] is batch[1] or batch[0].best.code == batch[1].best.code  # normalised key


def test_nil_threshold_is_applied(medtext_home):
    ix = ConceptIndex.load(default_index_dir())
    strict = Linker(ix, bi_encoder=None, nil_threshold=1.01).link([Mention("chest pain", "PROBLEM")])[0]
    assert strict.nil and strict.candidates  # candidates kept for review
    assert not Linker(ix, bi_encoder=None, nil_threshold=0.0).link([Mention("chest pian", "PROBLEM")])[0].nil


def test_substitution_penalty_by_label(medtext_home):
    """By default the SNOMED CT labels' string scores are lowered for a swapped word ("grip
    strength" against "Prism strength"), FUNCTION's are not; a number is for every label; a value
    outside 0..1 is an error."""
    ix = ConceptIndex.load(default_index_dir())
    ms = [Mention("grip strength", "TEST"), Mention("amb 40 ft with walker", "FUNCTION")]
    default, plain, every = (Linker(ix, bi_encoder=None, substitution_penalty=p).link(ms)
                             for p in (None, 0.0, 0.3))
    assert plain[0].candidates[0].term == "Prism strength"
    prism = {c.term: c.score for c in default[0].candidates}.get("Prism strength", 0.0)
    assert prism < plain[0].candidates[0].score  # lowered for TEST
    assert [(c.code, c.score) for c in default[1].candidates] == [(c.code, c.score) for c in plain[1].candidates]
    assert [(c.code, c.score) for c in every[1].candidates] != [(c.code, c.score) for c in plain[1].candidates]
    assert Linker(ix, bi_encoder=None).describe()["substitution_penalty"] == SUBSTITUTION_PENALTIES
    assert "FUNCTION" not in SUBSTITUTION_PENALTIES
    with pytest.raises(TerminologyError, match="substitution_penalty"):
        Linker(ix, bi_encoder=None, substitution_penalty={"TEST": 2})


def test_expand_abbreviations_spells_out_short_forms(medtext_home):
    """expand_abbreviations (tried 2026-12-05, off in every preset): a capitalised short form in a
    longer mention of a SNOMED CT label becomes the preferred term of the one concept it names
    within the label's route (else in the index); lower case, one-word mentions, FUNCTION and
    short forms naming several concepts are left alone; the spelt-out form is searched too."""
    ix = ConceptIndex.load(default_index_dir())
    off, on = Linker(ix, bi_encoder=None), Linker(ix, bi_encoder=None, expand_abbreviations=True)
    text = "venoarterial ECMO by percutaneous femoral cannulation"
    assert on.expansion(text, "PROCEDURE") == ("venoarterial Extracorporeal membrane oxygenation by "
                                               "percutaneous femoral cannulation")
    assert off.expansion(text, "PROCEDURE") is None
    assert on.expansion("venoarterial ecmo by cannulation", "PROCEDURE") is None  # not in capitals
    assert on.expansion("ECMO", "PROCEDURE") is None  # the mention is the short form: a plain synonym match
    assert on.expansion("SPECT-TC", "PROCEDURE") == ("Single photon emission computerized tomography-"
                                                     "Computerized axial tomography")
    # "PE": Physical examination procedure and Pulmonary embolism. A PROBLEM's route holds one of them;
    # ANATOMY's neither, and of two concepts overall none is picked
    assert on.expansion("acute PE", "PROBLEM") == "acute Pulmonary embolism"
    assert on.expansion("acute PE", "ANATOMY") is None
    assert on.expansion("amb 40 ft FWW", "FUNCTION") is None
    assert on.describe()["expand_abbreviations"] == sorted(SUBSTITUTION_PENALTIES)
    assert Linker(ix, bi_encoder=None, expand_abbreviations=["TEST"]).expansion("acute PE", "PROBLEM") is None
    ms = [Mention("pelvic RM of control", "PROCEDURE"), Mention("chest pain", "PROBLEM")]
    before, after = off.link(ms), on.link(ms)
    assert before[0].candidates[0].term == "Pain control"  # "RM" alone is no evidence for MRI
    assert after[0].candidates[0].term == "Magnetic resonance imaging"
    assert [(c.code, c.score) for c in after[1].candidates] == [(c.code, c.score) for c in before[1].candidates]
    # the cache tells the capitalised mention from the lower-case one
    low = on.link([Mention("pelvic rm of control", "PROCEDURE")])[0]
    assert low.candidates[0].term == "Pain control"
    for bad in ("yes", ["TEST", 3]):
        with pytest.raises(TerminologyError, match="expand_abbreviations"):
            Linker(ix, bi_encoder=None, expand_abbreviations=bad)
    # the component's setting (off by default)
    import spacy
    from thinc.api import ConfigValidationError

    from medtext.errors import ConfigError

    nlp = spacy.blank("en")
    assert nlp.add_pipe("medtext_linker", name="plain").linker.expand_labels == frozenset()
    comp = nlp.add_pipe("medtext_linker", name="abx", config={"expand_abbreviations": ["PROCEDURE"]})
    assert comp.linker.expansion("pelvic RM of control", "PROCEDURE") == "pelvic Magnetic resonance imaging of control"
    with pytest.raises((ConfigError, ConfigValidationError), match="expand_abbreviations"):
        nlp.add_pipe("medtext_linker", name="bad", config={"expand_abbreviations": [3]})
    with pytest.raises((ConfigError, ConfigValidationError), match="expand_abbreviations"):
        nlp.add_pipe("medtext_linker", name="bad2", config={"expand_abbreviations": "yes"})


def test_calques_replace_literal_translations(medtext_home, tmp_path):
    """calques (the presets: the SNOMED CT labels): words a machine translation from Spanish
    renders literally become the standard term in a second form of the mention, which is searched
    too; whole words only (a plural too), not FUNCTION, not in mentions without them."""
    from medtext.terminologies.linking import load_calques

    ix = ConceptIndex.load(default_index_dir())
    off, on = Linker(ix, bi_encoder=None), Linker(ix, bi_encoder=None, calques=True)
    table = load_calques()
    assert table["arterial tension"] == "blood pressure" and len(table) > 100
    # no one-word literal form is a common English word (experiment 26: "light touch" is not "lumen touch")
    wordfreq = pytest.importorskip("wordfreq")
    assert not [k for k in table if " " not in k and wordfreq.zipf_frequency(k, "en") >= 3.5]
    assert on.expansion("decreased light touch sensation", "PROBLEM") is None
    assert on.expansion("measurement of arterial  tension", "PROCEDURE") == "measurement of blood pressure"
    assert on.expansion("Arterial tensions", "TEST") == "blood pressure"
    assert on.expansion("measurement of arterial tension", "FUNCTION") is None
    assert off.expansion("measurement of arterial tension", "PROCEDURE") is None
    assert on.expansion("interarterial tensioning", "PROCEDURE") is None
    ms = [Mention("measurement of arterial tension", "PROCEDURE"), Mention("chest pain", "PROBLEM")]
    before, after = off.link(ms), on.link(ms)
    assert before[0].candidates[0].term == "Measurement procedure"
    assert after[0].candidates[0].term.startswith("Measurement of blood pressure")
    assert [(c.code, c.score) for c in after[1].candidates] == [(c.code, c.score) for c in before[1].candidates]
    assert [r["also_searched"] for r in on.explain(ms)] == ["measurement of blood pressure", None]
    # with expand_abbreviations as well: one second form with both
    both = Linker(ix, bi_encoder=None, calques=["PROCEDURE"], expand_abbreviations=True)
    assert both.expansion("ECMO and arterial tension", "PROCEDURE") == "Extracorporeal membrane oxygenation and blood pressure"
    assert both.describe()["calques"] == ["PROCEDURE"]
    # a malformed table is a clear error
    head = "spanish\tliteral_english\tstandard_english\n"
    for body, match in (("a\tb\n", "header"), (head + "x\ty\n", "line 2"), (head + "x\t\tz\n", "line 2"),
                        (head + "a\tb c\td\na2\tB  c\te\n", "two standard forms")):
        bad = tmp_path / "bad.tsv"
        bad.write_text(body, encoding="utf-8")
        with pytest.raises(TerminologyError, match=match):
            load_calques(bad)
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TerminologyError, match="cannot read"):
        load_calques(bad)
    for bad in ("yes", ["TEST", 3]):
        with pytest.raises(TerminologyError, match="calques"):
            Linker(ix, bi_encoder=None, calques=bad)


def test_narrower_procedures_for_their_labels_only(medtext_home):
    """narrower (the presets: PROCEDURE): the default index's specific procedures named under
    their nearest GPS concept (procedure_narrower.tsv) are read for those labels' mentions; for the
    others, and with narrower off, the linker ranks exactly as over an index without them."""
    ix = ConceptIndex.load(default_index_dir())
    off, on = Linker(ix, bi_encoder=None), Linker(ix, bi_encoder=None, narrower=["PROCEDURE"])
    ms = [Mention("median sternotomy", "PROCEDURE"), Mention("radical cystoprostatectomy", "PROCEDURE"),
          Mention("median sternotomy", "TEST"), Mention("chest pain", "PROBLEM")]
    got, before = on.link(ms), off.link(ms)
    assert [(r.best.code, r.best.score, r.best.matched) for r in got[:2]] == [
        ("177765008", 1.0, "median sternotomy"), ("63016009", 1.0, "radical cystoprostatectomy")]
    # without them: Operation on mediastinum, Radical prostatectomy
    assert [r.best.code for r in before[:2]] == ["386765006", "26294005"]
    for a, b in ((got[2], before[2]), (got[3], before[3])):  # TEST and PROBLEM: as with narrower off
        assert [(c.code, c.score, c.matched) for c in a.candidates] == [(c.code, c.score, c.matched) for c in b.candidates]
    # off, the narrower names are not there at all: the same candidates as over the index without them
    import pyarrow.compute as pc

    from medtext.terminologies.linking import NARROWER_SOURCE

    syn = ix.tables["synonyms"]
    plain = ConceptIndex.load(default_index_dir())
    plain.tables["synonyms"] = syn.filter(pc.not_equal(syn.column("source"), NARROWER_SOURCE))
    assert len(plain.tables["synonyms"]) < len(syn)
    bare = Linker(plain, bi_encoder=None, narrower=["PROCEDURE"]).link(ms)
    for a, b in zip(before, bare):
        assert [(c.code, c.score, c.matched) for c in a.candidates] == [(c.code, c.score, c.matched) for c in b.candidates]
    assert on.describe()["narrower"] == ["PROCEDURE"] and off.describe()["narrower"] == []
    for bad in ("yes", ["TEST", 3]):
        with pytest.raises(TerminologyError, match="narrower"):
            Linker(ix, bi_encoder=None, narrower=bad)


def test_nil_thresholds_by_label_and_example_tfidf_weight(medtext_home):
    """A label's own NIL threshold; the examples' TF-IDF term for the labels given only."""
    ix = ConceptIndex.load(default_index_dir())
    ms = [Mention("chest pian", "PROBLEM"), Mention("chest pian", "TEST")]
    loose = Linker(ix, bi_encoder=None).link(ms)
    score = loose[0].candidates[0].score
    assert 0.5 <= score < 1.0 and not loose[0].nil  # a fuzzy match: linked at 0.5
    by_label = Linker(ix, bi_encoder=None, nil_thresholds={"PROBLEM": (score + 1) / 2})
    r = by_label.link(ms)
    assert r[0].nil and r[0].candidates[0].code == loose[0].candidates[0].code
    assert r[1].nil == loose[1].nil  # other labels keep nil_threshold
    assert by_label.describe()["nil_thresholds"] == {"PROBLEM": (score + 1) / 2}
    for bad in ({"PROBLEM": 1.5}, {"PROBLEM": "high"}):
        with pytest.raises(TerminologyError, match="nil_thresholds"):
            Linker(ix, bi_encoder=None, nil_thresholds=bad)
    rows = [("sup>sit via log roll to R, min A", "icf", "d4100"), ("lap chole", "snomed", "38102005")]
    m = [Mention("sup>sit log roll", "FUNCTION"), Mention("lap chole done", "PROCEDURE")]

    def example_scores(weight):
        out = Linker(ix, bi_encoder=None, examples=rows, example_tfidf_weight=weight).link(m)
        return [max(c.example for c in x.candidates) for x in out]

    every, function_only, none = example_scores(0.5), example_scores({"FUNCTION": 0.5}), example_scores(0.0)
    assert every[0] == function_only[0] > none[0]  # FUNCTION keeps its TF-IDF term
    assert every[1] > function_only[1] == none[1]  # PROCEDURE loses it
    # the TF-IDF is fitted on the route's own examples: another system's leave FUNCTION's alone
    more = rows + [("sup>sit lap chole via log roll", "snomed", "38102005")]
    alone = [Mention("sup>sit", "FUNCTION")]  # a partial match: its score is not capped at 0.99
    one, two = (Linker(ix, bi_encoder=None, examples=ex, example_tfidf_weight=0.5).link(alone)[0]
                for ex in (rows, more))
    assert max(c.example for c in one.candidates) == max(c.example for c in two.candidates) < 0.99
    with pytest.raises(TerminologyError, match="example_tfidf_weight"):
        Linker(ix, bi_encoder=None, example_tfidf_weight={"FUNCTION": -1})


def test_decided_accuracy_counts_links_and_nils(medtext_home):
    from medtext.corpora.linking_data import LinkingMention
    from medtext.evaluate import evaluate_linking

    lk = Linker(ConceptIndex.load(default_index_dir()), bi_encoder=None, top=25)
    ms = [LinkingMention("1", "chest pain", ["29857009"], "PROBLEM"),  # linked right
          LinkingMention("2", "chest pain", ["22298006"], "PROBLEM"),  # linked, wrong code
          LinkingMention("3", "xqzv wug", [], "PROBLEM")]  # gold NIL, left NIL
    r = evaluate_linking(lk, ms)
    assert r["nil"]["decided_accuracy"] == round(2 / 3, 4)


def test_empty_terminology(tmp_path):
    data = TerminologyData(sources=[Source(name="empty", version="0")])
    try:
        write_index(data, tmp_path / "empty", name="empty")
    except TerminologyError as e:  # an empty terminology is refused at build time, clearly
        assert "no concepts" in str(e) or "empty" in str(e)
        return
    r = Linker(ConceptIndex.load(tmp_path / "empty"), bi_encoder=None).link([Mention("chest pain", "PROBLEM")])
    assert r[0].nil and not r[0].candidates


def test_dense_needs_embeddings(medtext_home):
    with pytest.raises(TerminologyError, match="needs an index with embeddings"):
        Linker(ConceptIndex.load(default_index_dir()), bi_encoder="index")


def test_component_sets_kb_id_and_records(nlp, medtext_home):
    from medtext.records import validate_record

    assert nlp.pipe_names[-2:] == ["medtext_linker", "medtext_errors"]  # in the default preset, lexical
    text = "HPI: 60 yo with chest pain and fever. Denies cough. PT: needs help putting on socks."
    docs = list(nlp.pipe([text, "No findings.", ""]))
    ents = {e.text: e for e in docs[0].ents}
    assert ents["chest pain"].kb_id_ == "snomed:29857009" and ents["chest pain"]._.linked
    assert ents["chest pain"]._.concepts[0]["code"] == "29857009"
    assert ents["cough"]._.is_negated  # context survives the linker rebuilding doc.ents
    rec = docs[0]._.record
    validate_record(rec)
    linked = [e for e in rec["entities"] if e["kb_id"]]
    assert linked and all(e["concepts"] and e["concepts"][0]["display"] for e in linked)
    assert not docs[2].ents


def test_component_config_errors(medtext_home):
    import spacy

    from medtext.errors import ConfigError

    nlp = spacy.blank("en")
    with pytest.raises(ConfigError, match="dense_weight"):
        nlp.add_pipe("medtext_linker", config={"dense_weight": 2.0})
    with pytest.raises(ConfigError, match="no terminology index"):
        nlp.add_pipe("medtext_linker", name="l2", config={"index": "/nonexistent/index"})
    with pytest.raises(ConfigError, match="routes"):
        nlp.add_pipe("medtext_linker", name="l3", config={"routes": {"PROBLEM": "snomed"}})


def test_examples_link_shorthand_no_terminology_lists(medtext_home, tmp_path, caplog):
    from medtext.corpora.linking_data import load_examples
    from medtext.errors import InputError

    ix = ConceptIndex.load(default_index_dir())
    plain = Linker(ix, bi_encoder=None)
    shorthand = Mention("sup>sit via log roll, min A", "FUNCTION")
    assert not plain.link([shorthand])[0].best or plain.link([shorthand])[0].best.code != "d4100"
    rows = [("sup>sit via log roll to R, min A", "icf", "d4100"), ("cp", "snomed", "29857009"),
            ("unknown thing", "icf", "d9999999")]
    with caplog.at_level("WARNING"):
        lk = Linker(ix, bi_encoder=None, examples=rows)
    assert "1 linking examples name codes that are not in the index" in caplog.text
    r = lk.link([shorthand, Mention("cp", "PROBLEM"), Mention("cp", "FUNCTION"), Mention("c", "PROBLEM")])
    assert (r[0].best.system, r[0].best.code) == ("icf", "d4100") and r[0].best.example > 0.8
    assert r[1].best.code == "29857009" and r[1].best.example == 1.0  # short forms: exact examples
    assert all(c.code != "29857009" for c in r[2].candidates)  # examples obey the routes
    assert all(c.example == 0.0 for c in r[3].candidates)
    assert lk.describe()["examples"] == 2

    team = load_examples("medtext:icf-dev")
    assert len(team) > 200 and {s for _, s, _ in team} == {"icf"}
    both = load_examples("medtext:icf")  # train + dev, never test
    assert len(both) == len(team) + len(load_examples("medtext:icf-train")) and len(both) > 1000
    f = tmp_path / "ex.jsonl"
    f.write_text(json.dumps({"text": "walks w/ rollator", "system": "icf", "code": "d450"}) + "\n"
                 + json.dumps({"id": "n1", "text": "Pt [amb 50 ft](FUNCTION|d450)."}) + "\n")
    assert load_examples(str(f)) == [("walks w/ rollator", "icf", "d450"), ("amb 50 ft", "icf", "d450")]
    f.write_text("\n" + json.dumps({"text": "walks", "system": "icf"}) + "\n")
    with pytest.raises(InputError, match="ex.jsonl:2"):
        load_examples(str(f))
    with pytest.raises(InputError, match="unknown example set"):
        load_examples("medtext:icf-test")


def test_char_ngram_tfidf():
    """The examples' TF-IDF: identical texts score 1, unseen n-grams are ignored, and a rare
    shared fragment ("fww") counts more than a common one ("amb")."""
    from medtext.terminologies.retrieval import CharNgramTfidf

    tf = CharNgramTfidf(["amb 40 ft fww", "amb 100 ft spc", "amb 20 ft", "sup sit log roll"])
    m = tf.matrix(["amb 40 ft fww", "zzz qqq", "fww", "amb"])
    assert m.shape == (4, 4) and m.dtype == numpy.float32
    assert m[0, 0] == pytest.approx(1.0, abs=1e-5) and m[0].argmax() == 0
    assert not m[1].any()
    assert m[2, 0] > m[3, 0] > 0 and m[2, 3] == 0


def test_lexical_pruning_keeps_what_examples_lift(medtext_home):
    """Linking lexically, candidates below the top few lexical scores are not materialised;
    one that an example lifts to the top still carries its lexical score and matched synonym,
    and the returned list is the head of the full ranking."""
    ix = ConceptIndex.load(default_index_dir())
    m = Mention("pain in the left side of chest", "PROBLEM")
    full = Linker(ix, bi_encoder=None, top=64).link([m])[0].candidates
    x = full[10]
    assert x.lexical < full[0].lexical and x.matched  # far below the cut for top=1
    one = Linker(ix, bi_encoder=None, top=1).link([m])[0].candidates
    assert [(c.code, c.score) for c in one] == [(c.code, c.score) for c in full[:1]]
    rows = [("pain in the left side of chest", x.system, x.code)]
    lifted = Linker(ix, bi_encoder=None, top=1, examples=rows).link([m])[0].candidates[0]
    wide = {c.code: c for c in Linker(ix, bi_encoder=None, top=64, examples=rows).link([m])[0].candidates}
    assert lifted.code == x.code and lifted.example == 1.0 == lifted.score
    assert (lifted.lexical, lifted.matched) == (x.lexical, x.matched) == (wide[x.code].lexical, wide[x.code].matched)


def test_component_examples_config(medtext_home, tmp_path):
    import spacy

    from medtext.errors import ConfigError

    nlp = spacy.blank("en")
    with pytest.raises(ConfigError, match="examples.*not found"):
        nlp.add_pipe("medtext_linker", config={"examples": str(tmp_path / "missing.jsonl")})
    comp = nlp.add_pipe("medtext_linker", name="l2", config={"examples": "medtext:icf"})
    assert comp.linker.describe()["examples"] > 1000 and "+examples=medtext:icf" in comp.model_id


# --- dense, cross-encoder and training: tiny random models built here ------------------------

def _tiny_models(root: Path, seed: int = 0):
    """A tiny random BERT sentence-transformer and cross-encoder, with MiniLM's tokenizer."""
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from tests.conftest import tiny_bert

    bert = tiny_bert(root / f"bert{seed}", seed=seed, max_positions=128)
    word = Transformer(str(bert), max_seq_length=64)
    bi = st.SentenceTransformer(modules=[word, Pooling(32, "mean"), Normalize()], device="cpu")
    bi.save(str(root / f"bi{seed}"))
    ce = st.CrossEncoder(str(bert), num_labels=1, device="cpu")
    ce.save(str(root / f"ce{seed}"))
    return str(root / f"bi{seed}"), str(root / f"ce{seed}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, medtext_home):
    root = tmp_path_factory.mktemp("tiny_linker")
    bi0, ce0 = _tiny_models(root, 0)
    bi1, _ = _tiny_models(root, 1)
    data = TerminologyData(sources=[Source(name="tiny", version="1")])
    for code, term, kind, syns in [
        ("1", "Chest pain", "finding", ["pain in chest", "thoracic pain"]),
        ("2", "Fever", "finding", ["pyrexia", "febrile"]),
        ("3", "Appendectomy", "procedure", ["excision of appendix"]),
        ("4", "Heart structure", "body structure", ["heart"]),
    ]:
        data.add_concept("snomed", code, term, kind=kind)
        data.add_synonym("snomed", code, term, "preferred")
        for s in syns:
            data.add_synonym("snomed", code, s)
    write_index(data, root / "index", name="tiny", embed_model=bi0)
    return {"root": root, "bi": bi0, "other_bi": bi1, "ce": ce0, "index": root / "index"}


def test_dense_linking_and_mismatch_guard(tiny):
    ix = ConceptIndex.load(tiny["index"])
    lk = Linker(ix, bi_encoder="index", dense_weight=0.5)
    r = lk.link([Mention("pyrexia", "PROBLEM"), Mention("appendix excision", "PROCEDURE")])
    assert r[0].best.code == "2" and r[0].best.dense > 0.99  # exact synonym: cosine 1
    assert r[1].candidates[0].kind == "procedure"
    assert all(0.0 <= c.dense <= 1.0001 for c in r[0].candidates)
    with pytest.raises(TerminologyError, match="cosines between two models mean nothing"):
        Linker(ix, bi_encoder=tiny["other_bi"])


def test_classifier_reuses_the_bi_encoders_vectors(tiny, monkeypatch):
    """A mention classifier whose encoder is the linker's bi-encoder gets the linker's mention
    vectors instead of encoding the mentions again."""
    from medtext.terminologies.mention_classifier import MentionClassifier

    clf = MentionClassifier.train([("fever", "snomed", "2"), ("febrile all night", "snomed", "2"),
                                   ("chest pain", "snomed", "1"), ("pain in chest on exertion", "snomed", "1")],
                                  min_df=1, steps=100, encoder=tiny["bi"])
    lk = Linker(ConceptIndex.load(tiny["index"]), bi_encoder="index", classifier=clf, nil_threshold=0.0)
    monkeypatch.setattr(clf, "embed", lambda *a, **k: pytest.fail("the classifier encoded again"))
    r = lk.link([Mention("febrile", "PROBLEM")])[0]
    assert r.best.code == "2" and r.best.classifier is not None
    # an encoder that is no longer the model the classifier was trained with is refused
    monkeypatch.undo()
    clf.meta["encoder_probe"] = [-v for v in clf.meta["encoder_probe"]]
    with pytest.raises(TerminologyError, match="not the model it was trained with"):
        Linker(ConceptIndex.load(tiny["index"]), bi_encoder="index", classifier=clf)


def test_dense_weights_by_label(tiny, monkeypatch):
    """dense_weights gives a label its own cosine weight; at 0 its mentions are linked exactly as
    lexically (no encoder call, no dense candidates) while the other labels keep theirs."""
    ix = ConceptIndex.load(tiny["index"])
    examples = [("sup>sit pain", "snomed", "1"), ("appy", "snomed", "3")]
    lexical = Linker(ix, bi_encoder=None, nil_threshold=0.0, examples=examples)
    mixed = Linker(ix, bi_encoder="index", nil_threshold=0.0, examples=examples, dense_weights={"PROBLEM": 0.0})
    dense = Linker(ix, bi_encoder="index", nil_threshold=0.0, examples=examples)
    assert mixed.describe()["dense_weights"] == {"PROBLEM": 0.0} and mixed.dense_w("PROCEDURE") == 0.6
    problems = [Mention("thoracic pain", "PROBLEM"), Mention("pyrexial", "PROBLEM"), Mention("sup>sit pain", "PROBLEM")]

    def ranked(rs):
        return [[(c.code, round(c.score, 6)) for c in r.candidates] for r in rs]

    with_dense = ranked(dense.link(problems))
    encoded = []  # the encoder (one model object, shared by the linkers) is watched from here on
    real = mixed.bi_model.encode
    monkeypatch.setattr(mixed.bi_model, "encode", lambda texts, **k: encoded.append(list(texts)) or real(texts, **k))
    assert ranked(mixed.link(problems)) == ranked(lexical.link(problems)) != with_dense
    assert not encoded and all(c.dense == 0.0 for r in mixed.link(problems) for c in r.candidates)
    r = mixed.link([Mention("appendix excision", "PROCEDURE"), Mention("chest pain", "PROBLEM")])
    assert encoded == [["appendix excision"]]  # only the mention whose label has a dense weight
    assert r[0].best.code == "3" and r[0].best.dense > 0 and r[1].best.dense == 0.0
    # only examples a dense label can meet were encoded: the PROBLEM example's vector stays zero
    vecs = {int(c): mixed.ex_vecs[j] for j, c in enumerate(mixed.ex_concept)}
    assert not vecs[mixed._cid("snomed", "1")].any() and vecs[mixed._cid("snomed", "3")].any()
    for bad in ({"PROBLEM": 1.5}, {"PROBLEM": "high"}):
        with pytest.raises(TerminologyError, match="dense_weights"):
            Linker(ix, bi_encoder="index", dense_weights=bad)


def test_dense_variant_searches_the_query_without_modifiers(tiny, monkeypatch):
    """dense_variant (tried for the trf preset, not adopted): the variant of a mention with
    modifiers ("severe pyrexia" -> "pyrexia") is encoded too, and a concept's cosine is at least
    VARIANT_WEIGHT times the variant's; mentions without modifiers encode nothing more; off by
    default."""
    from medtext.terminologies.retrieval import VARIANT_WEIGHT

    ix = ConceptIndex.load(tiny["index"])
    off = Linker(ix, bi_encoder="index", nil_threshold=0.0)
    on = Linker(ix, bi_encoder="index", nil_threshold=0.0, dense_variant=True)
    assert off.describe()["dense_variant"] is False and on.describe()["dense_variant"] is True
    encoded = []
    real = on.bi_model.encode
    monkeypatch.setattr(on.bi_model, "encode", lambda texts, **k: encoded.append(list(texts)) or real(texts, **k))
    r = on.link([Mention("severe pyrexia", "PROBLEM"), Mention("chest pain", "PROBLEM")])
    assert encoded == [["severe pyrexia", "chest pain"], ["pyrexia"]]
    fever = next(c for c in r[0].candidates if c.code == "2")
    assert fever.dense >= VARIANT_WEIGHT - 1e-4
    before = next(c for c in off.link([Mention("severe pyrexia", "PROBLEM")])[0].candidates if c.code == "2")
    assert fever.dense >= before.dense - 1e-6
    assert [c.code for c in r[1].candidates] == [c.code for c in off.link([Mention("chest pain", "PROBLEM")])[0].candidates]


def test_cross_encoder_reranks(tiny):
    ix = ConceptIndex.load(tiny["index"])
    lk = Linker(ix, bi_encoder="index", cross_encoder=tiny["ce"], nil_threshold=0.0, use_context=True)
    r = lk.link([Mention("thoracic pain", "PROBLEM", "Pt reports thoracic pain at rest.")])[0]
    assert r.candidates and all(c.rerank is not None and 0 <= c.score <= 1 for c in r.candidates)
    assert [c.score for c in r.candidates] == sorted((c.score for c in r.candidates), reverse=True)


def test_embed_command_and_component_with_dense(tiny, tmp_path):
    import shutil

    import spacy
    from typer.testing import CliRunner

    from medtext.cli import app

    ix_dir = tmp_path / "ix"
    shutil.copytree(tiny["index"], ix_dir)
    res = CliRunner().invoke(app, ["terminology", "embed", "--index", str(ix_dir), "--model", tiny["other_bi"]])
    assert res.exit_code == 0, res.output
    assert json.loads((ix_dir / "metadata.json").read_text())["embedding"]["model"] == tiny["other_bi"]
    nlp = spacy.blank("en")
    nlp.add_pipe("medtext_linker", config={"index": str(ix_dir), "bi_encoder": tiny["other_bi"],
                                           "nil_threshold": 0.0})
    doc = nlp.make_doc("fever today")
    doc.ents = [spacy.tokens.Span(doc, 0, 1, label="PROBLEM")]
    doc = nlp.get_pipe("medtext_linker")(doc)
    assert doc.ents[0].kb_id_ == "snomed:2"
    # per-label dense weights from the config, checked there; and in `medtext evaluate linking`
    from medtext.errors import ConfigError

    cfg = {"index": str(ix_dir), "bi_encoder": "index", "dense_weights": {"PROCEDURE": 0.0}}
    linker = spacy.blank("en").add_pipe("medtext_linker", config=cfg).linker
    assert linker.dense_w("PROCEDURE") == 0.0 and linker.dense_w("PROBLEM") == 0.6
    with pytest.raises(ConfigError, match="medtext_linker: .*dense_weights"):
        spacy.blank("en").add_pipe("medtext_linker", config={**cfg, "dense_weights": {"PROCEDURE": 2.0}})
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"filename": "n1", "start": 0, "label": "PROCEDIMIENTO", "snomed_ct": "3",
                                "text_en_machine_translated": "excision of the appendix"}) + "\n")
    args = ["evaluate", "linking", str(gold), "--index", str(ix_dir), "--bi-encoder", "index"]
    res = CliRunner().invoke(app, [*args, "--dense-weight-for", "PROCEDURE=0", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "PROCEDURE 0.0" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["linker"]["dense_weights"] == {"PROCEDURE": 0.0}
    res = CliRunner().invoke(app, [*args, "--dense-weight-for", "PROCEDURE"])
    assert res.exit_code != 0 and "--dense-weight-for takes LABEL=VALUE" in res.output


def test_train_linker_plumbing(tiny, tmp_path):
    from medtext.terminologies.index import embed_index
    from medtext.train_linker import train_bi_encoder, train_cross_encoder

    ix = ConceptIndex.load(tiny["index"])
    stats = train_bi_encoder(ix, base=tiny["bi"], out=tmp_path / "bi", max_pairs=50, batch_size=4)
    assert stats["pairs"] > 0 and (tmp_path / "bi" / "model.safetensors").exists()
    import shutil

    shutil.copytree(tiny["index"], tmp_path / "ix")
    embed_index(tmp_path / "ix", str(tmp_path / "bi"))
    ix2 = ConceptIndex.load(tmp_path / "ix")
    lk = Linker(ix2, bi_encoder="index", top=4)
    stats = train_cross_encoder(ix2, lk, base=tiny["bi"].replace("bi0", "bert0"), out=tmp_path / "ce",
                                max_queries=20, batch_size=4)
    assert stats["pairs"] > stats["queries"] and (tmp_path / "ce" / "model.safetensors").exists()
    r = Linker(ix2, bi_encoder="index", cross_encoder=str(tmp_path / "ce")).link([Mention("fever", "PROBLEM")])
    assert r[0].candidates
    # --system: the names of that system only; one the index lacks is a clear error
    from medtext.errors import ConfigError
    from medtext.train_linker import _concept_texts, train_linker

    assert set(_concept_texts(ix, {"snomed"})[0]) == set(_concept_texts(ix)[0])
    assert _concept_texts(ix, {"icf"})[0] == {}
    with pytest.raises(ConfigError, match="--system icf: this index has the systems snomed"):
        train_linker(index_path=tiny["index"], systems={"icf"})


def test_rerank_weight_mixes_scores(tiny):
    ix = ConceptIndex.load(tiny["index"])
    plain = Linker(ix, bi_encoder="index", nil_threshold=0.0)
    mixed = Linker(ix, bi_encoder="index", cross_encoder=tiny["ce"], nil_threshold=0.0, rerank_weight=0.0)
    m = [Mention("chest pain", "PROBLEM"), Mention("fever", "PROBLEM")]
    for a, b in zip(plain.link(m), mixed.link(m)):  # weight 0: the retrieval order and scores stay
        assert [c.code for c in a.candidates] == [c.code for c in b.candidates]
        assert [round(c.score, 5) for c in a.candidates] == [round(c.score, 5) for c in b.candidates]
        assert all(c.rerank is not None for c in b.candidates)
    full = Linker(ix, bi_encoder="index", cross_encoder=tiny["ce"], nil_threshold=0.0, rerank_weight=1.0)
    r = full.link(m[:1])[0]
    assert all(abs(c.score - c.rerank) < 1e-6 for c in r.candidates)
    with pytest.raises(TerminologyError, match="ann must be"):
        Linker(ix, bi_encoder="index", ann="faiss")


def test_hnsw_search_matches_exact_and_stale_graphs_are_rebuilt(tiny, tmp_path):
    pytest.importorskip("faiss")
    import shutil

    from medtext.terminologies.ann import GRAPH_FILE, META_FILE, AnnIndex
    from medtext.terminologies.index import embed_index

    ix_dir = tmp_path / "ix"
    shutil.copytree(tiny["index"], ix_dir)
    ix = ConceptIndex.load(ix_dir)
    exact = Linker(ix, bi_encoder="index", ann="exact", nil_threshold=0.0)
    hnsw = Linker(ix, bi_encoder="index", ann="hnsw", nil_threshold=0.0)
    m = [Mention(t, "PROBLEM") for t in ("pyrexia", "thoracic pain", "fever", "pain")]
    m.append(Mention("heart", "ANATOMY"))
    for a, b in zip(exact.link(m), hnsw.link(m)):
        assert [(c.code, round(c.score, 3)) for c in a.candidates] == [(c.code, round(c.score, 3)) for c in b.candidates]
    assert hnsw.describe()["dense_search"] == "hnsw" and exact.describe()["dense_search"] == "exact"
    assert (ix_dir / GRAPH_FILE).exists()
    # the route restriction holds inside the graph search
    ann = AnnIndex.load_or_build(ix)
    hnsw.route_concepts("ANATOMY")
    rows = hnsw._route_rows["ANATOMY"]
    _, found = ann.search(numpy.asarray(ix.embeddings[:3], dtype="float32"), 5, rows)
    assert set(found[found >= 0].tolist()) <= set(rows.tolist())
    # a graph whose fingerprint differs is rebuilt, and re-embedding drops it
    meta = json.loads((ix_dir / META_FILE).read_text())
    (ix_dir / META_FILE).write_text(json.dumps({**meta, "rows": 1}))
    AnnIndex.load_or_build(ix)
    assert json.loads((ix_dir / META_FILE).read_text())["rows"] == ix.embeddings.shape[0]
    embed_index(ix_dir, tiny["other_bi"])
    assert not (ix_dir / GRAPH_FILE).exists() and not (ix_dir / META_FILE).exists()


def test_nil_calibration_curve():
    from medtext.evaluate import nil_calibration

    # (top-1 score, top-1 right, should be NIL)
    sweep = [(0.9, True, False), (0.8, True, False), (0.3, False, True), (0.2, False, True), (0.6, False, False)]
    cal = nil_calibration(sweep)
    assert cal["curve"]["0.00"] == 0.4 and cal["curve"]["1.00"] == 0.4
    assert 0.3 < cal["best_threshold"] <= 0.8 and cal["best_accuracy"] == 0.8
    assert cal["should_be_nil"] == 2


def test_ties_go_to_the_concept_the_mention_names(tmp_path):
    """Two concepts with the mention as an exact name (HPO calls Vertigo "dizziness" too): the
    one whose preferred term it is comes first, not the one with the shorter term."""
    data = TerminologyData(sources=[Source(name="tiny", version="1")])
    for code, term, syns in [("1", "Vertigo", ["dizziness"]), ("2", "Dizziness", [])]:
        data.add_concept("snomed", code, term, kind="finding")
        data.add_synonym("snomed", code, term, "preferred")
        for s in syns:
            data.add_synonym("snomed", code, s)
    write_index(data, tmp_path / "ix", name="tiny")
    lk = Linker(ConceptIndex.load(tmp_path / "ix"), bi_encoder=None)
    r = lk.link([Mention("Dizziness", "PROBLEM"), Mention("spinning vertigo", "PROBLEM")])
    assert [c.code for c in r[0].candidates[:2]] == ["2", "1"] and r[0].candidates[1].score == r[0].candidates[0].score
    assert r[1].best.code == "1"


def test_prior_weight_puts_often_coded_concepts_first(tmp_path):
    """``prior_weight`` adds w x log(1 + examples coded with the concept) to a candidate's score:
    of two exact names, the one the examples code goes first; per label (a label not named gets
    none); off by default; a weight outside 0..1 is an error, in the engine, the component and
    `medtext evaluate linking --prior-weight-for`."""
    import math

    import spacy
    from typer.testing import CliRunner

    from medtext.cli import app
    from medtext.errors import ConfigError

    data = TerminologyData(sources=[Source(name="tiny", version="1")])
    for code, term in [("1", "Chest pain"), ("2", "Cerebral palsy")]:
        data.add_concept("snomed", code, term, kind="disorder")
        data.add_synonym("snomed", code, term, "preferred")
        data.add_synonym("snomed", code, "cp")
    write_index(data, tmp_path / "ix", name="tiny")
    ix = ConceptIndex.load(tmp_path / "ix")
    examples = [("spastic diplegia", "snomed", "2")] * 2 + [("spastic quadriplegia", "snomed", "2")]
    mention = [Mention("cp", "PROBLEM")]
    plain = Linker(ix, bi_encoder=None, examples=examples).link(mention)[0]
    assert [c.code for c in plain.candidates] == ["1", "2"]  # a tie: the shorter term first
    assert plain.candidates[0].score == plain.candidates[1].score == 1.0
    lk = Linker(ix, bi_encoder=None, examples=examples, prior_weight={"PROBLEM": 0.01})
    r = lk.link(mention)[0]
    assert [c.code for c in r.candidates] == ["2", "1"]
    # three examples (repeats count): 1 + 0.01 log 4; the concept no example codes keeps its score
    assert r.candidates[0].score == pytest.approx(1.0 + 0.01 * math.log(4), abs=1e-6)
    assert r.candidates[1].score == 1.0
    other = Linker(ix, bi_encoder=None, examples=examples, prior_weight={"DRUG": 0.01}).link(mention)[0]
    assert [c.code for c in other.candidates] == ["1", "2"]
    assert lk.describe()["prior_weight"] == {"PROBLEM": 0.01}
    for bad in (-0.1, 2.0, {"PROBLEM": "high"}):
        with pytest.raises(TerminologyError, match="prior_weight"):
            Linker(ix, bi_encoder=None, prior_weight=bad)
    with pytest.raises(ConfigError, match="medtext_linker: .*prior_weight"):
        spacy.blank("en").add_pipe("medtext_linker", config={"index": str(tmp_path / "ix"), "prior_weight": 3.0})
    comp = spacy.blank("en").add_pipe("medtext_linker", config={"index": str(tmp_path / "ix"),
                                                                "prior_weight": {"PROBLEM": 0.01}}).linker
    assert comp.prior_w("PROBLEM") == 0.01 and comp.prior_w("TEST") == 0.0
    ex = tmp_path / "ex.jsonl"
    ex.write_text("".join(json.dumps({"text": t, "system": s, "code": c}) + "\n" for t, s, c in examples))
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "n1", "text": "Hx [cp](PROBLEM|2)."}) + "\n")
    args = ["evaluate", "linking", str(gold), "--format", "medtext", "--index", str(tmp_path / "ix"),
            "--examples", str(ex)]
    res = CliRunner().invoke(app, [*args, "--prior-weight-for", "PROBLEM=0.01", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "prior PROBLEM 0.01" in res.output
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["linker"]["prior_weight"] == {"PROBLEM": 0.01} and out["acc_all"]["@1"] == 1.0
    res = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "r0.json")])
    assert json.loads((tmp_path / "r0.json").read_text())["acc_all"]["@1"] == 0.0


def test_decision_does_not_depend_on_top(tmp_path):
    """The pool a mention's candidates are ranked in holds at least MIN_POOL concepts whatever
    ``top`` is, so the top concept, its score and the NIL decision are the same for the presets'
    ``top`` 5 and the benchmark's 25. Here the popularity prior lifts a concept whose best example
    ranks only 7th: with a pool of ``top`` concepts it was never a candidate at ``top`` 5."""
    from medtext.terminologies.linking import MIN_POOL

    data = TerminologyData(sources=[Source(name="tiny", version="1")])
    names = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf"]
    for n, name in enumerate(names):
        data.add_concept("snomed", str(n + 1), name, kind="disorder")
        data.add_synonym("snomed", str(n + 1), name, "preferred")
    write_index(data, tmp_path / "ix", name="tiny")
    ix = ConceptIndex.load(tmp_path / "ix")
    texts = ["left knee pain", "left knee pains", "left knee ache", "right knee pain", "knee pain left side",
             "left hip pain"]
    examples = [(t, "snomed", str(n + 1)) for n, t in enumerate(texts)]
    examples += [("knee swelling and stiffness", "snomed", "7")] * 60  # often coded, a weaker match
    mention = [Mention("left knee pain", "PROBLEM")]
    lists = {}
    for top in (1, 5, MIN_POOL):
        lk = Linker(ix, bi_encoder=None, examples=examples, top=top, prior_weight={"PROBLEM": 0.2})
        r = lk.link(mention)[0]
        assert len(r.candidates) <= top
        lists[top] = r
    wide = lists[MIN_POOL].candidates
    # the winner's best example is not among the 5 best example scores
    assert wide[0].code == "7" and sorted((c.example for c in wide), reverse=True).index(wide[0].example) >= 5
    for top in (1, 5):
        assert (lists[top].best.code, lists[top].candidates[0].score) == (wide[0].code, wide[0].score)
        assert [c.code for c in lists[top].candidates] == [c.code for c in wide[:top]]


def test_explain_and_the_link_command(tmp_path):
    """``Linker.explain`` makes the decision ``link`` makes and gives each candidate's parts (the
    score is the best of the string and example scores, plus the prior, here); ``k`` lengthens the
    list within the pool without changing its order. ``medtext link`` prints it for a preset's
    linker, as JSON too, and refuses a label without a route."""
    import math

    from typer.testing import CliRunner

    from medtext.cli import app
    from medtext.terminologies.linking import MIN_POOL

    data = TerminologyData(sources=[Source(name="tiny", version="1")])
    for code, term in [("1", "Chest pain"), ("2", "Cerebral palsy"), ("3", "Chest wall pain")]:
        data.add_concept("snomed", code, term, kind="disorder")
        data.add_synonym("snomed", code, term, "preferred")
    data.add_synonym("snomed", "1", "cp")
    data.add_synonym("snomed", "2", "cp")
    write_index(data, tmp_path / "ix", name="tiny")
    ix = ConceptIndex.load(tmp_path / "ix")
    examples = [("spastic diplegia", "snomed", "2")] * 3
    lk = Linker(ix, bi_encoder=None, examples=examples, top=2, prior_weight={"PROBLEM": 0.01})
    mentions = [Mention("cp", "PROBLEM"), Mention("chest pian", "PROBLEM"), Mention("zzqxw", "PROBLEM")]
    linked = lk.link(mentions)
    rows = lk.explain(mentions, k=MIN_POOL + 10)
    assert lk.top == 2  # restored
    for r, row in zip(linked, rows):
        assert (row["linked"] or {}).get("code") == (r.best.code if r.best else None)
        assert [c["code"] for c in row["candidates"][:2]] == [c.code for c in r.candidates]
        assert len(row["candidates"]) <= MIN_POOL and row["nil_threshold"] == 0.5
        for c in row["candidates"]:
            assert c["cosine"] is None and c["classifier"] is None and c["rerank"] is None
            assert c["score"] == pytest.approx(max(c["string"], c["example"]) + c["prior"], abs=2e-4)
    assert rows[0]["linked"]["code"] == "2" and rows[0]["candidates"][0]["prior"] == pytest.approx(0.01 * math.log(4), abs=1e-4)
    assert rows[2]["linked"] is None and "prior" in rows[0]["formula"]
    assert len(lk.explain(mentions[:1])[0]["candidates"]) == 2  # default: the linker's top

    res = CliRunner().invoke(app, ["link", "cp", "chest pian", "-l", "PROBLEM", "--index", str(tmp_path / "ix")])
    assert res.exit_code == 0, res.output
    assert "'cp' (PROBLEM) -> snomed:" in res.output and "NIL threshold 0.75" in res.output
    assert "'chest pian' (PROBLEM) -> snomed:1 Chest pain" in res.output
    res = CliRunner().invoke(app, ["link", "chest pian", "-l", "PROBLEM", "--index", str(tmp_path / "ix"), "--json"])
    row = json.loads(res.output.strip().splitlines()[-1])
    assert row["linked"]["code"] == "1" and row["candidates"][0]["string"] > 0.75
    res = CliRunner().invoke(app, ["link", "cp", "-l", "NOSUCH", "--index", str(tmp_path / "ix")])
    assert res.exit_code == 2 and "no route for label 'NOSUCH'" in res.output
    res = CliRunner().invoke(app, ["link", "cp", "-l", "PROBLEM", "--preset", "nosuch"])
    assert res.exit_code == 2 and "unknown preset" in res.output
