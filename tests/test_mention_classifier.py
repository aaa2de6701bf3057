"""The linker's mention classifier: training, files, bad input, how it re-ranks linker
candidates, the component's config, `medtext train linker-clf`, and the packaged model."""

from __future__ import annotations

import importlib.util
import json

import numpy
import pytest

from medtext.terminologies.default import default_index_dir
from medtext.terminologies.index import ConceptIndex, TerminologyError
from medtext.terminologies.linking import Linker, Mention
from medtext.terminologies.mention_classifier import MentionClassifier, classifier_path, load_classifier

# three ICF categories written the way therapists chart them; the test phrases below share
# fragments with their own category's examples, never a whole example
TRAIN = [
    ("amb 40 ft FWW CGA", "icf", "d4500"), ("ambulated 100 ft w/ RW, SBA", "icf", "d4500"),
    ("gait 150 ft with SPC mod I", "icf", "d4500"), ("amb 25 ft in hallway min A", "icf", "d4500"),
    ("walked 60 ft with rollator", "icf", "d4500"), ("amb x2 laps on unit w/ FWW", "icf", "d4500"),
    ("LB dressing min A for socks", "icf", "d5402"), ("donned pants w/ reacher, SBA", "icf", "d5402"),
    ("dressing LE with sock aid mod A", "icf", "d5402"), ("doffs shoes w/ long handled shoehorn", "icf", "d5402"),
    ("pt needs help putting on socks", "icf", "d5402"), ("LB dressing seated EOB, CGA", "icf", "d5402"),
    ("sit<>stand from bed w/ FWW min A", "icf", "d4104"), ("sit to stand x5 from chair, SBA", "icf", "d4104"),
    ("sit>stand with VC for hand placement", "icf", "d4104"), ("stand from low toilet mod A", "icf", "d4104"),
    ("sit<>stand from recliner CGA", "icf", "d4104"), ("STS from w/c, min A x1", "icf", "d4104"),
]


@pytest.fixture(scope="module")
def clf():
    return MentionClassifier.train(TRAIN, min_df=1, steps=200, seed=0)


def test_learns_categories_from_fragments(clf):
    p = clf.predict_proba(["amb 80 ft FWW, SBA", "LB dressing w/ sock aid", "sit<>stand from w/c, CGA"])
    assert p.shape == (3, 3) and p.dtype == numpy.float32
    assert numpy.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert [clf.classes[i] for i in p.argmax(axis=1)] == [("icf", "d4500"), ("icf", "d5402"), ("icf", "d4104")]
    assert clf.meta["train_accuracy"] == 1.0 and clf.meta["examples"] == len(TRAIN)
    # text with no known feature: the class priors (bias), still a distribution
    q = clf.predict_proba(["", "zzqx"])
    assert numpy.allclose(q.sum(axis=1), 1.0, atol=1e-5) and numpy.allclose(q[0], q[1])
    assert clf.predict_proba(["amb " * 5000]).shape == (1, 3)  # long text is cut, not a crash


def test_training_is_deterministic_and_checks_its_input():
    a = MentionClassifier.train(TRAIN, min_df=1, steps=20, seed=3)
    b = MentionClassifier.train(TRAIN, min_df=1, steps=20, seed=3)
    assert numpy.array_equal(a.weights, b.weights)
    with pytest.raises(ValueError, match="at least 2 codes"):
        MentionClassifier.train([("amb 40 ft", "icf", "d450"), ("  ", "icf", "d5402")])
    # min_df drops features seen once: fewer features
    assert MentionClassifier.train(TRAIN, min_df=2, steps=5).meta["features"] < a.meta["features"]


def test_save_load_round_trip_and_bad_folders(clf, tmp_path):
    path = clf.save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "weights.npz"]
    back = MentionClassifier.load(path)
    texts = ["amb 80 ft FWW, SBA", "LB dressing w/ sock aid"]
    assert back.classes == clf.classes and back.meta["class_counts"] == clf.meta["class_counts"] == [6, 6, 6]
    # weights are stored as float16: probabilities agree closely, not bit for bit
    assert numpy.abs(back.predict_proba(texts) - clf.predict_proba(texts)).max() < 1e-3
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps(dict(meta, format="something-else/9")))
    with pytest.raises(TerminologyError, match="not a medtext mention classifier"):
        MentionClassifier.load(path)
    (path / "meta.json").write_text(json.dumps(dict(meta, char_vocab=meta["char_vocab"][:-1])))
    with pytest.raises(TerminologyError, match="do not fit"):
        MentionClassifier.load(path)
    (path / "meta.json").write_text(json.dumps(meta))
    (path / "weights.npz").write_bytes(b"not a zip file")
    with pytest.raises(TerminologyError, match="not a medtext mention classifier"):
        MentionClassifier.load(path)
    with pytest.raises(TerminologyError, match="medtext train linker-clf"):
        load_classifier(str(tmp_path / "nowhere"))


