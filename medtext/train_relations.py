"""Train the radiology graph models: RadGraph entities (spaCy CNN ``ner``) and relations
(``medtext_relations``), into ``$MEDTEXT_HOME/models/radgraph`` (the ``radiology`` preset).

    medtext train relations                                  # the team's reports (corpora/radgraph)
    medtext train relations --train train.json --dev dev.json   # licensed RadGraph JSON

The NER learns from the reports' text; the relation classifier from the gold entities (teacher
forcing), so each is trained on its own task. Each epoch is scored on dev (entity F1; relation
F1 given gold entities); the best epoch of each is kept.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def new_pipeline():
    import spacy

    from medtext.components.relations import register_relation_extensions
    from medtext.extensions import register_extensions

    register_extensions()
    register_relation_extensions()
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "medtext.clinical_tokenizer.v1"}}})
    nlp.add_pipe("ner")
    nlp.add_pipe("medtext_relations")
    return nlp


def report_docs(nlp, reports) -> list[tuple[Any, Any]]:
    """(plain doc, gold doc with entities and ``_.relations``) per report; entities are snapped
    to spaCy tokens (``expand``); an entity that overlaps an earlier one is skipped."""
    from spacy.util import filter_spans

    out = []
    for rep in reports:
        doc = nlp.make_doc(rep.text)
        spans = {}
        for e in rep.entities:
            sp = doc.char_span(e.start, e.end, label=e.label, alignment_mode="expand")
            if sp is not None:
                spans[e.id] = sp
        kept = filter_spans(list(spans.values()))
        doc.ents = kept
        kept_ids = {(s.start, s.end) for s in kept}
        by_id = {k: (s.start, s.end) for k, s in spans.items() if (s.start, s.end) in kept_ids}
        doc._.relations = [(*by_id[h], *by_id[t], rel, 1.0) for h, rel, t in rep.relations
                           if h in by_id and t in by_id]
        out.append((nlp.make_doc(rep.text), doc))
    return out


def _prf(tp, fp, fn):
    from medtext.evaluate import prf

    return prf(tp, fp, fn)


def score_docs(pairs, pred_docs) -> dict[str, Any]:
    """Strict entity F1 and relation F1 of predicted docs against gold docs (char offsets)."""
    from medtext.components.relations import relation_spans

    e_tp = e_fp = e_fn = r_tp = r_fp = r_fn = 0
    for (_, gold), pred in zip(pairs, pred_docs):
        g = {(e.start_char, e.end_char, e.label_) for e in gold.ents}
        p = {(e.start_char, e.end_char, e.label_) for e in pred.ents}
        e_tp, e_fp, e_fn = e_tp + len(g & p), e_fp + len(p - g), e_fn + len(g - p)

        def rels(doc):
            return {((h.start_char, h.end_char, h.label_), rel, (t.start_char, t.end_char, t.label_))
                    for h, t, rel, _ in relation_spans(doc)}

        gr, pr = rels(gold), rels(pred)
        r_tp, r_fp, r_fn = r_tp + len(gr & pr), r_fp + len(pr - gr), r_fn + len(gr - pr)
    return {"entities": _prf(e_tp, e_fp, e_fn), "relations": _prf(r_tp, r_fp, r_fn)}


def train_relations(*, train_json: Path | None = None, dev_json: Path | None = None, epochs: int = 40,
                    batch_size: int = 2, seed: int = 0, out: Path | None = None) -> dict[str, Any]:
    from spacy.training import Example
    from spacy.util import fix_random_seed, minibatch

    from medtext.atomic import save_dir_atomically
    from medtext.corpora.radgraph_data import read_radgraph_json, read_reports
    from medtext.pipeline import models_dir

    fix_random_seed(seed)
    if train_json is not None:
        train_reps = read_radgraph_json(train_json)
        dev_reps = read_radgraph_json(dev_json) if dev_json else train_reps[:max(1, len(train_reps) // 10)]
        source = str(train_json)
    else:
        train_reps, dev_reps, source = read_reports(split="train"), read_reports(split="dev"), "corpora/radgraph"
    nlp = new_pipeline()
    train, dev = report_docs(nlp, train_reps), report_docs(nlp, dev_reps)
    ner_examples = [Example(plain, gold) for plain, gold in train]
    rel_examples = [Example(gold.copy(), gold) for _, gold in train]
    for ex, (_, gold) in zip(rel_examples, train):
        ex.predicted.ents = [ex.predicted.char_span(e.start_char, e.end_char, label=e.label_) for e in gold.ents]
    optimizer = nlp.initialize(lambda: ner_examples)
    nlp.get_pipe("medtext_relations").initialize(lambda: rel_examples)
    ner, rel = nlp.get_pipe("ner"), nlp.get_pipe("medtext_relations")
    rng = random.Random(seed)
    best = {"ner": (-1.0, None), "rel": (-1.0, None)}
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = list(range(len(train)))
        rng.shuffle(order)
        losses: dict[str, float] = {}
        for batch in minibatch(order, size=batch_size):
            ner.update([ner_examples[i] for i in batch], sgd=optimizer, losses=losses, drop=0.1)
            rel.update([rel_examples[i] for i in batch], sgd=optimizer, losses=losses)
        # dev: entities predicted by the NER; relations predicted on the gold entities
        ner_docs = list(ner.pipe([plain.copy() for plain, _ in dev]))
        gold_ent_docs = []
        for _, gold in dev:
            d = gold.copy()
            d._.relations = None
            gold_ent_docs.append(d)
        rel_docs = list(rel.pipe(gold_ent_docs))
        ents_f = score_docs(dev, ner_docs)["entities"]["f1"]
        rels_f = score_docs(dev, rel_docs)["relations"]["f1"]
        history.append({"epoch": epoch, "losses": {k: round(v, 1) for k, v in losses.items()},
                        "dev_entity_f1": ents_f, "dev_relation_f1_gold_entities": rels_f})
        log.info("epoch %2d  ner loss %8.1f  rel loss %8.1f  dev entity F1 %.3f  relation F1 (gold ents) %.3f",
                 epoch, losses.get("ner", 0), losses.get("medtext_relations", 0), ents_f, rels_f)
        if ents_f > best["ner"][0]:
            best["ner"] = (ents_f, ner.model.to_bytes())
        if rels_f > best["rel"][0]:
            best["rel"] = (rels_f, rel.model.to_bytes())
    train_s = time.perf_counter() - t0
    ner.model.from_bytes(best["ner"][1])
    rel.model.from_bytes(best["rel"][1])
    target = out or models_dir() / "radgraph"
    report = {"source": source, "train_reports": len(train), "dev_reports": len(dev), "epochs": epochs,
              "best_dev_entity_f1": best["ner"][0], "best_dev_relation_f1_gold_entities": best["rel"][0],
              "train_seconds": round(train_s, 1), "history": history, "path": str(target)}
    nlp.meta["medtext_training"] = {k: v for k, v in report.items() if k not in ("path", "history")}
    save_dir_atomically(nlp.to_disk, target)
    return report
