"""Train the radiology graph models: RadGraph entities (spaCy CNN ``ner``) and relations
(``medtext_relations``), into ``$MEDTEXT_HOME/models/radgraph`` (the ``radiology`` preset).

    medtext train relations                                  # the team's reports (corpora/radgraph)
    medtext train relations --train train.json --dev dev.json   # licensed RadGraph JSON
    medtext train relations --arch trf [--model NAME]           # a Hugging Face encoder (radiology_trf)

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


ARCHS = ("cnn", "trf")


def transformer_tok2vec(name: str) -> dict[str, Any]:
    """An inline ``spacy-transformers`` tok2vec (its weights are saved with the component)."""
    return {"@architectures": "spacy-transformers.Tok2VecTransformer.v3", "name": name,
            "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128, "stride": 96},
            "tokenizer_config": {"use_fast": True}, "transformer_config": {}, "mixed_precision": False,
            "grad_scaler_config": {}, "pooling": {"@layers": "reduce_mean.v1"}, "grad_factor": 1.0}


def new_pipeline(arch: str = "cnn", model: str | None = None):
    """A blank pipeline with ``ner`` + ``medtext_relations``: CNN tok2vecs (``cnn``) or one
    Hugging Face encoder per component (``trf``; default all-MiniLM-L6-v2, packaged)."""
    import spacy

    from medtext.components.relations import DEFAULT_MODEL, register_relation_extensions
    from medtext.errors import ConfigError
    from medtext.extensions import register_extensions

    if arch not in ARCHS:
        raise ConfigError(f"unknown relations architecture {arch!r}: use {' or '.join(ARCHS)}")
    if model and arch != "trf":
        raise ConfigError("a transformer model name needs --arch trf")
    register_extensions()
    register_relation_extensions()
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "medtext.clinical_tokenizer.v1"}}})
    if arch == "cnn":
        nlp.add_pipe("ner")
        nlp.add_pipe("medtext_relations")
        return nlp
    from medtext.pipeline import require_spacy_transformers
    from medtext.terminologies.embeddings import resolve_model

    require_spacy_transformers("--arch trf needs spacy-transformers")

    name = model or resolve_model("all-MiniLM-L6-v2")[0]
    nlp.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
        "hidden_width": 64, "maxout_pieces": 2, "use_upper": False, "nO": None,
        "tok2vec": transformer_tok2vec(name)}})
    rel_model = {k: v for k, v in DEFAULT_MODEL.items() if k != "tok2vec"}
    rel_model["tok2vec"] = {"@architectures": "medtext.ProjectedTok2Vec.v1", "width": 128,
                            "tok2vec": transformer_tok2vec(name)}
    nlp.add_pipe("medtext_relations", config={"model": rel_model})
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


def _finish_split(model, encoder_optimizer, head_optimizer) -> None:
    """Apply the accumulated gradients: the tok2vec (encoder) subtree with ``encoder_optimizer``,
    the classifier's other layers with ``head_optimizer``."""
    tok2vec = model.layers[0]
    tok2vec.finish_update(encoder_optimizer)
    encoder_ids = {node.id for node in tok2vec.walk()}
    for node in model.walk():
        if node.id in encoder_ids:
            continue
        for name in node.param_names:
            if node.has_grad(name):
                param, _ = head_optimizer((node.id, name), node.get_param(name), node.get_grad(name))
                node.set_param(name, param)


def train_relations(*, train_json: Path | None = None, dev_json: Path | None = None, epochs: int | None = None,
                    batch_size: int = 2, seed: int = 0, out: Path | None = None, arch: str = "cnn",
                    model: str | None = None, learn_rate: float | None = None,
                    gpu_id: int = -1) -> dict[str, Any]:
    """``arch="trf"``: a Hugging Face encoder (``model``, default all-MiniLM-L6-v2) under both
    models, Adam at ``learn_rate`` (default 1e-4) with linear warm-up and decay; saved to
    ``$MEDTEXT_HOME/models/radgraph_trf`` (the ``radiology_trf`` preset). ``epochs`` defaults to
    40 for the CNN and 20 for the transformer (its dev scores level off by then)."""
    from spacy.training import Example
    from spacy.util import fix_random_seed, minibatch

    from medtext.atomic import save_dir_atomically
    from medtext.corpora.radgraph_data import read_radgraph_json, read_reports
    from medtext.pipeline import models_dir

    fix_random_seed(seed)
    epochs = epochs or (20 if arch == "trf" else 40)
    if gpu_id >= 0:
        from spacy.util import require_gpu

        require_gpu(gpu_id)
    if train_json is not None:
        train_reps = read_radgraph_json(train_json)
        dev_reps = read_radgraph_json(dev_json) if dev_json else train_reps[:max(1, len(train_reps) // 10)]
        source = str(train_json)
    else:
        train_reps, dev_reps, source = read_reports(split="train"), read_reports(split="dev"), "corpora/radgraph"
    nlp = new_pipeline(arch, model)
    from medtext.device import use_numpy_blas

    use_numpy_blas(nlp)  # CPU: numpy's BLAS, not BLIS (see medtext.device)
    train, dev = report_docs(nlp, train_reps), report_docs(nlp, dev_reps)
    ner_examples = [Example(plain, gold) for plain, gold in train]
    rel_examples = [Example(gold.copy(), gold) for _, gold in train]
    for ex, (_, gold) in zip(rel_examples, train):
        ex.predicted.ents = [ex.predicted.char_span(e.start_char, e.end_char, label=e.label_) for e in gold.ents]
    optimizer = nlp.initialize(lambda: ner_examples)
    head_optimizer = None
    if arch == "trf":  # spaCy's default rate (1e-3) wrecks a pretrained encoder
        from thinc.api import Adam, warmup_linear

        steps = epochs * -(-len(train) // batch_size)
        optimizer = Adam(warmup_linear(learn_rate or 1e-4, max(1, steps // 10), steps))
        head_optimizer = Adam(1e-3)  # the relation classifier's own layers learn at the CNN's rate
    elif learn_rate is not None:
        optimizer.learn_rate = learn_rate
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
            if head_optimizer is None:
                rel.update([rel_examples[i] for i in batch], sgd=optimizer, losses=losses)
            else:
                rel.update([rel_examples[i] for i in batch], sgd=None, losses=losses)
                _finish_split(rel.model, optimizer, head_optimizer)
            optimizer.step_schedules()  # the trf warm-up / decay schedule advances per batch
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
    target = out or models_dir() / ("radgraph_trf" if arch == "trf" else "radgraph")
    report = {"source": source, "arch": arch, "train_reports": len(train), "dev_reports": len(dev), "epochs": epochs,
              "best_dev_entity_f1": best["ner"][0], "best_dev_relation_f1_gold_entities": best["rel"][0],
              "train_seconds": round(train_s, 1), "history": history, "path": str(target)}
    nlp.meta["medtext_training"] = {k: v for k, v in report.items() if k not in ("path", "history")}
    save_dir_atomically(nlp.to_disk, target)
    return report
