"""Bounded memory for CNN token vectors on very long documents.

A thinc CNN ``tok2vec`` keeps several float arrays of (tokens x width) alive while it runs: on a
5 MB note (about 1.2 million tokens) that came to more than 20 GB. The vector of a token depends
only on its neighbours up to the CNN's receptive field (depth x window, 4 tokens each side for
medtext's CNN), so a long document can be encoded in chunks of ``max_tokens`` with ``context``
extra tokens on each side and the chunks' centres joined: the same vectors (up to float rounding),
a memory peak that no longer grows with the document.

    chunk_tok2vec(nlp)          # medtext.load does this for every spaCy ``tok2vec`` component
"""

from __future__ import annotations


MAX_TOKENS = 10_000  # documents up to this many tokens run whole, as before
CONTEXT = 64  # tokens on each side of a chunk; far beyond a CNN's receptive field


def predict_in_chunks(model, docs, *, max_tokens: int = MAX_TOKENS, context: int = CONTEXT) -> list:
    """``model.predict(docs)`` (one array per document, a row per token), running documents
    longer than ``max_tokens`` chunk by chunk with ``context`` tokens of overlap."""
    docs = list(docs)
    out: list = [None] * len(docs)
    short = [i for i, d in enumerate(docs) if len(d) <= max_tokens]
    if short:
        for i, vecs in zip(short, model.predict([docs[i] for i in short])):
            out[i] = vecs
    for i, doc in enumerate(docs):
        if out[i] is not None:
            continue
        parts = []
        for start in range(0, len(doc), max_tokens):
            end = min(start + max_tokens, len(doc))
            lo, hi = max(0, start - context), min(len(doc), end + context)
            vecs = model.predict([doc[lo:hi].as_doc()])[0]
            parts.append(vecs[start - lo:end - lo])
        out[i] = model.ops.xp.concatenate(parts)
    return out


def chunk_tok2vec(nlp, *, max_tokens: int = MAX_TOKENS, context: int = CONTEXT) -> int:
    """Make every spaCy ``Tok2Vec`` component of ``nlp`` encode documents longer than
    ``max_tokens`` in chunks (see the module docstring); returns how many it changed."""
    from spacy.pipeline import Tok2Vec

    changed = 0
    for _name, proc in nlp.pipeline:
        if isinstance(proc, Tok2Vec):
            proc.predict = _chunked_predict(proc, proc.predict, max_tokens, context)
            changed += 1
    return changed


def _chunked_predict(proc, whole, max_tokens: int, context: int):
    """``proc.predict`` that hands documents over ``max_tokens`` to :func:`predict_in_chunks`
    and everything else to ``whole`` (spaCy's own predict)."""
    def predict(docs):
        docs = list(docs)
        if all(len(doc) <= max_tokens for doc in docs):
            return whole(docs)
        return predict_in_chunks(proc.model, docs, max_tokens=max_tokens, context=context)

    return predict
