"""``medtext_layout``: label every line of a document as body or page furniture.

Labels: ``body``, ``header``, ``footer``, ``side``, ``signature``, ``pagination``, ``other``.
For each document the component reads ``doc._.lines`` (PDF lines with geometry from the PDF
reader, or text lines from :func:`medtext.lines.text_lines` for text input) and writes

- ``doc._.line_labels``: one label per line of ``doc._.lines`` (``None`` for blank lines);
- ``doc.spans["layout"]``: one span per non-blank line, labelled;
- the **body mask**: later components drop what lies outside body lines (``medtext_ner``
  produces no entity there; see :func:`outside_body`). The text is never changed.

The model (``medtext.LayoutClassifier.v1``) embeds each line from its features
(:mod:`.layout_features`: geometry, repetition across pages, text shape) and hashed tokens,
reads the lines of each page in order with a bidirectional LSTM, and predicts a label per line.
It is a spaCy ``TrainablePipe``: ``nlp.initialize`` / ``nlp.update`` train it (``medtext train
layout``), and its weights are saved with the pipeline.
"""

from __future__ import annotations

import bisect
import logging
import re
from typing import Any, Callable, Iterable

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import (LSTM, Config, HashEmbed, Maxout, Model, Ragged, Softmax, chain, concatenate,
                       reduce_mean, with_array, with_padded)
from thinc.types import Floats2d

from medtext.lines import LAYOUT_LABELS

from .layout_features import N_FEATURES, LineFeatures, extract
from .trainable import MedtextTrainablePipe

log = logging.getLogger(__name__)

LABELS = LAYOUT_LABELS


def register_layout_extensions() -> None:
    from medtext.extensions import register_extensions

    register_extensions()  # doc._.lines, doc._.line_labels, ...


def _doc_lines(doc: Doc, text: str | None = None) -> list[dict[str, Any]]:
    from medtext.lines import text_lines

    lines = doc._.lines if Doc.has_extension("lines") else None
    return lines if lines is not None else text_lines(doc.text if text is None else text)


def _features(doc: Doc) -> tuple[list[dict[str, Any]], LineFeatures]:
    text = doc.text  # built from the tokens on every access: once
    lines = _doc_lines(doc, text)
    if not lines:
        return lines, extract("", [])
    if lines[-1]["end"] > len(text):
        raise ValueError("doc._.lines does not match doc.text (a line ends past the text)")
    return lines, extract(text, lines)


# --- model -------------------------------------------------------------------------------------

@registry.architectures("medtext.LayoutClassifier.v1")
def build_layout_model(width: int = 64, embed_rows: int = 4000, embed_width: int = 32, lstm_depth: int = 1,
                       dropout: float = 0.1, n_labels: int = len(LABELS), text_encoder: str | None = None,
                       text_device: str = "cpu") -> Model[list[LineFeatures], list[Floats2d]]:
    """``text_encoder``: optionally a sentence-transformers / Hugging Face encoder (name or path;
    ``all-MiniLM-L6-v2`` resolves to the packaged weights) whose frozen embedding of each line's
    text joins the line's features (``medtext train layout --text-encoder``); needs the trf extra."""
    tokens = chain(_get_tokens(), with_array(HashEmbed(embed_width, embed_rows)), reduce_mean())
    numeric = chain(_get_feats(), Maxout(width, N_FEATURES, nP=2, normalize=True, dropout=dropout))
    parts, n_in = [tokens, numeric], embed_width + width
    if text_encoder:
        encoder = _text_vectors(text_encoder, text_device)
        parts.append(chain(encoder, Maxout(width, encoder.get_dim("nO"), nP=2, normalize=True, dropout=dropout)))
        n_in += width
    line = chain(concatenate(*parts), Maxout(width, n_in, nP=2, normalize=True, dropout=dropout))
    context = with_padded(LSTM(width, width, bi=True, depth=lstm_depth))
    # the classifier reads each line's own encoding and its page context (the bi-LSTM gives
    # width/2 per direction)
    out = with_array(Softmax(n_labels, 2 * width))
    return Model("layout_classifier", _forward, init=_init, layers=[line, context, out],
                 dims={"nO": n_labels}, attrs={"width": width})


def _init(model: Model, X=None, Y=None) -> None:
    for layer in model.layers:  # every width is fixed by the architecture's settings
        layer.initialize()


def _get_tokens() -> Model:
    def forward(model, X: LineFeatures, is_train):
        ids = model.ops.asarray(X.token_ids, dtype="uint64")
        return Ragged(ids, model.ops.asarray(X.token_lengths, dtype="int32")), lambda d: X
    return Model("layout_tokens", forward)


def _get_feats() -> Model:
    def forward(model, X: LineFeatures, is_train):
        return model.ops.asarray(X.feats, dtype="float32"), lambda d: X
    return Model("layout_feats", forward)


_TEXT_CACHE: dict[tuple[str, str], numpy.ndarray] = {}
_TEXT_CACHE_SIZE = 200_000
MAX_TEXT_CHARS = 512  # a line is furniture or body by its start; a 1 MB line is not encoded whole


