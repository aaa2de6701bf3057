"""Lexical candidate retrieval over an index's synonyms (what `terminology search` and the
linker's lexical channel use).

Every synonym is normalised (:func:`terminologies.index.normalize`, then British spellings made
American by :func:`terminologies.derived.americanize`, so "haemodialysis" finds "Hemodialysis";
:meth:`LexicalRetriever.key` does the same to a query). A query is matched in
three steps: exact normalised matches score 1.0; otherwise candidates are the synonyms sharing
a content token (or a token prefix of 4+ letters) with the query, scored with rapidfuzz
(mean of ``ratio`` and ``token_set_ratio``); when nothing shares a token, a fuzzy scan of all
terms catches misspellings. A fuzzy score is lowered when a word of the query stands where the
name has another (:func:`substituted`: "left total hip arthroplasty" against "left total knee
arthroplasty"). The query without laterality and severity words and with plurals made
singular (:meth:`LexicalRetriever.variant`: "mild R forearm pain" -> "forearm pain") is matched
the same way, its scores times ``VARIANT_WEIGHT``. Scores are per synonym; a concept takes its
best synonym's score.
Ties go to the concept with more agreeing synonyms, then the preferred term over a synonym.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

import numpy

from .derived import americanize
from .index import SYNONYM_TYPES, normalize

_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("a an and the of in on at to for with by or nos from as is".split())
MAX_CANDIDATES = 20000
# words a mention adds to a concept's name without changing what it is (laterality, severity):
# "R forearm pain" is Pain in forearm, "bilateral feet" Foot structure (the coding rule: the
# concept without the detail). The query without them is searched too, its scores times
# VARIANT_WEIGHT, so a name with the detail still wins
MODIFIERS = frozenset("left right l r lt rt bilateral bilat bil b/l both unilateral mild mildly moderate "
                      "moderately severe severely slight slightly marked markedly minimal".split())
IRREGULAR_PLURALS = {"feet": "foot", "teeth": "tooth", "emboli": "embolus", "thrombi": "thrombus",
                     "calculi": "calculus", "bronchi": "bronchus", "vertebrae": "vertebra", "ova": "ovum"}
VARIANT_WEIGHT = 0.95


# A word swapped for another is a different concept, however alike the spelling: the plain string
# score of "left total hip arthroplasty" against "left total knee arthroplasty" is 0.90, of "grip
# strength" against "prism strength" 0.82. A fuzzy score is multiplied by 1 - SUBSTITUTION_PENALTY
# x the share of the query's words that stand where the name has another (:func:`substituted`).
# Chosen on the SNOMED CT dev notes and MedProcNER dev, lexical linker (2026-12-02, before the
# generic head words): decided accuracy 0.829 -> 0.838 and MedProcNER covered acc@1 0.599 ->
# 0.619 at 0.3 (0.2: 0.835 / 0.607; 0.4: 0.836 / 0.624; 0.6: 0.836 / 0.621). The linker sets it
# per entity label (``substitution_penalty``); this is the default of the functions here
SUBSTITUTION_PENALTY = 0.3


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text) if t not in STOPWORDS]


# head words that say what kind of thing a name is, not which: "impulse control problems" is
# Impulse control disorder, not a swap of "problems" for "disorder"
GENERIC_WORDS = frozenset("disorder disorders disease diseases problem problems finding findings condition "
                          "conditions syndrome issue issues abnormality abnormalities procedure".split())


@lru_cache(maxsize=100_000)
def content_words(text: str) -> tuple[str, ...]:
    """The distinct words of a normalised text that name something: no stopwords, modifiers or
    generic head words."""
    return tuple(dict.fromkeys(t for t in tokens(text) if t not in MODIFIERS and t not in GENERIC_WORDS))


@lru_cache(maxsize=500_000)
def same_word(a: str, b: str) -> bool:
    """Two words that are one word for matching: equal, or (both of 4+ letters) one the other's
    start ("stiff", "stiffness"), the same first 5 letters ("urinary", "urine"), or a
    misspelling with the same first letter (rapidfuzz ``ratio`` >= 80: "pnuemonia")."""
    if a == b:
        return True
    if len(a) < 4 or len(b) < 4 or a[0] != b[0]:
        return False
    if a.startswith(b) or b.startswith(a) or a[:5] == b[:5]:
        return True
    from rapidfuzz import fuzz

    return fuzz.ratio(a, b) >= 80


def substituted(q: str, n: str) -> float:
    """The share of the query's content words that are swapped for another in the name: the
    fewer of (query words with no :func:`same_word` in the name, name words with none in the
    query), over the query's words. Words only one side has are a more or less specific name, not
    a swap ("hip pain" / "pain": 0; "hip pain" / "knee pain": 0.5)."""
    qw, nw = content_words(q), content_words(n)
    if not qw or not nw:
        return 0.0
    uq = sum(1 for a in qw if not any(same_word(a, b) for b in nw))
    un = sum(1 for b in nw if not any(same_word(a, b) for a in qw))
    return min(uq, un) / len(qw)


def fuzzy_score(q: str, n: str, penalty: float | None = None) -> float:
    """String similarity of two normalised texts, 0..1: the mean of rapidfuzz's ``ratio`` and
    ``token_set_ratio``, times 1 - ``penalty`` (default ``SUBSTITUTION_PENALTY``) x
    :func:`substituted` (capped at 0.99 by callers: 1.0 is kept for exact matches)."""
    from rapidfuzz import fuzz

    penalty = SUBSTITUTION_PENALTY if penalty is None else penalty
    plain = (fuzz.ratio(q, n) + fuzz.token_set_ratio(q, n)) / 200
    return plain * (1 - penalty * substituted(q, n)) if penalty else plain


# a string-similarity matrix of at least this many pairs is computed on every CPU the process may
# use (rapidfuzz's threads; the same numbers): the linker's example channel scores each batch's
# FUNCTION mentions against ~7,300 examples. Smaller ones stay on one thread (no start-up cost)
PARALLEL_PAIRS = 100_000
_string_threads: int | None = None


def string_threads() -> int:
    """Threads for a large :func:`fuzzy_matrix`: the CPUs this process may run on, unless
    :func:`set_string_threads` said otherwise (worker processes of ``n_process`` use one)."""
    global _string_threads
    if _string_threads is None:
        import os

        try:
            _string_threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            _string_threads = os.cpu_count() or 1
    return _string_threads


def set_string_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) for large string-similarity matrices in this process."""
    global _string_threads
    _string_threads = max(1, int(n))