def test_linker_mixes_probabilities_and_keeps_routes(clf, medtext_home, caplog):
    ix = ConceptIndex.load(default_index_dir())
    plain = Linker(ix, bi_encoder=None, top=5)
    m = Mention("amb 80 ft FWW, SBA", "FUNCTION")
    before = plain.link([m])[0]
    assert before.best is None or before.best.code != "d4500"  # no synonym says walking here
    mixed = Linker(ix, bi_encoder=None, top=5, classifier=clf, classifier_weight=0.5)
    r, prob, other = mixed.link([m, Mention("chest pain", "PROBLEM"), Mention("zzqx", "FUNCTION")])
    assert (r.best.system, r.best.code) == ("icf", "d4500")
    p = dict(zip([c for _, c in clf.classes], clf.predict_proba([m.text])[0]))
    top = r.candidates[0]
    assert top.classifier == pytest.approx(p["d4500"], abs=1e-5)
    # score = w * probability + (1 - w) * the fused (here: lexical) score
    assert top.score == pytest.approx(0.5 * top.classifier + 0.5 * top.lexical, abs=1e-5)
    assert all(c.classifier is not None for c in r.candidates)
    # a PROBLEM mention is routed to SNOMED CT, where the classifier has no class: untouched
    assert prob.best.code == "29857009" and all(c.classifier is None for c in prob.candidates)
    assert [(c.code, c.score) for c in prob.candidates] == \
        [(c.code, c.score) for c in plain.link([Mention("chest pain", "PROBLEM")])[0].candidates]
    # the classifier only re-ranks: a mention whose best score before the mix reached the NIL
    # threshold stays linked even when the mixed score is lower
    lk = Linker(ix, bi_encoder=None, classifier=clf, classifier_weight=1.0, nil_threshold=0.5)
    walk = lk.link([Mention("walking", "FUNCTION")])[0]
    assert not walk.nil and walk.best.code == "d4500"
    assert mixed.describe()["classifier_weight"] == 0.5
    # classes whose code the index lacks are never proposed
    odd = MentionClassifier.train(TRAIN + [("fly a kite", "icf", "d9999"), ("flies kites", "icf", "d9999")],
                                  min_df=1, steps=100)
    with caplog.at_level("WARNING"):
        lk = Linker(ix, bi_encoder=None, classifier=odd)
    assert "names 1 codes that are not in the index" in caplog.text
    assert all(c.code != "d9999" for c in lk.link([Mention("fly a kite", "FUNCTION")])[0].candidates)


