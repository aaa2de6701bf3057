"""``medtext_biluo_ner``: named entities from a per-token BILUO tagger (a softmax over a
``tok2vec``), decoded under BILUO constraints.

spaCy's transition-based ``ner`` walks each document token by token in its parser loop (about
20 µs per token on a CPU, whatever the hidden width); a tagger scores every token with one
matrix product, so on clinical notes it costs a small fraction of that. The tags are ``O`` and
``B-``/``I-``/``L-``/``U-`` per entity label (29 for medtext's seven labels).

**Decoding.** A token whose ``O`` probability is at least ``confident_o`` (default 0.95) is
outside; the runs of tokens between such tokens are decoded exactly with a Viterbi pass over the
log-probabilities that only allows valid BILUO sequences (``B-X`` is followed by ``I-X`` or
``L-X``, runs start with ``B``/``U``/``O`` and end with ``L``/``U``/``O``). Whitespace tokens are
never inside an entity. The entities replace ``doc.ents``, like spaCy's ``ner``.

**Ensembles.** A trained tagger can carry other taggers trained the same way with other seeds
(``members``: whole ``tok2vec`` + ``medtext_biluo_ner`` pipelines, saved under the component's
folder in ``members/1``, ``members/2`` …; ``medtext train ner --ensemble N`` builds them), or
added at load time (a preset's ``[medtext.members]``: the ``trf`` preset adds the tagger of
``medtext train ner --arch trf``, a ``transformer`` + ``medtext_biluo_ner`` pipeline, to the
``default`` CNN taggers). Each member encodes the documents with its own ``tok2vec`` or
``transformer``; the tag log-probabilities of all of them are averaged (a product of experts;
each member has a weight, 1 unless given, against the tagger's own 1) before decoding, and the
outside probabilities that ``medtext_ner`` reads are the ensemble's.

Training uses the gold entities of each ``Example`` (``get_aligned_ner``); tokens whose
annotation is missing or misaligned add no loss. Scores are spaCy's entity P/R/F
(``ents_f``), so ``spacy train`` selects models the same way as for ``ner``.
"""

from __future__ import annotations

import shutil
from itertools import islice
from pathlib import Path

import numpy
from spacy.language import Language
from spacy.pipeline import Tagger
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Model, SequenceCategoricalCrossentropy

PREFIXES = ("B", "I", "L", "U")
# doc.user_data key: each token's probability of being outside any entity (float32 array; medtext_ner
# reads it for its veto_outside and removes it)
P_OUTSIDE = "medtext_ner_p_outside"
MEMBERS = "members"  # sub-folder of the component's folder holding ensemble members
WEIGHTS = "weights.json"  # in MEMBERS: the members' weights, when not all 1


def biluo_tags(labels) -> list[str]:
    return ["O"] + [f"{p}-{lab}" for lab in sorted(labels) for p in PREFIXES]


def _constraints(tags: list[str]):
    """(allowed[prev, next], may_start[t], may_end[t]) for valid BILUO sequences."""
    n = len(tags)
    split = [t.split("-", 1) if t != "O" else ("O", "") for t in tags]
    allowed = numpy.zeros((n, n), dtype=bool)
    for i, (pi, li) in enumerate(split):
        for j, (pj, lj) in enumerate(split):
            if pi in ("B", "I"):  # inside an entity: continue it
                allowed[i, j] = pj in ("I", "L") and lj == li
            else:  # O, L, U: a new start
                allowed[i, j] = pj in ("O", "B", "U")
    may_start = numpy.array([p in ("O", "B", "U") for p, _ in split])
    may_end = numpy.array([p in ("O", "L", "U") for p, _ in split])
    return allowed, may_start, may_end


def viterbi(logp: numpy.ndarray, allowed: numpy.ndarray, may_start: numpy.ndarray,
            may_end: numpy.ndarray) -> list[int]:
    """Best valid tag sequence for one run of tokens (``logp``: tokens x tags)."""
    neg = -1e9
    trans = numpy.where(allowed, 0.0, neg)
    score = numpy.where(may_start, logp[0], neg)
    back = numpy.zeros(logp.shape, dtype=numpy.int64)
    for t in range(1, len(logp)):
        cand = score[:, None] + trans  # prev x next
        back[t] = cand.argmax(axis=0)
        score = cand[back[t], numpy.arange(logp.shape[1])] + logp[t]
    score = numpy.where(may_end, score, neg)
    best = [int(score.argmax())]
    for t in range(len(logp) - 1, 0, -1):
        best.append(int(back[t, best[-1]]))
    return best[::-1]


