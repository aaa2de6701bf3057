"""MEDEC metrics for error detection and correction, and predictions from a pipeline.

Metrics follow MEDEC / MEDIQA-CORR 2024 (re-implemented here):

- **error flag accuracy**: share of texts whose predicted flag (0/1) equals the gold flag;
- **error sentence accuracy**: share of texts whose predicted sentence id equals the gold one
  (``-1`` for a text without error); a text without an answer counts as wrong for both;
- **corrections**: per text, a gold correction ``NA`` (no error) answered ``NA`` scores 1, one
  side ``NA`` and not the other scores 0, otherwise the metric of (prediction, reference). The
  composite is the sum over texts divided by the number of texts. ROUGE-1 F (lower-cased
  alphanumeric unigrams) is always computed; BERTScore F1 and BLEURT when a model is given
  (``bertscore=``/``bleurt=`` any HF name or path; clipped to 0..1 as in the official script).
  The aggregate is the composite of the per-text mean of the available metrics.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any, Iterable

from medtext.corpora.medec import ERROR_TYPES, MedecText, RunAnswer

log = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z0-9]+")


def rouge1_f(prediction: str, reference: str) -> float:
    """ROUGE-1 F-measure of lower-cased alphanumeric unigrams (clipped counts)."""
    p = Counter(_WORD.findall(prediction.lower()))
    r = Counter(_WORD.findall(reference.lower()))
    overlap = sum((p & r).values())
    if not overlap:
        return 0.0
    prec, rec = overlap / sum(p.values()), overlap / sum(r.values())
    return 2 * prec * rec / (prec + rec)


def _clip(x: float) -> float:
    return max(0.0, min(1.0, float(x)))


def bertscore_f1(predictions: list[str], references: list[str], model: str, *, layer: int | None = None,
                 baseline: float | None = None, device: str = "cpu", batch_size: int = 16) -> list[float]:
    """BERTScore F1 (greedy cosine matching of contextual token embeddings, no idf) of each
    pair with any HF encoder; ``layer`` picks a hidden layer (default the last), ``baseline``
    rescales as ``(F - b) / (1 - b)`` (the official MEDEC run used microsoft/deberta-xlarge-mnli,
    layer 40, with baseline rescaling)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    enc = AutoModel.from_pretrained(model).to(device).eval()

    def embed(texts: list[str]):
        out = []
        for s in range(0, len(texts), batch_size):
            batch = tok(texts[s:s + batch_size], padding=True, truncation=True, max_length=256,
                        return_tensors="pt").to(device)
            with torch.no_grad():
                hs = enc(**batch, output_hidden_states=True).hidden_states
            h = hs[layer if layer is not None else -1]
            h = torch.nn.functional.normalize(h, dim=-1)
            special = torch.tensor([[t in tok.all_special_ids for t in row] for row in batch["input_ids"].tolist()],
                                   device=h.device)
            keep = batch["attention_mask"].bool() & ~special
            for i in range(h.shape[0]):
                v = h[i][keep[i]]
                out.append(v if len(v) else h[i][batch["attention_mask"][i].bool()])
        return out

    pe, re_ = embed(predictions), embed(references)
    scores = []
    for a, b in zip(pe, re_):
        sim = a @ b.T
        p, r = sim.max(dim=1).values.mean().item(), sim.max(dim=0).values.mean().item()
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        if baseline is not None:
            f = (f - baseline) / (1 - baseline)
        scores.append(_clip(f))
    return scores


