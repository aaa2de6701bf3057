"""Accuracy evaluation: assertion flags (``evaluate context``) and entity spans (``evaluate ner``).

Both return plain dicts (written as JSON by the CLI and the benchmarks):

- context: per flag TP/FP/FN/TN, precision, recall, F1, accuracy; the share of cases whose six
  flags are all right; the status accuracy; and the failing cases.
- ner: per label and micro-averaged precision/recall/F1, strict (same start, end and label)
  and lenient (overlapping spans with the same label).
"""

from __future__ import annotations

from typing import Any, Iterable

FLAGS = ("negated", "uncertain", "hypothetical", "historical", "family", "conditional")


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": tp, "fp": fp, "fn": fn}


def evaluate_context(nlp, cases) -> dict[str, Any]:
    from medtext.corpora.context_cases import case_doc

    counts = {f: {"tp": 0, "fp": 0, "fn": 0, "tn": 0} for f in FLAGS}
    all_right, failures = 0, []
    for case in cases:
        ent = case_doc(nlp, case).ents[0]
        got = {f: bool(getattr(ent._, f"is_{f}")) for f in FLAGS}
        for f in FLAGS:
            key = ("t" if got[f] == case.flags[f] else "f") + ("p" if got[f] else "n")
            counts[f][key] += 1
        if got == case.flags:
            all_right += 1
        else:
            failures.append({"id": case.id, "text": case.text, "target": case.text[case.start:case.end],
                             "expected": [f for f in FLAGS if case.flags[f]],
                             "got": [f for f in FLAGS if got[f]], "note": case.note})
    per_flag = {}
    for f, c in counts.items():
        per_flag[f] = {**prf(c["tp"], c["fp"], c["fn"]), "tn": c["tn"], "support": c["tp"] + c["fn"],
                       "accuracy": round((c["tp"] + c["tn"]) / max(len(cases), 1), 4)}
    return {"cases": len(cases), "all_flags_correct": round(all_right / max(len(cases), 1), 4),
            "per_flag": per_flag, "failures": failures}


def _spans(doc_ents: Iterable) -> set[tuple[int, int, str]]:
    return {(s, e, lab) for s, e, lab in doc_ents}


def evaluate_spans(pairs: Iterable[tuple[list, list]], labels: list[str] | None = None) -> dict[str, Any]:
    """``pairs`` of (gold, predicted) lists of (start_char, end_char, label) per document."""
    strict: dict[str, list[int]] = {}
    lenient: dict[str, list[int]] = {}
    n_docs = 0
    for gold, pred in pairs:
        n_docs += 1
        gold, pred = _spans(gold), _spans(pred)
        if labels:
            gold = {g for g in gold if g[2] in labels}
            pred = {p for p in pred if p[2] in labels}
        for lab in {g[2] for g in gold} | {p[2] for p in pred}:
            g = {x for x in gold if x[2] == lab}
            p = {x for x in pred if x[2] == lab}
            s = strict.setdefault(lab, [0, 0, 0])
            tp = len(g & p)
            s[0] += tp
            s[1] += len(p) - tp
            s[2] += len(g) - tp
            lv = lenient.setdefault(lab, [0, 0, 0])
            matched_p = {x for x in p if any(x[0] < y[1] and y[0] < x[1] for y in g)}
            matched_g = {y for y in g if any(x[0] < y[1] and y[0] < x[1] for x in p)}
            lv[0] += len(matched_g)
            lv[1] += len(p) - len(matched_p)
            lv[2] += len(g) - len(matched_g)

    def table(d):
        out = {lab: prf(*v) for lab, v in sorted(d.items())}
        tot = [sum(v[i] for v in d.values()) for i in range(3)]
        out["micro"] = prf(*tot)
        return out

    return {"documents": n_docs, "strict": table(strict), "lenient": table(lenient)}


