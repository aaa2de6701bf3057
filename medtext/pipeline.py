"""The public API: load a preset, turn inputs into Docs, stream records.

    nlp = medtext.load()                               # preset "default"
    nlp = medtext.load("default", medtext_sections={"patterns": {"hpi": ["story so far"]}})
    doc = nlp("HPI: ...")
    record = medtext.to_record(doc)
    for record in medtext.process([Path("notes/")], errors="yield"): ...
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import ConfigError
from .readers import Document, InputFailure, iter_documents

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 10_000_000  # characters; a 5 MB note is fine, 10 M chars is the ceiling


# former preset names -> the preset that now holds the same pipeline
PRESET_ALIASES = {"clinical": "default"}  # the CNN NER moved into default (2026-11-30)


def available_presets() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files("medtext.configs").iterdir()
                  if p.name.endswith(".cfg"))


def _preset_config(preset: str):
    from confection import ConfigValidationError
    from spacy.util import load_config

    try:
        return _read_preset(preset, load_config)
    except ConfigValidationError as e:
        raise ConfigError(f"invalid config for preset {preset!r}:\n{e}") from e


def _read_preset(preset: str, load_config):
    path = Path(preset)
    if preset in PRESET_ALIASES and not path.exists():
        preset = PRESET_ALIASES[preset]
    if preset in available_presets():
        with resources.as_file(resources.files("medtext.configs") / f"{preset}.cfg") as p:
            return load_config(p), f"medtext_{preset}"
    if path.suffix == ".cfg" and path.is_file():
        return load_config(path), path.stem
    if path.is_dir() and (path / "config.cfg").is_file():
        return None, str(path)
    raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(available_presets())}, "
                      "a path to a .cfg file, or a saved pipeline folder")


def load(preset: str = "default", *, max_length: int = DEFAULT_MAX_LENGTH,
         **component_overrides: dict[str, Any]):
    """Return the spaCy ``Language`` for ``preset`` with per-component config overrides.

    ``preset`` is a preset name (``medtext.pipeline.available_presets()``), a ``.cfg`` path or a
    saved pipeline folder. Keyword arguments name a component and give config values for it, e.g.
    ``load(medtext_sections={"detect_unknown": False})``.
    """
    import spacy
    from confection import ConfigValidationError

    from .extensions import register_extensions
    from .records.build import register_pipeline

    register_extensions()
    config, name = _preset_config(str(preset))
    try:
        if config is None:
            nlp = spacy.load(name, config={"components": component_overrides} if component_overrides else {})
        else:
            extra = dict(config.pop("medtext", {}))
            sourced = dict(extra.get("sourced", {}))
            members = dict(extra.get("members", {}))
            components = config.get("components", {})
            for comp, values in component_overrides.items():
                if comp not in components:
                    raise ConfigError(f"no component {comp!r} in preset {preset!r}; it has: "
                                      f"{', '.join(components)}")
                if not isinstance(values, dict):
                    raise ConfigError(f"override for {comp!r} must be a dict of config values")
                components[comp].update(values)
            nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
            _add_sourced(nlp, sourced, preset)
            _add_members(nlp, members, preset)
            nlp.meta["name"] = name.removeprefix("en_")
            from . import __version__

            nlp.meta["version"] = __version__
    except ConfigValidationError as e:
        raise ConfigError(f"invalid config for preset {preset!r}:\n{e}") from e
    except (OSError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"cannot load preset {preset!r}: {e}") from e
    nlp.max_length = max_length
    from .chunking import chunk_tok2vec
    from .device import use_numpy_blas

    use_numpy_blas(nlp)
    chunk_tok2vec(nlp)  # bounded memory on very long documents
    register_pipeline(nlp)
    return nlp


def models_dir() -> Path:
    """Where trained models live: ``$MEDTEXT_HOME/models`` (default ``~/.cache/medtext/models``)."""
    import os

    return Path(os.environ.get("MEDTEXT_HOME", Path.home() / ".cache" / "medtext")) / "models"


PACKAGED_MODELS = Path(__file__).parent / "models"


def model_path(rel: str, marker: str = "config.cfg") -> Path:
    """A trained model folder: ``$MEDTEXT_HOME/models/REL`` when it holds ``marker`` (what
    ``medtext train`` writes), else the copy shipped in the package (``medtext/models/REL``,
    when there is one), else the ``$MEDTEXT_HOME`` path (missing: the caller says how to build it)."""
    home = models_dir() / rel
    if (home / marker).is_file():
        return home
    packaged = PACKAGED_MODELS / rel
    return packaged if (packaged / marker).is_file() else home


def require_spacy_transformers(what: str) -> None:
    """Import spacy-transformers (which registers its architectures), or raise a
    :class:`ConfigError` starting with ``what`` that says how to install it."""
    import importlib

    try:
        importlib.import_module("spacy_transformers")
    except ImportError as e:
        raise ConfigError(f"{what}: pip install 'medtext[trf]'") from e


def _load_trained(preset: str, rel: str):
    """``(path, pipeline)`` of the trained model folder ``rel`` (see :func:`model_path`), or a
    :class:`ConfigError` that says how to build it (or how to install spacy-transformers)."""
    import spacy

    path = model_path(rel)
    if not (path / "config.cfg").is_file():
        task, make = {"layout": ("layout", "layout"), "radgraph": ("relations", "relations"),
                      "ner_trf": ("ner --arch trf", "ner-trf"),
                      "radgraph_trf": ("relations --arch trf", "relations-trf"),
                      "layout_trf": ("layout --text-encoder all-MiniLM-L6-v2", "layout-trf")
                      }.get(rel, ("ner", "ner"))
        raise ConfigError(f"preset {preset!r} needs the trained model {path}; build it with "
                          f"`medtext train {task}` (or `make train-{make}`)")
    if (path / "transformer").is_dir():
        require_spacy_transformers(f"preset {preset!r} runs a transformer model ({path})")
    return path, spacy.load(path)


def _add_members(nlp, members: dict[str, Any], preset: str) -> None:
    """Average the ``medtext_biluo_ner`` components named in the preset's ``[medtext.members]``
    section with the taggers of other models (component = a list of model folders, see
    :func:`model_path`, each of weight 1, or ``{folder: weight}``; the component's own tagger and
    its saved members weigh 1 each), e.g. the ``trf`` preset's transformer tagger with
    ``default``'s CNN taggers."""
    from .components.biluo_ner import BiluoNER, _prepared

    for name, rels in members.items():
        if isinstance(rels, str):
            rels = [rels]
        if not isinstance(rels, dict):
            rels = {rel: 1.0 for rel in rels}
        if name not in nlp.pipe_names or not isinstance(nlp.get_pipe(name), BiluoNER):
            raise ConfigError(f"preset {preset!r}: [medtext.members] names {name!r}, which is not a "
                              "medtext_biluo_ner component of the pipeline")
        tagger = nlp.get_pipe(name)
        for rel, weight in rels.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise ConfigError(f"preset {preset!r}: [medtext.members] {name}: the weight of "
                                  f"{rel!r} must be a number above 0 (got {weight!r})")
            path, member = _load_trained(preset, rel)
            try:
                tagger.add_member(_prepared(member), float(weight))
            except ValueError as e:
                raise ConfigError(f"preset {preset!r}: {path} cannot join {name!r}: {e}") from e
            models = nlp.meta.setdefault("medtext_models", {})  # what records name as the model
            models[name] = " + ".join(filter(None, [models.get(name), str(path)]))


