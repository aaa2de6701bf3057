"""``medtext_lay``: lay terms, abbreviation senses and a patient-readable version of a note.

For each document:

- **Abbreviations** (``doc.spans["abbreviations"]``): short forms of the Vanderbilt clinical
  abbreviation inventory (in the terminology index) written as abbreviations (upper case,
  ``s/p``-style, or dosing/route forms such as ``bid``, ``po``). ``span._.expansion`` is the
  sense chosen from context: each sense is scored by its inventory frequency and by the overlap
  of the words around the abbreviation with the words of the sense, its concept's synonyms and
  its definition (so "MS" near "valve" and "murmur" reads mitral stenosis, near "relapsing" and
  "MRI brain" multiple sclerosis); with ``sense_model`` (a sentence-transformers name, e.g.
  ``all-MiniLM-L6-v2``, trf extra) the cosine between the context and each sense's
  description is added (weight ``sense_weight``). ``span._.senses`` lists the scored candidates. Upper-case
  short forms not in the inventory are flagged with label ``UNKNOWN`` and no expansion. When the
  best sense beats the next by less than ``min_margin`` the lay text keeps the abbreviation
  (``span._.expansion`` is still the best guess); the ``patient`` preset sets 1.5.
  A sense written out elsewhere in the note earns ``document_bonus`` ("AF" in a note that says
  "atrial fibrillation"); senses that only restate the abbreviation are never chosen.
- **Jargon** (``ent._.is_jargon``, ``token._.is_jargon``): an entity whose linked concept has a
  lay term (the team's lay vocabulary first, else HPO's lay synonyms) different from what the
  note says, that is an abbreviation, or that holds a rare word; a rare word is one with a Zipf
  frequency in general English under ``rare_zipf`` (wordfreq, ``medtext[lay]``; used when
  installed, ``word_frequency = true`` requires it). ``ent._.lay`` = ``{"term", "definition"}``
  for every entity with lay information.
- **Retrieved lay terms** (``lay_model``: a sentence-transformers name, trf extra): jargon
  entities whose concept has no lay term get the nearest entry of the lay vocabulary by
  bi-encoder cosine of the mention (0.8) and its sentence (0.2), when it reaches
  ``lay_threshold``; ``ent._.lay`` then also has ``concept``, ``score`` and ``source =
  "retrieval"``, and the lay text adds the term in brackets (``elaborate``).
- **Lay text** (``doc._.lay_text``, ``doc._.lay_edits``): the body text (layout furniture is
  removed: ``delete`` edits) with abbreviations expanded and jargon replaced by lay terms
  (``replace``), and a short lay definition added after the first mention of jargon that has no
  lay term (``elaborate``). Abbreviation senses listed in ``lay_data/abbreviation_lay.tsv`` use
  the team's wording ("blood urea nitrogen" -> "kidney blood test (BUN)"); words and phrases of
  ``lay_data/plain_words.tsv`` outside entities become plain words ("commenced" -> "started",
  "prior to" -> "before"); a long sentence is split at a semicolon (or at ", and" / ", but"
  before a new clause when it has more than 20 words). ``lay_tables`` points at a folder with
  your own two tables. Every edit records ``op``, ``start``/``end`` in the source text and
  the new ``text``, so a viewer can show what changed. The source text is never modified.
- Optional ``rewriter``: any HF seq2seq model name or path (e.g. a Flan-T5 checkpoint; GPU
  advised) rewrites each body sentence instead (``replace`` edits per sentence; a sentence the
  model fails on keeps the rule-based version, with a warning).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.util import minibatch

log = logging.getLogger(__name__)

# written in lower case in notes and still abbreviations
LOWER_CASE_FORMS = {"bid", "tid", "qid", "qd", "qod", "qhs", "hs", "prn", "po", "iv", "im", "sc", "sq", "subq", "sl",
                    "npo", "stat", "ac", "pc", "qam", "qpm", "q4h", "q6h", "q8h", "q12h", "q24h", "inh", "neb",
                    "s/p", "h/o", "c/o", "r/o", "w/", "w/o", "b/l", "f/u", "n/v", "d/c"}
# units stay as written
KEEP = {"mg", "mcg", "ml", "kg", "cm", "mm", "g", "l", "dl", "meq", "mmol", "iu"}
# patient-readable wording of dosing and route abbreviations (the team's; the inventory's senses
# are often Latin: "bis in die")
LAY_FORMS = {"bid": "twice a day", "tid": "three times a day", "qid": "four times a day", "qd": "once a day",
             "qod": "every other day", "qhs": "at bedtime", "hs": "at bedtime", "prn": "as needed",
             "po": "by mouth", "iv": "into a vein", "im": "into a muscle", "sc": "under the skin",
             "sq": "under the skin", "subq": "under the skin", "sl": "under the tongue", "npo": "nothing by mouth",
             "ac": "before meals", "pc": "after meals", "stat": "right away", "q4h": "every 4 hours",
             "q6h": "every 6 hours", "q8h": "every 8 hours", "q12h": "every 12 hours", "q24h": "once a day",
             "qam": "every morning", "qpm": "every evening", "s/p": "after", "h/o": "history of",
             "c/o": "complains of", "r/o": "rule out", "w/": "with", "w/o": "without", "b/l": "on both sides",
             "f/u": "follow-up", "n/v": "nausea and vomiting", "d/c": "stop", "pt": "patient", "pts": "patients"}
LAY_DATA = Path(__file__).parent / "lay_data"


def read_pairs(path: Path) -> dict[str, str]:
    """A two-column table (``key<TAB>value``; ``#`` starts a comment line) as a dict keyed by the
    lower-cased key. A malformed line is a :class:`~medtext.errors.ConfigError` naming the file
    and line."""
    from medtext.errors import ConfigError

    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"medtext_lay: cannot read {path} ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ConfigError(f"medtext_lay: {path}:{n}: expected two tab-separated fields "
                              f"(term<TAB>plain wording), found {len(parts)}")
        out[parts[0].strip().lower()] = parts[1].strip()
    return out


_CANDIDATE = re.compile(r"(?<![\w/.])([A-Za-z][A-Za-z0-9]*(?:[/.&][A-Za-z0-9]+)*\.?)(?![\w/])")
_WORDS = re.compile(r"[a-z]{3,}")
_STEM = 5


def _stems(text: str, stop: set[str]) -> set[str]:
    return {w[:_STEM] for w in _WORDS.findall(text.lower()) if w not in stop}


class LayVocabulary:
    """Lay terms, definitions and abbreviation senses of a terminology index (loaded once)."""

    def __init__(self, index_path: Path):
        from medtext.terminologies.derived import LINKING_ONLY_SOURCES
        from medtext.terminologies.index import ConceptIndex, normalize

        index = ConceptIndex.load(index_path)
        self.normalize = normalize
        syn = index.tables["synonyms"]
        rank = {"medtext": 0, "hpo": 1}
        self.lay: dict[str, tuple[int, str]] = {}
        self.names: dict[str, list[str]] = {}
        self.by_term: dict[str, str] = {}
        for s, c, t, typ, src in zip(*(syn.column(k).to_pylist() for k in ("system", "code", "term", "type", "source"))):
            if src in LINKING_ONLY_SOURCES:
                continue
            key = f"{s}:{c}"
            self.names.setdefault(key, []).append(t)
            if typ in ("preferred", "synonym", "lay"):
                self.by_term.setdefault(normalize(t), key)
            if typ == "lay":
                r = (rank.get(src, 2), len(t))
                if key not in self.lay or r < self.lay[key][0:2]:
                    self.lay[key] = (*r, t)
        # the team's lay terms (terminologies/data/lay_definitions_*.tsv), preferred over HPO's
        from medtext.terminologies.default import _TRAILING_ABBR, _team_files
        from medtext.terminologies.textio import read_tsv

        self.team_lay: dict[str, str] = {}
        for f in _team_files("lay_definitions"):
            for _, row in read_tsv(f, ("code", "term", "lay_term", "definition")):
                m = _TRAILING_ABBR.match(row["lay_term"])
                self.team_lay[f"snomed:{row['code']}"] = m.group(1) if m else row["lay_term"]
        self.definitions: dict[str, str] = {}
        d = index.tables["definitions"]
        for s, c, t in zip(*(d.column(k).to_pylist() for k in ("system", "code", "text"))):
            self.definitions.setdefault(f"{s}:{c}", t)
        self.abbreviations: dict[str, dict[str, float]] = {}
        ab = index.tables.get("abbreviations")
        self.sense_cui: dict[str, str] = {}
        if ab is not None:
            for a, sense, f, cui in zip(*(ab.column(k).to_pylist() for k in ("abbreviation", "sense", "frequency", "cui"))):
                senses = self.abbreviations.setdefault(a.lower(), {})
                senses[sense] = max(senses.get(sense, 0.0), f or 0.0)
                if cui:
                    self.sense_cui.setdefault(sense.lower(), cui.lower())
        self._profiles: dict[str, set[str]] = {}

    def lay_term(self, key: str, team_only: bool = False) -> str | None:
        if key in self.team_lay:
            return self.team_lay[key]
        v = self.lay.get(key)
        return v[2] if v and not team_only else None

    def profile(self, sense: str, stop: set[str]) -> set[str]:
        """Word stems that describe a sense: the sense, its concept's names and definition."""
        p = self._profiles.get(sense)
        if p is None:
            text = [sense]
            key = self.by_term.get(self.normalize(sense))
            if key:
                text += self.names.get(key, [])[:12]
                text.append(self.definitions.get(key, ""))
            p = self._profiles[sense] = _stems(" ".join(text), stop)
        return p


class LaySimplifier:
    version = "1.0.0"

    def __init__(self, nlp: Language, name: str, *, index: str | None, abbreviations: bool, elaborate: bool,
                 context_words: int, prior_weight: float, concept_bonus: float, sense_model: str | None,
                 sense_weight: float, rewriter: str | None, device: str, batch_size: int,
                 document_bonus: float = 2.0, plain_words: bool = True, split_sentences: bool = True,
                 lay_tables: str | None = None, word_frequency: bool | None = None, rare_zipf: float = 3.0,
                 lay_model: str | None = None, lay_threshold: float = 0.7, min_margin: float = 0.0):
        from medtext.terminologies.default import default_index_dir

        for ext in ("lay_text", "lay_edits"):
            if not Doc.has_extension(ext):
                Doc.set_extension(ext, default=None)
        if not Doc.has_extension("warnings"):
            Doc.set_extension("warnings", default=None)
        for ext, default in (("lay", None), ("is_jargon", False), ("expansion", None), ("senses", None)):
            if not Span.has_extension(ext):
                Span.set_extension(ext, default=default)
        if not Token.has_extension("is_jargon"):
            Token.set_extension("is_jargon", default=False)
        self.name = name
        self.vocab = _vocabulary(str(Path(index) if index else default_index_dir()))
        self.abbreviations = abbreviations
        self.elaborate = elaborate
        self.context_words = context_words
        self.prior_weight = prior_weight
        self.concept_bonus = concept_bonus
        self.sense_model = sense_model
        self.sense_weight = sense_weight
        self.document_bonus = document_bonus
        tables = Path(lay_tables) if lay_tables else LAY_DATA
        self.sense_lay = read_pairs(tables / "abbreviation_lay.tsv")
        plain = read_pairs(tables / "plain_words.tsv") if plain_words else {}
        self.plain = {tuple(k.split()): v for k, v in plain.items()}
        self.plain_max = max((len(k) for k in self.plain), default=0)
        self.split_sentences = split_sentences
        self.zipf = _word_frequency(word_frequency)
        self.rare_zipf = rare_zipf
        self.lay_model = lay_model
        self.lay_threshold = lay_threshold
        self.min_margin = min_margin
        if sense_model or lay_model:
            import importlib.util

            if importlib.util.find_spec("sentence_transformers") is None:
                from medtext.errors import ConfigError

                raise ConfigError("medtext_lay: sense_model / lay_model need the transformer stack: pip install "
                                  "'medtext[trf]' (or set them to null for lexical sense choice)")
        self._lay_matrix = None
        self.device = device
        self._sense_vectors: dict[str, object] = {}
        self._context_vectors: dict[str, object] = {}
        self.batch_size = batch_size
        self.stop = set(nlp.Defaults.stop_words)
        self.rewriter = None
        if rewriter:
            from .lay_seq2seq import Seq2SeqRewriter

            self.rewriter = Seq2SeqRewriter(rewriter, device=device, batch_size=batch_size)
        self.model_id = rewriter

    # --- abbreviations -----------------------------------------------------------------------
    def choose_sense(self, abbr: str, context: str, marked: str | None = None,
                     document: str | None = None) -> list[tuple[str, float]]:
        """Scored senses of ``abbr`` (best first) given the surrounding text (``marked``: the
        same text with the abbreviation in brackets, for the sense model; ``document``: the
        whole note in lower case, where a sense written out in full earns ``document_bonus``).
        Senses that only restate the abbreviation ("MD" -> "md") are not candidates."""
        senses = self._senses(abbr)
        bare = re.sub(r"[^a-z0-9]", "", abbr.lower())
        senses = {k: v for k, v in senses.items() if re.sub(r"[^a-z0-9]", "", k.lower()) != bare}
        ctx = _stems(context, self.stop)
        cos = self._similarities(marked or context, list(senses)) if self.sense_model and len(senses) > 1 else {}
        scored = []
        for sense, freq in senses.items():
            overlap = len(ctx & self.vocab.profile(sense, self.stop))
            clinical = self.vocab.normalize(sense) in self.vocab.by_term  # names a concept of the index
            score = self.prior_weight * math.log(freq + 0.01) + overlap + self.concept_bonus * clinical
            if document is not None and len(sense) > 3 and sense.lower() in document:
                score += self.document_bonus
            scored.append((sense, score + self.sense_weight * cos.get(sense, 0.0)))
        scored.sort(key=lambda x: -x[1])
        return scored

    def _similarities(self, context: str, senses: list[str]) -> dict[str, float]:
        """Cosine of the context and each sense's description (sense + lay definition) under the
        sense model (a sentence-transformers bi-encoder, loaded once)."""
        from medtext.terminologies.embeddings import load_model

        model = load_model(self.sense_model, device=self.device)
        todo = [s for s in senses if s not in self._sense_vectors]
        if todo:
            texts = []
            for s in todo:
                key = self.vocab.by_term.get(self.vocab.normalize(s))
                d = self.vocab.definitions.get(key, "") if key else ""
                texts.append(s + (f": {d}" if d else ""))
            for s, v in zip(todo, model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)):
                self._sense_vectors[s] = v
        c = self._context_vectors.get(context)
        if c is None:
            c = model.encode([context], normalize_embeddings=True, convert_to_numpy=True)[0]
        return {s: float(self._sense_vectors[s] @ c) for s in senses}

    def _abbreviation_spans(self, doc: Doc) -> list[Span]:
        text = doc.text
        lowered = text.lower()
        letters = [c for c in text if c.isalpha()]
        all_caps = bool(letters) and sum(c.isupper() for c in letters) / len(letters) > 0.8
        found = []  # (span, bare, context, marked) for known forms; context None for unknown ones
        for m in _CANDIDATE.finditer(text):
            word = m.group(1)
            bare = word.rstrip(".")
            key = bare.lower()
            known = key in self.vocab.abbreviations or key.replace(".", "") in self.vocab.abbreviations
            if key in self.stop or key in KEEP or len(bare) < 2:
                continue
            upper = sum(c.isupper() for c in bare)
            looks_abbr = (not all_caps and upper >= 2 and bare.upper() == bare) or "/" in bare or "." in bare \
                or key in LOWER_CASE_FORMS
            if all_caps:
                looks_abbr = looks_abbr or (known and len(bare) <= 5)
            if not looks_abbr:
                continue
            span = doc.char_span(m.start(1), m.start(1) + len(bare), alignment_mode="expand")
            if span is None:
                continue
            if known:
                a, b = max(0, m.start() - 6 * self.context_words), m.end() + 6 * self.context_words
                marked = text[a:m.start(1)] + "[" + bare + "]" + text[m.start(1) + len(bare):b]
                found.append((span, bare, text[a:b], marked))
            elif not all_caps and 2 <= len(bare) <= 5 and bare.isalpha() and bare.isupper() and \
                    self.vocab.normalize(bare) not in self.vocab.by_term:
                found.append((span, bare, None, None))
        if self.sense_model:  # one batched encode of every ambiguous context of the note
            self._encode_contexts([marked for _, bare, ctx, marked in found
                                   if ctx is not None and len(self._senses(bare)) > 1])
        spans = []
        try:
            for span, bare, context, marked in found:
                if context is None:
                    spans.append(Span(doc, span.start, span.end, label="UNKNOWN"))
                    continue
                scored = self.choose_sense(bare, context, marked, lowered)
                if not scored:
                    continue
                sp = Span(doc, span.start, span.end, label="ABBR")
                sp._.senses = [(s, round(v, 3)) for s, v in scored[:5]]
                sp._.expansion = scored[0][0]
                spans.append(sp)
        finally:
            self._context_vectors.clear()
        return spans

    def _senses(self, abbr: str) -> dict[str, float]:
        return self.vocab.abbreviations.get(abbr.lower().rstrip("."), {}) or \
            self.vocab.abbreviations.get(abbr.lower().replace(".", ""), {})

    def _encode_contexts(self, contexts: list[str]) -> None:
        """Sense-model vectors of ``contexts`` in one batch (read by :meth:`_similarities`)."""
        if not contexts:
            return
        from medtext.terminologies.embeddings import load_model

        model = load_model(self.sense_model, device=self.device)
        todo = list(dict.fromkeys(c for c in contexts if c not in self._context_vectors))
        vecs = model.encode(todo, batch_size=self.batch_size * 4, normalize_embeddings=True, convert_to_numpy=True)
        self._context_vectors.update(zip(todo, vecs))

    # --- the document ------------------------------------------------------------------------
    def _process(self, doc: Doc) -> Doc:
        from .layout import outside_body

        outside = outside_body(doc)
        abbrs = [s for s in self._abbreviation_spans(doc) if outside(s.start_char, s.end_char) is None] \
            if self.abbreviations else []
        doc.spans["abbreviations"] = abbrs
        taken: set[int] = set()
        edits: list[dict] = []
        starts = sentence_starts(doc)
        ents_at = {(e.start_char, e.end_char): e for e in doc.ents}
        for s in abbrs:
            for t in s:
                t._.is_jargon = True
            senses = s._.senses or []
            if s._.expansion and len(senses) > 1 and senses[0][1] - senses[1][1] < self.min_margin:
                continue  # too close to call: the lay text keeps the abbreviation (expansion = best guess)
            if s._.expansion:
                form = s.text.lower().rstrip(".").replace(".", "") if "/" not in s.text else s.text.lower()
                new = LAY_FORMS.get(form)
                ent = ents_at.get((s.start_char, s.end_char))
                if new is None and ent is not None and ent.kb_id_:
                    # the entity's concept, when the chosen sense is one of its names
                    names = {self.vocab.normalize(n) for n in self.vocab.names.get(ent.kb_id_, [])}
                    if self.vocab.normalize(s._.expansion) in names:
                        new = self.vocab.lay_term(ent.kb_id_)
                if new is None:
                    new = self.sense_lay.get(s._.expansion.lower())
                if new is None:
                    key = self.vocab.by_term.get(self.vocab.normalize(s._.expansion))
                    new = (self.vocab.lay_term(key) if key else None) or s._.expansion
                new = _fit_case(new, doc, s, starts)
                if new.lower() == s.text.lower():  # nothing to explain ("BMI" -> "BMI")
                    continue
                edits.append({"op": "replace", "start": s.start_char, "end": s.end_char, "text": new,
                              "source": "abbreviation"})
                taken.update(range(s.start_char, s.end_char))
        rare = self._rare_tokens(doc, outside, starts) if self.zipf is not None else set()
        for i in rare:
            doc[i]._.is_jargon = True
        ents = [e for e in doc.ents if outside(e.start_char, e.end_char) is None]
        retrieved = self._retrieve(doc, [e for e in ents if not self._has_lay(e) and
                                         any(t.i in rare for t in e)]) if self.lay_model else {}
        seen: set[str] = set()
        for ent in ents:
            key = ent.kb_id_ or None
            term = any_term = self.vocab.lay_term(key) if key else None  # the team's wording, else HPO's
            definition = self.vocab.definitions.get(key) if key else None
            if any_term or definition:
                ent._.lay = {"term": any_term, "definition": definition}
            overlaps = any(c in taken for c in range(ent.start_char, ent.end_char))
            jargon = bool(term and self.vocab.normalize(term) != self.vocab.normalize(ent.text)) or overlaps \
                or any(t.i in rare for t in ent)
            hit = retrieved.get(ent.start_char)
            if hit is not None and not any_term:
                ent._.lay = hit
                same = self.vocab.normalize(hit["term"]) == self.vocab.normalize(ent.text)
                if not overlaps and self.elaborate and not same:
                    edits.append({"op": "elaborate", "start": ent.end_char, "end": ent.end_char,
                                  "text": f" ({hit['term']})", "source": "retrieved lay term"})
            ent._.is_jargon = jargon
            for t in ent:
                t._.is_jargon = t._.is_jargon or jargon
            if overlaps:
                continue
            if jargon and term:
                new = _fit_case(term, doc, ent, starts)
                edits.append({"op": "replace", "start": ent.start_char, "end": ent.end_char, "text": new,
                              "source": "lay term"})
            elif self.elaborate and hit is None and definition and key not in seen and not any_term and key.startswith("snomed:") \
                    and ent.label_ != "FUNCTION" and len(definition.split()) <= 25:
                edits.append({"op": "elaborate", "start": ent.end_char, "end": ent.end_char,
                              "text": f" ({definition.rstrip('.')})", "source": "definition"})
            if key:
                seen.add(key)
        if self.plain:
            edits += self._plain_words(doc, outside, edits)
        if self.split_sentences:
            edits = self._splits(doc, outside, edits)
        edits += _furniture_deletes(doc)
        edits = _non_overlapping(edits)
        if self.rewriter is not None:
            edits = self._rewrite(doc, edits)
        doc._.lay_edits = edits
        doc._.lay_text = apply_edits(doc.text, edits)
        return doc

    def _has_lay(self, ent: Span) -> bool:
        return bool(ent.kb_id_ and self.vocab.lay_term(ent.kb_id_))

    def _rare_tokens(self, doc: Doc, outside, starts: set[int]) -> set[int]:
        """Indices of body words a lay reader is unlikely to know: alphabetic, 4+ letters, not a
        stop word, with a Zipf frequency in general English under ``rare_zipf`` (wordfreq).
        Capitalised words inside a sentence (names) are not counted."""
        out = set()
        for t in doc:
            if not t.is_alpha or len(t) < 4 or t.is_stop or (t.text[:1].isupper() and t.i not in starts
                                                               and not t.text.isupper() and
                                                               doc[t.i - 1].text not in ("\n", ":", "-")):
                continue
            if self.zipf(t.lower_) < self.rare_zipf and outside(t.idx, t.idx + len(t)) is None:
                out.add(t.i)
        return out

    def _retrieve(self, doc: Doc, ents: list[Span]) -> dict[int, dict]:
        """Lay terms for entities without one, by bi-encoder retrieval over the lay vocabulary
        (every concept with a lay term: "name (lay term)"): the mention and its sentence are
        embedded (weights 0.8 / 0.2) and the best entry above ``lay_threshold`` wins."""
        if not ents:
            return {}
        import numpy as np

        from medtext.terminologies.embeddings import load_model

        model = load_model(self.lay_model, device=self.device)
        if self._lay_matrix is None:
            keys = sorted(k for k in set(self.vocab.lay) | set(self.vocab.team_lay) if self.vocab.names.get(k))
            texts = [f"{self.vocab.names[k][0]} ({self.vocab.lay_term(k)})" for k in keys]
            self._lay_keys = keys
            self._lay_matrix = model.encode(texts, batch_size=64, normalize_embeddings=True,
                                            convert_to_numpy=True) if texts else np.zeros((0, 1))
        if not len(self._lay_keys):
            return {}
        mentions = model.encode([e.text for e in ents], normalize_embeddings=True, convert_to_numpy=True)
        sents = model.encode([e.sent.text[:300] if doc.has_annotation("SENT_START") else e.text for e in ents],
                             normalize_embeddings=True, convert_to_numpy=True)
        scores = 0.8 * mentions @ self._lay_matrix.T + 0.2 * sents @ self._lay_matrix.T
        out = {}
        for e, row in zip(ents, scores):
            j = int(row.argmax())
            if row[j] >= self.lay_threshold:
                k = self._lay_keys[j]
                out[e.start_char] = {"term": self.vocab.lay_term(k), "definition": self.vocab.definitions.get(k),
                                     "concept": k, "score": round(float(row[j]), 4), "source": "retrieval"}
        return out

    def _plain_words(self, doc: Doc, outside, edits: list[dict]) -> list[dict]:
        """``replace`` edits for plain-language words and phrases outside entities and other edits."""
        from spacy.attrs import ENT_IOB

        busy = sorted((e["start"], e["end"]) for e in edits)
        iob = doc.to_array([ENT_IOB]) if len(doc) else []
        lowers = [t.lower_ for t in doc]
        out, i, n = [], 0, len(doc)
        while i < n:
            hit = None
            for k in range(min(self.plain_max, n - i), 0, -1):
                words = tuple(lowers[i:i + k])
                if words in self.plain and not any(iob[j] in (1, 3) for j in range(i, i + k)):
                    hit = k
                    break
            if hit is None:
                i += 1
                continue
            span = doc[i:i + hit]
            a, b = span.start_char, span.end_char
            if outside(a, b) is None and not _overlaps(busy, a, b):
                new = self.plain[tuple(lowers[i:i + hit])]
                if len(span.text) > 1 and span.text.isupper():
                    new = new.upper()
                elif span.text[:1].isupper():
                    new = new[:1].upper() + new[1:]
                if new.lower() != span.text.lower():
                    out.append({"op": "replace", "start": a, "end": b, "text": new, "source": "plain word"})
            i += hit
        return out

    def _splits(self, doc: Doc, outside, edits: list[dict]) -> list[dict]:
        """Long sentences split in two at a semicolon (or at ", and" / ", but" when the sentence
        has more than 20 words): ``replace`` edits of the joint, the next word capitalised."""
        from .error_classifier import sentence_spans

        text = doc.text
        by_start = {e["start"]: e for e in edits}
        busy = sorted((e["start"], e["end"]) for e in edits)
        out = list(edits)
        for a, b in sentence_spans(doc):
            if outside(a, b) is not None:
                continue
            sent = text[a:b]
            long = len(sent.split()) > 20
            prev = 0
            for m in _JOINT.finditer(sent):
                if m.group(1) != ";" and not (long and _CLAUSE_START.match(sent, m.end())):
                    continue
                left, right = sent[prev:m.start()], sent[m.end():]
                right = re.split(r"[;.]", right, maxsplit=1)[0]
                if len(left.split()) < 4 or len(right.split()) < 3 or "\n" in m.group(0):
                    continue
                j, k = a + m.start(), a + m.end()  # the joint; k = the next word's first character
                if _overlaps(busy, j, k) or not text[k:k + 1].isalpha():
                    continue
                nxt = by_start.get(k)
                if nxt is not None:  # the next word is itself edited: capitalise its new text
                    nxt["text"] = nxt["text"][:1].upper() + nxt["text"][1:]
                    out.append({"op": "replace", "start": j, "end": k, "text": ". ", "source": "split"})
                elif not _overlaps(busy, k, k + 1):
                    word = "And" if m.group(1) == ", and" else "But" if m.group(1) == ", but" else None
                    joint = ". " + (word + " " + text[k] if word else text[k].upper())
                    out.append({"op": "replace", "start": j, "end": k + 1, "text": joint, "source": "split"})
                else:
                    continue
                prev = m.end()
        return out

    def _rewrite(self, doc: Doc, edits: list[dict]) -> list[dict]:
        """Replace each body sentence by the seq2seq model's rewrite of its rule-based version."""
        from .error_classifier import sentence_spans
        from .layout import outside_body

        outside = outside_body(doc)
        sents = [(a, b) for a, b in sentence_spans(doc) if outside(a, b) is None]
        text = doc.text
        inputs = [apply_edits(text[a:b], [{**e, "start": e["start"] - a, "end": e["end"] - a}
                                              for e in edits if a <= e["start"] and e["end"] <= b]) for a, b in sents]
        outputs, warnings = self.rewriter.rewrite(inputs)
        if warnings:
            doc._.warnings = (doc._.warnings or []) + [f"medtext_lay: {w}" for w in warnings]
        keep = [e for e in edits if not any(a <= e["start"] and e["end"] <= b and out for (a, b), out in zip(sents, outputs))]
        new = [{"op": "replace", "start": a, "end": b, "text": out, "source": "rewriter"}
               for (a, b), out in zip(sents, outputs) if out]
        return sorted(keep + new, key=lambda e: (e["start"], e["end"]))

    def __call__(self, doc: Doc) -> Doc:
        return self._process(doc)

    def pipe(self, stream: Iterable[Doc], *, batch_size: int | None = None) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size or self.batch_size):
            yield from (self._process(d) for d in batch)