def test_component_config_and_packaged_model(medtext_home, tmp_path, clf):
    import spacy

    from medtext.corpora.linking_data import load_examples
    from medtext.errors import ConfigError
    from medtext.pipeline import PACKAGED_MODELS

    # MEDTEXT_HOME has no trained copy: the packaged one, trained on the ICF train + dev notes
    assert classifier_path("medtext:linker_clf") == PACKAGED_MODELS / "linker_clf"
    packaged = load_classifier("medtext:linker_clf")
    assert packaged.meta["examples_source"] == "medtext:icf"
    assert packaged.meta["examples"] == len(load_examples("medtext:icf")) == sum(packaged.meta["class_counts"])
    assert {s for s, _ in packaged.classes} == {"icf"} and len(packaged.classes) > 150
    nlp = spacy.blank("en")
    comp = nlp.add_pipe("medtext_linker", config={"classifier": "medtext:linker_clf"})
    assert comp.linker.describe()["classifier"] == "medtext:linker_clf"
    assert "+classifier=medtext:linker_clf" in comp.model_id
    with pytest.raises(ConfigError, match="classifier.*medtext train linker-clf"):
        nlp.add_pipe("medtext_linker", name="l2", config={"classifier": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match="classifier_prior must be within 0..4"):
        nlp.add_pipe("medtext_linker", name="l5", config={"classifier": "medtext:linker_clf",
                                                          "classifier_prior": -1.0})
    with pytest.raises(ConfigError, match="classifier_weight must be within 0..1"):
        nlp.add_pipe("medtext_linker", name="l3", config={"classifier": "medtext:linker_clf",
                                                          "classifier_weight": 1.5})
    # a folder of one's own
    own = clf.save(tmp_path / "own")
    comp = nlp.add_pipe("medtext_linker", name="l4", config={"classifier": str(own)})
    assert comp.linker.classifier.classes == clf.classes


def test_presets_link_shorthand_with_the_packaged_classifier(nlp):
    """The default preset reads the packaged classifier; an ICF mention in therapists'
    shorthand gets its category."""
    linker = nlp.get_pipe("medtext_linker").linker
    assert linker.classifier is not None and linker.classifier_weight == 0.5
    # the n-gram classifier alone keeps its probabilities; the trf preset's ensemble divides by the
    # classes' training frequencies
    assert linker.describe()["classifier_prior"] is None and linker.clf_adjust is None
    from importlib import resources

    from spacy.util import load_config

    with resources.as_file(resources.files("medtext.configs") / "trf.cfg") as trf:
        assert load_config(trf)["components"]["medtext_linker"]["classifier_prior"] == 1.0
    r = linker.link([Mention("sit<>stand from elevated bed w/ FWW, min A x1", "FUNCTION")])[0]
    assert r.best.code == "d4104" and r.best.classifier > 0.3


def test_train_linker_clf_command(tmp_path):
    from typer.testing import CliRunner

    from medtext.cli import app

    f = tmp_path / "ex.jsonl"
    f.write_text("".join(json.dumps({"text": t, "system": s, "code": c}) + "\n" for t, s, c in TRAIN))
    out = tmp_path / "clf"
    res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(f), "--out", str(out),
                                   "--min-df", "1", "--steps", "50"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["examples"] == len(TRAIN) and report["classes"] == 3 and report["path"] == str(out)
    assert load_classifier(str(out)).meta["examples_source"] == str(f) and report["encoder"] is None
    if importlib.util.find_spec("sentence_transformers") is not None:
        res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(f), "--out", str(tmp_path / "enc"),
                                       "--min-df", "1", "--steps", "20", "--encoder", "all-MiniLM-L6-v2"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output[res.output.index("{"):])["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert MentionClassifier.load(tmp_path / "enc").meta["encoder_dim"] == 384
        res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(f), "--out", str(tmp_path / "x"),
                                       "--encoder", "medtext:no_such_model"])
        assert res.exit_code == 2 and "is not built" in res.output
    res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "not found" in res.output
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"text": "amb 40 ft", "system": "icf", "code": "d450"}) + "\n")
    res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(one), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "at least 2 codes" in res.output


def test_names_make_categories_without_examples_classes(medtext_home, tmp_path, monkeypatch):
    """--names: the index's names of every concept of the examples' systems join the examples,
    so a category no example has ("Climbing", d4551) becomes a class and its synonyms find it;
    blocks and chapters stay out; a large system is a clear error."""
    from typer.testing import CliRunner

    from medtext.cli import app
    from medtext.corpora import linking_data
    from medtext.corpora.linking_data import index_name_examples

    index = ConceptIndex.load(default_index_dir())
    rows = index_name_examples(index, {"icf"})
    codes = {c for _, s, c in rows}
    assert {s for _, s, _ in rows} == {"icf"} and {"d4551", "d4500", "b28016"} <= codes
    assert "d4" not in codes and not any("-" in c for c in codes)  # chapters and blocks
    assert ("Climbing", "icf", "d4551") in rows and len(rows) > 2 * len(codes)
    with pytest.raises(ValueError, match="small systems such as ICF"):
        index_name_examples(index, {"snomed"})
    f = tmp_path / "ex.jsonl"
    f.write_text("".join(json.dumps({"text": t, "system": s, "code": c}) + "\n" for t, s, c in TRAIN))
    out = tmp_path / "clf"
    res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(f), "--out", str(out), "--names",
                                   "--min-df", "1", "--steps", "150"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["index_names"] == len(rows) and report["examples"] == len(TRAIN) + len(rows)
    assert report["classes"] == len(codes | {c for _, _, c in TRAIN})
    trained = load_classifier(str(out))
    p = trained.predict_proba(["climbing stairs"])[0]
    assert trained.classes[int(p.argmax())] == ("icf", "d4551")
    monkeypatch.setattr(linking_data, "MAX_NAME_CLASSES", 10)
    res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(f), "--out", str(tmp_path / "x"),
                                   "--names"])
    assert res.exit_code == 2 and "small systems such as ICF" in res.output