def fuzzy_matrix(queries: list[str], choices: list[str], dtype=numpy.float32,
                 aligner: "WordAligner | None" = None, cols: numpy.ndarray | None = None,
                 penalty: float | None = None) -> numpy.ndarray:
    """:func:`fuzzy_score` of every query against every choice, [queries, choices] (float64:
    the same values as :func:`fuzzy_score`, in one call). ``aligner``: a :class:`WordAligner`
    over texts of which ``choices`` are those at ``cols`` (all of them when ``cols`` is None),
    for the substitution shares; one is made over ``choices`` when not given. ``penalty``:
    instead of ``SUBSTITUTION_PENALTY`` (0: the plain string score)."""
    from rapidfuzz import fuzz, process

    penalty = SUBSTITUTION_PENALTY if penalty is None else penalty
    workers = string_threads() if len(queries) * len(choices) >= PARALLEL_PAIRS else 1
    plain = (process.cdist(queries, choices, scorer=fuzz.ratio, dtype=dtype, workers=workers)
             + process.cdist(queries, choices, scorer=fuzz.token_set_ratio, dtype=dtype, workers=workers)) / 200
    if not penalty or not len(choices):
        return plain
    if aligner is None:
        aligner, cols = WordAligner(choices), None
    for r, q in enumerate(queries):
        share = aligner.substituted(q)
        plain[r] *= 1 - penalty * (share if cols is None else share[cols])
    return plain


