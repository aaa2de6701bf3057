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
  short forms not in the inventory are flagged with label ``UNKNOWN`` and no expansion.
- **Jargon** (``ent._.is_jargon``, ``token._.is_jargon``): an entity whose linked concept has a
  lay term (the team's lay vocabulary first, else HPO's lay synonyms) different from what the
  note says, or that is an abbreviation. ``ent._.lay`` = ``{"term", "definition"}`` for every
  entity with lay information.
- **Lay text** (``doc._.lay_text``, ``doc._.lay_edits``): the body text (layout furniture is
  removed: ``delete`` edits) with abbreviations expanded and jargon replaced by lay terms
  (``replace``), and a short lay definition added after the first mention of jargon that has no
  lay term (``elaborate``). Every edit records ``op``, ``start``/``end`` in the source text and
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
_CANDIDATE = re.compile(r"(?<![\w/.])([A-Za-z][A-Za-z0-9]*(?:[/.&][A-Za-z0-9]+)*\.?)(?![\w/])")
_WORDS = re.compile(r"[a-z]{3,}")
_STEM = 5


def _stems(text: str, stop: set[str]) -> set[str]:
    return {w[:_STEM] for w in _WORDS.findall(text.lower()) if w not in stop}


class LayVocabulary:
    """Lay terms, definitions and abbreviation senses of a terminology index (loaded once)."""

    def __init__(self, index_path: Path):
        from medtext.terminologies.index import ConceptIndex, normalize

        index = ConceptIndex.load(index_path)
        self.normalize = normalize
        syn = index.tables["synonyms"]
        rank = {"medtext": 0, "hpo": 1}
        self.lay: dict[str, tuple[int, str]] = {}
        self.names: dict[str, list[str]] = {}
        self.by_term: dict[str, str] = {}
        for s, c, t, typ, src in zip(*(syn.column(k).to_pylist() for k in ("system", "code", "term", "type", "source"))):
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
                 sense_weight: float, rewriter: str | None, device: str, batch_size: int):
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
        self.device = device
        self._sense_vectors: dict[str, object] = {}
        self.batch_size = batch_size
        self.stop = set(nlp.Defaults.stop_words)
        self.rewriter = None
        if rewriter:
            from .lay_seq2seq import Seq2SeqRewriter

            self.rewriter = Seq2SeqRewriter(rewriter, device=device, batch_size=batch_size)
        self.model_id = rewriter

    # --- abbreviations -----------------------------------------------------------------------
    def choose_sense(self, abbr: str, context: str, marked: str | None = None) -> list[tuple[str, float]]:
        """Scored senses of ``abbr`` (best first) given the surrounding text (``marked``: the
        same text with the abbreviation in brackets, for the sense model)."""
        senses = self.vocab.abbreviations.get(abbr.lower().rstrip("."), {}) or \
            self.vocab.abbreviations.get(abbr.lower().replace(".", ""), {})
        ctx = _stems(context, self.stop)
        cos = self._similarities(marked or context, list(senses)) if self.sense_model and len(senses) > 1 else {}
        scored = []
        for sense, freq in senses.items():
            overlap = len(ctx & self.vocab.profile(sense, self.stop))
            clinical = self.vocab.normalize(sense) in self.vocab.by_term  # names a concept of the index
            score = self.prior_weight * math.log(freq + 0.01) + overlap + self.concept_bonus * clinical
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
        c = model.encode([context], normalize_embeddings=True, convert_to_numpy=True)[0]
        return {s: float(self._sense_vectors[s] @ c) for s in senses}

    def _abbreviation_spans(self, doc: Doc) -> list[Span]:
        text = doc.text
        letters = [c for c in text if c.isalpha()]
        all_caps = bool(letters) and sum(c.isupper() for c in letters) / len(letters) > 0.8
        spans = []
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
                words = text[a:b]
                marked = text[a:m.start(1)] + "[" + bare + "]" + text[m.start(1) + len(bare):b]
                scored = self.choose_sense(bare, words, marked)
                if not scored:
                    continue
                sp = Span(doc, span.start, span.end, label="ABBR")
                sp._.senses = [(s, round(v, 3)) for s, v in scored[:5]]
                sp._.expansion = scored[0][0]
            elif not all_caps and 2 <= len(bare) <= 5 and bare.isalpha() and bare.isupper() and \
                    self.vocab.normalize(bare) not in self.vocab.by_term:
                sp = Span(doc, span.start, span.end, label="UNKNOWN")
            else:
                continue
            spans.append(sp)
        return spans

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
                    key = self.vocab.by_term.get(self.vocab.normalize(s._.expansion))
                    new = (self.vocab.lay_term(key) if key else None) or s._.expansion
                new = _fit_case(new, doc, s, starts)
                edits.append({"op": "replace", "start": s.start_char, "end": s.end_char, "text": new,
                              "source": "abbreviation"})
                taken.update(range(s.start_char, s.end_char))
        seen: set[str] = set()
        for ent in doc.ents:
            if outside(ent.start_char, ent.end_char) is not None:
                continue
            key = ent.kb_id_ or None
            term = any_term = self.vocab.lay_term(key) if key else None  # the team's wording, else HPO's
            definition = self.vocab.definitions.get(key) if key else None
            if any_term or definition:
                ent._.lay = {"term": any_term, "definition": definition}
            overlaps = any(c in taken for c in range(ent.start_char, ent.end_char))
            jargon = bool(term and self.vocab.normalize(term) != self.vocab.normalize(ent.text)) or overlaps
            ent._.is_jargon = jargon
            for t in ent:
                t._.is_jargon = t._.is_jargon or jargon
            if overlaps:
                continue
            if jargon and term:
                new = _fit_case(term, doc, ent, starts)
                edits.append({"op": "replace", "start": ent.start_char, "end": ent.end_char, "text": new,
                              "source": "lay term"})
            elif self.elaborate and definition and key not in seen and not any_term and key.startswith("snomed:") \
                    and ent.label_ != "FUNCTION" and len(definition.split()) <= 25:
                edits.append({"op": "elaborate", "start": ent.end_char, "end": ent.end_char,
                              "text": f" ({definition.rstrip('.')})", "source": "definition"})
            if key:
                seen.add(key)
        edits += _furniture_deletes(doc)
        edits = _non_overlapping(edits)
        if self.rewriter is not None:
            edits = self._rewrite(doc, edits)
        doc._.lay_edits = edits
        doc._.lay_text = apply_edits(doc.text, edits)
        return doc

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
                    "rewriter": None, "device": "cpu", "batch_size": 16},
)
def make_lay(nlp: Language, name: str, index: str | None, abbreviations: bool, elaborate: bool,
             context_words: int, prior_weight: float, concept_bonus: float, sense_model: str | None,
             sense_weight: float, rewriter: str | None, device: str, batch_size: int) -> LaySimplifier:
    return LaySimplifier(nlp, name, index=index, abbreviations=abbreviations, elaborate=elaborate,
                         context_words=context_words, prior_weight=prior_weight, concept_bonus=concept_bonus,
                         sense_model=sense_model, sense_weight=sense_weight, rewriter=rewriter, device=device,
                         batch_size=batch_size)