def sentence_starts(doc: Doc) -> set[int]:
    """Indices of the tokens that start a sentence (read from the SENT_START array once: a
    token's ``is_sent_start`` walks the whole doc)."""
    from spacy.attrs import SENT_START

    if not len(doc):
        return set()
    arr = doc.to_array([SENT_START])
    return {0} | {int(i) for i in (arr == 1).nonzero()[0]}


def _sentence_initial(doc: Doc, span: Span, starts: set[int]) -> bool:
    return span.start == 0 or span.start in starts or doc[span.start - 1].text in (".", ":", "\n")


def _fit_case(term: str, doc: Doc, span: Span, starts: set[int]) -> str:
    """A lay term cased for its place: capitalised at a sentence start, else lower-cased
    (unless it starts with an acronym such as "AFib")."""
    if _sentence_initial(doc, span, starts):
        return term[:1].upper() + term[1:]
    if len(term) > 1 and term[0].isupper() and not term[1].isupper():
        return term[0].lower() + term[1:]
    return term


def _furniture_deletes(doc: Doc) -> list[dict]:
    labels = doc._.line_labels if Doc.has_extension("line_labels") else None
    lines = doc._.lines if Doc.has_extension("lines") else None
    if not labels or not lines or len(labels) != len(lines):
        return []
    out = []
    text = doc.text  # built on each access: read it once
    for ln, label in zip(lines, labels):
        if label is not None and label != "body":
            end = ln["end"] + 1 if ln["end"] < len(text) and text[ln["end"]] == "\n" else ln["end"]
            out.append({"op": "delete", "start": ln["start"], "end": end, "text": "", "source": f"layout:{label}"})
    return out