def _add_sourced(nlp, sourced: dict[str, str], preset: str) -> None:
    """Add trained components named in the preset's ``[medtext.sourced]`` section
    (component = model folder, see :func:`model_path`): ``medtext_layout`` first (every later
    component respects its body mask), ``medtext_relations`` last, the others before
    ``medtext_ner``."""
    loaded: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    for name, rel in sourced.items():
        if rel not in loaded:
            path, loaded[rel] = _load_trained(preset, rel)
            paths[rel] = path
            vectors = loaded[rel].vocab.vectors
            if vectors.shape[0]:  # static vectors (e.g. `medtext train ner --vectors minilm`)
                if nlp.vocab.vectors.shape[0] and nlp.vocab.vectors.name != vectors.name:
                    raise ConfigError(f"preset {preset!r}: {path} brings word vectors "
                                      f"{vectors.name!r}, but the pipeline already has "
                                      f"{nlp.vocab.vectors.name!r}: one vocabulary holds one table")
                nlp.vocab.vectors = vectors
        factory = loaded[rel].get_pipe_meta(name).factory
        if factory == "medtext_layout":
            nlp.add_pipe(name, source=loaded[rel], first=True)
        elif factory == "medtext_relations":  # reads the final (body-masked) entities
            nlp.add_pipe(name, source=loaded[rel], last=True)
        else:
            before = "medtext_ner" if "medtext_ner" in nlp.pipe_names else None
            nlp.add_pipe(name, source=loaded[rel], before=before)
        nlp.meta.setdefault("medtext_models", {})[name] = str(paths[rel])


def make_doc(nlp, document: Document):
    """Tokenise a :class:`Document` into a Doc carrying id, source, lines and warnings."""
    from .extensions import register_extensions

    register_extensions()
    doc = nlp.make_doc(document.text)
    doc._.doc_id = document.doc_id
    doc._.source = dict(document.source)
    doc._.lines = document.lines
    doc._.warnings = list(document.warnings)
    return doc


