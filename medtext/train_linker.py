"""``medtext train linker``: fine-tune the linker's bi-encoder and train its cross-encoder.

Training data comes only from the terminology index and the team's own linked notes
(``corpora/icf``, their ``train`` and ``dev`` splits, the SNOMED CT-coded clinical notes
of ``corpora/snomed``, their ``train`` split, and the procedure-coded case reports of
``corpora/cases``, their ``train`` split; the ICF test and held-out notes, the SNOMED CT dev and
test notes and the dev case reports are never read here). ``systems`` (``--system``) keeps the
pairs and queries of some terminology systems only (e.g. ``snomed``):

1. **Bi-encoder** (SapBERT-style). Pairs of names of the same concept (synonym/synonym,
   synonym/preferred term, definition/preferred term) and (team mention, gold concept term),
   each with a mined hard negative: the nearest synonym of another concept of the same system
   under the starting model. Loss: multiple negatives ranking (in-batch + the hard negative).
   Saved to ``$MEDTEXT_HOME/models/linker_bi``; the index is then re-embedded with it
   (``medtext:linker_bi``), since the linker refuses mismatched embeddings.
2. **Cross-encoder**. Queries are synonyms and team mentions; for each, the gold concept and
   up to ``negatives`` hard negatives taken from the fine-tuned linker's own top candidates
   (lexical + dense). Binary cross-entropy on (query, candidate text). Saved to
   ``$MEDTEXT_HOME/models/linker_cross``.

Both start from all-MiniLM-L6-v2 (packaged, offline) unless told otherwise; any
sentence-transformers / HF name or path works (``--base``). Weights are saved as safetensors.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy

from medtext.atomic import save_dir_atomically

log = logging.getLogger(__name__)


def _concept_texts(index, systems: set[str] | None = None
                   ) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], str]]:
    """(system, code) -> distinct names (preferred first), and -> first definition; the concepts
    of ``systems`` only when given."""
    from medtext.terminologies.index import normalize

    names: dict[tuple[str, str], list[str]] = {}
    seen: dict[tuple[str, str], set[str]] = {}
    con = index.tables["concepts"]
    for s, c, t in zip(con.column("system").to_pylist(), con.column("code").to_pylist(), con.column("term").to_pylist()):
        if systems is None or s in systems:
            names[(s, c)] = [t]
            seen[(s, c)] = {normalize(t)}
    syn = index.tables["synonyms"]
    for s, c, t in zip(syn.column("system").to_pylist(), syn.column("code").to_pylist(), syn.column("term").to_pylist()):
        key = (s, c)
        if key in names and normalize(t) not in seen[key]:
            seen[key].add(normalize(t))
            names[key].append(t)
    from medtext.terminologies.linking import first_definitions

    return names, first_definitions(index)


def team_mentions(splits: tuple[str, ...] = ("train", "dev"),
                  systems: set[str] | None = None) -> list[tuple[str, str, str, str]]:
    """(mention, label, system, code) of the team's linked notes (single-code): the ICF notes of
    ``splits``, the SNOMED CT-coded clinical notes of the train split and the procedure spans of
    the train case reports (their dev and test splits are evaluation data); of ``systems`` only
    when given."""
    from medtext.corpora.linking_data import CASES_DIR, ICF_DIR, SNOMED_DIR, read_medtext_linking

    out = [(m.text, m.label, "icf", m.codes[0]) for m in read_medtext_linking(ICF_DIR, splits)
           if len(m.codes) == 1]
    for folder in (SNOMED_DIR, CASES_DIR):
        out += [(m.text, m.label, "snomed", m.codes[0]) for m in read_medtext_linking(folder, "train")
                if len(m.codes) == 1]
    return [row for row in out if systems is None or row[2] in systems]


def train_bi_encoder(index, *, base: str, out: Path, epochs: int = 1, batch_size: int = 64,
                     max_pairs: int = 30000, team_repeat: int = 3, lr: float = 3e-5, seed: int = 0,
                     device: str | None = None, systems: set[str] | None = None) -> dict[str, Any]:
    from datasets import Dataset
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from medtext.terminologies.embeddings import resolve_model

    rng = random.Random(seed)
    names, defs = _concept_texts(index, systems)
    pairs: list[tuple[str, str, tuple[str, str]]] = []
    for key, ns in names.items():
        cand = [(a, b) for i, a in enumerate(ns) for b in ns[i + 1:]]
        if key in defs:
            cand.append((defs[key], ns[0]))
        rng.shuffle(cand)
        pairs += [(a, b, key) for a, b in cand[:3]]
    rng.shuffle(pairs)
    pairs = pairs[:max_pairs]
    team = [(m, names[(s, c)][0], (s, c)) for m, _, s, c in team_mentions(systems=systems) if (s, c) in names]
    pairs += team * team_repeat
    rng.shuffle(pairs)
    t0 = time.perf_counter()
    model = SentenceTransformer(resolve_model(base)[0], device=device or "cpu")
    # hard negatives: nearest synonym of another concept of the same system, under the base model
    syn = index.tables["synonyms"]
    sys_rows = numpy.array(syn.column("system").to_pylist())
    row_key = list(zip(syn.column("system").to_pylist(), syn.column("code").to_pylist()))
    terms = syn.column("term").to_pylist()
    emb_meta = index.meta.get("embedding") or {}
    if index.embeddings is not None and emb_meta.get("model") == resolve_model(base)[1]:
        emb = numpy.asarray(index.embeddings, dtype="float32")  # already embedded with the base model
    else:
        emb = model.encode(terms, batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
    anchors = model.encode([a for a, _, _ in pairs], batch_size=256, normalize_embeddings=True,
                           convert_to_numpy=True)
    negatives = []
    for s in range(0, len(pairs), 1024):
        sims = anchors[s:s + 1024] @ emb.T
        for j, (a, b, key) in enumerate(pairs[s:s + 1024]):
            row = sims[j]
            row[sys_rows != key[0]] = -2
            neg = ""
            for r in numpy.argsort(-row)[:20]:
                if row_key[r] != key:
                    neg = terms[r]
                    break
            negatives.append(neg or terms[rng.randrange(len(terms))])
    mined_s = time.perf_counter() - t0
    data = Dataset.from_dict({"anchor": [a for a, _, _ in pairs], "positive": [b for _, b, _ in pairs],
                              "negative": negatives})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out.with_name(out.name + ".run")), num_train_epochs=epochs,
        per_device_train_batch_size=batch_size, learning_rate=lr, warmup_ratio=0.1, seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", logging_steps=50,
        report_to=[], use_cpu=(device or "cpu") == "cpu", dataloader_num_workers=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                         loss=losses.MultipleNegativesRankingLoss(model))
    t1 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t1
    save_dir_atomically(model.save_pretrained, out)
    stats = {"base": resolve_model(base)[1], "systems": sorted(systems) if systems else None,
             "pairs": len(pairs), "team_pairs": len(team) * team_repeat,
             "epochs": epochs, "batch_size": batch_size, "learning_rate": lr,
             "mining_seconds": round(mined_s, 1), "train_seconds": round(train_s, 1)}
    (out / "medtext_training.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def train_cross_encoder(index, linker, *, base: str, out: Path, epochs: int = 1, batch_size: int = 32,
                        max_queries: int = 6000, negatives: int = 7, team_repeat: int = 3,
                        lr: float = 3e-5, seed: int = 0, device: str | None = None,
                        systems: set[str] | None = None) -> dict[str, Any]:
    from medtext.terminologies.embeddings import resolve_model
    from medtext.terminologies.linking import ROUTES, Mention, candidate_text

    rng = random.Random(seed)
    names, defs = _concept_texts(index, systems)
    # a label per concept kind, so each query is routed like an entity of that kind would be
    kind_label = {}
    for label, routes in ROUTES.items():
        for r in routes:
            kind_label.setdefault(tuple(r.split(":", 1)), label)
    con = index.tables["concepts"]
    kinds = dict(zip(zip(con.column("system").to_pylist(), con.column("code").to_pylist()),
                     con.column("kind").to_pylist()))
    queries = []
    for key, ns in names.items():
        label = kind_label.get((key[0], kinds.get(key, "")))
        if label is None:
            continue
        q = ns[1:] or ns  # a synonym when there is one: the preferred term is the candidate text
        queries.append((rng.choice(q), label, key))
    rng.shuffle(queries)
    queries = queries[:max_queries]
    team = [(m, lab, (s, c)) for m, lab, s, c in team_mentions(systems=systems) if (s, c) in names]
    queries += team * team_repeat
    t0 = time.perf_counter()
    results = []
    for s in range(0, len(queries), 256):
        results += linker.link([Mention(q, lab) for q, lab, _ in queries[s:s + 256]])
    rows = {"query": [], "candidate": [], "label": []}
    for (q, lab, key), r in zip(queries, results):
        rows["query"].append(q)
        rows["candidate"].append(candidate_text(names[key][0], defs.get(key)))
        rows["label"].append(1.0)
        negs = [c for c in r.candidates if (c.system, c.code) != key][:negatives]
        for c in negs:
            rows["query"].append(q)
            rows["candidate"].append(candidate_text(c.term, defs.get((c.system, c.code))))
            rows["label"].append(0.0)
    mined_s = time.perf_counter() - t0
    from medtext.train_cross import fit_cross_encoder

    train_s = fit_cross_encoder(rows, base=base, out=out, epochs=epochs, batch_size=batch_size, lr=lr,
                                seed=seed, device=device)
    stats = {"base": resolve_model(base)[1], "systems": sorted(systems) if systems else None,
             "queries": len(queries), "pairs": len(rows["label"]),
             "team_queries": len(team) * team_repeat, "negatives_per_query": negatives, "epochs": epochs,
             "batch_size": batch_size, "learning_rate": lr, "mining_seconds": round(mined_s, 1),
             "train_seconds": round(train_s, 1)}
    (out / "medtext_training.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def train_linker(*, index_path: Path | None = None, base: str = "all-MiniLM-L6-v2",
                 bi: bool = True, cross: bool = True, bi_epochs: int = 1, ce_epochs: int = 1,
                 max_pairs: int = 30000, max_queries: int = 2500, negatives: int = 5, seed: int = 0,
                 device: str | None = None, systems: set[str] | None = None) -> dict[str, Any]:
    """Train both models, re-embed the index, return timings and counts."""
    import torch

    from medtext.pipeline import models_dir
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex, embed_index
    from medtext.terminologies.linking import Linker

    torch.manual_seed(seed)
    path = Path(index_path) if index_path else default_index_dir()
    index = ConceptIndex.load(path)
    if systems is not None:
        have = set(index.tables["concepts"].column("system").unique().to_pylist())
        if not systems or not systems <= have:
            from medtext.errors import ConfigError

            raise ConfigError(f"--system {', '.join(sorted(systems - have)) or '(none)'}: this index has the "
                              f"systems {', '.join(sorted(have))}")
    models_dir().mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"index": str(path)}
    t = time.perf_counter()
    if bi:
        report["bi_encoder"] = train_bi_encoder(index, base=base, out=models_dir() / "linker_bi",
                                                epochs=bi_epochs, max_pairs=max_pairs, seed=seed, device=device,
                                                systems=systems)
        t_embed = time.perf_counter()
        embed_index(path, "medtext:linker_bi", device=device)
        report["embed_seconds"] = round(time.perf_counter() - t_embed, 1)
    elif (index.meta.get("embedding") or {}).get("model") != "medtext:linker_bi":
        from medtext.errors import ConfigError

        raise ConfigError("--no-bi keeps the fine-tuned bi-encoder, but this index is not embedded "
                          "with medtext:linker_bi: train it first (without --no-bi)")
    if cross:
        index = ConceptIndex.load(path)
        linker = Linker(index, bi_encoder="index", top=16, device=device)
        report["cross_encoder"] = train_cross_encoder(index, linker, base=base, out=models_dir() / "linker_cross",
                                                      epochs=ce_epochs, max_queries=max_queries,
                                                      negatives=negatives, seed=seed,
                                                      device=device, systems=systems)
    report["total_seconds"] = round(time.perf_counter() - t, 1)
    return report