def _text_vectors(name: str, device: str) -> Model:
    """Frozen sentence embeddings of the lines' text, cached by (model, text): training reads
    the same lines every epoch, and running headers repeat."""
    from medtext.terminologies.embeddings import load_model

    try:
        encoder = load_model(name, device=device)
    except Exception as e:  # noqa: BLE001 - a missing stack or model is a configuration error
        from medtext.errors import ConfigError

        raise ConfigError(f"medtext_layout text_encoder {name!r} cannot be loaded: {e}") from e

    def forward(model, X: LineFeatures, is_train):
        texts = [t[:MAX_TEXT_CHARS] for t in X.texts]
        todo = sorted({t for t in texts if (name, t) not in _TEXT_CACHE})
        if todo:
            if len(_TEXT_CACHE) + len(todo) > _TEXT_CACHE_SIZE:
                _TEXT_CACHE.clear()
            vecs = encoder.encode(todo, batch_size=128, normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)
            _TEXT_CACHE.update({(name, t): v.astype("float16") for t, v in zip(todo, vecs)})
        V = numpy.stack([_TEXT_CACHE[(name, t)] for t in texts]).astype("float32")
        return model.ops.asarray2f(V), lambda d: X
    return Model("layout_text_vectors", forward, dims={"nO": encoder.get_embedding_dimension()},
                 attrs={"text_encoder": name})


def _forward(model: Model, docs: list[LineFeatures], is_train: bool):
    line, context, out = model.layers
    ops = model.ops
    width = model.attrs["width"]
    backprops, page_h = [], []
    for X in docs:
        if not X.rows:
            continue
        H, bp = line(X, is_train)
        backprops.append(bp)
        page_h.extend(ops.xp.split(H, numpy.cumsum(X.pages)[:-1]))
    if not page_h:
        return [ops.alloc2f(0, model.get_dim("nO")) for _ in docs], lambda d: []
    C, bp_context = context(page_h, is_train)
    Y_pages, bp_out = out([ops.xp.hstack([h, c]) for h, c in zip(page_h, C)], is_train)
    Y, k = [], 0  # regroup the pages' outputs per document
    for X in docs:
        n = len(X.pages)
        Y.append(ops.xp.vstack(Y_pages[k:k + n]) if X.rows else ops.alloc2f(0, model.get_dim("nO")))
        k += n

    def backprop(dY: list[Floats2d]):
        dY_pages = []
        for X, d in zip(docs, dY):
            if X.rows:
                dY_pages.extend(ops.xp.split(d, numpy.cumsum(X.pages)[:-1]))
        dHC = bp_out(dY_pages)
        dC = bp_context([g[:, width:] for g in dHC])
        dH = [g[:, :width] + c for g, c in zip(dHC, dC)]
        k = i = 0
        for X in docs:
            if not X.rows:
                continue
            n = len(X.pages)
            backprops[i](ops.xp.vstack(dH[k:k + n]))
            k += n
            i += 1
        return []

    return Y, backprop


# --- component ---------------------------------------------------------------------------------

