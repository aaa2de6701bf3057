"""A concept classifier trained on annotated mentions: the linker's supervised channel.

Annotated mentions (the team's ICF notes: "sup>sit via log roll, min A" -> d4103) say more than
one example each: which words and word fragments point to a category. :class:`MentionClassifier`
learns that from all of them at once, where the example channel of :mod:`.linking` only finds
the single closest example.

**Model.** Multinomial logistic regression (softmax, L2-regularised) over the TF-IDF features of
the mention text: word 1- and 2-grams (tokens ``[a-z0-9]+`` and runs of ``<>/``, so "sup>sit"
keeps its ">"), and character 2- to 5-grams taken within words, each block L2-normalised,
sublinear term frequency, smoothed IDF. Features seen in fewer than ``min_df`` training
mentions are dropped. Training is full-batch Adam on numpy (a few minutes on 2 CPUs for 2,000
mentions), deterministic for a seed.

**Sentence-embedding features** (optional, ``encoder``): the mention's L2-normalised embedding
from a sentence-transformers model (any name or local path; ``all-MiniLM-L6-v2`` is the packaged
copy, ``medtext:linker_bi`` the project's fine-tuned bi-encoder), times ``encoder_weight``,
follows the TF-IDF blocks. The n-grams say which words point to a category; the embedding
carries what they mean, so "husband does all the chopping for dinner" can reach meal
preparation without sharing a word with its examples. Needs the ``trf`` extra at training and
at run time; the encoder is recorded by name with its embedding of a probe sentence, checked
when the linker loads it (a retrained ``medtext:linker_bi`` is an error, not a silent mismatch),
and loaded once per process (the linker passes its own mention embeddings when its bi-encoder is
the same model).

**Files.** A model folder holds ``meta.json`` (classes, vocabularies, settings, training
figures) and ``weights.npz`` (float16 weights, float32 IDF and bias), read with
``allow_pickle=False``: no code is loaded from a model folder.

The linker mixes its probabilities into the candidates' scores (``classifier_weight``); see
:mod:`.linking`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

import numpy

log = logging.getLogger(__name__)

FORMAT = "medtext-mention-classifier/1"
FINETUNED_FORMAT = "medtext-mention-classifier-ft/1"  # finetuned_classifier.FORMAT (torch-free import)
# embedded at training and checked at load: a retrained or swapped encoder is caught, not used
PROBE = "ambulates 50 ft with rolling walker, needs help with dressing"
_WORD = re.compile(r"[a-z0-9]+|[<>/]+")
MAX_CHARS = 256


def word_grams(text: str) -> list[str]:
    toks = _WORD.findall(text.lower())
    return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]


def char_grams(text: str) -> list[str]:
    out = []
    for word in text.lower().split():
        w = f" {word} "
        out += [w[i:i + n] for n in (2, 3, 4, 5) for i in range(len(w) - n + 1)]
    return out


class _Block:
    """One TF-IDF feature block: vocabulary, IDF, and the rows of texts as L2-normalised
    sparse vectors."""

    def __init__(self, grams: Callable[[str], list[str]], vocab: list[str], idf: numpy.ndarray):
        self.grams = grams
        self.vocab = vocab
        self.col = {g: i for i, g in enumerate(vocab)}
        self.idf = idf

    @classmethod
    def fit(cls, grams, texts: list[str], min_df: int) -> "_Block":
        df = Counter(g for t in texts for g in set(grams(t)))
        vocab = sorted(g for g, n in df.items() if n >= min_df)
        n = len(texts)
        idf = numpy.array([math.log((1 + n) / (1 + df[g])) + 1 for g in vocab], dtype=numpy.float32)
        return cls(grams, vocab, idf)

    def rows(self, texts: Iterable[str]) -> list[tuple[numpy.ndarray, numpy.ndarray]]:
        out = []
        for t in texts:
            counts = Counter(g for g in self.grams(t) if g in self.col)
            if not counts:
                out.append((numpy.zeros(0, dtype=numpy.int64), numpy.zeros(0, dtype=numpy.float32)))
                continue
            ix = numpy.array([self.col[g] for g in counts], dtype=numpy.int64)
            tf = 1 + numpy.log(numpy.array(list(counts.values()), dtype=numpy.float32))
            v = tf * self.idf[ix]
            out.append((ix, v / numpy.linalg.norm(v)))
        return out


class MentionClassifier:
    """See the module docstring. ``classes``: ``(system, code)`` pairs, one per output."""

    def __init__(self, classes: list[tuple[str, str]], words: _Block, chars: _Block,
                 weights: numpy.ndarray, bias: numpy.ndarray, meta: dict | None = None):
        self.classes = classes
        self.words, self.chars = words, chars
        self.weights = weights  # [features, classes]
        self.bias = bias
        self.meta = meta or {}
        self.class_index = {c: i for i, c in enumerate(classes)}
        self._w32: numpy.ndarray | None = None  # float32 weights, made on first use

    @property
    def encoder(self) -> str | None:
        """The sentence-transformers model whose embeddings are features (None: n-grams only)."""
        return self.meta.get("encoder")

    @property
    def _n_sparse(self) -> int:
        return len(self.words.vocab) + len(self.chars.vocab)

    def embed(self, texts: list[str], *, batch_size: int = 64, device: str | None = None) -> numpy.ndarray:
        """The encoder's L2-normalised embeddings of ``texts``, float32 [texts, dim]."""
        from .embeddings import embed_terms

        vectors, _ = embed_terms([t[:MAX_CHARS] for t in texts], self.encoder, batch_size=batch_size, device=device)
        return numpy.asarray(vectors, dtype=numpy.float32)

    def check_encoder(self, device: str | None = None) -> None:
        """Load the encoder and check it is the model the classifier was trained with (its
        embedding of :data:`PROBE` must match the one recorded then)."""
        from .index import TerminologyError

        if not self.encoder:
            return
        now = self.embed([PROBE], device=device)[0]
        then = numpy.asarray(self.meta.get("encoder_probe") or [], dtype=numpy.float32)
        if then.shape != now.shape or float(now @ then) < 0.999:
            raise TerminologyError(f"the mention classifier's encoder {self.encoder} is not the model it was "
                                   "trained with (retrained or replaced since?): retrain the classifier "
                                   "(`medtext train linker-clf --encoder ...`)")

    def _dense_part(self, texts: list[str], embeddings: numpy.ndarray | None) -> numpy.ndarray | None:
        if not self.encoder:
            return None
        if embeddings is None:
            embeddings = self.embed(texts)
        dim = int(self.meta["encoder_dim"])
        if embeddings.shape != (len(texts), dim):
            from .index import TerminologyError

            raise TerminologyError(f"the mention classifier was trained on {dim}-d embeddings of "
                                   f"{self.encoder}, not {embeddings.shape[1:]} ones")
        return embeddings.astype(numpy.float32) * float(self.meta["encoder_weight"])

    # --- features ---------------------------------------------------------------------------
    def _features(self, texts: list[str], embeddings: numpy.ndarray | None = None) -> numpy.ndarray:
        """Dense float32 [texts, features]: the word block, the character block, then the
        weighted embeddings when there is an encoder."""
        texts = [t[:MAX_CHARS] for t in texts]
        dense = self._dense_part(texts, embeddings)
        width = self._n_sparse + (0 if dense is None else dense.shape[1])
        x = numpy.zeros((len(texts), width), dtype=numpy.float32)
        off = len(self.words.vocab)
        for r, ((wi, wv), (ci, cv)) in enumerate(zip(self.words.rows(texts), self.chars.rows(texts))):
            x[r, wi] = wv
            x[r, off + ci] = cv
        if dense is not None:
            x[:, self._n_sparse:] = dense
        return x

    def predict_proba(self, texts: list[str], embeddings: numpy.ndarray | None = None) -> numpy.ndarray:
        """Class probabilities, float32 [texts, classes]. Each text's scores are a weighted sum of
        the weight rows of its own n-grams (no dense feature matrix), plus its embedding times
        the embedding rows. ``embeddings``: the encoder's vectors of ``texts`` when the caller
        has them (otherwise they are computed)."""
        if self._w32 is None:
            self._w32 = self.weights.astype(numpy.float32)
        texts = [t[:MAX_CHARS] for t in texts]
        dense = self._dense_part(texts, embeddings)
        z = numpy.tile(self.bias, (len(texts), 1))
        if dense is not None:
            z += dense @ self._w32[self._n_sparse:]
        off = len(self.words.vocab)
        for r, ((wi, wv), (ci, cv)) in enumerate(zip(self.words.rows(texts), self.chars.rows(texts))):
            if len(wi):
                z[r] += wv @ self._w32[wi]
            if len(ci):
                z[r] += cv @ self._w32[off + ci]
        z -= z.max(axis=1, keepdims=True)
        numpy.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    # --- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, examples: list[tuple[str, str, str]], *, l2: float = 1e-4, min_df: int = 2,
              steps: int = 300, learn_rate: float = 0.05, seed: int = 0, encoder: str | None = None,
              encoder_weight: float = 2.0,
              progress: Callable[[int, float], None] | None = None) -> "MentionClassifier":
        """Fit on ``(text, system, code)`` examples. ``l2``: weight of the squared-weight penalty
        added to the mean cross-entropy. ``encoder``: a sentence-transformers model whose
        embeddings (times ``encoder_weight``) join the features."""
        rows = [(t[:MAX_CHARS].strip(), (s, c)) for t, s, c in examples if t and t.strip()]
        classes = sorted({y for _, y in rows})
        if len(classes) < 2:
            raise ValueError(f"a mention classifier needs examples of at least 2 codes, not {len(classes)}")
        texts = [t for t, _ in rows]
        ci = {c: i for i, c in enumerate(classes)}
        y = numpy.array([ci[c] for _, c in rows], dtype=numpy.int64)
        words = _Block.fit(word_grams, texts, min_df)
        chars = _Block.fit(char_grams, texts, min_df)
        model = cls(classes, words, chars, numpy.zeros((0, len(classes)), dtype=numpy.float32),
                    numpy.zeros(len(classes), dtype=numpy.float32))
        vectors = None
        if encoder:
            from .embeddings import resolve_model

            model.meta = {"encoder": resolve_model(encoder)[1], "encoder_weight": encoder_weight}
            vectors = model.embed(texts)
            model.meta["encoder_dim"] = int(vectors.shape[1])
            model.meta["encoder_probe"] = [round(float(v), 5) for v in model.embed([PROBE])[0]]
        x = model._features(texts, vectors)
        n, k = len(texts), len(classes)
        rng = numpy.random.default_rng(seed)
        w = (rng.standard_normal((x.shape[1], k)) * 0.01).astype(numpy.float32)
        b = numpy.zeros(k, dtype=numpy.float32)
        onehot = numpy.zeros((n, k), dtype=numpy.float32)
        onehot[numpy.arange(n), y] = 1.0
        mw, vw = numpy.zeros_like(w), numpy.zeros_like(w)
        mb, vb = numpy.zeros_like(b), numpy.zeros_like(b)
        b1, b2, eps = 0.9, 0.999, 1e-8
        t0 = time.perf_counter()
        loss = float("nan")
        for step in range(1, steps + 1):
            z = x @ w + b
            z -= z.max(axis=1, keepdims=True)
            p = numpy.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            loss = float(-numpy.log(p[numpy.arange(n), y] + 1e-12).mean() + 0.5 * l2 * (w * w).sum())
            g = (p - onehot) / n
            gw = x.T @ g + l2 * w
            gb = g.sum(axis=0)
            lr = learn_rate * math.sqrt(1 - b2 ** step) / (1 - b1 ** step)
            for param, grad, m, v in ((w, gw, mw, vw), (b, gb, mb, vb)):
                m *= b1
                m += (1 - b1) * grad
                v *= b2
                v += (1 - b2) * grad * grad
                param -= lr * m / (numpy.sqrt(v) + eps)
            if progress is not None:
                progress(step, loss)
        model.weights, model.bias = w, b
        model._w32 = None
        acc = float((numpy.argmax(x @ w + b, axis=1) == y).mean())
        model.meta = {**model.meta, "format": FORMAT, "examples": n, "classes": k, "features": int(x.shape[1]),
                      "class_counts": numpy.bincount(y, minlength=k).tolist(),
                      "l2": l2, "min_df": min_df, "steps": steps, "learn_rate": learn_rate, "seed": seed,
                      "train_loss": round(loss, 4), "train_accuracy": round(acc, 4),
                      "train_seconds": round(time.perf_counter() - t0, 1)}
        return model

    # --- files ------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write ``meta.json`` and ``weights.npz`` into the folder ``path``, swapped in whole."""
        from medtext.atomic import save_dir_atomically

        def write(folder: str) -> None:
            d = Path(folder)
            d.mkdir(parents=True, exist_ok=True)
            numpy.savez_compressed(d / "weights.npz", weights=self.weights.astype(numpy.float16),
                                   bias=self.bias.astype(numpy.float32), word_idf=self.words.idf,
                                   char_idf=self.chars.idf)
            meta = dict(self.meta, format=FORMAT, classes_list=[list(c) for c in self.classes],
                        word_vocab=self.words.vocab, char_vocab=self.chars.vocab)
            (d / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

        save_dir_atomically(write, path)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "MentionClassifier":
        from .index import TerminologyError

        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            with numpy.load(path / "weights.npz", allow_pickle=False) as npz:
                weights, bias = npz["weights"], npz["bias"].astype(numpy.float32)
                word_idf, char_idf = npz["word_idf"], npz["char_idf"]
            classes = [tuple(c) for c in meta.pop("classes_list")]
            words = _Block(word_grams, meta.pop("word_vocab"), word_idf)
            chars = _Block(char_grams, meta.pop("char_vocab"), char_idf)
            dim = int(meta.get("encoder_dim", 0)) if meta.get("encoder") else 0
            if weights.shape != (len(words.vocab) + len(chars.vocab) + dim, len(classes)) or bias.shape != (len(classes),):
                raise ValueError(f"weights of shape {weights.shape} do not fit {len(words.vocab)} + "
                                 f"{len(chars.vocab)} + {dim} features and {len(classes)} classes")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TerminologyError(f"not a medtext mention classifier ({e}): rebuild it with "
                                   "`medtext train linker-clf`", path) from e
        return cls(classes, words, chars, weights, bias, meta)


def classifier_path(spec: str) -> Path:
    """The folder of ``spec``: ``medtext:NAME`` is ``$MEDTEXT_HOME/models/NAME`` when it holds a
    model (what ``medtext train linker-clf`` writes), else the copy shipped in the package
    (``medtext/models/NAME``); anything else is a folder path."""
    if spec.startswith("medtext:"):
        from medtext.pipeline import model_path

        return model_path(spec.split(":", 1)[1], marker="meta.json")
    return Path(spec)


_LOADED: dict[str, MentionClassifier] = {}
# how to build the classifiers the presets name
BUILD = {"medtext:linker_clf": "`medtext train linker-clf`",
         "medtext:linker_clf_trf": "`medtext train linker-clf --encoder all-MiniLM-L6-v2` (or `make "
                                   "train-linker-clf-trf`; needs the trf extra)",
         "medtext:linker_clf_ft": "`medtext train linker-clf --finetune` (or `make train-linker-clf-ft`; "
                                  "needs the trf extra)"}


class ClassifierEnsemble:
    """Several mention classifiers as one: each mention's probabilities are the normalised
    geometric mean of its members' over the union of their classes (a product of experts: a
    concept must be likely to every member; a class a member lacks gets that member's smallest
    probability for the mention). On the ICF dev split, with classifiers trained on the train
    split, the geometric mean of the fine-tuned and the n-gram classifiers beat each alone and
    their arithmetic mean (see docs/linking.md). Members that read an encoder embed the mentions
    themselves. ``weights`` (one per member, scaled to sum 1; default equal) weigh the members'
    log-probabilities: the ``trf`` preset gives its fine-tuned member 0.65 and the n-gram one 0.35
    (chosen on two folds of the ICF train notes, docs/linking.md, experiment (28))."""

    def __init__(self, members: list, names: list[str] | None = None, weights: list[float] | None = None):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least 2 classifiers")
        if weights is None:
            weights = [1.0] * len(members)
        if not isinstance(weights, (list, tuple)) or len(weights) != len(members) or any(
                isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0
                for w in weights) or sum(weights) <= 0:
            raise ValueError(f"ensemble weights: one per classifier ({len(members)}), numbers >= 0, "
                             f"not all 0 (got {weights!r})")
        self.weights = numpy.asarray(weights, dtype=numpy.float64) / sum(weights)
        self.members = members
        self.classes = sorted({c for m in members for c in m.classes})
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self._cols = [numpy.array([self.class_index[c] for c in m.classes], dtype=numpy.int64) for m in members]
        names = names or [m.meta.get("name", "?") for m in members]
        sources = {m.meta.get("examples_source") for m in members}
        self.meta = {"name": " + ".join(names), "members": names, "weights": [round(float(w), 6) for w in self.weights],
                     "classes": len(self.classes),
                     **({"examples_source": sources.pop()} if len(sources) == 1 else {})}

    @property
    def encoder(self) -> None:
        return None

    def check_encoder(self, device: str | None = None) -> None:
        for m in self.members:
            m.check_encoder(device=device)

    def predict_proba(self, texts: list[str], embeddings: numpy.ndarray | None = None) -> numpy.ndarray:
        logs = numpy.zeros((len(texts), len(self.classes)), dtype=numpy.float64)
        for m, cols, w in zip(self.members, self._cols, self.weights):
            if w == 0:
                continue
            p = numpy.maximum(m.predict_proba(texts).astype(numpy.float64), 1e-12)
            part = numpy.repeat(p.min(axis=1, keepdims=True), len(self.classes), axis=1)
            part[:, cols] = p
            logs += w * numpy.log(part)
        logs -= logs.max(axis=1, keepdims=True) if len(texts) else 0.0
        out = numpy.exp(logs)
        return (out / out.sum(axis=1, keepdims=True)).astype(numpy.float32)


def class_counts(clf) -> numpy.ndarray | None:
    """How many training examples each of ``clf.classes`` had (the linker's ``classifier_prior``
    divides by their frequencies): ``class_counts`` in the classifier's meta (written by training
    since 2026-12-02), else counted again from its ``examples_source`` when that still loads
    (older folders, e.g. ``medtext:icf``; also when the recorded ones are not non-negative numbers,
    one per class); an ensemble's is the mean over the members that have the class. None when
    neither is there."""
    if isinstance(clf, ClassifierEnsemble):
        per = [class_counts(m) for m in clf.members]
        if any(p is None for p in per):
            return None
        total, seen = numpy.zeros(len(clf.classes)), numpy.zeros(len(clf.classes))
        for p, cols in zip(per, clf._cols):
            total[cols] += p
            seen[cols] += 1
        return total / numpy.maximum(seen, 1)
    counts = clf.meta.get("class_counts")
    if isinstance(counts, list) and len(counts) == len(clf.classes) and all(
            isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n) and n >= 0 for n in counts):
        return numpy.asarray(counts, dtype=numpy.float64)
    # missing or corrupt (a hand-edited meta.json): count again below rather than divide by NaN
    source = clf.meta.get("examples_source")
    if not isinstance(source, str):
        return None
    from medtext.corpora.linking_data import load_examples
    from medtext.errors import MedtextError

    try:
        rows = load_examples(source)
    except (MedtextError, OSError, ValueError):
        return None
    index = {tuple(c): i for i, c in enumerate(clf.classes)}
    out = numpy.zeros(len(clf.classes))
    for text, system, code in rows:
        i = index.get((system, code))
        if i is not None and text and text.strip():
            out[i] += 1
    return out if out.any() else None