def to_record(doc, *, include_text: bool = True) -> dict[str, Any]:
    """The record dict of a processed Doc (schema: ``medtext/records/record.schema.json``)."""
    from .records.build import to_record as _to_record

    return _to_record(doc, include_text=include_text)


@dataclass
class Result:
    """What happened to one input: a record, or a failure (never both)."""

    record: dict[str, Any] | None = None
    failure: InputFailure | None = None
    n_chars: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def process_documents(nlp, documents: list[Document], *, batch_size: int = 32,
                      include_text: bool = True) -> list[Result]:
    """Run the pipeline over ``documents``; a failing document becomes a failure, not a crash."""
    from .records.build import pipeline_info, to_record as _to_record

    info = pipeline_info(nlp)
    results: list[Result | None] = [None] * len(documents)
    docs, where = [], []
    for i, d in enumerate(documents):
        if len(d.text) > nlp.max_length:
            results[i] = Result(failure=InputFailure(
                d.doc_id, d.source, "too_large",
                f"{d.source.get('path') or d.doc_id}: {len(d.text):,} characters, over the "
                f"pipeline's max_length of {nlp.max_length:,}; split the note or raise max_length"))
            continue
        docs.append(make_doc(nlp, d))
        where.append(i)
    try:
        done = list(nlp.pipe(docs, batch_size=batch_size))
    except Exception:  # isolate the culprit: run one by one
        log.debug("batch failed; retrying documents one by one", exc_info=True)
        done = []
        for doc in docs:
            try:
                done.append(nlp(doc))
            except Exception as e:  # noqa: BLE001 - reported as an error row
                log.debug("document %s failed", doc._.doc_id, exc_info=True)
                done.append(e)
    for i, doc_or_exc in zip(where, done):
        d = documents[i]
        if isinstance(doc_or_exc, Exception):
            results[i] = Result(failure=InputFailure(
                d.doc_id, d.source, "pipeline_error",
                f"{d.source.get('path') or d.doc_id}: pipeline failed "
                f"({type(doc_or_exc).__name__}: {doc_or_exc})"))
        else:
            rec = _to_record(doc_or_exc, include_text=include_text)
            rec["pipeline"] = info
            results[i] = Result(record=rec, n_chars=len(d.text))
    return results  # type: ignore[return-value]


# --- multi-process: one pipeline per worker process, loaded once ---------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(preset: str, overrides: dict, max_length: int, device: str) -> None:
    """Load the pipeline in a worker, unless the worker was forked from a parent that holds it."""
    from .device import one_cpu_thread, use_device

    # the workers share the CPUs: no thread pools competing for them (and a worker forked from a parent
    # that ran multi-threaded PyTorch would hang in its first multi-threaded operation)
    one_cpu_thread()
    if "nlp" in _WORKER:  # forked: the parent's pipeline, shared copy-on-write
        return
    use_device(device)
    _WORKER["nlp"] = load(preset, max_length=max_length, **overrides)


def _fork_shares_pipeline(device: str) -> bool:
    """Workers are forked (Linux) and run on CPU: the parent loads the pipeline once and the
    workers share it copy-on-write (no per-worker load, less memory, warmer CPU caches). CUDA
    state cannot be forked, and other platforms spawn workers: they load their own."""
    import multiprocessing as mp

    return mp.get_start_method(allow_none=False) == "fork" and device == "cpu"


def _worker_run(documents: list[Document], batch_size: int, include_text: bool) -> list[Result]:
    import os

    marker = os.environ.get("MEDTEXT_FAULT_INJECT_CRASH")  # tests: a worker dies on this text
    if marker and any(marker in d.text for d in documents):
        os._exit(70)
    return process_documents(_WORKER["nlp"], documents, batch_size=batch_size,
                             include_text=include_text)