def decode(doc: Doc, scores: numpy.ndarray, tags: list[str], cons, confident_o: float) -> list[Span]:
    if not len(doc):
        return []
    x = numpy.array(scores, dtype="float64")  # a copy: the masking below must not touch scores
    space = numpy.fromiter((t.is_space for t in doc), dtype=bool, count=len(doc))
    x[space, 1:] = -1e9  # whitespace is outside
    logp = x - numpy.logaddexp.reduce(x, axis=1, keepdims=True)
    fixed_o = (logp[:, 0] >= numpy.log(confident_o)) | space
    out: list[Span] = []
    i, n = 0, len(doc)
    while i < n:
        if fixed_o[i]:
            i += 1
            continue
        j = i
        while j < n and not fixed_o[j]:
            j += 1
        path = viterbi(logp[i:j], *cons)
        start = None
        for k, tag_id in enumerate(path):
            tag = tags[tag_id]
            if tag == "O":
                continue
            prefix, label = tag.split("-", 1)
            if prefix == "U":
                out.append(Span(doc, i + k, i + k + 1, label=label))
            elif prefix == "B":
                start = i + k
            elif prefix == "L" and start is not None:
                out.append(Span(doc, start, i + k + 1, label=label))
                start = None
        i = j
    return out


class BiluoNER(Tagger):
    """See the module docstring."""

    def __init__(self, vocab, model: Model, name: str = "ner", *, confident_o: float = 0.95,
                 scorer=None):
        super().__init__(vocab, model, name, scorer=scorer)
        self.confident_o = float(confident_o)
        self._cons = None
        self.members: list = []  # other trained tok2vec + tagger pipelines, averaged with this one
        self.member_weights: list[float] = []  # each member's weight; this tagger's own is 1

    @property
    def entity_labels(self) -> tuple[str, ...]:
        return tuple(sorted({t.split("-", 1)[1] for t in self.labels if t != "O"}))

    def _constraints(self):
        if self._cons is None or self._cons[0] != self.labels:
            self._cons = (self.labels, _constraints(list(self.labels)))
        return self._cons[1]

    def predict(self, docs):
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [self.model.ops.alloc2f(len(doc), len(self.labels)) for doc in docs]
        scores = self._predict_own(docs)
        if not self.members:
            return scores
        tensors = [doc.tensor for doc in docs]  # each member's tok2vec overwrites doc.tensor
        keys = [set(doc.user_data) for doc in docs]  # a member's transformer adds doc._.trf_data
        try:
            every = [scores] + [_member_predict(member, docs) for member in self.members]
        finally:
            for doc, tensor, known in zip(docs, tensors, keys):
                doc.tensor = tensor
                for key in set(doc.user_data) - known:
                    del doc.user_data[key]
        to_numpy = self.model.ops.to_numpy
        weights = [1.0] + list(self.member_weights)
        total = sum(weights)
        out = []
        for i in range(len(docs)):
            logp = sum(w * _log_softmax(to_numpy(s[i])) for w, s in zip(weights, every))
            out.append((logp / total).astype("float32"))
        return out

    def _predict_own(self, docs):
        if hasattr(self.model.get_ref("tok2vec"), "upstream_name"):
            # a listener (of a tok2vec, which bounded its memory, or of a transformer, which
            # reads long documents in windows): it reads what its upstream set on these docs
            return self.model.predict(docs)
        from medtext.chunking import predict_in_chunks

        return predict_in_chunks(self.model, docs)  # an inline tok2vec: bounded memory

    def set_annotations(self, docs, scores):
        if isinstance(docs, Doc):
            docs = [docs]
        tags = list(self.labels)
        cons = self._constraints()
        conf = self.confident_o
        o = tags.index("O") if "O" in tags else None
        for doc, s in zip(docs, scores):
            s = self.model.ops.to_numpy(s)
            doc.ents = decode(doc, s, tags, cons, conf)
            if o is not None:  # what medtext_ner's matcher veto reads
                x = numpy.asarray(s, dtype="float64")
                p = numpy.exp(x[:, o] - numpy.logaddexp.reduce(x, axis=1)) if len(x) else x[:, 0]
                doc.user_data[P_OUTSIDE] = p.astype("float32")

    # --- ensemble members: saved with the component, loaded with it ---------------------------
    def add_member(self, member, weight: float = 1.0) -> None:
        """Average this tagger with ``member``, a loaded pipeline of a ``tok2vec`` (or
        ``transformer``) and a ``medtext_biluo_ner`` trained with the same labels; ``weight``
        is its weight in the average, this tagger's own being 1."""
        if not weight > 0:
            raise ValueError(f"{self.name}: an ensemble member's weight must be above 0 (got {weight})")
        ner = _member_tagger(member)
        if ner is None:
            raise ValueError(f"{self.name}: an ensemble member needs a medtext_biluo_ner component "
                             f"(it has {', '.join(member.pipe_names) or 'none'})")
        if list(ner.labels) != list(self.labels):
            raise ValueError(f"{self.name}: the ensemble member's tags differ from this tagger's "
                             f"({len(ner.labels)} against {len(self.labels)}): train both with the same labels")
        if ner.members:
            raise ValueError(f"{self.name}: an ensemble member cannot have members of its own")
        self.members.append(member)
        self.member_weights.append(float(weight))

    def to_disk(self, path, *, exclude=tuple()):
        super().to_disk(path, exclude=exclude)
        folder = Path(path) / MEMBERS
        shutil.rmtree(folder, ignore_errors=True)
        for i, member in enumerate(self.members, 1):
            (folder / str(i)).mkdir(parents=True)
            member.to_disk(folder / str(i))
        if any(w != 1.0 for w in self.member_weights):
            import srsly

            srsly.write_json(folder / WEIGHTS, self.member_weights)

    def from_disk(self, path, *, exclude=tuple()):
        super().from_disk(path, exclude=exclude)
        folder = Path(path) / MEMBERS
        self.members, self.member_weights = [], []
        if folder.is_dir():
            import spacy
            import srsly

            subs = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
            weights = srsly.read_json(folder / WEIGHTS) if (folder / WEIGHTS).is_file() else [1.0] * len(subs)
            if len(weights) != len(subs):
                raise ValueError(f"{self.name}: {folder / WEIGHTS} has {len(weights)} weights for {len(subs)} members")
            for sub, weight in zip(subs, weights):
                self.add_member(_prepared(spacy.load(sub)), weight)
        return self

    def to_bytes(self, *, exclude=tuple()):
        import srsly

        if not self.members:
            return super().to_bytes(exclude=exclude)
        return srsly.msgpack_dumps({"own": super().to_bytes(exclude=exclude), MEMBERS: [
            {"config": m.config.to_str(), "bytes": m.to_bytes(), "weight": w}
            for m, w in zip(self.members, self.member_weights)]})

    def from_bytes(self, bytes_data, *, exclude=tuple()):
        import srsly

        try:
            data = srsly.msgpack_loads(bytes_data)
        except ValueError:
            data = None
        if not (isinstance(data, dict) and "own" in data and MEMBERS in data):
            self.members, self.member_weights = [], []
            return super().from_bytes(bytes_data, exclude=exclude)
        super().from_bytes(data["own"], exclude=exclude)
        from spacy.util import load_model_from_config
        from thinc.api import Config

        self.members, self.member_weights = [], []
        for m in data[MEMBERS]:
            member = load_model_from_config(Config().from_str(m["config"]), auto_fill=False)
            self.add_member(_prepared(member.from_bytes(m["bytes"])), m.get("weight", 1.0))
        return self

    def get_loss(self, examples, scores):
        loss_func = SequenceCategoricalCrossentropy(names=self.labels, normalize=False)
        truths = []
        for eg in examples:
            truths.append([t if t and t != "-" else None for t in eg.get_aligned_ner()])
        d_scores, loss = loss_func(scores, truths)
        if self.model.ops.xp.isnan(loss):
            raise ValueError(f"{self.name}: the loss is NaN")
        return float(loss), d_scores

    def initialize(self, get_examples, *, nlp=None, labels=None):
        if labels is None:
            found = set()
            for eg in get_examples():
                found.update(e.label_ for e in eg.reference.ents)
            labels = biluo_tags(found)
        elif not any(str(t).startswith(PREFIXES) for t in labels):
            labels = biluo_tags(labels)  # entity labels given: expand to their tags
        for tag in labels:
            self.add_label(tag)
        docs, golds = [], []
        index = {t: i for i, t in enumerate(self.labels)}
        for eg in islice(get_examples(), 10):
            docs.append(eg.x)
            gold = numpy.zeros((len(eg.x), len(self.labels)), dtype="float32")
            for i, t in enumerate(eg.get_aligned_ner()):
                gold[i, index.get(t, 0)] = 1.0
            golds.append(self.model.ops.asarray(gold))
        if not docs:
            raise ValueError(f"{self.name}: no examples to initialize from")
        self.model.initialize(X=docs, Y=golds)