def test_encoder_features_carry_meaning(tmp_path):
    """With sentence embeddings as features, a paraphrase that shares no word with a category's
    examples still reaches it; the encoder is recorded and checked."""
    pytest.importorskip("sentence_transformers")
    plain = MentionClassifier.train(TRAIN, min_df=1, steps=200, seed=0)
    enc = MentionClassifier.train(TRAIN, min_df=1, steps=200, seed=0, encoder="all-MiniLM-L6-v2")
    assert plain.encoder is None
    assert enc.encoder == "sentence-transformers/all-MiniLM-L6-v2" and enc.meta["encoder_dim"] == 384
    assert enc.meta["features"] == plain.meta["features"] + 384
    texts = ["strolled down the corridor to the nursing station", "pulled her trousers on by herself",
             "got up out of the armchair"]
    want = [enc.class_index[("icf", c)] for c in ("d4500", "d5402", "d4104")]
    p, q = enc.predict_proba(texts), plain.predict_proba(texts)
    assert list(p.argmax(axis=1)) == want
    assert all(p[i, k] > q[i, k] + 0.2 for i, k in enumerate(want))
    # the caller's own vectors give the same result; vectors of another size are refused
    assert numpy.allclose(enc.predict_proba(texts, enc.embed(texts)), p, atol=1e-5)
    with pytest.raises(TerminologyError, match="384-d embeddings"):
        enc.predict_proba(texts, numpy.zeros((3, 32), dtype=numpy.float32))
    back = MentionClassifier.load(enc.save(tmp_path / "enc"))
    assert back.encoder == enc.encoder and numpy.abs(back.predict_proba(texts) - p).max() < 1e-3
    # the linker (lexical here) has the classifier embed the mentions itself
    lk = Linker(ConceptIndex.load(default_index_dir()), bi_encoder=None, classifier=back)
    assert lk.link([Mention(texts[0], "FUNCTION")])[0].candidates[0].code == "d4500"


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    from medtext.terminologies.finetuned_classifier import FinetunedClassifier

    clf = FinetunedClassifier.train(TRAIN, epochs=6, batch_size=4, learn_rate=1e-4, seed=0)
    return clf, clf.save(tmp_path_factory.mktemp("ft") / "clf_ft")


def test_finetuned_classifier_learns_files_and_links(finetuned, medtext_home):
    """A fine-tuned all-MiniLM-L6-v2 classifier: learns the categories (paraphrases included),
    saves as safetensors and loads to the same probabilities, and the linker mixes it like the
    n-gram one."""
    from medtext.terminologies.finetuned_classifier import FinetunedClassifier

    clf, path = finetuned
    assert clf.meta["train_accuracy"] == 1.0 and clf.meta["base"] == "sentence-transformers/all-MiniLM-L6-v2"
    texts = ["amb 80 ft FWW, SBA", "LB dressing w/ sock aid", "sit<>stand from w/c, CGA",
             "pulled her trousers on by herself"]
    p = clf.predict_proba(texts)
    assert p.shape == (4, 3) and p.dtype == numpy.float32 and numpy.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert [clf.classes[i][1] for i in p.argmax(axis=1)] == ["d4500", "d5402", "d4104", "d5402"]
    assert clf.predict_proba([]).shape == (0, 3) and clf.predict_proba(["amb " * 5000]).shape == (1, 3)
    assert sorted(f.name for f in path.iterdir()) == ["encoder", "head.safetensors", "meta.json"]
    assert not list(path.rglob("*.bin")) and not list(path.rglob("*.pkl"))  # safetensors only
    back = load_classifier(str(path))
    assert isinstance(back, FinetunedClassifier) and back.classes == clf.classes and back.encoder is None
    assert back.meta["class_counts"] == clf.meta["class_counts"] == [6, 6, 6]
    assert numpy.abs(back.predict_proba(texts) - p).max() < 1e-4
    lk = Linker(ConceptIndex.load(default_index_dir()), bi_encoder=None, classifier=back, nil_threshold=0.0)
    r = lk.link([Mention("got up out of the armchair", "FUNCTION"), Mention("chest pain", "PROBLEM")])
    assert r[0].best.code == "d4104" and r[0].best.classifier > 0.3
    assert r[1].best.code == "29857009" and r[1].best.classifier is None  # no class on the route: untouched


