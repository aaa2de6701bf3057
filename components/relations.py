"""``medtext_relations``: typed relations between the entities of a document (RadGraph style).

For every ordered pair of entities (head, tail) no more than ``max_distance`` tokens apart, the
model reads both spans' contextual token vectors (mean-pooled from its own tok2vec: spaCy's
HashEmbedCNN in ``default``; ``medtext train relations --arch trf`` puts a Hugging Face encoder
there through ``spacy-transformers.Tok2VecTransformer.v3`` + ``medtext.ProjectedTok2Vec.v1``),
their product, the two entity labels and the bucketed distance, and predicts one of ``none`` +
the relation labels (``modify``, ``located_at``, ``suggestive_of``).

Writes ``doc._.relations``: a list of ``(head_start, head_end, tail_start, tail_end, label,
score)`` (token offsets of the two entities; plain values, so Docs still serialise) for pairs
whose best label is not ``none`` and scores at least ``threshold``; :func:`relation_spans`
gives them as spans. Records export them as
``relations`` with entity ids. A ``TrainablePipe``: ``nlp.initialize`` / ``nlp.update`` train it
on reference docs whose ``_.relations`` hold the gold (``medtext train relations``); the
predicted docs must carry the entities (gold entities during training).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config, Maxout, Model, Softmax, chain
from thinc.types import Floats2d

from medtext.corpora.radgraph_data import ENTITY_LABELS, RELATION_TYPES

from .trainable import MedtextTrainablePipe

RELATION_LABELS = RELATION_TYPES
_BUCKETS = (-10, -4, 0, 4, 10)  # signed token distance tail - head, 6 buckets
N_EXTRA = 2 * (len(ENTITY_LABELS) + 1) + len(_BUCKETS) + 1
NONE_WEIGHT = 0.3


def register_relation_extensions() -> None:
    if not Doc.has_extension("relations"):
        Doc.set_extension("relations", default=None)


def relation_spans(doc: Doc) -> list[tuple[Any, Any, str, float]]:
    """``doc._.relations`` as ``(head span, tail span, label, score)``, head/tail from doc.ents."""
    ents = {(e.start, e.end): e for e in doc.ents}
    out = []
    for hs, he, ts, te, label, score in doc._.relations or []:
        h, t = ents.get((hs, he)), ents.get((ts, te))
        if h is not None and t is not None:
            out.append((h, t, label, score))
    return out


def candidate_pairs(doc: Doc, max_distance: int) -> list[tuple[int, int]]:
    """Ordered pairs of entity indices at most ``max_distance`` tokens apart."""
    ents = doc.ents
    out = []
    for i, h in enumerate(ents):
        for j, t in enumerate(ents):
            if i != j and abs(t.start - h.start) <= max_distance:
                out.append((i, j))
    return out


def _extra(doc: Doc, pairs: list[tuple[int, int]]) -> numpy.ndarray:
    ents = doc.ents
    x = numpy.zeros((len(pairs), N_EXTRA), dtype="float32")
    nl = len(ENTITY_LABELS) + 1
    for k, (i, j) in enumerate(pairs):
        for off, e in ((0, ents[i]), (nl, ents[j])):
            x[k, off + (ENTITY_LABELS.index(e.label_) if e.label_ in ENTITY_LABELS else nl - 1)] = 1
        d = ents[j].start - ents[i].start
        x[k, 2 * nl + int(numpy.searchsorted(_BUCKETS, d))] = 1
    return x


@registry.architectures("medtext.RelationClassifier.v1")
def build_relation_model(tok2vec: Model, width: int = 64, max_distance: int = 30,
                         dropout: float = 0.1) -> Model[list[Doc], list[Floats2d]]:
    t2v_width = tok2vec.get_dim("nO") if tok2vec.has_dim("nO") else None
    if not t2v_width:
        raise ValueError("the relation model's tok2vec needs a fixed output width (nO)")
    mlp = chain(Maxout(width, 3 * t2v_width + N_EXTRA, nP=2, normalize=True, dropout=dropout),
                Softmax(len(RELATION_LABELS) + 1, width))
    return Model("relation_classifier", _forward, layers=[tok2vec, mlp], init=_init,
                 attrs={"max_distance": max_distance, "t2v_width": t2v_width})


@registry.architectures("medtext.ProjectedTok2Vec.v1")
def build_projected_tok2vec(tok2vec: Model, width: int = 128) -> Model[list[Doc], list[Floats2d]]:
    """``tok2vec`` (e.g. ``spacy-transformers.Tok2VecTransformer.v3``, whose width is only known
    once its encoder is loaded) followed by a linear projection to a fixed ``width``, as the
    relation model needs."""
    from thinc.api import Linear, with_array

    model = chain(tok2vec, with_array(Linear(width)))
    model.set_dim("nO", width)
    return model


def _init(model: Model, X=None, Y=None) -> None:
    tok2vec, mlp = model.layers
    tok2vec.initialize(X=X[:10] if X else None)
    mlp.initialize()


def _forward(model: Model, docs: list[Doc], is_train: bool):
    tok2vec, mlp = model.layers
    ops = model.ops
    maxd = model.attrs["max_distance"]
    tokvecs, bp_tok2vec = tok2vec(docs, is_train)
    rows, meta = [], []
    for d, doc in enumerate(docs):
        pairs = candidate_pairs(doc, maxd)
        ents = doc.ents
        if not pairs:
            meta.append((d, pairs, 0))
            continue
        tv = ops.to_numpy(tokvecs[d])
        pooled = numpy.stack([tv[e.start:e.end].mean(axis=0) for e in ents])
        h = pooled[[i for i, _ in pairs]]
        t = pooled[[j for _, j in pairs]]
        rows.append(numpy.hstack([h, t, h * t, _extra(doc, pairs)]))
        meta.append((d, pairs, len(pairs)))
    n_out = len(RELATION_LABELS) + 1
    if not rows:
        return [ops.alloc2f(0, n_out) for _ in docs], lambda dY: bp_tok2vec([ops.alloc2f(*tv.shape) for tv in tokvecs])
    X = ops.asarray2f(numpy.vstack(rows))
    Y, bp_mlp = mlp(X, is_train)
    out, k = [], 0
    for _, pairs, n in meta:
        out.append(Y[k:k + n] if n else ops.alloc2f(0, n_out))
        k += n

    def backprop(dY: list[Floats2d]):
        dX = ops.to_numpy(bp_mlp(ops.xp.vstack([g for g, (_, _, n) in zip(dY, meta) if n])))
        w = model.attrs["t2v_width"]
        d_tok = [numpy.zeros(ops.to_numpy(tv).shape, dtype="float32") for tv in tokvecs]
        k = 0
        for d, pairs, n in meta:
            if not n:
                continue
            doc = docs[d]
            ents = doc.ents
            tv = ops.to_numpy(tokvecs[d])
            pooled = numpy.stack([tv[e.start:e.end].mean(axis=0) for e in ents])
            g = dX[k:k + n]
            k += n
            d_pooled = numpy.zeros_like(pooled)
            for r, (i, j) in enumerate(pairs):
                gh, gt, gp = g[r, :w], g[r, w:2 * w], g[r, 2 * w:3 * w]
                d_pooled[i] += gh + gp * pooled[j]
                d_pooled[j] += gt + gp * pooled[i]
            for e_idx, e in enumerate(ents):
                d_tok[d][e.start:e.end] += d_pooled[e_idx] / (e.end - e.start)
        return bp_tok2vec([ops.asarray2f(x) for x in d_tok])

    return out, backprop


DEFAULT_MODEL = Config().from_str("""
[model]
@architectures = "medtext.RelationClassifier.v1"
width = 64
max_distance = 30
dropout = 0.1

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 4
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
""")["model"]


class RelationExtractor(MedtextTrainablePipe):
    version = "1.0.0"

    def __init__(self, vocab, model: Model, name: str = "medtext_relations", *, threshold: float = 0.5):
        self.vocab = vocab
        self.model = model
        self.name = name
        self.cfg: dict[str, Any] = {"labels": list(RELATION_LABELS), "threshold": threshold}
        register_relation_extensions()

    def predict(self, docs: Iterable[Doc]):
        docs = list(docs)
        scores, _ = self.model(docs, is_train=False) if docs else ([], None)
        return scores

    def set_annotations(self, docs: Iterable[Doc], scores) -> None:
        maxd = self.model.attrs["max_distance"]
        for doc, s in zip(docs, scores):
            s = self.model.ops.to_numpy(s)
            ents = doc.ents
            rels = []
            for (i, j), row in zip(candidate_pairs(doc, maxd), s):
                k = int(row.argmax())
                if k > 0 and row[k] >= self.cfg["threshold"]:
                    rels.append((ents[i].start, ents[i].end, ents[j].start, ents[j].end,
                                 RELATION_LABELS[k - 1], round(float(row[k]), 4)))
            doc._.relations = rels

    def _gold(self, example: Example) -> numpy.ndarray:
        """Target class per candidate pair of the predicted doc (0 = none)."""
        pred = example.predicted
        gold = {}
        ref = example.reference
        for hs, he, ts, te, label, *_ in ref._.relations or []:
            key = (ref[hs:he].start_char, ref[hs:he].end_char, ref[ts:te].start_char, ref[ts:te].end_char)
            gold[key] = RELATION_LABELS.index(label) + 1
        ents = pred.ents
        return numpy.array([gold.get((ents[i].start_char, ents[i].end_char, ents[j].start_char,
                                      ents[j].end_char), 0)
                            for i, j in candidate_pairs(pred, self.model.attrs["max_distance"])], dtype="int64")

    def get_loss(self, examples: Iterable[Example], scores) -> tuple[float, list[Floats2d]]:
        loss, grads = 0.0, []
        for ex, s in zip(examples, scores):
            s = self.model.ops.to_numpy(s)
            truth = self._gold(ex)
            target = numpy.zeros_like(s)
            if len(truth):
                target[numpy.arange(len(truth)), truth] = 1.0
            d = s - target
            if len(truth):  # most candidate pairs are "none": weigh them down so relations are learnt
                d[truth == 0] *= NONE_WEIGHT
            grads.append(self.model.ops.asarray2f(d))
            loss += float(-numpy.log(numpy.maximum(s[numpy.arange(len(truth)), truth], 1e-9)).sum()) if len(truth) else 0.0
        return loss, grads

    def _inputs(self, examples: list[Example]) -> list[Doc]:
        return [ex.predicted for ex in examples]

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp=None) -> None:
        self.model.initialize(X=[ex.predicted for ex in list(get_examples())[:10]])


@Language.factory("medtext_relations", default_config={"model": DEFAULT_MODEL, "threshold": 0.5})
def make_relations(nlp: Language, name: str, model: Model, threshold: float) -> RelationExtractor:
    return RelationExtractor(nlp.vocab, model, name, threshold=threshold)
