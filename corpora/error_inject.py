"""Synthetic medical errors injected into the team's own notes (known answer, known sentence).

Sources: the sample notes (``corpora/samples/*.txt``), the annotated notes
(``corpora/annotated``) and the RadGraph reports (``corpora/radgraph``), all written by the team.
Each injection changes one sentence of one note and records MEDEC-style fields (error type,
sentence id, erroneous and corrected sentence):

============== ================= ==========================================================
kind           MEDEC type        change
============== ================= ==========================================================
dose_slip      pharmacotherapy   a plausible drug dose multiplied by 10 (or 100 / 1000 when
                                 10x stays plausible)
lab_flip       diagnosis         the word describing a lab value turned into its opposite
                                 ("low" <-> "high", hypokalemia <-> hyperkalemia)
laterality     diagnosis         "left" <-> "right" in one sentence of a note that names the
                                 same side of that site elsewhere
antibiotic     pharmacotherapy   an antibiotic given for a named organism replaced by one the
                                 organism is inactive against
allergy        pharmacotherapy   an allergy line added at the top naming the class of a drug
                                 the note gives (the order becomes the error)
weekly         pharmacotherapy   a weekly drug written "daily"
============== ================= ==========================================================

Used to train the error classifier (with MEDEC) and to measure the consistency checks' recall
(``benchmarks/errors.py``). Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from medtext.components.error_checks import split_sentences

HERE = Path(__file__).parent


@dataclass
class InjectedNote:
    note_id: str
    kind: str
    error_type: str
    text: str
    sentences: list[str]
    spans: list[tuple[int, int]]
    sentence_id: int
    error_sentence: str
    corrected_sentence: str


def team_notes() -> list[tuple[str, str]]:
    """(note id, text) of every note the team wrote (samples, annotated notes, radiology reports)."""
    from .ner_data import parse_markup
    from .radgraph_data import read_reports

    notes = []
    for p in sorted((HERE / "samples").glob("*.txt")):
        notes.append((f"samples/{p.stem}", p.read_text(encoding="utf-8")))
    for p in sorted((HERE / "annotated").glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                notes.append((f"annotated/{obj['id']}", parse_markup(obj["text"])[0]))

    for r in read_reports([HERE / "radgraph"]):
        notes.append((f"radgraph/{r.id}", r.text))
    return notes


def _make(note_id: str, kind: str, etype: str, text: str, start: int, end: int, new: str) -> InjectedNote | None:
    """The note with text[start:end] replaced by ``new`` (one sentence changes)."""
    spans = split_sentences(text)
    k = next((i for i, (s, e) in enumerate(spans) if s <= start < e), None)
    if k is None or end > spans[k][1]:
        return None
    corrected = text[spans[k][0]:spans[k][1]]
    new_text = text[:start] + new + text[end:]
    new_spans = split_sentences(new_text)
    if len(new_spans) != len(spans):
        return None
    return InjectedNote(note_id, kind, etype, new_text, [new_text[s:e] for s, e in new_spans], new_spans, k,
                        new_text[new_spans[k][0]:new_spans[k][1]], corrected)


def _sites_dose(note, kb):
    from medtext.components.error_checks import _DOSE, _RANGE_BEFORE, _convert, _fmt, _to_number

    for m in note.drugs:
        drug = kb.drugs[m.key]
        if drug.min_dose is None:
            continue
        a, b = note.window(m, note.drugs, 40)
        d = _DOSE.match(note.text, a, b)
        if not d or _RANGE_BEFORE.search(note.text[a:d.start(1)]):
            continue
        value = _to_number(d.group(1))
        v = _convert(value, d.group(2), drug.unit)
        if v is None or not drug.min_dose <= v <= drug.max_dose:
            continue
        for factor in (10, 100, 1000):
            if v * factor > drug.max_dose:
                yield d.start(1), d.end(1), _fmt(value * factor)
                break


def _sites_lab(note, kb):
    from medtext.components.error_checks import _FLIP, _INTERP, _LAB_VALUE, _direction, _lab_value, _to_number

    for m in note.labs:
        lab = kb.labs[m.key]
        d = _LAB_VALUE.match(note.text, m.end, note.sentences[m.sentence][1])
        if not d:
            continue
        v = _lab_value(lab, _to_number(d.group(1)), d.group(2))
        if v is None:
            continue
        w = _INTERP.match(note.text, d.end(), min(note.sentences[m.sentence][1], d.end() + 25)) or \
            _INTERP.search(note.text, d.end(), min(note.sentences[m.sentence][1], d.end() + 12))
        actual = _direction(lab, v)
        if w and actual != "normal" and w.group(0).lower() in _FLIP:
            stated = "high" if w.group("high") else "low" if w.group("low") else None
            if stated == actual:
                yield w.start(), w.end(), _FLIP[w.group(0).lower()]


def _sites_laterality(note, kb):
    """A limb / joint / paired organ named on one side at least twice and never on the other:
    the last mention flips side."""
    from medtext.components.error_checks import _LATERAL, _NORMALISH

    words: dict[tuple[str, str], list] = {}
    for m in _LATERAL.finditer(note.text):
        i = note.sentence_at(m.start())
        if i is None or _NORMALISH.search(note.sentence_text(i)):
            continue
        words.setdefault((m.group(1).lower(), m.group(2).lower()), []).append(m)
    for (side, site), ms in words.items():
        other = "right" if side == "left" else "left" if side == "right" else None
        if other and len(ms) >= 2 and (other, site) not in words and not any(
                k[1] == site and k[0] in ("both", "bilateral", "bilaterally") for k in words):
            m = ms[-1]
            yield m.start(1), m.end(1), other if m.group(1).islower() else other.capitalize()


def _sites_antibiotic(note, kb):
    from medtext.components.error_checks import _ORG_NEGATED, _ORG_NEGATED_AFTER, _prescribed

    for o in note.organisms:
        s, e = note.sentences[o.sentence]
        if _ORG_NEGATED.search(note.text[max(s, o.start - 50):o.start]) or _ORG_NEGATED_AFTER.search(note.text[o.end:e]):
            continue
        org = kb.organisms[o.key]
        for m in note.drugs:
            drug = kb.drugs[m.key]
            if m.sentence not in (o.sentence, o.sentence + 1) or "antibacterial" not in drug.classes \
                    or not _prescribed(note, m):
                continue
            if {drug.name, *drug.classes} & org.inactive:
                continue
            bad = sorted(d for d, x in kb.drugs.items() if "antibacterial" in x.classes
                         and ({d, *x.classes} & org.inactive) and x.routes & drug.routes)
            if bad:
                yield m.start, m.end, bad[zlib.crc32(note.text[:50].encode()) % len(bad)]


def _sites_weekly(note, kb):
    from medtext.components.error_checks import _WEEKLY

    for m in note.drugs:
        if kb.drugs[m.key].schedule != "weekly":
            continue
        a, b = note.window(m, note.drugs, 60)
        w = _WEEKLY.search(note.text, a, b)
        if w:
            yield w.start(), w.end(), "daily"


def _allergy(note_id, text, note, kb, rng):
    if re.search(r"allerg", text, re.I):
        return None
    from medtext.components.error_checks import BROAD_CLASSES, _prescribed

    for m in note.drugs:
        drug = kb.drugs[m.key]
        if not _prescribed(note, m):
            continue
        cls = next((c for c in drug.classes if c not in BROAD_CLASSES), None)
        if cls is None or not any(x in drug.classes for x in ("antibacterial", "nsaid", "opioid", "sulfonamide")):
            continue
        line = f"Allergies: {cls} (rash).\n\n"  # listed at the top of the note
        new_text = line + text
        spans = split_sentences(new_text)
        k = next((i for i, (a, b) in enumerate(spans) if a <= len(line) + m.start < b), None)
        if k is None:
            return None
        sent = new_text[spans[k][0]:spans[k][1]]
        return InjectedNote(note_id, "allergy", "pharmacotherapy", new_text, [new_text[a:b] for a, b in spans],
                            spans, k, sent, sent.replace(text[m.start:m.end], "an alternative", 1))
    return None


SITES = {"dose_slip": ("pharmacotherapy", _sites_dose), "lab_flip": ("diagnosis", _sites_lab),
         "laterality": ("diagnosis", _sites_laterality), "antibiotic": ("pharmacotherapy", _sites_antibiotic),
         "weekly": ("pharmacotherapy", _sites_weekly)}
KINDS = (*SITES, "allergy")


def inject(note_id: str, text: str, *, kb=None, seed: int = 0) -> list[InjectedNote]:
    """At most one injected version of the note per kind."""
    from medtext.components.error_checks import Knowledge, Note

    kb = kb or Knowledge.load()
    rng = random.Random(f"{seed}:{note_id}")
    note = Note(text, split_sentences(text), kb)
    out = []
    for kind, (etype, sites) in SITES.items():
        cands = list(sites(note, kb))
        rng.shuffle(cands)
        for start, end, new in cands:
            made = _make(note_id, kind, etype, text, start, end, new)
            if made:
                out.append(made)
                break
    a = _allergy(note_id, text, note, kb, rng)
    if a:
        out.append(a)
    return out


def injected_notes(seed: int = 0) -> list[InjectedNote]:
    """Every injection over every team note."""
    from medtext.components.error_checks import Knowledge

    kb = Knowledge.load()
    out = []
    for nid, text in team_notes():
        out += inject(nid, text, kb=kb, seed=seed)
    return out