def test_finetuned_classifier_bad_input_and_folders(finetuned, tmp_path):
    import shutil

    from medtext.terminologies.finetuned_classifier import FinetunedClassifier

    with pytest.raises(ValueError, match="at least 2 codes"):
        FinetunedClassifier.train([("amb 40 ft", "icf", "d450"), ("", "icf", "d5402")])
    with pytest.raises(ValueError, match="epochs"):
        FinetunedClassifier.train(TRAIN, epochs=0)
    _, path = finetuned
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["classes_list"] = meta["classes_list"][:2]  # the head has 3 rows
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TerminologyError, match="does not fit 2 classes"):
        FinetunedClassifier.load(bad)
    (bad / "head.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TerminologyError, match="not a fine-tuned medtext mention classifier"):
        FinetunedClassifier.load(bad)


def test_finetuned_seeds_are_members_averaged(finetuned, tmp_path):
    """seeds=2: the first member is the seeds=1 classifier (same seed, deterministic), the second
    another fine-tuning; the probabilities are the normalised geometric mean of the members'; the
    folder keeps the first member where a one-member folder has it and loads back the same."""
    from medtext.terminologies.finetuned_classifier import FinetunedClassifier

    one, _ = finetuned
    two = FinetunedClassifier.train(TRAIN, epochs=6, batch_size=4, learn_rate=1e-4, seed=0, seeds=2)
    assert len(two.members) == 2 and two.meta["seeds"] == 2 and two.classes == one.classes
    assert numpy.abs(two.weight - one.weight).max() < 1e-5  # member 0 = the seed-0 classifier
    assert numpy.abs(two.members[1][1] - one.weight).max() > 1e-3  # member 1 = another seed
    texts = ["amb 80 ft FWW, SBA", "LB dressing w/ sock aid", "got up out of the armchair"]
    second = FinetunedClassifier(two.classes, *two.members[1], dict(two.meta))
    geo = numpy.sqrt(one.predict_proba(texts) * second.predict_proba(texts))
    p = two.predict_proba(texts)
    assert numpy.abs(p - geo / geo.sum(axis=1, keepdims=True)).max() < 1e-4
    assert [two.classes[i][1] for i in p.argmax(axis=1)] == ["d4500", "d5402", "d4104"]
    path = two.save(tmp_path / "ft2")
    assert sorted(f.name for f in path.iterdir()) == ["encoder", "head.safetensors", "member1", "meta.json"]
    assert sorted(f.name for f in (path / "member1").iterdir()) == ["encoder", "head.safetensors"]
    back = load_classifier(str(path))
    assert len(back.members) == 2 and numpy.abs(back.predict_proba(texts) - p).max() < 1e-4
    with pytest.raises(ValueError, match="seeds"):
        FinetunedClassifier.train(TRAIN, seeds=0)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps(dict(meta, seeds=3)))  # member2 is not there
    with pytest.raises(TerminologyError, match="not a fine-tuned medtext mention classifier"):
        FinetunedClassifier.load(path)


def test_augment_mention_keeps_the_category_words(finetuned):
    """augment_mention changes digits (same length, no new leading zero), side, level of
    assistance and pronouns only; augment=1 trains on rewritten mentions (other weights than
    augment=0, same steps) and still learns; a probability outside [0, 1] is refused."""
    import random
    import re

    from medtext.terminologies.finetuned_classifier import ASSIST_LEVELS, FinetunedClassifier, augment_mention

    rng = random.Random(3)
    text = "amb 40 ft FWW CGA, L knee buckled; his wife helps"
    outs = {augment_mention(text, rng) for _ in range(40)}
    assert len(outs) > 20 and text not in outs
    levels = "|".join(re.escape(w) for w in ASSIST_LEVELS)
    shape = re.compile(rf"amb [1-9]\d ft FWW (?:{levels}), R knee buckled; her husband helps")
    assert all(shape.fullmatch(o) for o in outs), outs
    assert augment_mention("Independent with I/O, B LE", rng) == "Independent with I/O, B LE"
    assert augment_mention("", rng) == ""
    one, _ = finetuned
    aug = FinetunedClassifier.train(TRAIN, epochs=6, batch_size=4, learn_rate=1e-4, seed=0, augment=1.0)
    assert aug.meta["augment"] == 1.0 and one.meta["augment"] == 0.0
    assert numpy.abs(aug.weight - one.weight).max() > 1e-3
    p = aug.predict_proba(["amb 80 ft FWW, SBA", "LB dressing w/ sock aid", "got up out of the armchair"])
    assert [aug.classes[i][1] for i in p.argmax(axis=1)] == ["d4500", "d5402", "d4104"]
    with pytest.raises(ValueError, match="augment is a probability"):
        FinetunedClassifier.train(TRAIN, augment=1.5)