def evaluate_linking(linker, mentions, *, ks=(1, 5, 25), batch_size: int = 256,
                     system: str | None = None, bootstrap: int = 0, seed: int = 0,
                     mistakes: list | None = None) -> dict[str, Any]:
    """Score a :class:`medtext.terminologies.linking.Linker` on gold mentions.

    - acc@k over coded mentions and over covered ones (a gold code is in the index): a
      composite mention counts as found when any of its codes is in the top k;
    - top-1 after the NIL threshold: micro accuracy and macro-F1 over gold codes (the ICF
      reference's measure), also at the 3-character category level for ICF-style codes;
    - NIL: accuracy on gold NIL mentions (codes ``[]``), the share of coded mentions wrongly
      left NIL, and ``decided_accuracy``: over all mentions, the share linked to a gold code or
      left NIL when no gold code is in the index (the linker's own thresholds; the calibration
      sweeps one threshold for all, and one per entity label under ``nil_calibration.by_label``:
      the values for a linker's ``nil_thresholds``).
    - ``bootstrap`` > 0: 95% intervals (percentiles of that many resamples of the documents,
      with replacement: mentions of one note are not independent) for acc@k over covered
      mentions, top-1 macro-F1 and accuracy, and the decided accuracy, under ``ci95``.
    Candidates beyond the linker's ``top`` are not seen: set its ``top`` to ``max(ks)``.

    ``mistakes``: a list that receives one dict per mention the linker decided wrongly (see
    :func:`_mistake`), in input order."""
    import time

    from medtext.terminologies.linking import Mention

    con = linker.index.tables["concepts"]
    in_index = {c for s, c in zip(con.column("system").to_pylist(), con.column("code").to_pylist())
                if system is None or s == system}
    hits = {k: 0 for k in ks}
    hits_cov = {k: 0 for k in ks}
    n = covered = nil_gold = nil_right = wrongly_nil = decided_right = 0
    top1: list[tuple[str, str]] = []  # (gold, predicted or "NIL") for single-code mentions
    sweep: list[tuple[float, bool, bool]] = []  # (top-1 score, top-1 right, should be NIL)
    sweep_label: list[str] = []  # each sweep entry's entity label
    t = time.perf_counter()
    results = []
    for s in range(0, len(mentions), batch_size):
        chunk = mentions[s:s + batch_size]
        results += linker.link([Mention(m.text, m.label, _sentence(m)) for m in chunk])
    seconds = time.perf_counter() - t
    rows = []  # per mention, for the bootstrap: (document, coded, covered, hit@k.., top-1 pair, decided right)
    for m, r in zip(mentions, results):
        best = r.best
        pred = best.code if best is not None else "NIL"
        first = r.candidates[0] if r.candidates else None
        is_cov = any(c in in_index for c in m.codes)
        # the score the linker decides NIL on (LinkResult.score: the top-1's, or the best before a
        # classifier's mix when higher), so the curve at the linker's threshold is its decided accuracy
        sweep.append((r.score if first else -1.0, bool(first and first.code in m.codes), not is_cov))
        sweep_label.append(m.label)
        # the linker's own decision: linked to a gold code, or NIL where no gold code is in the index
        right = (best is not None and best.code in m.codes) or (best is None and not is_cov)
        decided_right += right
        if mistakes is not None and not right:
            mistakes.append(_mistake(m, r, is_cov, max(ks)))
        doc = str(getattr(m, "id", "") or len(rows)).rsplit(":", 1)[0]
        if not m.codes:
            nil_gold += 1
            nil_right += best is None
            rows.append((doc, False, False, (), None, right))
            continue
        n += 1
        covered += is_cov
        ranked = [c.code for c in r.candidates]
        found = tuple(any(c in ranked[:k] for c in m.codes) for k in ks)
        for k, hit in zip(ks, found):
            hits[k] += hit
            hits_cov[k] += hit and is_cov
        wrongly_nil += best is None
        pair = (m.codes[0], pred) if len(m.codes) == 1 else None
        if pair:
            top1.append(pair)
        rows.append((doc, True, is_cov, found, pair, right))

    def category(code):  # ICF-style "d4500" -> "d450"
        return code[:4] if len(code) > 4 and code[0] in "bdes" and code[1:].isdigit() else code

    out = {"mentions": n, "covered": covered, "coverage": round(covered / max(n, 1), 4),
           "acc_all": {f"@{k}": round(hits[k] / max(n, 1), 4) for k in ks},
           "acc_covered": {f"@{k}": round(hits_cov[k] / max(covered, 1), 4) for k in ks},
           "top1": _macro(top1),
           "top1_category": _macro([(category(g), category(p)) for g, p in top1]),
           "nil": {"gold_nil": nil_gold, "nil_accuracy": round(nil_right / nil_gold, 4) if nil_gold else None,
                   "coded_left_nil": round(wrongly_nil / max(n, 1), 4),
                   "decided_accuracy": round(decided_right / max(len(mentions), 1), 4)},
           "nil_calibration": dict(nil_calibration(sweep), by_label={
               label: {k: v for k, v in nil_calibration([e for e, x in zip(sweep, sweep_label) if x == label]).items()
                       if k != "curve"} | {"mentions": sweep_label.count(label)}
               for label in sorted(set(sweep_label))}),
           "linker": linker.describe(),
           "mentions_per_s": round(len(mentions) / seconds, 1) if seconds else None}
    if bootstrap > 0:
        out["ci95"] = _linking_bootstrap(rows, ks, bootstrap, seed)
    return out


