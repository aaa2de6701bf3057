"""RadGraph scoring: entity and relation micro-F1, and RadGraph F1 (RG_E, RG_ER, full).

Both sides are RadGraph JSON documents (``{doc_key: {text, entities}}``, see
:mod:`medtext.corpora.radgraph_data`), paired by doc key.

- **Entity micro-F1** (strict): an entity is right when its token span and label match.
- **Relation micro-F1** (strict): a relation is right when its type and both ends (token span
  and label) match; per relation type too.
- **RadGraph F1** (Delbrouck et al. 2022, the "F1RadGraph" reward), per report then averaged:
  RG_E compares the sets of (entity tokens, label); RG_ER the sets of (tokens, label, has a
  relation); *full* the sets where an entity without relations counts as (tokens, label) and one
  with relations as one (tokens, label, relation, target tokens) item per relation (tokens
  compared lower-cased). Two empty sets score 1.0 (a normal report with nothing to annotate,
  predicted as such).
"""

from __future__ import annotations

from typing import Any

from medtext.evaluate import prf


def _entities(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return doc.get("entities") or {}


def _set_f1(pred: set, gold: set) -> float:
    if not pred and not gold:
        return 1.0
    tp = len(pred & gold)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(gold) if gold else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def rg_sets(doc: dict[str, Any]) -> tuple[set, set, set]:
    """The RG_E, RG_ER and full item sets of one RadGraph document."""
    ents = _entities(doc)
    simple = {(e["tokens"], e["label"]) for e in ents.values()}
    partial = {(e["tokens"], e["label"], bool(e.get("relations"))) for e in ents.values()}
    full: set = set()
    for e in ents.values():
        if not e.get("relations"):
            full.add((e["tokens"], e["label"]))
        for rel, target in e["relations"]:
            t = ents.get(str(target))
            if t is not None:
                full.add((e["tokens"].lower(), e["label"], rel, t["tokens"].lower()))
    return simple, partial, full


def _count_by(counts: dict[str, list[int]], gold: set, pred: set, key) -> None:
    """Add tp / fp / fn per ``key(item)`` to ``counts``."""
    for k in {key(x) for x in gold | pred}:
        c = counts.setdefault(k, [0, 0, 0])
        g, p = {x for x in gold if key(x) == k}, {x for x in pred if key(x) == k}
        c[0] += len(g & p)
        c[1] += len(p - g)
        c[2] += len(g - p)


def score_radgraph(gold: dict[str, Any], pred: dict[str, Any]) -> dict[str, Any]:
    """Scores of ``pred`` against ``gold`` (RadGraph JSON dicts); every gold doc must be predicted
    (a missing prediction counts as an empty graph) and texts must agree token by token."""
    from medtext.errors import InputError

    counts = {"ent": [0, 0, 0]}
    by_label: dict[str, list[int]] = {}
    by_rel: dict[str, list[int]] = {}
    rg = {"RG_E": [], "RG_ER": [], "full": []}
    for key, g in gold.items():
        p = pred.get(key, {"text": g["text"], "entities": {}})
        if p.get("text", g["text"]).split() != g["text"].split():
            raise InputError(str(key), "the predicted text differs from the gold text for this doc key; "
                                       "score predictions made on the same tokenised text", "bad_input")
        ge, pe = _entities(g), _entities(p)
        g_ents = {(int(e["start_ix"]), int(e["end_ix"]), e["label"]) for e in ge.values()}
        p_ents = {(int(e["start_ix"]), int(e["end_ix"]), e["label"]) for e in pe.values()}
        _count_by(by_label, g_ents, p_ents, key=lambda x: x[2])
        counts["ent"][0] += len(g_ents & p_ents)
        counts["ent"][1] += len(p_ents - g_ents)
        counts["ent"][2] += len(g_ents - p_ents)

        def rels(ents):
            out = set()
            for e in ents.values():
                for rel, target in e.get("relations") or []:
                    t = ents.get(str(target))
                    if t is not None:
                        out.add(((int(e["start_ix"]), int(e["end_ix"]), e["label"]), rel,
                                 (int(t["start_ix"]), int(t["end_ix"]), t["label"])))
            return out

        g_rels, p_rels = rels(ge), rels(pe)
        _count_by(by_rel, g_rels, p_rels, key=lambda x: x[1])
        for name, gs, ps in zip(("RG_E", "RG_ER", "full"), rg_sets(g), rg_sets(p)):
            rg[name].append(_set_f1(ps, gs))
    rel_total = [sum(c[i] for c in by_rel.values()) for i in range(3)]
    n = max(len(gold), 1)
    return {"reports": len(gold),
            "entities": {**prf(*counts["ent"]), "by_label": {k: prf(*v) for k, v in sorted(by_label.items())}},
            "relations": {**prf(*rel_total), "by_type": {k: prf(*v) for k, v in sorted(by_rel.items())}},
            "radgraph_f1": {k: round(sum(v) / n, 4) for k, v in rg.items()}}


def doc_to_radgraph(doc, token_spans: list[tuple[int, int]]) -> dict[str, Any]:
    """A processed Doc's entities and ``_.relations`` as one RadGraph JSON document over the
    given word tokens (character spans of ``doc.text``); an entity covers the words it touches."""
    import bisect

    from medtext.components.relations import relation_spans

    starts = [a for a, _ in token_spans]
    ents, num = {}, {}
    for k, e in enumerate(doc.ents):
        i = max(bisect.bisect_right(starts, e.start_char) - 1, 0)
        j = max(bisect.bisect_right(starts, e.end_char - 1) - 1, i)
        num[(e.start, e.end)] = str(k + 1)
        ents[str(k + 1)] = {"tokens": " ".join(doc.text[a:b] for a, b in token_spans[i:j + 1]),
                            "label": e.label_, "start_ix": i, "end_ix": j, "relations": []}
    for h, t, label, _ in relation_spans(doc):
        ents[num[(h.start, h.end)]]["relations"].append([label, num[(t.start, t.end)]])
    return {"text": " ".join(doc.text[a:b] for a, b in token_spans), "entities": ents}


def predict_radgraph(nlp, items: list[tuple[str, str, list[tuple[int, int]]]],
                     batch_size: int = 32) -> tuple[dict[str, Any], float]:
    """Run ``nlp`` over ``(doc key, text, word token spans)`` items; RadGraph JSON and seconds."""
    import time

    t = time.perf_counter()
    docs = list(nlp.pipe([text for _, text, _ in items], batch_size=batch_size))
    seconds = time.perf_counter() - t
    return {key: doc_to_radgraph(doc, toks) for (key, _, toks), doc in zip(items, docs)}, seconds