@registry.architectures("medtext.BiluoTagger.v1")
def build_biluo_tagger(tok2vec: Model, nO: int | None = None, logit_scale: float = 1.0) -> Model:
    """spaCy's ``spacy.Tagger.v2`` (a softmax over each token's vector, zero-initialised) with
    the logits multiplied by ``logit_scale``: under Adam that is ``logit_scale`` times the
    learning rate of the softmax alone. A transformer is fine-tuned at about 1e-4, at which a
    fresh softmax over its 384-d vectors takes hundreds of steps to move its logits off the
    ``O`` tag (all-MiniLM-L6-v2 under ``spacy.Tagger.v2``: entity F1 0.27 on the dev mix after
    200 steps at 3e-4); a scale of 10 gives the softmax a CNN tagger's 1e-3. Predictions are
    the scaled logits, as trained."""
    from thinc.api import chain, with_array

    output = Model("scaled_softmax", _scaled_softmax_forward, init=_scaled_softmax_init,
                   dims={"nO": nO, "nI": tok2vec.get_dim("nO") if tok2vec.has_dim("nO") else None},
                   params={"W": None, "b": None}, attrs={"logit_scale": float(logit_scale)})
    model = chain(tok2vec, with_array(output))
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("softmax", output)
    model.set_ref("output_layer", output)
    return model