def _mistake(m, r, covered: bool, k: int) -> dict[str, Any]:
    """One wrongly decided mention: ``error`` is ``wrong code`` (linked, not to a gold code),
    ``left NIL`` (a gold code is in the index) or ``should be NIL`` (no gold code in the index, or
    none at all); ``decision_score`` is the score compared with the NIL threshold; ``gold_rank`` is
    the first gold code's place among the top ``k`` candidates (1 = first; null when none is there)."""
    best = r.best
    ranked = [c.code for c in r.candidates[:k]]
    rank = next((i + 1 for i, c in enumerate(ranked) if c in m.codes), None)
    error = "should be NIL" if not covered else ("left NIL" if best is None else "wrong code")
    return {"id": getattr(m, "id", ""), "text": m.text, "label": m.label, "gold": list(m.codes),
            "gold_in_index": covered, "error": error, "linked": best.code if best is not None else None,
            "decision_score": round(r.score, 4), "gold_rank": rank,
            "candidates": [{"code": c.code, "term": c.term, "score": round(c.score, 4)} for c in r.candidates[:5]]}


def _macro(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Macro-F1 over the gold codes of (gold, predicted) pairs, their number and the accuracy."""
    from collections import Counter

    gold, predicted = Counter(g for g, _ in pairs), Counter(p for _, p in pairs)
    tp = Counter(g for g, p in pairs if g == p)
    f1s = [prf(tp[c], predicted[c] - tp[c], gold[c] - tp[c])["f1"] for c in sorted(gold)]
    return {"macro_f1": round(sum(f1s) / max(len(f1s), 1), 4), "classes": len(gold),
            "accuracy": round(sum(tp.values()) / max(len(pairs), 1), 4)}


def _linking_bootstrap(rows, ks, times: int, seed: int) -> dict[str, Any]:
    """95% percentile intervals of the linking figures over ``times`` resamples of the documents."""
    import random

    if not rows:
        return {"resamples": times, "documents": 0}
    docs: dict[str, list] = {}
    for row in rows:
        docs.setdefault(row[0], []).append(row)
    names = sorted(docs)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(times):
        sample = [row for d in rng.choices(names, k=len(names)) for row in docs[d]]
        cov = [row for row in sample if row[2]]
        pairs = [row[4] for row in sample if row[4]]
        figures = {"decided_accuracy": sum(row[5] for row in sample) / len(sample)}
        if cov:  # a resample without covered (or single-code) mentions says nothing of those figures
            figures.update({f"acc_covered@{k}": sum(row[3][j] for row in cov) / len(cov) for j, k in enumerate(ks)})
        if pairs:
            t1 = _macro(pairs)
            figures.update({"top1_macro_f1": t1["macro_f1"], "top1_accuracy": t1["accuracy"]})
        for key, v in figures.items():
            samples.setdefault(key, []).append(v)
    out: dict[str, Any] = {"resamples": times, "documents": len(names)}
    for key, vs in samples.items():
        vs.sort()
        out[key] = [round(vs[int(0.025 * (len(vs) - 1))], 4), round(vs[int(round(0.975 * (len(vs) - 1)))], 4)]
    return out


def nil_calibration(sweep: list[tuple[float, bool, bool]]) -> dict[str, Any]:
    """Accuracy over all mentions for NIL thresholds 0.00..1.00: a mention is right when its
    top-1 is a gold code and its decision score (what the linker compares with its threshold) is at
    least the threshold, or when it should be NIL (no gold code, or none of its gold codes is in
    the index) and that score is below it. ``sweep``: (decision score, top-1 right, should be NIL)."""
    curve = {}
    for t in [i / 20 for i in range(21)]:
        right = sum((ok and score >= t) or (nil and score < t) for score, ok, nil in sweep)
        curve[f"{t:.2f}"] = round(right / max(len(sweep), 1), 4)
    best = max(curve, key=lambda k: (curve[k], -abs(float(k) - 0.5)))
    return {"best_threshold": float(best), "best_accuracy": curve[best], "curve": curve,
            "should_be_nil": sum(nil for _, _, nil in sweep)}


def _sentence(m) -> str:
    """The sentence around a gold mention (for cross-encoders that read context)."""
    if not m.context:
        return ""
    text = m.context
    starts = [text.rfind(c, 0, m.start) for c in (". ", "\n", "; ")]
    a = max(starts) + 1 if max(starts) >= 0 else 0
    ends = [e for e in (text.find(c, m.end) for c in (". ", "\n", "; ")) if e >= 0]
    return text[a:min(ends) if ends else len(text)].strip()