_JOINT = re.compile(r"(;|, and|, but)\s+")
# ", and" / ", but" split a sentence only before a new clause (not inside a list "a, b, and c")
_CLAUSE_START = re.compile(r"(?:he|she|they|it|we|i|you|there|this|his|her|their|the patient)\b", re.I)


def _overlaps(spans: list[tuple[int, int]], a: int, b: int) -> bool:
    """Whether [a, b) overlaps one of the sorted (start, end) ``spans``."""
    import bisect

    i = bisect.bisect_left(spans, (b, b))
    return any(s < b and a < e for s, e in spans[max(0, i - 8):i])


def _non_overlapping(edits: list[dict]) -> list[dict]:
    """Edits sorted by position; of overlapping edits the earlier (then longer) one wins."""
    out: list[dict] = []
    for e in sorted(edits, key=lambda e: (e["start"], -(e["end"] - e["start"]))):
        if out and e["start"] < out[-1]["end"]:
            continue
        out.append(e)
    return out


def apply_edits(text: str, edits: list[dict]) -> str:
    """``text`` with non-overlapping ``edits`` (sorted by start) applied."""
    parts, pos = [], 0
    for e in edits:
        parts.append(text[pos:e["start"]])
        parts.append(e["text"])
        pos = e["end"]
    parts.append(text[pos:])
    return "".join(parts)