class WordAligner:
    """:func:`substituted` of one query against many texts at once, from a posting list of their
    content words (a query's word is compared with each distinct word once, not with each text)."""

    def __init__(self, texts: list[str]):
        vocab: dict[str, int] = {}
        post: list[list[int]] = []
        n_words = []
        for i, t in enumerate(texts):
            words = content_words(t)
            n_words.append(len(words))
            for w in words:
                j = vocab.setdefault(w, len(vocab))
                if j == len(post):
                    post.append([])
                post[j].append(i)
        self.vocab = list(vocab)
        self.ids = vocab
        self.postings = [numpy.array(p, dtype=numpy.int64) for p in post]
        self.n_words = numpy.array(n_words, dtype=numpy.int64)
        self.n = len(texts)
        # words of 4+ letters by their first 4 letters (word ids), and by first letter in order of
        # length, as (word ids, words, lengths): a ratio of 80 needs lengths within 2/3 of each other
        self.by_start: dict[str, list[int]] = defaultdict(list)
        self.by_letter: dict[str, tuple[list[int], list[str], list[int]]] = {}
        for j in sorted((j for j, w in enumerate(self.vocab) if len(w) >= 4), key=lambda j: len(self.vocab[j])):
            self.by_start[self.vocab[j][:4]].append(j)
            ids, words, lens = self.by_letter.setdefault(self.vocab[j][0], ([], [], []))
            ids.append(j)
            words.append(self.vocab[j])
            lens.append(len(self.vocab[j]))
        self._cache: dict[str, list[int]] = {}  # query word -> matching ids, cleared at CACHE_WORDS

    CACHE_WORDS = 200_000  # a long run meets new words (numbers, misspellings) without end

    def matching(self, word: str) -> list[int]:
        """Ids of the vocabulary words that are :func:`same_word` as ``word``."""
        hit = self._cache.get(word)
        if hit is None:
            found = {self.ids[word]} if word in self.ids else set()
            if len(word) >= 4 and word[0] in self.by_letter:
                from rapidfuzz import fuzz, process

                ids, words, lens = self.by_letter[word[0]]
                # a word's start: the same first 4 letters; a misspelling: ratio 80, lengths within 2/3
                found.update(j for j in self.by_start.get(word[:4], ()) if same_word(word, self.vocab[j]))
                lo = bisect.bisect_left(lens, math.ceil(len(word) * 2 / 3))
                hi = bisect.bisect_right(lens, len(word) * 3 // 2)
                found.update(ids[lo + k] for w, _, k in process.extract(
                    word, words[lo:hi], scorer=fuzz.ratio, score_cutoff=80, limit=None) if same_word(word, w))
            if len(self._cache) >= self.CACHE_WORDS:
                self._cache.clear()
            hit = self._cache[word] = sorted(found)
        return hit

    def substituted(self, q: str) -> numpy.ndarray:
        """:func:`substituted` of ``q`` against every text, float64 [texts]."""
        qw = content_words(q)
        if not qw or not self.n:
            return numpy.zeros(self.n, dtype=numpy.float64)
        matched_q = numpy.zeros(self.n, dtype=numpy.int64)  # query words with a same word in the text
        hit_words: set[int] = set()
        for w in qw:
            ids = self.matching(w)
            hit_words.update(ids)
            if ids:
                rows = numpy.unique(numpy.concatenate([self.postings[j] for j in ids]))
                matched_q[rows] += 1
        matched_n = numpy.zeros(self.n, dtype=numpy.int64)  # text words with a same word in the query
        for j in hit_words:
            matched_n[self.postings[j]] += 1
        # a text without content words has no word to swap: min(..., 0) = 0
        return numpy.minimum(len(qw) - matched_q, self.n_words - matched_n) / len(qw)


# The misspelling scan reads keys of at least this many characters: a 3-letter short form is
# within the scan's cut-off of any 2-letter one ("LDL" ~ "LL", lithotripsy; "JVP" ~ "VP" shunt)
FUZZY_SCAN_MIN_CHARS = 4


class CharNgramTfidf:
    """Cosine of TF-IDF vectors of character 2- to 4-grams taken within words (each word padded
    with a blank on both sides), sublinear term frequency, smoothed IDF fitted on ``texts``;
    query n-grams never seen in ``texts`` are ignored. Rare shared fragments weigh more than
    common ones, which suits clinicians' shorthand ("sup>sit", "amb", "FWW")."""

    def __init__(self, texts: list[str]):
        grams = [Counter(self.grams(t)) for t in texts]
        df = Counter(g for c in grams for g in c)
        self.idf = {g: math.log((1 + len(texts)) / (1 + n)) + 1 for g, n in df.items()}
        post: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for i, c in enumerate(grams):
            w = self._weights(c)
            for g, v in w.items():
                post[g][0].append(i)
                post[g][1].append(v)
        self.postings = {g: (numpy.array(ix, dtype=numpy.int64), numpy.array(ws, dtype=numpy.float32))
                         for g, (ix, ws) in post.items()}
        self.n = len(texts)

    @staticmethod
    def grams(text: str) -> list[str]:
        out = []
        for word in text.split():
            w = f" {word} "
            out += [w[i:i + n] for n in (2, 3, 4) for i in range(len(w) - n + 1)]
        return out

    def _weights(self, counts: Counter) -> dict[str, float]:
        w = {g: (1 + math.log(c)) * self.idf[g] for g, c in counts.items() if g in self.idf}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        return {g: v / norm for g, v in w.items()}

    def matrix(self, queries: list[str]) -> numpy.ndarray:
        """Cosine of every query against every fitted text, float32 [queries, texts]."""
        out = numpy.zeros((len(queries), self.n), dtype=numpy.float32)
        for r, q in enumerate(queries):
            for g, v in self._weights(Counter(self.grams(q))).items():
                ix, ws = self.postings[g]
                out[r, ix] += v * ws
        return out


class LexicalRetriever:
    def __init__(self, systems: list[str], codes: list[str], terms: list[str], types: list[str],
                 concept_terms: dict[tuple[str, str], tuple[str, str]]):
        self.systems = systems
        self.codes = codes
        self.terms = terms
        self.norm = [self.key(t) for t in terms]
        self.type_rank = numpy.array([SYNONYM_TYPES.index(t) for t in types], dtype=numpy.int8)
        self.concept_terms = concept_terms  # (system, code) -> (preferred term, kind)
        self.exact: dict[str, list[int]] = defaultdict(list)
        self.by_token: dict[str, list[int]] = defaultdict(list)
        self.by_prefix: dict[str, list[int]] = defaultdict(list)
        for i, n in enumerate(self.norm):
            self.exact[n].append(i)
            for tok in set(tokens(n)):
                self.by_token[tok].append(i)
                if len(tok) >= 4:
                    self.by_prefix[tok[:4]].append(i)
        self.unique_terms = list(self.exact)
        self.aligner = WordAligner(self.norm)
        # per synonym row: its concept (numbered in order of first appearance) and system, so a
        # query's candidate rows are grouped and ranked with numpy, not a Python loop
        keys: dict[tuple[str, str], int] = {}
        self.row_cid = numpy.array([keys.setdefault(k, len(keys)) for k in zip(systems, codes)], dtype=numpy.int64)
        self.system_id = {s: j for j, s in enumerate(sorted(set(systems)))}
        self.row_system = numpy.array([self.system_id[s] for s in systems], dtype=numpy.int64)
        # tie-break of equal concepts: the shorter preferred term (0 when the concept has none)
        self.cid_term_len = numpy.array([len(concept_terms.get(k, ("",))[0]) for k in keys], dtype=numpy.int64)

    @staticmethod
    def key(text: str) -> str:
        """The matching form of a term or query: normalised, American spelling."""
        return americanize(normalize(text))

    @classmethod
    def from_index(cls, index, rows: numpy.ndarray | None = None) -> "LexicalRetriever":
        """Over the index's synonyms, or only the synonym ``rows`` given (then row ``j`` of the
        retriever is the index's synonym ``rows[j]``)."""
        syn = index.tables["synonyms"]
        con = index.tables["concepts"]
        concept_terms = {(s, c): (t, k) for s, c, t, k in zip(
            con.column("system").to_pylist(), con.column("code").to_pylist(),
            con.column("term").to_pylist(), con.column("kind").to_pylist())}
        cols = [syn.column(k).to_pylist() for k in ("system", "code", "term", "type")]
        if rows is not None:
            cols = [[col[r] for r in rows.tolist()] for col in cols]
        return cls(*cols, concept_terms)

    def singular(self, word: str) -> str:
        """A plural word's singular when the index knows it as a word ("legs" -> "leg",
        "extremities" -> "extremity", "metastases" -> "metastasis"), else the word."""
        if word in IRREGULAR_PLURALS:
            return IRREGULAR_PLURALS[word]
        if len(word) < 4 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
            return word
        for cut, add in (("ies", "y"), ("ses", "sis"), ("es", ""), ("s", "")):
            if word.endswith(cut) and (word[:-len(cut)] + add) in self.by_token:
                return word[:-len(cut)] + add
        return word

    def variant(self, q: str) -> str:
        """``q`` (a :meth:`key`) without modifier words and with plurals made singular; ``q``
        itself when nothing changes or nothing would be left."""
        words = [self.singular(w) for w in q.split() if w not in MODIFIERS]
        return " ".join(words) if words and tokens(" ".join(words)) else q

    def _candidates(self, q: str) -> set[int]:
        found: set[int] = set()
        for tok in tokens(q):
            rows = self.by_token.get(tok, ())
            if len(rows) > MAX_CANDIDATES:
                continue  # too common to narrow anything down
            found.update(rows)
            if len(tok) >= 4:
                found.update(self.by_prefix.get(tok[:4], ())[:MAX_CANDIDATES])
        return found

    def _matches(self, q: str, penalty: float) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Synonym rows matching the key ``q`` and their scores: exact matches (1.0), then the
        fuzzy scan when nothing shares a token, then the shared-token candidates (fuzzy scores
        lowered by ``penalty`` x the share of swapped words)."""
        from rapidfuzz import fuzz, process

        rows = list(self.exact.get(q, ()))
        scores = [1.0] * len(rows)
        # minus dict keys, not a set: the result's iteration order is the ranking's last tie-break,
        # and this keeps it what it has always been
        cands = self._candidates(q) - dict.fromkeys(rows).keys()
        if not cands and not rows and len(q) >= FUZZY_SCAN_MIN_CHARS:
            # nothing shares a token: fuzzy scan over every distinct term (misspellings)
            keep = 1 - penalty * self.aligner.substituted(q) if penalty else numpy.ones(len(self.norm))
            for term, score, _ in process.extract(q, self.unique_terms, scorer=fuzz.ratio,
                                                  limit=50, score_cutoff=70):
                for i in self.exact[term]:
                    rows.append(i)
                    scores.append(score / 100 * 0.95 * keep[i])
        rows_a = numpy.array(rows, dtype=numpy.int64)
        scores_a = numpy.array(scores, dtype=numpy.float64)
        if cands:  # one rapidfuzz call for all candidates
            extra = numpy.fromiter(cands, dtype=numpy.int64, count=len(cands))
            sims = numpy.minimum(fuzzy_matrix([q], [self.norm[i] for i in extra.tolist()], numpy.float64,
                                              aligner=self.aligner, cols=extra, penalty=penalty)[0], 0.99)
            rows_a = numpy.concatenate([rows_a, extra])
            scores_a = numpy.concatenate([scores_a, sims])
        return rows_a, scores_a

    def search_rows(self, query: str, *, k: int = 10, system: str | None = None,
                    penalty: float | None = None) -> tuple[numpy.ndarray, numpy.ndarray]:
        """The top ``k`` concepts for ``query`` as (synonym row of each concept's best match, its
        score), best first; :meth:`search` describes them as dicts.

        A concept's best row has the highest score, then the best synonym type, then the earliest
        place among the query's matches (exact, fuzzy scan, shared-token candidates). Concepts
        rank by score, then number of exact synonyms, best row's type, shorter preferred term,
        then that place. ``penalty``: the substitution penalty (default ``SUBSTITUTION_PENALTY``)."""
        empty = (numpy.zeros(0, dtype=numpy.int64), numpy.zeros(0, dtype=numpy.float64))
        q = self.key(query)
        if not q:
            return empty
        penalty = SUBSTITUTION_PENALTY if penalty is None else penalty
        rows_a, scores_a = self._matches(q, penalty)
        v = self.variant(q) if VARIANT_WEIGHT > 0 else q
        if v != q:  # the query without modifiers / plurals: its matches count a little less
            rows_v, scores_v = self._matches(v, penalty)
            rows_a = numpy.concatenate([rows_a, rows_v])
            scores_a = numpy.concatenate([scores_a, scores_v * VARIANT_WEIGHT])
        if system is not None:
            if system not in self.system_id:
                return empty
            keep = self.row_system[rows_a] == self.system_id[system]
            pos = numpy.flatnonzero(keep)
            rows_a, scores_a = rows_a[keep], scores_a[keep]
        else:
            pos = numpy.arange(len(rows_a))
        if not len(rows_a):
            return empty
        cid = self.row_cid[rows_a]
        trank = self.type_rank[rows_a]
        # each concept's best row: the first of its group sorted by score, type, place
        order = numpy.lexsort((pos, trank, -scores_a, cid))
        cid_o = cid[order]
        starts = numpy.flatnonzero(numpy.r_[True, cid_o[1:] != cid_o[:-1]])
        best = order[starts]
        n_exact = numpy.add.reduceat((scores_a[order] >= 1.0).astype(numpy.int64), starts)
        first = numpy.minimum.reduceat(pos[order], starts)
        best_s = scores_a[best]
        ranked = numpy.lexsort((first, self.cid_term_len[cid_o[starts]], trank[best], -n_exact, -best_s))[:k]
        return rows_a[best[ranked]], best_s[ranked]

    def search(self, query: str, *, k: int = 10, system: str | None = None) -> list[dict[str, Any]]:
        rows, scores = self.search_rows(query, k=k, system=system)
        out = []
        for i, s in zip(rows.tolist(), scores.tolist()):
            sys_, code = self.systems[i], self.codes[i]
            term, kind = self.concept_terms.get((sys_, code), (self.terms[i], ""))
            out.append({"system": sys_, "code": code, "term": term, "kind": kind,
                        "score": round(s, 4), "matched": self.terms[i],
                        "match_type": SYNONYM_TYPES[self.type_rank[i]]})
        return out
