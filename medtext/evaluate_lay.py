"""Lay simplification metrics: abbreviation sense accuracy, readability, SARI, meaning preservation.

- ``flesch_kincaid_grade``: 0.39 * words/sentence + 11.8 * syllables/word - 15.59 (syllables
  counted by vowel groups, a silent final "e" dropped).
- ``sari``: SARI (Xu et al. 2016) of a system output against the source and one or more
  references: the mean over n = 1..4 of the F1 of kept n-grams, the precision of deleted
  n-grams and the F1 of added n-grams, times 100 (n-gram counts weighted by how many references
  hold them, as in the original).
- ``abbreviation_accuracy``: share of gold occurrences whose chosen sense is the gold sense.
- ``meaning_preserved``: share of the linked concepts of the source text that the pipeline
  finds again in the lay text.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_SENT_END = re.compile(r"[.!?]+(?:\s|$)|\n\s*\n")


def syllables(word: str) -> int:
    w = word.lower()
    groups = re.findall(r"[aeiouy]+", w)
    n = len(groups)
    if w.endswith("e") and not w.endswith(("le", "ee")) and n > 1:
        n -= 1
    return max(1, n)


def flesch_kincaid_grade(text: str) -> float | None:
    words = _WORD.findall(text)
    if not words:
        return None
    sentences = max(1, len([s for s in _SENT_END.split(text) if _WORD.search(s)]))
    return 0.39 * len(words) / sentences + 11.8 * sum(syllables(w) for w in words) / len(words) - 15.59


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def sari(source: str, output: str, references: Iterable[str]) -> float:
    """SARI in 0..100 (see the module docstring)."""
    refs = [_tokens(r) for r in references]
    src, out = _tokens(source), _tokens(output)
    scores = []
    for n in range(1, 5):
        s, o = _ngrams(src, n), _ngrams(out, n)
        r_all = Counter()
        for r in refs:
            r_all.update(_ngrams(r, n))
        nref = len(refs)
        # keep
        keep_sys = s & o
        keep_good = Counter({g: min(keep_sys[g], r_all[g] / nref) for g in keep_sys})
        keep_ref = Counter({g: s[g] for g in s if r_all[g]})
        kp = sum(keep_good.values()) / sum(keep_sys.values()) if keep_sys else 0.0
        kr = sum(min(keep_sys[g], r_all[g] / nref) for g in keep_ref) / sum(keep_ref.values()) if keep_ref else 0.0
        keep_f = 2 * kp * kr / (kp + kr) if kp + kr else 0.0
        # delete (precision only)
        del_sys = s - o
        del_good = sum(min(del_sys[g], s[g] - r_all[g] / nref) for g in del_sys if s[g] - r_all[g] / nref > 0)
        del_p = del_good / sum(del_sys.values()) if del_sys else 0.0
        # add
        add_sys = Counter({g: 1 for g in o if g not in s})
        add_ref = Counter({g: 1 for g in r_all if g not in s})
        add_good = sum(1 for g in add_sys if g in add_ref)
        ap = add_good / len(add_sys) if add_sys else 0.0
        ar = add_good / len(add_ref) if add_ref else 0.0
        add_f = 2 * ap * ar / (ap + ar) if ap + ar else 0.0
        scores.append((keep_f + del_p + add_f) / 3)
    return 100 * sum(scores) / len(scores)


def same_sense(vocab, a: str | None, b: str) -> bool:
    """Two sense strings of the inventory name the same sense: equal once lower-cased and
    stripped of a parenthesised gloss, or sharing a UMLS CUI ("oculus dexter" and "oculus dexter
    (right eye)")."""
    if a is None:
        return False
    norm = [re.sub(r"\s*\(.*?\)\s*", " ", x.lower()).strip() for x in (a, b)]
    if norm[0] == norm[1]:
        return True
    ca, cb = vocab.sense_cui.get(a.lower()), vocab.sense_cui.get(b.lower())
    return ca is not None and ca == cb


def abbreviation_accuracy(lay, cases) -> dict[str, Any]:
    """Sense accuracy of ``medtext_lay``'s sense choice on gold cases (with the frequency-prior
    baseline: the inventory's most frequent sense). Senses count as equal per :func:`same_sense`.
    ``rewritten``: the share of cases whose sense margin reaches the component's ``min_margin``
    (those the lay text expands) and the accuracy on them."""
    hits = prior_hits = 0
    confident: list[bool] = []
    margin = getattr(lay, "min_margin", 0.0)
    by_abbr: dict[str, list[int]] = {}
    wrong = []
    for c in cases:
        a, b = max(0, c.start - 6 * lay.context_words), c.end + 6 * lay.context_words
        marked = c.text[a:c.start] + "[" + c.abbr + "]" + c.text[c.end:b]
        scored = lay.choose_sense(c.abbr, c.text[a:b], marked, c.text.lower())
        got = scored[0][0].lower() if scored else None
        senses = lay.vocab.abbreviations.get(c.abbr.lower().rstrip("."), {}) or \
            lay.vocab.abbreviations.get(c.abbr.lower().replace(".", ""), {})
        prior = max(senses, key=senses.get).lower() if senses else None
        ok = same_sense(lay.vocab, got, c.sense)
        if len(scored) < 2 or scored[0][1] - scored[1][1] >= margin:
            confident.append(ok)
        hits += ok
        prior_hits += same_sense(lay.vocab, prior, c.sense)
        by_abbr.setdefault(c.abbr.lower().rstrip("."), []).append(ok)
        if not ok:
            wrong.append({"id": c.id, "abbr": c.abbr, "gold": c.sense, "got": got})
    n = len(cases)
    return {"cases": n, "accuracy": hits / n if n else 0.0, "most_frequent_sense_baseline": prior_hits / n if n else 0.0,
            "abbreviations": len(by_abbr),
            "rewritten": {"min_margin": margin, "coverage": len(confident) / n if n else 0.0,
                          "accuracy": sum(confident) / len(confident) if confident else None},
            "wrong": wrong}


def concepts(doc) -> set[str]:
    return {e.kb_id_ for e in doc.ents if e.kb_id_}


def meaning_preserved(nlp, sources: list[str], lay_texts: list[str]) -> dict[str, Any]:
    """Share of the linked concepts of each source the pipeline finds again in its lay text."""
    kept = total = 0
    lost: Counter = Counter()
    src_docs = nlp.pipe(sources)
    lay_docs = nlp.pipe(lay_texts)
    for s, l in zip(src_docs, lay_docs):
        a, b = concepts(s), concepts(l)
        kept += len(a & b)
        total += len(a)
        lost.update(a - b)
    return {"concepts": total, "preserved": kept / total if total else 1.0, "most_lost": lost.most_common(10)}