def bleurt_scores(predictions: list[str], references: list[str], model: str, *, device: str = "cpu",
                  batch_size: int = 16) -> list[float]:
    """BLEURT-style learned scores: any HF sequence-regression checkpoint (one output) applied to
    (reference, candidate) pairs, e.g. a PyTorch port of BLEURT-20; clipped to 0..1."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    net = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
    out: list[float] = []
    for s in range(0, len(predictions), batch_size):
        batch = tok(references[s:s + batch_size], predictions[s:s + batch_size], padding=True,
                    truncation=True, max_length=512, return_tensors="pt").to(device)
        with torch.no_grad():
            logits = net(**batch).logits
        out += [_clip(x) for x in logits[:, 0].tolist()]
    return out


def _acc(hits: int, n: int) -> float:
    return hits / n if n else 0.0


def score_medec(gold: list[MedecText], run: dict[str, RunAnswer], *, bertscore: str | None = None,
                bertscore_layer: int | None = None, bertscore_baseline: float | None = None,
                bleurt: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """MEDEC metrics of ``run`` against ``gold`` (see the module docstring)."""
    n = len(gold)
    flag_hits = sent_hits = 0
    tp = fp = fn = 0
    by_type: dict[str, dict[str, int]] = {t: {"texts": 0, "flag": 0, "sentence": 0} for t in (*ERROR_TYPES, "none")}
    pairs: list[tuple[int, str, str]] = []  # (gold index, prediction, reference)
    both_na = 0
    for i, g in enumerate(gold):
        a = run.get(g.text_id)
        key = g.error_type or "none"
        by_type[key]["texts"] += 1
        if a is None:
            fn += g.flag
            continue
        if a.flag == g.flag:
            flag_hits += 1
            by_type[key]["flag"] += 1
        pred_sid = a.sentence_id if a.flag else -1
        if pred_sid == (g.sentence_id if g.flag else -1):
            sent_hits += 1
            by_type[key]["sentence"] += 1
        tp += a.flag and g.flag
        fp += a.flag and not g.flag
        fn += g.flag and not a.flag
        ref = g.corrected_sentence if g.flag else None
        pred = a.correction if a.flag else None
        if ref is None and pred is None:
            both_na += 1
        elif ref is not None and pred is not None:
            pairs.append((i, pred, ref))
    prec, rec = _acc(tp, tp + fp), _acc(tp, tp + fn)
    result: dict[str, Any] = {
        "texts": n, "with_error": sum(g.flag for g in gold),
        "answered": sum(1 for g in gold if g.text_id in run),
        "flag_accuracy": _acc(flag_hits, n), "sentence_accuracy": _acc(sent_hits, n),
        "flag_precision": prec, "flag_recall": rec,
        "flag_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "by_type": {t: {"texts": v["texts"], "flag_accuracy": _acc(v["flag"], v["texts"]),
                        "sentence_accuracy": _acc(v["sentence"], v["texts"])}
                    for t, v in by_type.items() if v["texts"]},
    }
    preds, refs = [p for _, p, _ in pairs], [r for _, _, r in pairs]
    metrics = {"rouge1": [rouge1_f(p, r) for p, r in zip(preds, refs)]}
    if bertscore and pairs:
        metrics["bertscore"] = bertscore_f1(preds, refs, bertscore, layer=bertscore_layer,
                                            baseline=bertscore_baseline, device=device)
    if bleurt and pairs:
        metrics["bleurt"] = bleurt_scores(preds, refs, bleurt, device=device)
    corrections: dict[str, Any] = {"both_na": both_na, "scored_pairs": len(pairs)}
    for name, vals in metrics.items():
        corrections[f"{name}_composite"] = (sum(vals) + both_na) / n if n else 0.0
        corrections[f"{name}_pairs_mean"] = sum(vals) / len(vals) if vals else None
    if pairs:
        per_text = [sum(v[k] for v in metrics.values()) / len(metrics) for k in range(len(pairs))]
        corrections["aggregate_composite"] = (sum(per_text) + both_na) / n
    else:
        corrections["aggregate_composite"] = both_na / n if n else 0.0
    corrections["aggregate_of"] = sorted(metrics)
    result["corrections"] = corrections
    return result


def sentence_of(text: MedecText, start: int, end: int) -> int:
    """The MEDEC sentence id overlapping ``[start, end)`` the most (-1 when none)."""
    best, best_overlap = -1, 0
    for i, span in enumerate(text.spans):
        if span is None:
            continue
        ov = min(end, span[1]) - max(start, span[0])
        if ov > best_overlap:
            best, best_overlap = i, ov
    return best


def answer_from_findings(text: MedecText, findings: Iterable[dict], *, threshold: float = 0.0,
                         copy_sentence: bool = False) -> RunAnswer:
    """The run answer for one text from ``doc._.errors``: the best-scored finding that maps to
    a MEDEC sentence (score ``None`` counts as 1.0). ``copy_sentence`` answers the flagged
    sentence itself when the detector has no correction (else ``NA``)."""
    best = None
    for f in findings:
        score = 1.0 if f.get("score") is None else float(f["score"])
        if score < threshold:
            continue
        sid = sentence_of(text, f["start"], f["end"])
        if sid < 0:
            continue
        if best is None or score > best[0]:
            best = (score, sid, f.get("correction"))
    if best is None:
        return RunAnswer(0, -1, None)
    _, sid, corr = best
    if corr is None and copy_sentence:
        corr = text.sentences[sid]
    return RunAnswer(1, sid, corr)


def predict_medec(nlp, texts: list[MedecText], *, threshold: float = 0.0, copy_sentence: bool = False,
                  batch_size: int = 16) -> tuple[dict[str, RunAnswer], float]:
    """Run ``nlp`` (which must hold ``medtext_errors``) on every text -> (answers, seconds)."""
    t = time.perf_counter()
    run: dict[str, RunAnswer] = {}
    docs = nlp.pipe((x.text for x in texts), batch_size=batch_size)
    for x, doc in zip(texts, docs):
        run[x.text_id] = answer_from_findings(x, doc._.errors or [], threshold=threshold,
                                              copy_sentence=copy_sentence)
    return run, time.perf_counter() - t
