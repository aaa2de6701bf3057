"""``medtext_sections``: clinical section headers and their extents.

A header is a known heading phrase at the start of a line, followed by a colon or by the end of
the line ("HPI:", "PHYSICAL EXAM", "Assessment and Plan:"). A section runs from its header to the
next header (or the end of the document). Results:

- ``doc.spans["sections"]``: one span per section (header included), labelled with the canonical
  section name (``hpi``, ``medications``, ``findings``...);
- ``doc.spans["section_headers"]``: the header phrases themselves, same labels.

Patterns are configurable: ``patterns`` maps a canonical label to extra header phrases, merged with
the built-in list unless ``use_defaults`` is false. Lines written in capitals and ending with a
colon that match no pattern become ``other`` sections when ``detect_unknown`` is true.
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable

from spacy.language import Language
from spacy.tokens import Doc

SECTION_HEADERS: dict[str, list[str]] = {
    "chief_complaint": ["chief complaint", "cc", "reason for visit", "presenting complaint",
                        "reason for admission"],
    "hpi": ["history of present illness", "history of the present illness", "hpi",
            "present illness", "history of presenting complaint", "interval history"],
    "pmh": ["past medical history", "pmh", "past history", "medical history",
            "past medical and surgical history", "pmhx", "past surgical history", "psh",
            "surgical history"],
    "medications": ["medications", "meds", "current medications", "medications on admission",
                    "admission medications", "discharge medications", "home medications",
                    "outpatient medications", "medication list", "current meds"],
    "allergies": ["allergies", "allergy", "drug allergies", "allergies and adverse reactions"],
    "social_history": ["social history", "sh", "social hx", "shx", "social"],
    "family_history": ["family history", "fh", "family hx", "fhx"],
    "ros": ["review of systems", "ros", "systems review"],
    "physical_exam": ["physical exam", "physical examination", "exam", "examination",
                      "pe", "on examination", "clinical examination", "objective exam"],
    "vitals": ["vital signs", "vitals"],
    "labs": ["labs", "laboratory", "laboratory data", "laboratory results", "lab results",
             "pertinent results", "investigations", "results", "diagnostic studies", "studies"],
    "hospital_course": ["hospital course", "brief hospital course", "course in hospital",
                        "clinical course"],
    "assessment_plan": ["assessment and plan", "assessment & plan", "a/p", "a&p", "a & p",
                        "impression and plan", "assessment/plan"],
    "assessment": ["assessment", "clinical impression", "diagnosis", "diagnoses",
                   "discharge diagnoses", "discharge diagnosis", "admission diagnosis",
                   "primary diagnosis", "secondary diagnoses", "problem list"],
    "plan": ["plan", "recommendations and plan", "treatment plan", "plan of care"],
    "subjective": ["subjective", "s"],
    "objective": ["objective", "o"],
    "indication": ["indication", "indications", "clinical history", "clinical indication",
                   "history", "reason for exam", "reason for referral", "referral reason",
                   "clinical information", "clinical details"],
    "technique": ["technique", "procedure", "protocol"],
    "comparison": ["comparison", "comparisons", "prior studies"],
    "findings": ["findings", "finding", "report"],
    "impression": ["impression", "impressions", "conclusion", "conclusions", "opinion",
                   "summary"],
    "recommendations": ["recommendations", "recommendation", "advice"],
    "discharge_instructions": ["discharge instructions", "instructions", "patient instructions",
                               "discharge condition", "condition at discharge",
                               "discharge disposition", "disposition"],
    "follow_up": ["follow-up", "follow up", "followup", "follow-up appointments"],
    "goals": ["goals", "short term goals", "long term goals", "stg", "ltg", "patient goals"],
    "functional_status": ["functional status", "mobility", "transfers", "gait", "balance",
                          "adls", "activities of daily living", "self-care", "functional mobility",
                          "bed mobility", "prior level of function", "plof", "home environment"],
    "examination_type": ["exam type", "examination type", "study", "procedure performed"],
}

# start of a line: after a line break or a form feed (page break), or at the start of the text
_LINE_START = r"(?:\A|(?<=[\n\r\f]))"
_UNKNOWN_HEADER = re.compile(_LINE_START + r"[ \t]*([A-Z][A-Z0-9 /&,()'-]{2,60}?)[ \t]*:")


def _compile(headers: dict[str, list[str]]) -> tuple[re.Pattern, dict[str, str]]:
    phrase_to_label: dict[str, str] = {}
    for label, phrases in headers.items():
        for p in phrases:
            phrase_to_label.setdefault(_norm(p), label)
    alternatives = sorted(phrase_to_label, key=len, reverse=True)
    body = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in alternatives)
    # header at line start; optional list number/bullet; phrase; then ":" (anything may follow)
    # or end of line (a heading on its own). One-letter SOAP headers need the colon.
    pattern = re.compile(
        _LINE_START + rf"[ \t]*(?:[-*\u2022]\s*|\d{{1,2}}[.)]\s+)?(?P<h>(?:{body}))[ \t]*"
        r"(?P<colon>:|-(?=\s)|(?=[\r\n\f])|\Z)",
        re.I,
    )
    return pattern, phrase_to_label


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower())


class SectionDetector:
    """Finds clinical section headers line by line; see the module docstring."""

    version = "1.0.0"

    def __init__(self, nlp: Language, name: str, patterns: dict[str, list[str]] | None,
                 use_defaults: bool, detect_unknown: bool):
        headers: dict[str, list[str]] = {k: list(v) for k, v in SECTION_HEADERS.items()} if use_defaults else {}
        for label, phrases in (patterns or {}).items():
            if isinstance(phrases, str) or not isinstance(phrases, Iterable):
                from medtext.errors import ConfigError

                raise ConfigError(
                    f"medtext_sections.patterns[{label!r}] must be a list of header phrases, "
                    f"got {type(phrases).__name__}"
                )
            headers.setdefault(label, []).extend(phrases)
        self.name = name
        self.headers = headers
        self.detect_unknown = detect_unknown
        self._pattern, self._labels = _compile(headers)

    def find_headers(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, label) of each header phrase in ``text`` (character offsets)."""
        found: dict[int, tuple[int, int, str]] = {}
        for m in self._pattern.finditer(text):
            phrase = m.group("h")
            label = self._labels[_norm(phrase)]
            short = len(_norm(phrase)) <= 2
            if short and m.group("colon") != ":":
                continue  # "S", "O", "PE" count only as "S:", "O:", "PE:"
            if m.group("colon") == "" and not self._looks_like_heading(text, m):
                continue
            end = m.end("colon") if m.group("colon") else m.end("h")
            found[m.start("h")] = (m.start("h"), end, label)
        if self.detect_unknown:
            known = sorted(found.values())
            starts = [a for a, _, _ in known]
            for m in _UNKNOWN_HEADER.finditer(text):
                s = m.start(1)
                i = bisect.bisect_right(starts, s) - 1  # known headers do not overlap
                if s not in found and not (i >= 0 and known[i][0] <= s < known[i][1]):
                    found[s] = (s, m.end(), "other")
        return [found[k] for k in sorted(found)]

    @staticmethod
    def _looks_like_heading(text: str, m: re.Match) -> bool:
        # A header without a colon must stand alone on its line and be capitalised
        # ("FINDINGS", "Physical Examination"), not a word that opens a sentence.
        phrase = m.group("h")
        return phrase.isupper() or phrase.istitle()

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text  # built on each access: read it once
        headers = self.find_headers(text)
        header_spans, section_spans = [], []
        for i, (start, end, label) in enumerate(headers):
            h = doc.char_span(start, end, label=label, alignment_mode="expand")
            if h is None:
                continue
            sec_end = headers[i + 1][0] if i + 1 < len(headers) else len(text)
            while sec_end > end and text[sec_end - 1].isspace():
                sec_end -= 1
            s = doc.char_span(start, max(sec_end, end), label=label, alignment_mode="expand")
            if s is None or (section_spans and s.start < section_spans[-1].end):
                continue
            header_spans.append(h)
            section_spans.append(s)
        doc.spans["section_headers"] = header_spans
        doc.spans["sections"] = section_spans
        return doc


@Language.factory(
    "medtext_sections",
    default_config={"patterns": {}, "use_defaults": True, "detect_unknown": True},
)
def make_sections(nlp: Language, name: str, patterns: dict, use_defaults: bool,
                  detect_unknown: bool) -> SectionDetector:
    return SectionDetector(nlp, name, patterns, use_defaults, detect_unknown)