DEFAULT_MODEL_CFG = """
[model]
@architectures = "medtext.LayoutClassifier.v1"
width = 64
embed_rows = 4000
embed_width = 32
lstm_depth = 1
dropout = 0.1
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CFG)["model"]


class LayoutClassifier(MedtextTrainablePipe):
    version = "1.0.0"

    def __init__(self, vocab, model: Model, name: str = "medtext_layout", *, mask: bool = True,
                 scorer: Callable | None = None):
        self.vocab = vocab
        self.model = model
        self.name = name
        self.cfg: dict[str, Any] = {"labels": list(LABELS), "mask": mask}
        self.scorer = scorer
        register_layout_extensions()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.cfg["labels"])

    def predict(self, docs: Iterable[Doc]) -> list[tuple[list, LineFeatures, Floats2d]]:
        """Per doc: its lines, their features and the label probabilities of the non-blank ones."""
        prepared = [_features(doc) for doc in docs]
        scores, _ = self.model([f for _, f in prepared], is_train=False) if prepared else ([], None)
        return [(lines, f, s) for (lines, f), s in zip(prepared, scores)]

    def set_annotations(self, docs: Iterable[Doc], predictions) -> None:
        for doc, (lines, feats, scores) in zip(docs, predictions):
            labels: list[str | None] = [None] * len(lines)
            probs = self.model.ops.to_numpy(scores) if len(feats.rows) else None
            best = probs.argmax(axis=1) if probs is not None else []
            for row, k in zip(feats.rows, best):
                labels[row] = self.labels[int(k)]
            _label_rules(feats, labels)
            if probs is not None and "body" not in labels:
                # a document always has a body: a one-line note, an abstract pasted as one line
                # or a page the model reads as all furniture keeps its most body-like line
                body = self.labels.index("body")
                labels[feats.rows[int(probs[:, body].argmax())]] = "body"
            doc._.line_labels = labels
            if doc._.lines is None:  # text given to nlp() directly: keep the lines labelled
                doc._.lines = lines
            spans = []
            for ln, label in zip(lines, labels):
                if label is None:
                    continue
                span = doc.char_span(ln["start"], ln["end"], label=label, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
            doc.spans["layout"] = spans
            doc.user_data[("medtext", "layout_mask")] = self.cfg["mask"]

    # --- training ---------------------------------------------------------------------------
    def _gold(self, example: Example, n_rows: list[int]) -> numpy.ndarray:
        gold = example.reference._.line_labels
        if gold is None:
            raise ValueError("a layout training example needs reference doc._.line_labels")
        index = {label: k for k, label in enumerate(self.labels)}
        return numpy.array([index.get(gold[r], -1) if gold[r] is not None else -1 for r in n_rows])

    def get_loss(self, examples: Iterable[Example], scores) -> tuple[float, list[Floats2d]]:
        loss, grads = 0.0, []
        for ex, (feats, s) in zip(examples, scores):
            truth = self._gold(ex, feats.rows)
            target = numpy.zeros_like(self.model.ops.to_numpy(s))
            keep = truth >= 0
            target[numpy.flatnonzero(keep), truth[keep]] = 1.0
            d = (self.model.ops.to_numpy(s) - target) * keep[:, None]
            grads.append(self.model.ops.asarray(d, dtype="float32"))
            loss += float((d ** 2).sum())
        return loss, grads

    def _inputs(self, examples: list[Example]) -> list[LineFeatures]:
        return [_features(ex.predicted)[1] for ex in examples]

    def _scored(self, inputs, scores):
        return list(zip(inputs, scores))

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp=None) -> None:
        sample = [_features(ex.predicted)[1] for ex in list(get_examples())[:10]]
        sample = [f for f in sample if f.rows] or None
        self.model.initialize(X=sample)

    def score(self, examples: Iterable[Example], **kwargs) -> dict[str, Any]:
        return score_layout(examples)


_CONTENT = re.compile(r"[^\W_]")


def _label_rules(feats: LineFeatures, labels: list[str | None]) -> None:
    """A rule line ("=====", "-----", "* * *": no letter or digit) carries no content: it
    belongs to the furniture it borders (the nearest line with content before it, else after it,
    that is not body), and to the body when it sits between body lines."""
    rows = feats.rows
    content = [bool(_CONTENT.search(t)) for t in feats.texts]
    if all(content):
        return
    for j, has in enumerate(content):
        if has:
            continue
        before = next((labels[rows[k]] for k in range(j - 1, -1, -1) if content[k]), None)
        after = next((labels[rows[k]] for k in range(j + 1, len(rows)) if content[k]), None)
        furniture = [x for x in (before, after) if x is not None and x != "body"]
        if furniture:
            labels[rows[j]] = furniture[0]
        elif before or after:
            labels[rows[j]] = "body"


def score_layout(examples: Iterable[Example]) -> dict[str, Any]:
    """Per-line precision/recall/F1 per label and macro-F1, over non-blank gold lines."""
    from medtext.evaluate import prf

    tp: dict[str, int] = {label: 0 for label in LABELS}
    fp, fn = dict(tp), dict(tp)
    for ex in examples:
        gold, pred = ex.reference._.line_labels or [], ex.predicted._.line_labels or []
        for g, p in zip(gold, pred):
            if g is None:
                continue
            if p == g:
                tp[g] += 1
            else:
                fn[g] += 1
                if p is not None:
                    fp[p] += 1
    per = {label: prf(tp[label], fp[label], fn[label]) for label in LABELS}
    present = [label for label in LABELS if tp[label] + fn[label] > 0]
    return {"layout_body_f": per["body"]["f1"], "layout_body_p": per["body"]["precision"],
            "layout_body_r": per["body"]["recall"],
            "layout_macro_f": round(sum(per[label]["f1"] for label in present) / max(len(present), 1), 4),
            "layout_per_label": per}


def outside_body(doc: Doc) -> Callable[[int, int], str | None]:
    """A test ``(start_char, end_char) -> None`` when the span lies in body lines (or the doc
    has no layout labels / masking is off), else the label of the first non-body line it touches."""
    labels = doc._.line_labels if Doc.has_extension("line_labels") else None
    if not labels or not doc.user_data.get(("medtext", "layout_mask"), True):
        return lambda start, end: None
    lines = _doc_lines(doc)
    starts = [ln["start"] for ln in lines]

    def test(start: int, end: int) -> str | None:
        i = max(bisect.bisect_right(starts, start) - 1, 0)
        while i < len(lines) and lines[i]["start"] < max(end, start + 1):
            label = labels[i]
            if label is not None and label != "body":
                return label
            i += 1
        return None

    return test


@Language.factory("medtext_layout", default_config={"mask": True, "model": DEFAULT_MODEL},
                  default_score_weights={"layout_body_f": 1.0, "layout_macro_f": 0.0,
                                         "layout_body_p": None, "layout_body_r": None})
def make_layout(nlp: Language, name: str, model: Model, mask: bool) -> LayoutClassifier:
    return LayoutClassifier(nlp.vocab, model, name, mask=mask)
