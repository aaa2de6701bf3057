"""``medtext_ner``: clinical entities from a terminology matcher, merged with a statistical NER.

Labels: PROBLEM, TEST, DRUG, TREATMENT, PROCEDURE, ANATOMY, FUNCTION.

**Terminology matcher.** Every synonym of a terminology index (preferred terms, synonyms, lay
terms, abbreviations; not the default index's linking-only rows, :data:`LINKING_ONLY_SOURCES`)
whose concept maps to a label (:data:`KIND_LABELS`; ICF activities ``d*`` are FUNCTION) becomes
a phrase pattern, matched on lower-cased tokens, with the plural of its last word
("effusions"). Short forms (abbreviations, and terms of 4 characters or fewer) only match with
the case they are written in or in upper case ("HTN", "htn", not "Htn" for "hTN"), and single
common words ("normal", "stable") never match.

**Overlap rule.** Entities already in ``doc.ents`` (a statistical ``ner`` earlier in the
pipeline) are kept as they are. A matcher hit is added only where it overlaps none of them;
among overlapping matcher hits the longest wins (then the earliest). With ``veto_outside``
(the ``default`` preset: 0.9), a hit is also dropped when ``medtext_biluo_ner`` gave every one
of its tokens at least that probability of being outside any entity: where the CNN is sure
there is nothing, a synonym's surface form ("lives with wife", "CSF" as a drug) is not taken
for an entity. The concepts behind a matcher hit are kept in ``ent._.matched_concepts`` as
``[(system, code)]`` for the linker.

**Drug names.** With ``drug_lexicon`` (on in ``default`` and ``fast``), about 100k generic and
brand drug names (:mod:`components.drug_lexicon`) add ``DRUG`` entities where neither the
statistical NER nor the terminology matcher found anything, unless the CNN gave every token at
least ``drug_lexicon_veto`` (0.99) probability of being outside any entity (without the CNN,
as in ``fast``, every hit stays).

**Document-level consistency.** With ``propagate`` (on in ``default``, ``fast``, ``trf`` and ``patient``), the
rules of :mod:`components.propagation` run last: an abbreviation defined in the text
("irritable bowel syndrome (IBS)") takes its long form's label everywhere, one whose long form
holds no entity ("hormone therapy (HT)") is no entity anywhere, and an entity of 5 or more
characters labels its unlabelled repeats in the document.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from medtext.terminologies.derived import LINKING_ONLY_SOURCES

from .biluo_ner import P_OUTSIDE
from .drug_lexicon import drug_names, match_drugs
from .propagation import propagate

log = logging.getLogger(__name__)

LABELS = ("PROBLEM", "TEST", "DRUG", "TREATMENT", "PROCEDURE", "ANATOMY", "FUNCTION")
# the radiology preset's statistical labels (RadGraph); the matcher never produces them
RADGRAPH_LABELS = ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
KIND_LABELS = {
    "disorder": "PROBLEM", "finding": "PROBLEM", "morphologic abnormality": "PROBLEM",
    "procedure": "PROCEDURE", "regime/therapy": "TREATMENT",
    "substance": "DRUG", "product": "DRUG", "medicinal product": "DRUG",
    "medicinal product form": "DRUG", "clinical drug": "DRUG",
    "body structure": "ANATOMY", "observable entity": "TEST", "assessment scale": "TEST",
}
# procedures that are tests: imaging, measurement, laboratory, physiological studies
_TEST_WORDS = re.compile(r"\b(tomograph\w*|radiograph\w*|imaging|ultrasound|ultrasonograph\w*|"
                         r"x-ray|scan|echocardiograph\w*|electrocardiogra\w*|"
                         r"measurement|count|level|test\w*|panel|assay|culture|screening|"
                         r"examination|mri|ct|study|angiograph\w*|monitoring|spirometry|"
                         r"urinalysis|endoscop\w*|colonoscop\w*)\b", re.I)
NEVER_MATCH = frozenset("""normal abnormal present absent positive negative left right well
    stable unstable good poor fair high low increased decreased mild moderate severe acute
    chronic new old active patient history finding findings problem disease disorder pain
    procedure therapy treatment drug test level side area region structure unit body time
    day week weeks month year years all none other unknown general total complete partial
    single double minor major small large change changes free fine clear open closed
    dose able unable independent dependent assist assistance may can will""".split())


def label_for(system: str, code: str, kind: str, term: str) -> str | None:
    if system == "icf":
        return "FUNCTION" if code.startswith("d") and len(code) > 2 else None
    label = KIND_LABELS.get(kind)
    if label == "PROCEDURE" and _TEST_WORDS.search(term):
        return "TEST"
    return label


def _plural(term: str) -> str | None:
    last = term.rsplit(" ", 1)[-1]
    if not last.isalpha() or len(last) < 4 or last.endswith("s"):
        return None
    return term + ("es" if last.endswith(("ch", "sh", "x", "z")) else "s")


class TerminologyMatcher:
    """Phrase patterns from an index's synonyms, labelled by concept kind."""

    def __init__(self, nlp: Language, index_path: Path):
        from medtext.terminologies.index import ConceptIndex, normalize

        index = ConceptIndex.load(index_path)
        con = index.tables["concepts"]
        label_of = {}
        for system, code, kind, term in zip(con.column("system").to_pylist(), con.column("code").to_pylist(),
                                            con.column("kind").to_pylist(), con.column("term").to_pylist()):
            lab = label_for(system, code, kind, term)
            if lab:
                label_of[(system, code)] = lab
        syn = index.tables["synonyms"]
        # short forms whose usual sense (the abbreviation inventory's most frequent one) is
        # some other concept are too ambiguous to match ("ED": emergency department, not
        # erectile dysfunction)
        dominant: dict[str, str] = {}
        if "abbreviations" in index.tables:
            ab = index.tables["abbreviations"]
            best: dict[str, tuple[float, str]] = {}
            for a, sense, freq in zip(ab.column("abbreviation").to_pylist(), ab.column("sense").to_pylist(),
                                      ab.column("frequency").to_pylist()):
                a = a.lower()
                if freq is not None and freq > best.get(a, (-1.0, ""))[0]:
                    best[a] = (freq, normalize(sense))
            dominant = {a: s for a, (_f, s) in best.items()}
        rows = [(system, code, term, typ) for system, code, term, typ, src in zip(
            *(syn.column(k).to_pylist() for k in ("system", "code", "term", "type", "source")))
            if src not in LINKING_ONLY_SOURCES]
        norm_keys: dict[str, set] = {}
        for system, code, term, _typ in rows:
            norm_keys.setdefault(normalize(term), set()).add((system, code))
        long_terms: dict[str, set] = {}
        short_terms: dict[str, set] = {}
        for system, code, term, typ in rows:
            key = (system, code)
            if key not in label_of:
                continue
            t = " ".join(term.split())
            low = t.lower()
            if len(t) < 2 or low in NEVER_MATCH or any(ch in t for ch in "()[]"):
                continue
            if typ == "abbreviation" or len(t) <= 4:
                usual = dominant.get(low)
                if usual is not None and key not in norm_keys.get(usual, ()):
                    continue
                for v in {t, t.upper()}:
                    short_terms.setdefault(v, set()).add(key)
            else:
                long_terms.setdefault(low, set()).add(key)
                plural = _plural(low)
                if plural:
                    long_terms.setdefault(plural, set()).add(key)
        self.label_of = label_of
        self.concepts: dict[str, list[tuple[str, str]]] = {}
        self.lower = PhraseMatcher(nlp.vocab, attr="LOWER")
        self.exact = PhraseMatcher(nlp.vocab, attr="ORTH")
        for matcher, terms in ((self.lower, long_terms), (self.exact, short_terms)):
            texts = sorted(terms)
            for text, doc in zip(texts, nlp.tokenizer.pipe(texts, batch_size=1000)):
                keys = sorted(terms[text])
                labels = {label_of[k] for k in keys}
                # a phrase whose concepts disagree on the label takes the most frequent one
                label = max(sorted(labels), key=lambda lab: sum(label_of[k] == lab for k in keys))
                match_id = f"{label}|{text}"
                self.concepts[match_id] = keys
                matcher.add(match_id, [doc])
        self.index_name = index.meta.get("name")
        log.info("terminology matcher: %d phrases (%d short forms) from %s",
                 len(long_terms) + len(short_terms), len(short_terms), index_path)

    def __call__(self, doc: Doc) -> list[Span]:
        strings = doc.vocab.strings
        out = []
        for matcher in (self.lower, self.exact):
            for mid, s, e in matcher(doc):
                name = strings[mid]
                span = Span(doc, s, e, label=name.split("|", 1)[0])
                span._.matched_concepts = self.concepts[name]
                out.append(span)
        return out