def _word_frequency(enabled: bool | None):
    """wordfreq's English Zipf frequency function, or None: ``enabled=None`` uses wordfreq when it
    is installed (``pip install 'medtext[lay]'``), ``True`` requires it."""
    if enabled is False:
        return None
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        if enabled:
            from medtext.errors import ConfigError

            raise ConfigError("medtext_lay: word_frequency = true needs wordfreq: pip install 'medtext[lay]'") from None
        return None
    return lambda w: zipf_frequency(w, "en")


_VOCABS: dict[str, LayVocabulary] = {}


def _vocabulary(path: str) -> LayVocabulary:
    if path not in _VOCABS:
        from medtext.errors import ConfigError
        from medtext.terminologies.index import TerminologyError

        try:
            _VOCABS[path] = LayVocabulary(Path(path))
        except (TerminologyError, FileNotFoundError) as e:
            raise ConfigError(f"medtext_lay: cannot load the terminology index at {path} ({e}); build it "
                              "with `medtext terminology build default`") from None
    return _VOCABS[path]


@Language.factory(
    "medtext_lay",
    default_config={"index": None, "abbreviations": True, "elaborate": True, "context_words": 12,
                    "prior_weight": 0.5, "concept_bonus": 1.0, "sense_model": None, "sense_weight": 8.0,
                    "rewriter": None, "device": "cpu", "batch_size": 16, "document_bonus": 2.0,
                    "plain_words": True, "split_sentences": True, "lay_tables": None, "word_frequency": None,
                    "rare_zipf": 3.0, "lay_model": None, "lay_threshold": 0.7, "min_margin": 0.0},
)
def make_lay(nlp: Language, name: str, index: str | None, abbreviations: bool, elaborate: bool,
             context_words: int, prior_weight: float, concept_bonus: float, sense_model: str | None,
             sense_weight: float, rewriter: str | None, device: str, batch_size: int, document_bonus: float,
             plain_words: bool, split_sentences: bool, lay_tables: str | None, word_frequency: bool | None,
             rare_zipf: float, lay_model: str | None, lay_threshold: float, min_margin: float) -> LaySimplifier:
    return LaySimplifier(nlp, name, index=index, abbreviations=abbreviations, elaborate=elaborate,
                         context_words=context_words, prior_weight=prior_weight, concept_bonus=concept_bonus,
                         sense_model=sense_model, sense_weight=sense_weight, rewriter=rewriter, device=device,
                         batch_size=batch_size, document_bonus=document_bonus, plain_words=plain_words,
                         split_sentences=split_sentences, lay_tables=lay_tables, word_frequency=word_frequency,
                         rare_zipf=rare_zipf, lay_model=lay_model, lay_threshold=lay_threshold,
                         min_margin=min_margin)