def load_classifier(spec: str | list[str], weights: list[float] | None = None):
    """Load (once per process) the mention classifier ``spec`` names (see :func:`classifier_path`):
    a :class:`MentionClassifier`, or a :class:`~.finetuned_classifier.FinetunedClassifier` when
    the folder holds one; a list of specs is a :class:`ClassifierEnsemble` of them, its members
    weighed by ``weights`` (one per spec; default equal)."""
    from .index import TerminologyError

    if weights is not None and (not isinstance(spec, (list, tuple)) or len(spec) < 2):
        raise TerminologyError(f"ensemble weights need a list of 2 or more classifiers, not {spec!r}")
    if isinstance(spec, (list, tuple)):
        if len(spec) == 1:
            return load_classifier(spec[0])
        if len(spec) == 0 or len(set(spec)) != len(spec):
            raise TerminologyError(f"a classifier ensemble names at least 2 different classifiers, not {list(spec)}")
        members = [load_classifier(s) for s in spec]
        try:
            return ClassifierEnsemble(members, list(spec), weights=weights)
        except ValueError as e:
            raise TerminologyError(str(e)) from e
    path = classifier_path(spec)
    if not (path / "meta.json").is_file():
        build = BUILD.get(spec) or ("`medtext train linker-clf --out " + (
            f"$MEDTEXT_HOME/models/{spec.split(':', 1)[1]}`" if spec.startswith("medtext:") else "DIR`"))
        raise TerminologyError(f"no mention classifier here ({spec}): build one with {build}", path)
    key = str(path.resolve())
    if key not in _LOADED:
        if _format(path) == FINETUNED_FORMAT:
            from .finetuned_classifier import FinetunedClassifier

            clf = FinetunedClassifier.load(path)
        else:
            clf = MentionClassifier.load(path)
        clf.meta.setdefault("name", spec)
        _LOADED[key] = clf
    return _LOADED[key]


def _format(path: Path) -> str | None:
    try:
        return json.loads((path / "meta.json").read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None  # MentionClassifier.load says what is wrong
