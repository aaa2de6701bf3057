"""Train the layout classifier (``medtext_layout``) on synthetic letters with known line labels.

    medtext train layout [--docs 360] [--holdout FAMILY] [--epochs 12]

The corpus comes from :mod:`medtext.corpora.layout_gen` (rendered once into
``$MEDTEXT_HOME/data/layout``, deterministic for a seed). Every document is used twice: as the
PDF (lines with geometry) and as its plain-text export (indentation only), so one model serves
both inputs. 10% of the training documents are a dev set: the weights of the epoch with the best
dev body F1 are kept. ``--holdout`` keeps one template family out of training entirely (what
``benchmarks/layout.py`` measures). The pipeline (a blank English tokenizer + ``medtext_layout``)
is saved to ``$MEDTEXT_HOME/models/layout`` (or ``--out``) in one rename.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)


def layout_data_dir() -> Path:
    from medtext.pipeline import models_dir

    return models_dir().parent / "data" / "layout"


def ensure_corpus(out_dir: Path, n_docs: int, seed: int = 0) -> Path:
    """Render the synthetic corpus unless ``out_dir`` already holds one of that size and seed,
    made by the same generator code."""
    import hashlib

    from medtext.corpora import layout_gen

    stamp = out_dir / "corpus.json"
    code = hashlib.sha256(Path(layout_gen.__file__).read_bytes()).hexdigest()[:16]
    want = {"docs": n_docs, "seed": seed, "families": list(layout_gen.FAMILIES), "generator": code}
    if stamp.exists() and json.loads(stamp.read_text()) == want and (out_dir / "labels.jsonl").exists():
        return out_dir / "labels.jsonl"
    shutil.rmtree(out_dir, ignore_errors=True)
    t = time.perf_counter()
    log.info("rendering %d synthetic letters into %s ...", n_docs, out_dir)
    path = layout_gen.generate(out_dir, n_docs, seed=seed)
    stamp.write_text(json.dumps(want) + "\n")
    log.info("rendered in %.1f s", time.perf_counter() - t)
    return path


def load_examples(nlp, labels_path: Path, *, families: Iterable[str] | None = None,
                  kinds: tuple[str, ...] = ("pdf", "txt")) -> list[Any]:
    """``Example``s (predicted doc with ``_.lines``; reference doc with ``_.line_labels``), each
    with ``.family`` / ``.kind`` / ``.doc_id`` kept in ``predicted.user_data``."""
    from spacy.training import Example

    from medtext.corpora.layout_gen import read_labels
    from medtext.extensions import register_extensions
    from medtext.lines import text_lines
    from medtext.readers.pdf import read_pdf

    register_extensions()
    root = labels_path.parent
    wanted = set(families) if families is not None else None
    out = []
    for rec in read_labels(labels_path):
        if wanted is not None and rec["family"] not in wanted:
            continue
        for kind in kinds:
            path = root / rec[kind]
            if kind == "pdf":
                text, lines, _ = read_pdf(path, str(path))
            else:
                text = path.read_text(encoding="utf-8")
                lines = text_lines(text)
            if len(lines) != len(rec["labels"]):
                raise ValueError(f"{rec['id']} ({kind}): {len(lines)} lines but {len(rec['labels'])} labels")
            pred, ref = nlp.make_doc(text), nlp.make_doc(text)
            pred._.lines = ref._.lines = lines
            ref._.line_labels = list(rec["labels"])
            pred.user_data[("medtext", "layout_meta")] = (rec["id"], rec["family"], kind)
            out.append(Example(pred, ref))
    return out


def new_pipeline(text_encoder: str | None = None):
    import spacy

    from medtext.extensions import register_extensions

    register_extensions()
    nlp = spacy.blank("en")
    config = {"model": {"text_encoder": text_encoder}} if text_encoder else {}
    nlp.add_pipe("medtext_layout", config=config)
    return nlp


def evaluate(nlp, examples) -> dict[str, Any]:
    from spacy.training import Example

    from medtext.components.layout import score_layout

    docs = list(nlp.pipe([ex.predicted.copy() for ex in examples], batch_size=16))
    return score_layout([Example(d, ex.reference) for d, ex in zip(docs, examples)])


def train_layout(*, docs: int = 360, holdout: str | None = None, epochs: int = 12, batch_size: int = 8,
                 seed: int = 0, out: Path | None = None, data_dir: Path | None = None,
                 corpus: Path | None = None, text_encoder: str | None = None) -> dict[str, Any]:
    """Train and save; ``corpus`` (a labels.jsonl) skips rendering the default corpus.
    ``text_encoder`` adds a frozen sentence encoder's embedding of each line (saved by name;
    default output ``$MEDTEXT_HOME/models/layout_trf``, opt-in: source it in a preset file)."""
    from spacy.util import fix_random_seed, minibatch
    from thinc.api import Adam

    from medtext.atomic import save_dir_atomically
    from medtext.corpora.layout_gen import FAMILIES
    from medtext.errors import ConfigError
    from medtext.pipeline import models_dir

    if holdout is not None and holdout not in FAMILIES:
        raise ConfigError(f"unknown template family {holdout!r}: use one of {', '.join(FAMILIES)}")
    fix_random_seed(seed)
    labels_path = corpus or ensure_corpus(data_dir or layout_data_dir(), docs, seed)
    nlp = new_pipeline(text_encoder)
    from medtext.device import use_numpy_blas

    use_numpy_blas(nlp)  # numpy's BLAS, not BLIS (see medtext.device)
    train_families = [f for f in FAMILIES if f != holdout]
    t = time.perf_counter()
    examples = load_examples(nlp, labels_path, families=train_families)
    read_s = time.perf_counter() - t
    doc_ids = sorted({ex.predicted.user_data[("medtext", "layout_meta")][0] for ex in examples})
    random.Random(seed).shuffle(doc_ids)
    dev_ids = set(doc_ids[:max(1, len(doc_ids) // 10)])
    dev = [ex for ex in examples if ex.predicted.user_data[("medtext", "layout_meta")][0] in dev_ids]
    train = [ex for ex in examples if ex.predicted.user_data[("medtext", "layout_meta")][0] not in dev_ids]
    log.info("layout: %d train / %d dev examples (PDF + text) from families %s; read in %.1f s",
             len(train), len(dev), ", ".join(train_families), read_s)
    optimizer = Adam(0.002)
    nlp.initialize(lambda: train[:50], sgd=optimizer)
    best, best_bytes, history = -1.0, None, []
    rng = random.Random(seed)
    t_train = time.perf_counter()
    for epoch in range(1, epochs + 1):
        rng.shuffle(train)
        losses: dict[str, float] = {}
        for batch in minibatch(train, size=batch_size):
            nlp.update(batch, sgd=optimizer, losses=losses)
        scores = evaluate(nlp, dev)
        history.append({"epoch": epoch, "loss": round(losses["medtext_layout"], 2),
                        "dev_body_f1": scores["layout_body_f"], "dev_macro_f1": scores["layout_macro_f"]})
        log.info("epoch %2d  loss %8.2f  dev body F1 %.4f  macro-F1 %.4f", epoch, losses["medtext_layout"],
                 scores["layout_body_f"], scores["layout_macro_f"])
        key = scores["layout_body_f"] + scores["layout_macro_f"] / 100
        if key > best:
            best, best_bytes = key, nlp.get_pipe("medtext_layout").model.to_bytes()
    train_s = time.perf_counter() - t_train
    nlp.get_pipe("medtext_layout").model.from_bytes(best_bytes)
    target = out or models_dir() / ("layout_trf" if text_encoder else "layout")
    report = {"families": train_families, "holdout": holdout, "text_encoder": text_encoder,
              "train_examples": len(train),
              "dev_examples": len(dev), "epochs": epochs, "read_seconds": round(read_s, 1),
              "train_seconds": round(train_s, 1), "history": history, "path": str(target)}
    nlp.meta["medtext_training"] = {k: v for k, v in report.items() if k != "path"}
    save_dir_atomically(nlp.to_disk, target)
    return report
