"""medtext_biluo_ner: BILUO constraints, decoding, training a tiny tagger, saving and loading."""

from __future__ import annotations

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example

from medtext.components.biluo_ner import _constraints, biluo_tags, decode, viterbi

TAGS = biluo_tags(["DRUG", "PROBLEM"])


def _t(tag):
    return TAGS.index(tag)


def _logp(rows):
    """rows: one {tag: prob} per token, the rest of the mass spread over the other tags."""
    out = numpy.full((len(rows), len(TAGS)), 1e-6)
    for i, row in enumerate(rows):
        for tag, p in row.items():
            out[i, _t(tag)] = p
    return numpy.log(out / out.sum(axis=1, keepdims=True))


def test_tags_and_constraints():
    assert TAGS[:5] == ["O", "B-DRUG", "I-DRUG", "L-DRUG", "U-DRUG"] and len(TAGS) == 9
    allowed, start, end = _constraints(TAGS)
    assert allowed[_t("B-DRUG"), _t("L-DRUG")] and allowed[_t("I-DRUG"), _t("I-DRUG")]
    assert not allowed[_t("B-DRUG"), _t("L-PROBLEM")] and not allowed[_t("B-DRUG"), _t("O")]
    assert not allowed[_t("O"), _t("I-DRUG")] and allowed[_t("L-DRUG"), _t("U-PROBLEM")]
    assert start[_t("B-DRUG")] and not start[_t("L-DRUG")] and end[_t("U-DRUG")] and not end[_t("B-DRUG")]


def test_viterbi_repairs_an_invalid_argmax():
    cons = _constraints(TAGS)
    # argmax: B-DRUG, O, L-DRUG (invalid); the best valid path keeps the entity whole
    logp = _logp([{"B-DRUG": 0.9}, {"O": 0.5, "I-DRUG": 0.45}, {"L-DRUG": 0.9}])
    assert [TAGS[i] for i in viterbi(logp, *cons)] == ["B-DRUG", "I-DRUG", "L-DRUG"]
    # a label switch inside an entity is not allowed either
    logp = _logp([{"B-DRUG": 0.9}, {"L-PROBLEM": 0.6, "L-DRUG": 0.3}])
    assert [TAGS[i] for i in viterbi(logp, *cons)] == ["B-DRUG", "L-DRUG"]
    # a run cannot end inside an entity
    logp = _logp([{"U-DRUG": 0.4, "B-DRUG": 0.6}])
    assert [TAGS[i] for i in viterbi(logp, *cons)] == ["U-DRUG"]


def test_decode_spans_whitespace_and_confident_outside():
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["Took", "aspirin", "\n", "for", "chest", "pain", "."],
              spaces=[True, False, False, True, True, False, False])
    scores = _logp([{"O": 0.99}, {"U-DRUG": 0.9}, {"I-DRUG": 0.9}, {"O": 0.99},
                    {"B-PROBLEM": 0.8}, {"L-PROBLEM": 0.8}, {"O": 0.97}])
    ents = decode(doc, scores, TAGS, _constraints(TAGS), 0.95)
    assert [(e.text, e.label_) for e in ents] == [("aspirin", "DRUG"), ("chest pain", "PROBLEM")]
    assert decode(doc[:0].as_doc(), numpy.zeros((0, len(TAGS))), TAGS, _constraints(TAGS), 0.95) == []


def _examples(nlp):
    data = [("Started aspirin for chest pain .", [(8, 15, "DRUG"), (20, 30, "PROBLEM")]),
            ("Chest pain improved on heparin .", [(0, 10, "PROBLEM"), (23, 30, "DRUG")]),
            ("No fever ; continue metformin .", [(3, 8, "PROBLEM"), (20, 29, "DRUG")]),
            ("Fever resolved after ibuprofen .", [(0, 5, "PROBLEM"), (21, 30, "DRUG")])]
    return [Example.from_dict(nlp.make_doc(t), {"entities": ents}) for t, ents in data]


@pytest.fixture(scope="module")
def trained():
    from thinc.api import fix_random_seed

    fix_random_seed(0)  # the same weights whichever tests ran before in this process
    nlp = spacy.blank("en")
    nlp.add_pipe("medtext_biluo_ner", name="ner", config={"model": {
        "@architectures": "spacy.Tagger.v2", "nO": None, "normalize": False,
        "tok2vec": {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 32,
                    "depth": 1, "embed_size": 500, "window_size": 1, "maxout_pieces": 2,
                    "subword_features": True}}})
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    losses = []
    for _ in range(60):
        losses.append(nlp.update(examples, sgd=optimizer, drop=0.0)["ner"])
    return nlp, examples, losses


