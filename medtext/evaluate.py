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


# SNOMED CT kinds each entity label is linked to (the linker's routing)
ROUTES = {
    "PROBLEM": ("disorder", "finding", "morphologic abnormality"),
    "PROCEDURE": ("procedure", "regime/therapy"),
    "TEST": ("procedure", "observable entity"),
    "TREATMENT": ("procedure", "regime/therapy"),
    "DRUG": ("substance", "product", "medicinal product", "clinical drug"),
    "ANATOMY": ("body structure",),
}


def evaluate_linking(index, mentions, *, mode: str = "lexical", ks=(1, 5, 25),
                     routed: bool = True, pool: int = 200) -> dict[str, Any]:
    """acc@k over all mentions and over covered ones (a gold code is in the index).

    Candidates: the index's ``search`` (``mode`` lexical, dense or hybrid) over SNOMED CT,
    ``pool`` concepts deep, then (``routed``) only the kinds the mention's label routes to."""
    import time

    codes_in_index = {c for s, c in zip(index.tables["concepts"].column("system").to_pylist(),
                                        index.tables["concepts"].column("code").to_pylist()) if s == "snomed"}
    hits = {k: 0 for k in ks}
    hits_cov = {k: 0 for k in ks}
    n = covered = 0
    t = time.perf_counter()
    for m in mentions:
        if not m.codes:
            continue  # NO_CODE rows are not scored
        n += 1
        is_cov = any(c in codes_in_index for c in m.codes)
        covered += is_cov
        found = index.search(m.text, k=pool, system="snomed", mode=mode)
        if routed and m.label in ROUTES:
            found = [h for h in found if h["kind"] in ROUTES[m.label]]
        ranked = [h["code"] for h in found]
        for k in ks:
            if any(c in ranked[:k] for c in m.codes):
                hits[k] += 1
                hits_cov[k] += is_cov
    seconds = time.perf_counter() - t
    return {"mentions": n, "covered": covered, "coverage": round(covered / max(n, 1), 4),
            "mode": mode, "routed": routed,
            "acc_all": {f"@{k}": round(hits[k] / max(n, 1), 4) for k in ks},
            "acc_covered": {f"@{k}": round(hits_cov[k] / max(covered, 1), 4) for k in ks},
            "mentions_per_s": round(n / seconds, 1) if seconds else None}
