"""Trained error-sentence classifier: a cross-encoder over (sentence, note context).

Each sentence of a note is paired with the note itself (``[CLS] [i of n] sentence [SEP] note [SEP]``,
the note truncated to ``max_length`` tokens, 128 by default) and scored by a sentence-transformers
``CrossEncoder`` with one output: the probability that this sentence holds a medical error.
The note's error flag is its best sentence's probability against ``threshold``; that sentence
is the one reported. The error type is not predicted by the model: :func:`guess_type` reads it
off the flagged sentence (organism names, drug words, diagnosis and treatment cues).

Training (``medtext train errors``, :func:`train_classifier`) uses MEDEC-MS validation
(``../shared/data/medec``) plus the errors :mod:`medtext.corpora.error_inject` injects into
the team's own notes; ``benchmarks/errors.py`` measures it by grouped k-fold cross-validation.
Starting weights: all-MiniLM-L6-v2 (packaged); any CrossEncoder / HF name or path works.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

_TYPE_CUES = (
    ("causalOrganism", re.compile(r"\b(culture|gram[- ]|organism|bacteri|virus|viral|fung|parasit|"
                                  r"[A-Z][a-z]+ (?:aureus|pneumoniae|coli|influenzae|trachomatis|"
                                  r"gonorrhoeae|difficile|pylori|albicans|vaginalis|pallidum))", re.I)),
    ("pharmacotherapy", re.compile(r"\b(\d+(?:\.\d+)? ?(?:mg|mcg|g|units?|meq)\b|dose|dosage|"
                                   r"prescrib|pharmacother|medication|drug)", re.I)),
    ("diagnosis", re.compile(r"\b(diagnos|most likely|consistent with|suggestive of|cause of|"
                             r"suspected|etiology)", re.I)),
    ("treatment", re.compile(r"\b(treat|therap|surgery|surgical|procedure|resection|repair|"
                             r"transfusion|radiation)", re.I)),
)


def guess_type(sentence: str) -> str:
    """A MEDEC error type for a flagged sentence, from cue words (``management`` otherwise)."""
    for label, rx in _TYPE_CUES:
        if rx.search(sentence):
            return label
    return "management"


def sentence_spans(doc) -> list[tuple[int, int]]:
    """Character spans of the non-blank sentences of a doc, surrounding whitespace trimmed (the
    whole doc when it has no sentence boundaries). Reads spaCy's SENT_START array, which is much
    faster than iterating ``doc.sents``."""
    from spacy.attrs import IDX, SENT_START

    text = doc.text
    if not len(doc):
        return []
    arr = doc.to_array([IDX, SENT_START])
    starts = [int(arr[0, 0])] + [int(x) for x in arr[1:, 0][arr[1:, 1] == 1]]
    bounds = starts[1:] + [len(text)]
    out = []
    for a, b in zip(starts, bounds):
        chunk = text[a:b]
        if chunk.strip():
            a += len(chunk) - len(chunk.lstrip())
            out.append((a, a + len(chunk.strip())))
    return out


def sentence_input(sentence: str, i: int, n: int) -> str:
    """The first text of a pair: the sentence with its position in the note (MEDEC errors sit
    late in a note more often than early)."""
    return f"[{i + 1} of {n}] {sentence.strip()}"


def pairs_of(sentences: Sequence[str], note: str | None = None) -> list[tuple[str, str]]:
    note = note if note is not None else " ".join(s.strip() for s in sentences)
    n = len(sentences)
    return [(sentence_input(s, i, n), note) for i, s in enumerate(sentences)]


class ErrorClassifier:
    """Score sentences of notes with a trained cross-encoder (loaded once per process)."""

    name = "classifier"

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 32,
                 threshold: float | None = None, max_length: int = 128, max_sentences: int = 200):
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_sentences = max_sentences
        self._model = None
        self.threshold = threshold if threshold is not None else self._trained_threshold()

    def _path(self) -> str:
        from medtext.terminologies.embeddings import resolve_model

        return resolve_model(self.model_name)[0]

    def _trained_threshold(self) -> float:
        """The threshold saved by ``medtext train errors`` (0.5 for other models)."""
        try:
            meta = json.loads((Path(self._path()) / "medtext_training.json").read_text())
            return float(meta.get("threshold", 0.5))
        except (OSError, ValueError, TypeError):
            return 0.5

    @property
    def model(self):
        if self._model is None:
            from medtext.terminologies.embeddings import load_model

            self._model = load_model(self.model_name, device=self.device, kind="cross")
            self._model.max_length = self.max_length
        return self._model

    def score_notes(self, notes: Sequence[Sequence[str]], contexts: Sequence[str] | None = None) -> list[list[float]]:
        """Error probability of every sentence of every note (one model call per batch)."""
        flat: list[tuple[str, str]] = []
        sizes = []
        for i, sents in enumerate(notes):
            p = pairs_of(sents, contexts[i] if contexts else None)
            flat += p
            sizes.append(len(p))
        if not flat:
            return [[] for _ in notes]
        scores = self.model.predict(flat, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True)
        out, k = [], 0
        for n in sizes:
            out.append([float(x) for x in scores[k:k + n]])
            k += n
        return out

    def find(self, docs: list) -> list[list[dict[str, Any]]]:
        texts = [d.text for d in docs]
        spans = [sentence_spans(d)[: self.max_sentences] for d in docs]
        scores = self.score_notes([[t[a:b] for a, b in ss] for t, ss in zip(texts, spans)], texts)
        out = []
        for text, ss, sc in zip(texts, spans, scores):
            if not sc:
                out.append([])
                continue
            best = max(range(len(sc)), key=sc.__getitem__)
            if sc[best] < self.threshold:
                out.append([])
                continue
            a, b = ss[best]
            etype = guess_type(text[a:b])
            out.append([{"start": a, "end": b, "type": etype,
                         "message": f"trained classifier: likely {etype} error (p={sc[best]:.2f})",
                         "correction": None, "score": round(sc[best], 4), "detector": self.name}])
        return out


def training_rows(notes: Sequence[tuple[Sequence[str], int]], *, negatives: int = 4, seed: int = 0,
                  positive_repeat: int = 1) -> dict[str, list]:
    """Cross-encoder rows from (sentences, error sentence index or -1) notes: every error
    sentence (repeated ``positive_repeat`` times) and up to ``negatives`` other sentences per
    note, each paired with its note."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"sentence": [], "note": [], "label": []}
    for sents, err in notes:
        note = " ".join(s.strip() for s in sents)
        idx = [i for i, s in enumerate(sents) if s.strip()]
        neg = [i for i in idx if i != err]
        rng.shuffle(neg)
        chosen = [(i, 0.0) for i in neg[:negatives]]
        if 0 <= err < len(sents):
            chosen += [(err, 1.0)] * positive_repeat
        for i, y in chosen:
            rows["sentence"].append(sentence_input(sents[i], i, len(sents)))
            rows["note"].append(note)
            rows["label"].append(y)
    return rows


def train_classifier(notes: Sequence[tuple[Sequence[str], int]], *, base: str, out: Path,
                     epochs: int = 1, batch_size: int = 16, lr: float = 3e-5, negatives: int = 3,
                     positive_repeat: int = 2, max_length: int = 128, seed: int = 0,
                     device: str | None = None, threshold: float = 0.5,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fine-tune a cross-encoder on notes and save it (safetensors) with its threshold."""
    import torch

    from medtext.terminologies.embeddings import resolve_model
    from medtext.train_cross import fit_cross_encoder

    torch.manual_seed(seed)
    rows = training_rows(notes, negatives=negatives, seed=seed, positive_repeat=positive_repeat)
    seconds = fit_cross_encoder(rows, base=base, out=out, epochs=epochs, batch_size=batch_size, lr=lr,
                                seed=seed, device=device, max_length=max_length, progress=False)
    stats = {"base": resolve_model(base)[1], "notes": len(notes), "pairs": len(rows["label"]),
             "positives": int(sum(rows["label"])), "epochs": epochs, "batch_size": batch_size,
             "learning_rate": lr, "max_length": max_length, "threshold": threshold,
             "train_seconds": round(seconds, 1), **(extra or {})}
    (out / "medtext_training.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