def test_tiny_tagger_learns_and_scores(trained):
    nlp, examples, losses = trained
    ner = nlp.get_pipe("ner")
    assert ner.entity_labels == ("DRUG", "PROBLEM") and len(ner.labels) == 9
    assert losses[-1] < losses[0] / 10
    doc = nlp("Started aspirin for chest pain .")
    assert [(e.text, e.label_) for e in doc.ents] == [("aspirin", "DRUG"), ("chest pain", "PROBLEM")]
    scores = nlp.evaluate(examples)
    assert scores["ents_f"] == pytest.approx(1.0) and set(scores["ents_per_type"]) == {"DRUG", "PROBLEM"}
    # empty and whitespace-only documents never have entities; punctuation-only ones run (what a
    # four-sentence model makes of "..." is not defined)
    assert [d.ents for d in nlp.pipe(["", "  \n "])] == [(), ()]
    assert len(nlp("...")) == 1


def test_tagger_saves_and_loads(trained, tmp_path):
    nlp, _examples_, _losses = trained
    nlp.to_disk(tmp_path / "m")
    again = spacy.load(tmp_path / "m")
    text = "Fever resolved after heparin ."
    assert [(e.text, e.label_) for e in again(text).ents] == [(e.text, e.label_) for e in nlp(text).ents]
    assert again.get_pipe("ner").confident_o == 0.95
    stricter = spacy.load(tmp_path / "m", config={"components": {"ner": {"confident_o": 0.5}}})
    assert stricter.get_pipe("ner").confident_o == 0.5


def test_missing_annotation_adds_no_loss(trained):
    nlp, _examples_, _losses = trained
    ner = nlp.get_pipe("ner")
    doc = nlp.make_doc("Started aspirin for chest pain .")
    partial = Example.from_dict(doc, {"entities": ["-"] * len(doc)})  # nothing annotated
    scores, _backprop = ner.model.begin_update([partial.predicted])
    loss, grads = ner.get_loss([partial], scores)
    assert loss == 0.0 and not numpy.any(grads[0])