def _scaled_softmax_init(model: Model, X=None, Y=None) -> None:
    from thinc.api import get_width

    if X is not None:
        model.set_dim("nI", get_width(X))
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    model.set_param("W", model.ops.alloc2f(model.get_dim("nO"), model.get_dim("nI")))
    model.set_param("b", model.ops.alloc1f(model.get_dim("nO")))


def _scaled_softmax_forward(model: Model, X, is_train: bool):
    """Training: probabilities (the tagger's loss hands back probabilities minus truth, the
    gradient of the logits); prediction: the logits."""
    scale = model.attrs["logit_scale"]
    W, b = model.get_param("W"), model.get_param("b")
    Z = model.ops.affine(X, W, b) * scale
    if not is_train:
        return Z, _no_backprop
    Y = model.ops.softmax(Z)

    def backprop(dY):
        dZ = dY * scale
        model.inc_grad("b", dZ.sum(axis=0))
        model.inc_grad("W", model.ops.gemm(dZ, X, trans1=True))
        return model.ops.gemm(dZ, W)

    return Y, backprop


def _no_backprop(dY):
    raise ValueError("the scaled softmax's predict-mode output (logits) has no backprop")


def _log_softmax(x) -> numpy.ndarray:
    x = numpy.asarray(x, dtype="float64")
    return x - numpy.logaddexp.reduce(x, axis=1, keepdims=True) if len(x) else x


def _prepared(member):
    """A loaded member set up like ``medtext.load`` sets up the main pipeline: numpy's BLAS on
    CPU, and its tok2vec encoding very long documents in chunks (bounded memory)."""
    from medtext.chunking import chunk_tok2vec
    from medtext.device import use_numpy_blas

    use_numpy_blas(member)
    chunk_tok2vec(member)
    return member


def _member_tagger(member):
    for _name, proc in member.pipeline:
        if isinstance(proc, BiluoNER):
            return proc
    return None


def _member_predict(member, docs):
    """The member's tag scores for ``docs``: its components up to its tagger annotate the docs
    (its tok2vec sets ``doc.tensor``), then the tagger predicts."""
    for _name, proc in member.pipeline:
        if isinstance(proc, BiluoNER):
            return proc.predict(docs)
        proc.set_annotations(docs, proc.predict(docs))
    raise ValueError("an ensemble member without a medtext_biluo_ner component")


def _ner_scorer(examples: list[Example], **kwargs):
    from spacy.scorer import get_ner_prf

    return get_ner_prf(examples, **kwargs)


@registry.scorers("medtext.biluo_ner_scorer.v1")
def make_biluo_ner_scorer():
    return _ner_scorer


@Language.factory(
    "medtext_biluo_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": {"@architectures": "spacy.Tagger.v2", "nO": None, "normalize": False,
                  "tok2vec": {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None,
                              "width": 96, "depth": 4, "embed_size": 2000, "window_size": 1,
                              "maxout_pieces": 3, "subword_features": True}},
        "confident_o": 0.95,
        "scorer": {"@scorers": "medtext.biluo_ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_biluo_ner(nlp: Language, name: str, model: Model, confident_o: float, scorer) -> BiluoNER:
    return BiluoNER(nlp.vocab, model, name, confident_o=confident_o, scorer=scorer)