class ClinicalNER:
    """See the module docstring."""

    version = "1.0.0"

    def __init__(self, nlp: Language, name: str, index: str | None, use_matcher: bool,
                 labels: list[str], veto_outside: float | None = None, propagate: bool = False,
                 drug_lexicon: bool = False, drug_lexicon_veto: float | None = 0.99):
        from medtext.errors import ConfigError

        if not Span.has_extension("matched_concepts"):
            Span.set_extension("matched_concepts", default=None)
        bad = [lab for lab in labels if lab not in LABELS + RADGRAPH_LABELS]
        if bad:
            raise ConfigError(f"{name}.labels: unknown label(s) {bad}; use {', '.join(LABELS + RADGRAPH_LABELS)}")
        for setting, value in (("veto_outside", veto_outside), ("drug_lexicon_veto", drug_lexicon_veto)):
            if value is not None and not 0.0 < value <= 1.0:
                raise ConfigError(f"{name}.{setting} must be in (0, 1] or null, not {value}")
        self.name = name
        self.labels = set(labels)
        self.veto_outside = veto_outside
        self.propagate = propagate
        self.drug_lexicon_veto = drug_lexicon_veto
        self.drug_names = None
        if drug_lexicon:
            self.drug_names = drug_names()
        self.matcher = None
        self.index_path = None
        self.model_id = None
        if use_matcher:
            from medtext.terminologies.default import default_index_dir
            from medtext.terminologies.index import TerminologyError

            path = Path(index) if index else default_index_dir()
            try:
                self.matcher = TerminologyMatcher(nlp, path)
                self.index_path = str(path)
                self.model_id = f"terminology:{self.matcher.index_name}@{path}"
            except TerminologyError as e:
                raise ConfigError(f"{name}: {e} (or set {name}.index to an index folder, or "
                                  f"{name}.use_matcher = false)") from e

    def __call__(self, doc: Doc) -> Doc:
        model_ents = [e for e in doc.ents if e.label_ in self.labels]
        p_out = doc.user_data.pop(P_OUTSIDE, None)  # read here, not kept on the doc
        if p_out is not None and len(p_out) != len(doc):
            p_out = None
        headers = set()
        for h in doc.spans.get("section_headers", []):
            headers.update(range(h.start, h.end))  # section headers are not entities
        taken = set(headers)
        for e in model_ents:
            taken.update(range(e.start, e.end))
        added: list[Span] = []
        if self.matcher is not None:
            hits = [s for s in self.matcher(doc) if s.label_ in self.labels]
            added = filter_spans(self._untaken(hits, taken, p_out, self.veto_outside))
            for e in added:
                taken.update(range(e.start, e.end))
        if self.drug_names is not None and "DRUG" in self.labels:
            added += filter_spans(self._untaken(match_drugs(doc, self.drug_names), taken, p_out,
                                                self.drug_lexicon_veto))
        ents = sorted(model_ents + added, key=lambda s: s.start)
        if self.propagate:
            ents = propagate(doc, ents, blocked=headers)
        doc.ents = self._body_only(doc, ents)
        return doc

    @staticmethod
    def _untaken(hits: list[Span], taken: set[int], p_out, veto: float | None) -> list[Span]:
        """Hits on no taken token, less those the CNN is sure (>= ``veto`` on every token) are outside."""
        hits = [s for s in hits if not any(i in taken for i in range(s.start, s.end))]
        if veto is not None and p_out is not None:
            hits = [s for s in hits if float(p_out[s.start:s.end].min()) < veto]
        return hits

    def _body_only(self, doc: Doc, ents: list[Span]) -> list[Span]:
        """Drop entities on lines ``medtext_layout`` labelled as page furniture."""
        from .layout import outside_body

        test = outside_body(doc)
        kept, dropped = [], {}
        for e in ents:
            where = test(e.start_char, e.end_char)
            if where is None:
                kept.append(e)
            else:
                dropped[(e.label_, where)] = dropped.get((e.label_, where), 0) + 1
        if dropped:
            log.debug("%s: dropped entities outside body lines (label, line label: count): %s",
                      self.name, dropped)
        return kept


@Language.factory(
    "medtext_ner",
    default_config={"index": None, "use_matcher": True, "labels": list(LABELS), "veto_outside": None,
                    "propagate": False, "drug_lexicon": False, "drug_lexicon_veto": 0.99},
)
def make_ner(nlp: Language, name: str, index: str | None, use_matcher: bool,
             labels: list[str], veto_outside: float | None, propagate: bool, drug_lexicon: bool,
             drug_lexicon_veto: float | None) -> ClinicalNER:
    return ClinicalNER(nlp, name, index, use_matcher, labels, veto_outside, propagate, drug_lexicon,
                       drug_lexicon_veto)