class _WorkerPool:
    """Worker processes that survive a crash: when a worker dies (killed for memory, a crash in
    native code), the pool is restarted, the chunk that was running is re-run one document per
    task, and the document that kills a worker again becomes a ``worker_crash`` failure; every
    other document still gets its record."""

    def __init__(self, n_process: int, initargs: tuple, batch_size: int, include_text: bool):
        self.n, self.initargs = n_process, initargs
        self.batch_size, self.include_text = batch_size, include_text
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.n, initializer=_worker_init, initargs=self.initargs)

    def restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()

    def submit(self, docs: list[Document]):
        return self.pool.submit(_worker_run, docs, self.batch_size, self.include_text)

    def isolate(self, docs: list[Document]) -> list[Result]:
        from concurrent.futures.process import BrokenProcessPool

        out = []
        for d in docs:
            try:
                out.extend(self.submit([d]).result())
            except BrokenProcessPool:
                log.warning("a worker process died on document %s; restarting the workers", d.doc_id)
                self.restart()
                out.append(Result(failure=InputFailure(
                    d.doc_id, d.source, "worker_crash",
                    f"{d.source.get('path') or d.doc_id}: the worker process died on this document "
                    "(killed for memory or a crash in native code); the other documents were processed")))
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def iter_results(items: Iterable[Document | InputFailure], *, nlp=None, preset: str = "default",
                 overrides: dict | None = None, batch_size: int = 32, n_process: int = 1,
                 chunk_size: int | None = None, include_text: bool = True,
                 max_length: int = DEFAULT_MAX_LENGTH, device: str = "cpu") -> Iterator[Result]:
    """Stream a :class:`Result` for every item, in input order, with bounded memory."""
    from .device import use_device

    overrides = overrides or {}
    chunk_size = chunk_size or max(batch_size, 1) * 4
    if n_process > 1 and nlp is not None:
        raise ConfigError("n_process > 1 loads the pipeline in each worker: pass preset=..., not nlp")
    if n_process <= 1:
        use_device(device)
        nlp = nlp or load(preset, max_length=max_length, **overrides)
        for chunk in _chunks(items, chunk_size):
            yield from _run_chunk(chunk, lambda docs: process_documents(
                nlp, docs, batch_size=batch_size, include_text=include_text))
        return
    shared = _fork_shares_pipeline(device)
    if shared:
        import gc
        import os

        # the workers tokenize on one thread anyway; say so before forking, or Hugging Face's
        # tokenizers warns in every worker that it "just got forked" after using its threads
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _WORKER["nlp"] = load(preset, max_length=max_length, **overrides)
        gc.collect()
        gc.freeze()  # the pipeline's objects leave the collector: no copy-on-write by the GC
    workers = _WorkerPool(n_process, (preset, overrides, max_length, device), batch_size, include_text)
    try:
        pending: list = []
        for chunk in _chunks(items, chunk_size):
            docs = [d for d in chunk if isinstance(d, Document)]
            pending.append([chunk, docs, workers.submit(docs)])
            while len(pending) > 2 * n_process:
                yield from _merge(pending, workers)
        while pending:
            yield from _merge(pending, workers)
    finally:
        workers.close()
        if shared:
            import gc

            _WORKER.pop("nlp", None)
            gc.unfreeze()


def _chunks(items, size):
    chunk = []
    for it in items:
        chunk.append(it)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run_chunk(chunk, fn):
    docs = [d for d in chunk if isinstance(d, Document)]
    done = iter(fn(docs) if docs else [])
    for it in chunk:
        yield next(done) if isinstance(it, Document) else Result(failure=it)


def _merge(pending: list, workers: _WorkerPool):
    """Results of the oldest pending chunk; after a worker crash its documents are re-run one by
    one and the chunks queued behind it are submitted again to the restarted workers."""
    from concurrent.futures.process import BrokenProcessPool

    chunk, docs, future = pending.pop(0)
    try:
        results = future.result()
    except BrokenProcessPool:
        workers.restart()
        results = workers.isolate(docs)
        for item in pending:
            item[2] = workers.submit(item[1])
    done = iter(results)
    for it in chunk:
        yield next(done) if isinstance(it, Document) else Result(failure=it)


def process(inputs: Iterable[Any], *, nlp=None, preset: str = "default",
            overrides: dict | None = None, batch_size: int = 32, n_process: int = 1,
            errors: str = "raise", include_text: bool = True, id_field: str = "id",
            text_field: str = "text", device: str = "cpu") -> Iterator[dict[str, Any]]:
    """Stream one record per input document.

    ``inputs`` holds :class:`pathlib.Path` objects (files or folders), ``str`` texts, or
    ``(id, text)`` pairs. ``errors`` says what happens to an input that yields no record:
    ``"raise"`` (an :class:`~medtext.errors.InputError`), ``"skip"`` (logged at WARNING) or
    ``"yield"`` (an error row ``{"doc_id", "source", "row", "reason", "message"}`` is yielded in
    its place; tell them apart by the ``"reason"`` key).
    """
    from .errors import InputError

    if errors not in ("raise", "skip", "yield"):
        raise ConfigError(f"errors must be 'raise', 'skip' or 'yield', not {errors!r}")
    docs = iter_documents(inputs, id_field=id_field, text_field=text_field)
    for res in iter_results(docs, nlp=nlp, preset=preset, overrides=overrides,
                            batch_size=batch_size, n_process=n_process,
                            include_text=include_text, device=device):
        if res.record is not None:
            yield res.record
        elif errors == "raise":
            raise InputError(res.failure.source.get("path") or res.failure.doc_id,
                             res.failure.message, reason=res.failure.reason)
        elif errors == "yield":
            yield res.failure.to_row()
        else:
            log.warning("skipped %s: %s", res.failure.doc_id, res.failure.reason)
