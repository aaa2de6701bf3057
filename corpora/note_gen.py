"""Synthetic clinical notes for throughput benchmarks, assembled from the team's sample notes.

    from medtext.corpora.note_gen import generate_notes
    notes = generate_notes(400, seed=0)   # [(doc_id, text)], kinds and sizes like real notes

Each note takes the kind of a sample note (discharge summary, progress note, consult letter,
chest X-ray or CT report, PT/OT note) and is built from that kind's paragraphs, in their
usual order, drawn from every sample of the kind until the note reaches a size drawn around
real sizes for the kind (discharge summaries 4-9 KB, consult letters 3-6 KB, progress and
therapy notes 1.5-3.5 KB, radiology reports 0.8-2.5 KB). The text is the team's own writing;
nothing is copied from elsewhere. Deterministic for a seed.
"""

from __future__ import annotations

import random
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"
# (kind, share of notes, min size, max size) - shares roughly like a hospital note mix
KINDS = [("discharge", 0.20, 4000, 9000), ("consult", 0.10, 3000, 6000), ("progress", 0.25, 1500, 3500),
         ("cxr", 0.15, 800, 2000), ("ct", 0.10, 1200, 2500), ("pt", 0.10, 1500, 3000), ("ot", 0.10, 1500, 3000)]


def _paragraphs(kind: str) -> list[list[str]]:
    """The paragraphs of every sample note of ``kind`` (notes over 20 KB are test fixtures, skipped)."""
    out = []
    for f in sorted(SAMPLES.glob(f"{kind}_*.txt")):
        text = f.read_text(encoding="utf-8")
        if len(text) > 20000:
            continue
        paras = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
        if paras:
            out.append(paras)
    return out


def generate_notes(n: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` notes as ``(doc_id, text)`` pairs."""
    rng = random.Random(seed)
    pools = {k: _paragraphs(k) for k, *_ in KINDS}
    kinds = [k for k, *_ in KINDS if pools[k]]
    weights = [w for k, w, *_ in KINDS if pools[k]]
    sizes = {k: (lo, hi) for k, _, lo, hi in KINDS}
    notes = []
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        target = rng.randint(*sizes[kind])
        skeleton = rng.choice(pools[kind])
        parts: list[str] = []
        size = 0
        # position by position, a paragraph from the same place of another note of the kind
        pos = 0
        while size < target and pos < 200:
            src = rng.choice(pools[kind])
            rel = pos / max(1, len(skeleton) - 1)
            para = src[min(len(src) - 1, round(rel * (len(src) - 1)))] if pos < len(skeleton) else rng.choice(
                rng.choice(pools[kind])[1:-1] or src)
            parts.append(para)
            size += len(para) + 2
            pos += 1
        notes.append((f"{kind}_{i:06d}", "\n\n".join(parts) + "\n"))
    return notes