def _listener_pipeline(seed: int, labels_from=None):
    """tok2vec + medtext_biluo_ner through a listener, as the default preset's CNN."""
    from thinc.api import fix_random_seed

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {
        "@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 32, "depth": 1,
        "embed_size": 500, "window_size": 1, "maxout_pieces": 2, "subword_features": True}})
    nlp.add_pipe("medtext_biluo_ner", name="ner", config={"model": {
        "@architectures": "spacy.Tagger.v2", "nO": None, "normalize": False,
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"}}})
    examples = labels_from or _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    return nlp


@pytest.fixture(scope="module")
def pair():
    return _listener_pipeline(0), _listener_pipeline(1)


def _scores(nlp, text):
    doc = nlp.make_doc(text)
    nlp.get_pipe("tok2vec")(doc)
    return nlp.get_pipe("ner").predict([doc])[0], doc


def test_ensemble_averages_members_and_keeps_own_tensor(pair):
    from medtext.components.biluo_ner import P_OUTSIDE, BiluoNER

    a, b = pair
    text = "Fever resolved after heparin and aspirin ."
    own, doc_a = _scores(a, text)
    other, _doc = _scores(b, text)
    assert not numpy.allclose(own, other)  # two seeds, two taggers
    ensemble = _listener_pipeline(0)
    ensemble.get_pipe("ner").add_member(b)
    got, doc = _scores(ensemble, text)
    lsm = [x - numpy.logaddexp.reduce(x, axis=1, keepdims=True) for x in (numpy.asarray(own, "float64"),
                                                                              numpy.asarray(other, "float64"))]
    assert numpy.allclose(got, (lsm[0] + lsm[1]) / 2, atol=1e-5)
    assert numpy.allclose(doc.tensor, doc_a.tensor)  # the member's tok2vec output does not stay on the doc
    full = ensemble(text)
    assert P_OUTSIDE in full.user_data and len(full.user_data[P_OUTSIDE]) == len(full)
    assert [d.ents for d in ensemble.pipe(["", " \n"])] == [(), ()]
    assert isinstance(ensemble.get_pipe("ner"), BiluoNER)


def test_ensemble_saves_and_loads_with_its_members(pair, tmp_path):
    a, b = pair
    ensemble = _listener_pipeline(0)
    ensemble.get_pipe("ner").add_member(b)
    text = "Chest pain improved on metformin ."
    want, _doc = _scores(ensemble, text)
    ensemble.to_disk(tmp_path / "m")
    assert (tmp_path / "m" / "ner" / "members" / "1" / "config.cfg").is_file()
    again = spacy.load(tmp_path / "m")
    assert len(again.get_pipe("ner").members) == 1
    assert numpy.allclose(_scores(again, text)[0], want, atol=1e-6)
    fresh = spacy.util.load_model_from_config(ensemble.config, auto_fill=False)
    fresh.from_bytes(ensemble.to_bytes())
    assert len(fresh.get_pipe("ner").members) == 1
    assert numpy.allclose(_scores(fresh, text)[0], want, atol=1e-6)
    # a weighted member: (own + 3 x member) / 4, kept by to_bytes / from_bytes
    weighted = _listener_pipeline(0)
    weighted.get_pipe("ner").add_member(b, 3.0)
    own, _doc = _scores(a, text)
    other, _doc = _scores(b, text)
    lsm = [x - numpy.logaddexp.reduce(x, axis=1, keepdims=True) for x in (numpy.asarray(own, "float64"),
                                                                              numpy.asarray(other, "float64"))]
    got, _doc = _scores(weighted, text)
    assert numpy.allclose(got, (lsm[0] + 3 * lsm[1]) / 4, atol=1e-5)
    fresh = spacy.util.load_model_from_config(weighted.config, auto_fill=False)
    fresh.from_bytes(weighted.to_bytes())
    assert fresh.get_pipe("ner").member_weights == [3.0]
    assert numpy.allclose(_scores(fresh, text)[0], got, atol=1e-6)
    with pytest.raises(ValueError, match="weight must be above 0"):
        weighted.get_pipe("ner").add_member(b, 0.0)
    # a tagger without members writes no members folder and loads none
    a.to_disk(tmp_path / "single")
    assert not (tmp_path / "single" / "ner" / "members").exists()
    assert spacy.load(tmp_path / "single").get_pipe("ner").members == []


def test_ensemble_member_must_share_the_tags(pair):
    a, _b = pair
    other = spacy.blank("en")
    other.add_pipe("medtext_biluo_ner", name="ner")
    other.get_pipe("ner").add_label("O")
    other.get_pipe("ner").add_label("U-DRUG")
    with pytest.raises(ValueError, match="tags differ"):
        _listener_pipeline(0).get_pipe("ner").add_member(other)
    with pytest.raises(ValueError, match="needs a medtext_biluo_ner"):
        a.get_pipe("ner").add_member(spacy.blank("en"))


def _preset_with_members(tmp_path, members: str):
    from importlib import resources

    text = (resources.files("medtext.configs") / "default.cfg").read_text()
    text = text.replace('ner = "ner_cnn"\n', f'ner = "ner_cnn"\n\n[medtext.members]\nner = {members}\n', 1)
    path = tmp_path / "members.cfg"
    path.write_text(text)
    return path


def test_preset_members_join_the_sourced_tagger(tmp_path):
    """[medtext.members] adds a model's tagger to a sourced medtext_biluo_ner at load (how the trf
    preset adds its transformer tagger to default's CNN taggers)."""
    import json
    import shutil

    import medtext
    from medtext.pipeline import PACKAGED_MODELS

    shipped = PACKAGED_MODELS / "ner_cnn" / "ner" / "members" / "1"
    if not (shipped / "config.cfg").is_file():
        pytest.skip("the packaged CNN has no ensemble member to reuse")
    member = tmp_path / "member"
    shutil.copytree(shipped, member)  # same tags, no members of its own
    base = medtext.load("default")
    nlp = medtext.load(_preset_with_members(tmp_path, json.dumps({str(member): 2.0})))
    ner, ner0 = nlp.get_pipe("ner"), base.get_pipe("ner")
    assert len(ner.members) == len(ner0.members) + 1
    text = "Cisplatin-induced nephrotoxicity resolved after hydration ."

    def scores(pipeline):
        doc = pipeline.make_doc(text)
        pipeline.get_pipe("tok2vec")(doc)
        return numpy.asarray(pipeline.get_pipe("ner").predict([doc])[0], "float64"), doc

    got, _doc = scores(nlp)
    two, _doc = scores(base)  # the shipped pair, averaged
    doc = nlp.make_doc(text)
    from medtext.components.biluo_ner import _log_softmax, _member_predict

    third = _log_softmax(_member_predict(ner.members[-1], [doc])[0])
    n = 1 + len(ner0.members)  # weight 1 each
    assert ner.member_weights == [1.0] * len(ner0.members) + [2.0]
    assert numpy.allclose(got, (two * n + 2 * third) / (n + 2), atol=1e-4)
    ner.to_disk(tmp_path / "saved")  # the weights are saved with the members
    again = nlp.get_pipe("ner").from_disk(tmp_path / "saved")
    assert again.member_weights == [1.0] * len(ner0.members) + [2.0]
    assert numpy.allclose(scores(nlp)[0], got, atol=1e-5)
    assert " + " in nlp.meta["medtext_models"]["ner"] and str(member) in nlp.meta["medtext_models"]["ner"]
    assert [e.text for e in nlp(text).ents]  # it runs end to end


def test_preset_members_errors_say_what_is_wrong(tmp_path):
    import json

    import medtext
    from medtext.errors import ConfigError

    with pytest.raises(ConfigError, match=r"needs the trained model .*nowhere.*medtext train ner"):
        medtext.load(_preset_with_members(tmp_path, json.dumps([str(tmp_path / "nowhere")])))
    other = spacy.blank("en")
    other.add_pipe("medtext_biluo_ner", name="ner")
    other.get_pipe("ner").add_label("O")
    other.get_pipe("ner").add_label("U-DRUG")
    other.initialize()
    other.to_disk(tmp_path / "other")
    with pytest.raises(ConfigError, match="cannot join 'ner'.*tags differ"):
        medtext.load(_preset_with_members(tmp_path, json.dumps([str(tmp_path / "other")])))
    bad = _preset_with_members(tmp_path, json.dumps([str(tmp_path / "other")]))
    bad.write_text(bad.read_text().replace("[medtext.members]\nner =", "[medtext.members]\nmedtext_ner ="))
    with pytest.raises(ConfigError, match="'medtext_ner', which is not a medtext_biluo_ner"):
        medtext.load(bad)
    with pytest.raises(ConfigError, match="weight of .*other.* must be a number above 0"):
        medtext.load(_preset_with_members(tmp_path, json.dumps({str(tmp_path / "other"): 0})))


def _tagger(head: dict, seed: int = 0):
    from thinc.api import fix_random_seed

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("medtext_biluo_ner", name="ner", config={"model": {**head, "nO": None, "tok2vec": {
        "@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 32, "depth": 1,
        "embed_size": 500, "window_size": 1, "maxout_pieces": 2, "subword_features": True}}})
    return nlp


def _train(nlp, steps: int, learn_rate: float):
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = learn_rate
    losses = {}
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer, drop=0.0)
    return losses["ner"]


def test_scaled_softmax_is_thincs_softmax_times_its_scale():
    from thinc.api import Softmax_v2

    from medtext.components.biluo_ner import build_biluo_tagger
    from spacy.ml.models import build_hash_embed_cnn_tok2vec

    rng = numpy.random.default_rng(0)
    X = rng.normal(size=(6, 8)).astype("f")
    W, b = rng.normal(size=(5, 8)).astype("f"), rng.normal(size=5).astype("f")
    dY = rng.normal(size=(6, 5)).astype("f")
    for scale in (1.0, 10.0):
        ref = Softmax_v2(5, 8, normalize_outputs=False)
        ref.initialize()
        ref.set_param("W", W)
        ref.set_param("b", b)
        tok2vec = build_hash_embed_cnn_tok2vec(width=8, depth=1, embed_size=50, window_size=1, maxout_pieces=2,
                                                subword_features=True, pretrained_vectors=None)
        layer = build_biluo_tagger(tok2vec, nO=5, logit_scale=scale).get_ref("softmax")
        layer.set_dim("nI", 8)
        layer.initialize()
        assert not numpy.any(layer.get_param("W"))  # zero-initialised, like spaCy's tagger
        layer.set_param("W", W)
        layer.set_param("b", b)
        logits = ref.predict(X)
        assert numpy.allclose(layer.predict(X), logits * scale, atol=1e-5)  # prediction: the logits
        probs, back = layer(X, is_train=True)
        z = logits * scale
        assert numpy.allclose(probs, numpy.exp(z) / numpy.exp(z).sum(axis=1, keepdims=True), atol=1e-5)
        _p, ref_back = ref(X, is_train=True)
        assert numpy.allclose(back(dY), ref_back(dY) * scale, atol=1e-4)
        assert numpy.allclose(layer.get_grad("W"), ref.get_grad("W") * scale, atol=1e-4)
        assert numpy.allclose(layer.get_grad("b"), ref.get_grad("b") * scale, atol=1e-4)
        with pytest.raises(ValueError, match="no backprop"):
            layer(X, is_train=False)[1](dY)


def test_scaled_tagger_learns_at_a_transformers_learning_rate():
    """At 1e-4 a zero-initialised softmax barely moves; scaled by 10, it learns the examples."""
    slow = _train(_tagger({"@architectures": "spacy.Tagger.v2", "normalize": False}), 40, 1e-4)
    fast = _tagger({"@architectures": "medtext.BiluoTagger.v1", "logit_scale": 10.0})
    assert _train(fast, 40, 1e-4) < slow / 2
    ents = [(e.text, e.label_) for e in fast("Chest pain improved on heparin .").ents]
    assert ("heparin", "DRUG") in ents