def test_finetuned_head_from_the_names(finetuned, tmp_path, medtext_home, monkeypatch):
    """class_names: before any step each named class's head row is the normalised mean of the base
    encoder's embeddings of its names (bias 0), an unnamed class keeps PyTorch's draw for the seed;
    trained from there it learns the categories; the CLI reads the names from the default index."""
    from sentence_transformers import SentenceTransformer
    from typer.testing import CliRunner

    from medtext.cli import app
    from medtext.terminologies.embeddings import resolve_model
    from medtext.terminologies.finetuned_classifier import FinetunedClassifier, _fit_member

    one, _ = finetuned
    names = {("icf", "d4500"): ["Walking short distances", "walking"], ("icf", "d5402"): ["Putting on footwear"]}
    ci = {c: i for i, c in enumerate(one.classes)}
    rows = [(t, (s, c)) for t, s, c in TRAIN]
    path, _ = resolve_model("all-MiniLM-L6-v2")
    start = {}
    for key, head_names in (("names", [names.get(c) for c in one.classes]), ("random", None)):
        start[key] = _fit_member(rows, ci, path, epochs=0, steps=1, learn_rate=1e-4, batch_size=4, scale=20.0,
                                 max_length=48, seed=0, augment=0.0, device=None, progress=None,
                                 head_names=head_names)[1:3]
    base = SentenceTransformer(path, device="cpu")
    (w, b), (w0, _) = start["names"], start["random"]
    for c, ns in names.items():
        v = base.encode(ns, normalize_embeddings=True).mean(axis=0)
        assert numpy.abs(w[ci[c]] - v / numpy.linalg.norm(v)).max() < 1e-5
    assert not b.any() and numpy.array_equal(w[ci[("icf", "d4104")]], w0[ci[("icf", "d4104")]])
    clf = FinetunedClassifier.train(TRAIN, epochs=6, batch_size=4, learn_rate=1e-4, seed=0, class_names=names)
    assert (clf.meta["head_init"], clf.meta["named_classes"]) == ("names", 2) and one.meta["head_init"] == "random"
    assert numpy.abs(clf.weight - one.weight).max() > 1e-3
    p = clf.predict_proba(["amb 80 ft FWW, SBA", "LB dressing w/ sock aid", "got up out of the armchair"])
    assert [clf.classes[i][1] for i in p.argmax(axis=1)] == ["d4500", "d5402", "d4104"]
    f = tmp_path / "ex.jsonl"
    f.write_text("".join(json.dumps({"text": t, "system": s, "code": c}) + "\n" for t, s, c in TRAIN))
    res = CliRunner().invoke(app, ["train", "linker-clf", "--finetune", "--examples", str(f), "--out",
                                   str(tmp_path / "ft"), "--epochs", "1", "--head-init", "names"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert (report["head_init"], report["named_classes"]) == ("names", 3)  # the default index names all three
    for extra in (["--head-init", "names"], ["--finetune", "--head-init", "zeros"]):
        res = CliRunner().invoke(app, ["train", "linker-clf", "--examples", str(f), "--out", str(tmp_path / "x"), *extra])
        assert res.exit_code == 2 and "--head-init" in res.output, res.output
    monkeypatch.setenv("MEDTEXT_HOME", str(tmp_path / "empty_home"))  # no index: names is the default, so say so
    res = CliRunner().invoke(app, ["train", "linker-clf", "--finetune", "--examples", str(f), "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "no terminology index" in res.output and "--head-init random" in res.output

def test_train_linker_clf_finetune_command(tmp_path):
    pytest.importorskip("sentence_transformers")
    from typer.testing import CliRunner

    from medtext.cli import app

    f = tmp_path / "ex.jsonl"
    f.write_text("".join(json.dumps({"text": t, "system": s, "code": c}) + "\n" for t, s, c in TRAIN))
    out = tmp_path / "ft"
    res = CliRunner().invoke(app, ["train", "linker-clf", "--finetune", "--examples", str(f), "--out", str(out),
                                   "--epochs", "1", "--batch-size", "8", "--seeds", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["examples"] == len(TRAIN) and report["classes"] == 3 and report["epochs"] == 1
    assert report["seeds"] == 2 and (out / "member1" / "head.safetensors").is_file()
    back = load_classifier(str(out))
    assert back.meta["examples_source"] == str(f) and len(back.members) == 2
    res = CliRunner().invoke(app, ["train", "linker-clf", "--finetune", "--examples", str(f), "--out",
                                   str(tmp_path / "x"), "--encoder", "medtext:no_such_model"])
    assert res.exit_code == 2 and "is not built" in res.output


def test_classifier_ensemble_averages_over_the_union_of_classes(clf, medtext_home, tmp_path):
    """A list of classifiers is one ensemble: the normalised geometric mean of their
    probabilities over the union of their classes, in the linker and in the component's config."""
    import spacy

    from medtext.errors import ConfigError
    from medtext.terminologies.mention_classifier import ClassifierEnsemble

    # a second classifier without d4104 and with d4200 (transfers)
    other = MentionClassifier.train([r for r in TRAIN if r[2] != "d4104"] + [
        ("bed>w/c transfer SBA", "icf", "d4200"), ("stand pivot transfer to BSC min A", "icf", "d4200"),
        ("slide board transfer w/c<>mat", "icf", "d4200")], min_df=1, steps=200, seed=0)
    a, b = clf.save(tmp_path / "a"), other.save(tmp_path / "b")
    ens = load_classifier([str(a), str(b)])
    assert isinstance(ens, ClassifierEnsemble)
    assert [c for _, c in ens.classes] == ["d4104", "d4200", "d4500", "d5402"]
    texts = ["sit<>stand from w/c, CGA", "squat pivot transfer bed>w/c", "amb 80 ft FWW, SBA"]
    p = ens.predict_proba(texts)
    assert p.shape == (3, 4) and numpy.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    ma, mb = ens.members  # as loaded (float16 weights)
    pa, pb = ma.predict_proba(texts), mb.predict_proba(texts)
    # unnormalised geometric means; b lacks d4104 and stands in with its smallest probability
    want = numpy.zeros((3, 4))
    for k, (_, code) in enumerate(ens.classes):
        a_ = pa[:, ma.class_index[("icf", code)]] if ("icf", code) in ma.class_index else pa.min(axis=1)
        b_ = pb[:, mb.class_index[("icf", code)]] if ("icf", code) in mb.class_index else pb.min(axis=1)
        want[:, k] = numpy.sqrt(a_ * b_)
    assert numpy.allclose(p, want / want.sum(axis=1, keepdims=True), atol=1e-5)
    assert [ens.classes[i][1] for i in p.argmax(axis=1)] == ["d4104", "d4200", "d4500"]
    assert load_classifier([str(a)]) is load_classifier(str(a))  # a list of one is that classifier
    with pytest.raises(TerminologyError, match="at least 2 different"):
        load_classifier([str(a), str(a)])
    nlp = spacy.blank("en")
    comp = nlp.add_pipe("medtext_linker", config={"classifier": [str(a), str(b)]})
    assert comp.linker.describe()["classifier"] == f"{a} + {b}" and f"+classifier={a}&{b}" in comp.model_id
    r = comp.linker.link([Mention("squat pivot transfer bed>w/c", "FUNCTION")])[0]
    assert r.best.code == "d4200" and r.best.classifier > 0.2
    with pytest.raises(ConfigError, match="classifier.*medtext train linker-clf"):
        nlp.add_pipe("medtext_linker", name="l2", config={"classifier": [str(a), str(tmp_path / "none")]})


def test_ensemble_weights_weigh_the_members_log_probabilities(clf, medtext_home, tmp_path):
    """ensemble_weights: each member's log-probabilities times its weight (scaled to sum 1) before
    the geometric mean; [1, 0] is the first member alone; bad weights are clear errors."""
    import spacy

    from medtext.errors import ConfigError

    other = MentionClassifier.train([r for r in TRAIN if r[2] != "d4104"] + [
        ("bed>w/c transfer SBA", "icf", "d4200"), ("stand pivot transfer to BSC min A", "icf", "d4200")],
        min_df=1, steps=200, seed=0)
    a, b = clf.save(tmp_path / "a"), other.save(tmp_path / "b")
    texts = ["sit<>stand from w/c, CGA", "squat pivot transfer bed>w/c", "amb 80 ft FWW, SBA"]
    equal, weighed = load_classifier([str(a), str(b)]), load_classifier([str(a), str(b)], weights=[1.3, 0.7])
    assert equal.meta["weights"] == [0.5, 0.5] and weighed.meta["weights"] == [0.65, 0.35]
    ma, mb = weighed.members
    pa, pb = ma.predict_proba(texts), mb.predict_proba(texts)
    want = numpy.zeros((3, len(weighed.classes)))
    for k, (_, code) in enumerate(weighed.classes):
        a_ = pa[:, ma.class_index[("icf", code)]] if ("icf", code) in ma.class_index else pa.min(axis=1)
        b_ = pb[:, mb.class_index[("icf", code)]] if ("icf", code) in mb.class_index else pb.min(axis=1)
        want[:, k] = a_ ** 0.65 * b_ ** 0.35
    p = weighed.predict_proba(texts)
    assert numpy.allclose(p, want / want.sum(axis=1, keepdims=True), atol=1e-5)
    assert not numpy.allclose(p, equal.predict_proba(texts), atol=1e-3)  # the weights change the mean
    # the first member alone: its probabilities over its classes (0 for the class only b has, renormalised)
    alone = load_classifier([str(a), str(b)], weights=[1, 0]).predict_proba(texts)
    cols = [weighed.class_index[c] for c in ma.classes]
    assert numpy.allclose(alone[:, cols] / alone[:, cols].sum(axis=1, keepdims=True), pa, atol=1e-5)
    for bad, msg in (([1.0], "one per classifier"), ([0, 0], "not all 0"), ([1, -1], ">= 0"),
                     ([1, float("nan")], ">= 0"), ([True, 1], ">= 0")):
        with pytest.raises(TerminologyError, match=msg):
            load_classifier([str(a), str(b)], weights=bad)
    with pytest.raises(TerminologyError, match="2 or more classifiers"):
        load_classifier(str(a), weights=[1.0])
    # in the component's config; the linker's description and the record's model id name them
    nlp = spacy.blank("en")
    comp = nlp.add_pipe("medtext_linker", config={"classifier": [str(a), str(b)], "ensemble_weights": [0.65, 0.35]})
    assert comp.linker.describe()["ensemble_weights"] == [0.65, 0.35]
    assert comp.model_id.endswith("+ensemble_weights=0.65&0.35")
    with pytest.raises(ConfigError, match="ensemble_weights weighs the classifiers of a list"):
        nlp.add_pipe("medtext_linker", name="l2", config={"classifier": str(a), "ensemble_weights": [1.0]})
    with pytest.raises(ConfigError, match="l3.classifier: ensemble weights"):
        nlp.add_pipe("medtext_linker", name="l3", config={"classifier": [str(a), str(b)], "ensemble_weights": [1.0]})


def test_classifier_prior_divides_by_class_frequencies(medtext_home, tmp_path, caplog):
    """classifier_prior = tau: the classifier's probabilities over its route are divided by the
    classes' training frequencies to the power tau and renormalised (logit adjustment)."""
    from medtext.terminologies.mention_classifier import ClassifierEnsemble, class_counts

    # walking four times as often as the other two categories
    skew = TRAIN + [(f"{t} ({k})", s, c) for k in range(3) for t, s, c in TRAIN if c == "d4500"]
    clf = MentionClassifier.train(skew, min_df=1, steps=100, seed=0)
    assert dict(zip([c for _, c in clf.classes], clf.meta["class_counts"])) == {"d4104": 6, "d4500": 24, "d5402": 6}
    ix = ConceptIndex.load(default_index_dir())
    m = Mention("zzqx", "FUNCTION")  # no feature: the bias alone, which favours the frequent class
    p = dict(zip([c for _, c in clf.classes], clf.predict_proba([m.text])[0].astype(float)))
    counts = {"d4104": 6, "d4500": 24, "d5402": 6}
    z = sum(p[c] / counts[c] for c in p)
    plain = Linker(ix, bi_encoder=None, top=5, classifier=clf)
    adjusted = Linker(ix, bi_encoder=None, top=5, classifier=clf, classifier_prior=1.0)
    for linker, want in ((plain, p), (adjusted, {c: p[c] / counts[c] / z for c in p})):
        got = {c.code: c.classifier for c in linker.link([m])[0].candidates if c.code in p}
        assert got == pytest.approx(want, abs=1e-5)
    assert plain.describe()["classifier_prior"] is None and adjusted.describe()["classifier_prior"] == 1.0
    # half the power: the square root of the frequencies
    half = Linker(ix, bi_encoder=None, top=5, classifier=clf, classifier_prior=0.5)
    got = {c.code: c.classifier for c in half.link([m])[0].candidates if c.code in p}
    assert got["d4500"] / got["d4104"] == pytest.approx(p["d4500"] / p["d4104"] / 2, rel=1e-4)
    with pytest.raises(TerminologyError, match="classifier_prior must be within 0..4"):
        Linker(ix, bi_encoder=None, classifier=clf, classifier_prior=-0.5)
    # a folder trained before the counts were recorded: counted again from its examples' source
    f = tmp_path / "skew.jsonl"
    f.write_text("".join(json.dumps({"text": t, "system": s, "code": c}) + "\n" for t, s, c in skew))
    old = MentionClassifier.load(clf.save(tmp_path / "old"))
    old.meta.pop("class_counts")
    assert class_counts(old) is None
    old.meta["examples_source"] = str(f)
    assert class_counts(old).tolist() == [6, 24, 6]
    # corrupt recorded counts (not numbers, None, negative, too few) are counted again, never NaN
    for bad in (["x", 1, 2], [None, 1, 2], [-1, 24, 6], [6, 24]):
        old.meta["class_counts"] = bad
        assert class_counts(old).tolist() == [6, 24, 6]
    old.meta.pop("class_counts")
    # neither: a warning, and the probabilities stay as they are
    old.meta["examples_source"] = str(tmp_path / "gone.jsonl")
    with caplog.at_level("WARNING"):
        lk = Linker(ix, bi_encoder=None, classifier=old, classifier_prior=1.0)
    assert "classifier_prior 1.00 is not applied" in caplog.text and lk.clf_adjust is None
    # an ensemble: the mean count over the members that have the class
    even = MentionClassifier.train(TRAIN, min_df=1, steps=20, seed=0)
    assert class_counts(ClassifierEnsemble([clf, even])).tolist() == [6, 15, 6]
