"""Training of medtext's statistical components (``medtext train ner``).

``train_ner`` converts the corpora to spaCy DocBins under ``$MEDTEXT_HOME/corpus/ner``:
NCBI-disease and BC5CDR (diseases -> PROBLEM, chemicals -> DRUG) from ``../shared/data`` and
the team's annotated notes (``corpora/annotated``, all seven labels; their ``train`` split),
then runs ``spacy train`` with ``configs/train/ner_cnn.cfg`` and installs the best model at
``$MEDTEXT_HOME/models/ner_cnn`` (the folder presets source it from). Model selection uses a
dev mix (100 NCBI, 150 BC5CDR abstracts and the team's dev notes).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from importlib import resources
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    return Path(os.environ.get("MEDTEXT_DATA", "../shared/data"))


def prepare_ner_corpus(data_dir: Path, out_dir: Path, *, seed: int = 0) -> dict[str, tuple[int, int]]:
    """Write train.spacy and dev.spacy; return {name: (docs, spans)}."""
    from .corpora.ner_data import read_annotated, read_corpus, to_docbin

    needed = {"ncbi_train": data_dir / "ncbi_disease" / "train.jsonl",
              "ncbi_dev": data_dir / "ncbi_disease" / "dev.jsonl",
              "bc5cdr_train": data_dir / "bc5cdr" / "train.jsonl",
              "bc5cdr_dev": data_dir / "bc5cdr" / "dev.jsonl"}
    missing = [str(p) for p in needed.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"training data not found: {', '.join(missing)}; pass --data DIR "
                          "(the folder holding ncbi_disease/ and bc5cdr/)")
    team = list(read_annotated())
    train = (read_corpus(needed["ncbi_train"], "ncbi") + read_corpus(needed["bc5cdr_train"], "bc5cdr")
             + [e for e in team if e.split == "train"] * 3)  # the only source of 5 of 7 labels
    dev = (read_corpus(needed["ncbi_dev"], "ncbi")[:100] + read_corpus(needed["bc5cdr_dev"], "bc5cdr")[:150]
           + [e for e in team if e.split == "dev"])
    random.Random(seed).shuffle(train)
    nlp = load_tokenizer_only()
    return {"train": to_docbin(nlp, train, out_dir / "train.spacy"),
            "dev": to_docbin(nlp, dev, out_dir / "dev.spacy")}


def load_tokenizer_only():
    """A blank English pipeline with medtext's clinical tokenizer (what the models see)."""
    import spacy

    from .components.tokenizer import create_clinical_tokenizer

    nlp = spacy.blank("en")
    nlp.tokenizer = create_clinical_tokenizer()(nlp)
    return nlp


def train_ner(*, data_dir: Path | None = None, max_steps: int = 6000, eval_frequency: int = 500,
              seed: int = 0) -> Path:
    from spacy.cli.train import train as spacy_train

    from .pipeline import models_dir

    home = models_dir().parent
    corpus = home / "corpus" / "ner"
    stats = prepare_ner_corpus(data_dir or default_data_dir(), corpus, seed=seed)
    log.info("NER corpus: train %d docs / %d spans, dev %d docs / %d spans",
             *stats["train"], *stats["dev"])
    run_dir = home / "runs" / "ner_cnn"
    with resources.as_file(resources.files("medtext.configs") / "train" / "ner_cnn.cfg") as cfg:
        spacy_train(cfg, run_dir, overrides={
            "paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy"),
            "training.max_steps": max_steps, "training.eval_frequency": eval_frequency,
            "system.seed": seed})
    best = run_dir / "model-best"
    target = models_dir() / "ner_cnn"
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(best, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
