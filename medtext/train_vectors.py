"""Static word vectors distilled from a sentence-transformer, for the CNN NER.

No pretrained word vectors can be fetched here, but the packaged all-MiniLM-L6-v2 has read a
great deal of English: encoding each vocabulary word on its own with it (mean-pooled, as the
model embeds sentences) gives a 384-d static vector per word that puts "aspirin" near
"ibuprofen" and "neoplasm" near "tumour" (the idea behind Model2Vec-style distillation). The
CNN reads them through spaCy's ``StaticVectors`` beside its hashed embeddings.

    build_vectors(out_dir, texts)        # a spaCy pipeline folder holding only the vectors

The vocabulary is the lower-cased tokens of the texts given (training corpora, terminology
synonyms): never evaluation text.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

_WORDISH = re.compile(r"[^\W\d_]", re.UNICODE)  # at least one letter


def vocabulary(nlp, texts: Iterable[str], *, min_count: int = 1, max_words: int = 100_000) -> list[str]:
    """Lower-cased tokens with a letter, most frequent first."""
    counts: Counter[str] = Counter()
    for doc in nlp.tokenizer.pipe(texts, batch_size=256):
        counts.update(t.lower_ for t in doc if _WORDISH.search(t.text) and len(t.text) <= 40)
    return [w for w, n in counts.most_common(max_words) if n >= min_count]


def build_vectors(out_dir: Path, texts: Iterable[str], *, model: str = "all-MiniLM-L6-v2",
                  batch_size: int = 512, device: str | None = None) -> tuple[Path, int]:
    """Write a spaCy pipeline with the distilled vectors (``attr = LOWER``) to ``out_dir``;
    return (out_dir, number of words)."""
    import numpy
    from spacy.vectors import Vectors

    from .terminologies.embeddings import load_model, resolve_model
    from .train import load_tokenizer_only

    nlp = load_tokenizer_only()
    words = vocabulary(nlp, texts)
    log.info("distilling %d word vectors from %s", len(words), model)
    st = load_model(model, device=device)
    vecs = st.encode(words, batch_size=batch_size, normalize_embeddings=False, convert_to_numpy=True,
                     show_progress_bar=False).astype("float32")
    # centre and scale: the CNN's layers expect inputs of unit scale, not a common offset
    vecs -= vecs.mean(axis=0, keepdims=True)
    vecs /= numpy.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-6)
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=vecs, keys=words, attr="LOWER",
                                name="medtext_distilled_" + re.sub(r"\W+", "_", resolve_model(model)[1]).strip("_"))
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir, len(words)
