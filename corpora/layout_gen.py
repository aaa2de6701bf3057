"""Synthetic clinical letters rendered to PDF with known per-line layout labels.

Training and benchmark data for a line classifier that tells the clinical body text of a PDF
from its page furniture. Every document is a real-looking clinical letter or report: its body
comes from the team's sample notes (``corpora/samples/*.txt``, read at run time, cleaned of the
letterheads, page marks and signatures they carry), sometimes sliced or joined with a second
note, wrapped in a letter (addressee, "Re:" line, "Dear Dr X,", closing), and mixed with lab
tables and medication lists written from templates here. Hospitals, clinicians and patients are
invented; every name here is fictional.

    python -m medtext.corpora.layout_gen OUT_DIR [--docs N] [--families a,b] [--seed S]

writes ``OUT_DIR/pdf/{id}.pdf``, ``OUT_DIR/txt/{id}.txt`` and ``OUT_DIR/labels.jsonl`` (one
object per document: ``id``, ``family``, ``pages``, ``pdf``, ``txt``, ``labels``). Needs
``reportlab`` (``pip install 'medtext[pdfgen]'``); output is byte-stable for a given seed.

Labels
------
``body``
    the clinical text: document title, section headings, narrative, lists, lab tables, patient
    identification lines written inside the letter, the salutation and the closing sentence.
``header``
    letterheads (hospital name, address, phone/fax, logo text), running headers on later
    pages, administrative blocks printed at the top of the page (patient/doctor columns).
``footer``
    confidentiality notices, printed-on timestamps, document ids, address lines at the bottom.
``side``
    a side column left or right of the body (departments, clinicians, contact boxes).
``signature``
    signature blocks: "Electronically signed by", "Dictated by / Transcribed by", the name,
    title and date lines under a signature.
``pagination``
    page numbers in any style: "Page 2 of 5", "2/5", "- 2 -", "Page 2", "p. 2", "Page 2/5".
``other``
    distribution lists ("cc: ..."), barcode-like id strings, "Copy to patient" marks.

Families (template geometry and styling; fonts, sizes, margins, page size, names and most
elements are drawn per document from a seeded RNG)
---------------------------------------------------------------------------------------------
``classic``
    left letterhead (optional logo initials in a box), a left side column of departments, staff
    and contacts on page 1, running header on later pages, confidentiality footer, "Page x of y".
``centered``
    centred letterhead with a phone/fax line and a rule, a two-column patient/doctor admin block
    (boxed or not), a short admin line on later pages, "- x -" page numbers, printed-on footer.
``minimal``
    small letterhead on page 1 only, wide margins, "x/y" top right, centred address footer.
``rightside``
    side column on every page (contacts, physicians, sometimes services; on the right, in 30%
    of documents on the left), a report title header line
    with a rule on every page, "Page x" at the bottom centre, document-id footer.
``boxed``
    letterhead inside a drawn box, boxed running header, optional boxed contact column, "Copy
    to patient" marks, signature with name/title/date lines, cc distribution list at the end.
``courier``
    typewriter style in Courier throughout, headers between dash lines, barcode-like accession
    strings, "p. x" page numbers, dictated/transcribed signature block.

Each family uses its own pagination style 70% of the time and a style from the shared pool
otherwise, and any family may end with a cc list, so a model trained on five families has seen
every style and label before the sixth.

Rendering and alignment
-----------------------
Each drawn string carries its label. Strings with different labels never share a baseline, and
in the content stream two consecutive strings with different labels are at least one font size
apart vertically (PDFium joins consecutive text objects on one line into one extracted line).
Furniture that sits beside the body (side columns) is placed half a body leading off the body's
baseline grid. After rendering, the PDF is read back with :func:`medtext.readers.pdf.read_pdf`
and every extracted line gets the label of the drawn strings it overlaps: same page, vertical
overlap of its glyph box with the string's band ``[baseline - size, baseline + 0.3 * size]``
(top-left coordinates) and horizontal overlap; when strings with several labels overlap, the
label with the most horizontal overlap wins. Lines without visible characters get ``None``; a
visible line that matches no drawn string raises :class:`LayoutError`.

The plain-text export has one line per extracted PDF line (pages joined by a form feed), each
indented by ``round((x0 - min_x0) / 5.5)`` spaces, so the labels apply to it line by line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Sequence

from medtext.atomic import atomic_path, atomic_write_text
from medtext.lines import LAYOUT_LABELS, text_lines
from medtext.readers.pdf import read_pdf

SAMPLES = Path(__file__).parent / "samples"
LABELS: tuple[str, ...] = LAYOUT_LABELS
MAX_PAGES = 6

LETTER, A4 = (612.0, 792.0), (595.28, 841.89)
FONTS = {"Helvetica": ("Helvetica", "Helvetica-Bold", "Helvetica-Oblique"),
         "Times-Roman": ("Times-Roman", "Times-Bold", "Times-Italic"),
         "Courier": ("Courier", "Courier-Bold", "Courier-Oblique")}
PAGINATION_STYLES = ("of", "slash", "dash", "page", "p", "pageslash")

#: label groups in content-stream order; a document prefers one, the others are fallbacks
_ORDERS = (
    ("header", "side", "footer", "pagination", "other", "body", "signature"),
    ("header", "side", "body", "signature", "other", "footer", "pagination"),
    ("header", "body", "signature", "other", "side", "pagination", "footer"),
    ("pagination", "header", "side", "body", "signature", "other", "footer"),
)


class LayoutError(RuntimeError):
    """A generated document whose drawn strings and extracted lines do not line up."""


# --------------------------------------------------------------------------------------------
# Invented world: hospitals, people, dates
# --------------------------------------------------------------------------------------------

_PLACES = ("Ashcombe", "Brindlewood", "Calder Ridge", "Dunmere", "Elmsworth", "Foxhollow",
           "Greywater", "Hartsfield", "Ivel Valley", "Juniper Bay", "Kingsmere", "Larkhaven",
           "Millbrook", "Northmoor", "Oakhurst", "Pinecrest", "Quillan Vale", "Ravensholm",
           "Saltmarsh", "Thornbury Cross", "Upton Lea", "Wrenfield", "Yarrowdale")
_HOSPITAL_KINDS = ("Medical Center", "General Hospital", "University Hospital", "Community Hospital",
                   "Royal Infirmary", "Regional Medical Center", "Memorial Hospital", "Health System")
_STREETS = ("Alder Road", "Beacon Street", "Cedar Avenue", "Dovecote Lane", "Elm Parkway",
            "Foundry Way", "Granger Boulevard", "Harbour Road", "Infirmary Drive", "Kestrel Court",
            "Lantern Hill", "Mill Race Road", "Orchard Street", "Priory Walk", "Station Road")
_DEPARTMENTS = ("Internal Medicine", "Cardiology", "Pulmonology", "Nephrology", "Endocrinology",
                "Gastroenterology", "Neurology", "Rheumatology", "Geriatrics", "Radiology",
                "Orthopaedics", "Emergency Medicine", "Rehabilitation", "Oncology", "Haematology",
                "Infectious Diseases", "Physical Therapy", "Occupational Therapy")
_FIRST = ("Adaeze", "Bjorn", "Carmen", "Dmitri", "Elena", "Farid", "Greta", "Hiroshi", "Ingrid",
          "Jamal", "Kaia", "Lorenzo", "Maren", "Nikhil", "Orla", "Pavel", "Quinn", "Rosalind",
          "Soren", "Tamsin", "Umar", "Vera", "Wendell", "Ximena", "Yusuf", "Zara", "Annika",
          "Bartholomew", "Celeste", "Declan")
_LAST = ("Abernethy", "Baptiste", "Castellane", "Drummond", "Eastwood", "Fairbairn", "Galloway",
         "Holloway", "Iversen", "Jablonski", "Kettering", "Lindqvard", "Marchetti", "Nakamura",
         "Okonjo", "Pemberton", "Quaresma", "Rasmussen", "Sandoval", "Thorne", "Underhill",
         "Varga", "Whitlock", "Yardley", "Zeller", "Achterfeld", "Brannigan", "Costa-Mendes")
_ROLES = {
    "radiology": (("Consultant Radiologist", "Attending Radiologist", "Radiologist"),
                  ("MD", "MBChB, FRCR", "MD, DABR")),
    "pt": (("Physical Therapist", "Senior Physiotherapist", "Rehabilitation Therapist"),
           ("PT, DPT", "MSc", "PT")),
    "ot": (("Occupational Therapist", "Senior Occupational Therapist"), ("OTR/L", "MSc", "OT")),
    "medicine": (("Attending Physician, Internal Medicine", "Consultant Physician", "Hospitalist",
                  "Consultant Cardiologist", "Consultant Neurologist", "Attending Gastroenterologist",
                  "Consultant Endocrinologist", "Consultant Rheumatologist"),
                 ("MD", "MD, FRCP", "MD, PhD", "DO", "MBChB, MRCP")),
}
_KIND_GROUP = {"cxr": "radiology", "ct": "radiology", "pt": "pt", "ot": "ot"}
_KIND_DEPARTMENT = {"cxr": "Department of Radiology", "ct": "Department of Radiology",
                    "pt": "Rehabilitation Services", "ot": "Occupational Therapy Services",
                    "discharge": "Department of Internal Medicine", "progress": "Department of Medicine",
                    "consult": "Outpatient Specialist Clinics"}
_KIND_REPORT = {"cxr": "RADIOLOGY REPORT", "ct": "RADIOLOGY REPORT", "pt": "THERAPY NOTE",
                "ot": "THERAPY NOTE", "discharge": "DISCHARGE REPORT", "progress": "PROGRESS NOTE",
                "consult": "CLINIC LETTER"}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


@dataclass(frozen=True)
class Person:
    title: str   # "Dr." or "" (therapists)
    first: str
    last: str
    creds: str
    role: str

    @property
    def full(self) -> str:
        return f"{self.title} {self.first} {self.last}".strip()

    @property
    def short(self) -> str:
        return f"{self.title} {self.first[0]}. {self.last}".strip()

    @property
    def signed(self) -> str:
        return f"{self.first} {self.last}, {self.creds}"


@dataclass(frozen=True)
class Hospital:
    name: str
    initials: str
    street: str
    town: str
    phone: str
    fax: str
    web: str
    email: str
    departments: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"{self.street}, {self.town}"


@dataclass(frozen=True)
class World:
    """Everything invented for one document."""

    kind: str                   # note kind: discharge, consult, cxr, ...
    hospital: Hospital
    department: str
    patient_first: str
    patient_last: str
    dob: str
    mrn: str
    author: Person
    typist: str                 # transcriptionist initials
    recipient: Person
    recipient_address: tuple[str, ...]
    staff: tuple[Person, ...]
    cc: tuple[str, ...]
    date: str
    printed: str                # date and time
    signed_at: str              # date and time
    doc_number: str
    accession: str
    user: str

    @property
    def patient(self) -> str:
        return f"{self.patient_first} {self.patient_last}"

    @property
    def patient_filed(self) -> str:
        return f"{self.patient_last.upper()}, {self.patient_first}"


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"(555) 01{rng.randint(0, 9)}-{rng.randint(1000, 9999)}"
    return f"0555 0{rng.randint(10, 99)} {rng.randint(1000, 9999)}"


def _person(rng: random.Random, group: str) -> Person:
    roles, creds = _ROLES[group]
    title = "" if group in ("pt", "ot") else "Dr."
    return Person(title, rng.choice(_FIRST), rng.choice(_LAST), rng.choice(creds), rng.choice(roles))


def _date_fmt(rng: random.Random) -> str:
    return rng.choice(("us", "uk", "iso", "long"))


def _fmt(d: dt.date, style: str) -> str:
    if style == "us":
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == "uk":
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    if style == "iso":
        return d.isoformat()
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _world(rng: random.Random, note: Note) -> World:
    """Invent the hospital, people and dates of a document; the patient, author and cc list
    come from ``note`` where it names them."""
    place = rng.choice(_PLACES)
    name = f"{place} {rng.choice(_HOSPITAL_KINDS)}"
    initials = "".join(w[0] for w in name.split() if w[0].isupper())
    slug = place.lower().replace(" ", "")
    postcode = (f"ST {rng.randint(40000, 49999)}" if rng.random() < 0.5
                else f"{place[:2].upper()}{rng.randint(1, 9)} {rng.randint(1, 9)}{place[-2:].upper()}")
    hospital = Hospital(
        name=name, initials=initials,
        street=f"{rng.randint(2, 1800)} {rng.choice(_STREETS)}",
        town=f"{rng.choice(_PLACES)} {postcode}", phone=_phone(rng), fax=_phone(rng),
        web=f"www.{slug}-health.example", email=f"clinic@{slug}-health.example",
        departments=tuple(rng.sample(_DEPARTMENTS, 9)))
    style = _date_fmt(rng)
    day = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 900))
    born = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randint(0, 70 * 365))
    printed = day + dt.timedelta(days=rng.randint(0, 3))
    recipient = _person(rng, "medicine")
    practice = f"{rng.choice(_PLACES)} {rng.choice(('Family Practice', 'Medical Practice', 'Health Centre'))}"
    clock = f"{rng.randint(7, 18):02d}:{rng.randint(0, 59):02d}"
    cc = tuple(rng.sample((f"{recipient.full}, {practice}", "Patient", "Medical Records",
                           f"{rng.choice(_DEPARTMENTS)} Specialist Nurse", _person(rng, "medicine").full,
                           "Community Nursing Team"), rng.randint(1, 4)))
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    mrn = f"{rng.randint(10, 99)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}"
    dob = _fmt(born, style)
    named = _note_patient(note.lines)
    return World(
        kind=note.kind, hospital=hospital,
        department=_KIND_DEPARTMENT.get(note.kind, "Department of Medicine"),
        patient_first=named.get("first", first), patient_last=named.get("last", last),
        dob=named.get("dob", dob), mrn=named.get("mrn", mrn),
        author=_note_author(note, _person(rng, _KIND_GROUP.get(note.kind, "medicine"))),
        typist=f"{rng.choice(_FIRST)[0]}{rng.choice(_LAST)[0]}".lower(),
        recipient=recipient,
        recipient_address=(practice, f"{rng.randint(2, 300)} {rng.choice(_STREETS)}", rng.choice(_PLACES)),
        staff=tuple(_person(rng, "medicine") for _ in range(7)),
        cc=note.cc or cc,
        date=_fmt(day, style),
        printed=f"{_fmt(printed, style)} {rng.randint(7, 19):02d}:{rng.randint(0, 59):02d}",
        signed_at=f"{_fmt(day, style)} {clock}",
        doc_number=f"{rng.choice(('DOC', 'RPT', 'LTR', 'CDA'))}-{day.year}-{rng.randint(100000, 999999)}",
        accession=f"{rng.choice(('A', 'RAD', 'DS', 'CL'))}{rng.randint(10**6, 10**7 - 1)}",
        user=f"{rng.choice(_FIRST)[0]}{rng.choice(_LAST)}".upper()[:8])


# --------------------------------------------------------------------------------------------
# Body text from the sample notes
# --------------------------------------------------------------------------------------------

_PAGE_MARK = re.compile(r"\bPage\s+\d+\s*(?:of|/)\s*\d+\b", re.I)
_CONTACT = re.compile(r"\b(?:Tel|Telephone|Phone|Ph|Fax)\b|www\.|={5,}", re.I)
_CREDENTIAL = re.compile(r"\b(?:MD|DO|PA-C|FRCP|FRCS|FCCP|MB ?ChB|BSc|MSc|PhD|FY\d|PGY-?\d|Fellow|"
                         r"Hospitalist|Consultant)\b|signed|Dictated by")
_INSTITUTION = re.compile(r"\b(?:hospital|medical center|infirmary|health center|health system|centre)\b",
                          re.I)
_NOTE_TYPE = re.compile(r"\b(?:note|summary|report|evaluation|day)\b", re.I)
_LIST_ITEM = re.compile(r"(?:[-*]|\d{1,2}[.)]|[A-Z]{2,3} ?\d:)\s+")
_PATIENT_ID = re.compile(r"\b(?:MRN|DOB|Patient|Pt:|Name:)", re.I)
_PLAN_HEADING = re.compile(r"^(?:HOSPITAL COURSE|ASSESSMENT|IMPRESSION|PLAN|A/P|Assessment|Impression|"
                           r"Plan)\b")


@dataclass(frozen=True)
class Note:
    name: str
    kind: str
    lines: tuple[str, ...]       # cleaned: no letterhead, page marks, signature or cc lines
    letter: bool
    signature: tuple[str, ...]   # the signature lines taken off the end
    cc: tuple[str, ...]          # the cc recipients taken off the end


def _clean(raw: str) -> tuple[list[str], list[str], list[str]]:
    """Strip the furniture a sample note carries in its text; returns (lines, signature, cc)."""
    lines = [ln.rstrip() for ln in raw.splitlines()]
    kept: list[str] = []
    drop_running = False
    for ln in lines:
        if _PAGE_MARK.search(ln):
            drop_running = True
            continue
        if drop_running and ln.strip():
            drop_running = False
            if " | " in ln:
                continue
        kept.append(ln)
    cc: list[str] = []
    while kept and (not kept[-1].strip() or kept[-1].startswith("cc:")):
        if kept[-1].strip():
            cc.insert(0, kept[-1][3:].strip())
        kept.pop()
    signature: list[str] = []
    k = len(kept)
    while (k and kept[k - 1].strip() and len(kept[k - 1]) <= 80 and not kept[k - 1].endswith((".", ":"))
           and not _LIST_ITEM.match(kept[k - 1])):
        k -= 1
    if 0 < len(kept) - k <= 5 and any(_CREDENTIAL.search(ln) for ln in kept[k:]):
        kept, signature = kept[:k], kept[k:]
    paras = _split_paras(kept)
    if paras and len(paras[0]) > 1 and any(_CONTACT.search(ln) for ln in paras[0]):
        paras.pop(0)
        if paras and len(paras[0]) <= 3 and not any(":" in ln for ln in paras[0]) \
                and any(_CREDENTIAL.search(ln) for ln in paras[0]):
            paras.pop(0)
    if paras:
        first = paras[0]
        dropped = False
        while first and ((_INSTITUTION.search(first[0]) and not _NOTE_TYPE.search(first[0]))
                         or (dropped and first[0].startswith("Department"))):
            first.pop(0)
            dropped = True
        if not first:
            paras.pop(0)
    out: list[str] = []
    for p in paras:
        out.extend([*p, ""])
    return out[:-1], signature, cc


_PATIENT_LINE = re.compile(r"(?:Patient(?: name)?|Pt|Name|Re)\s*:\s*(?:(?:Mr|Mrs|Ms|Miss)\.?\s+)?(.+)", re.I)
_NAME_END = re.compile(r"\s{2,}|\s+(?:DOB|MRN|\d)|,\s*(?:DOB|MRN|\d)")
_NAME_WORD = re.compile(r"[^\W\d_][\w'\-]*\.?")
_MRN = re.compile(r"\bMRN:?\s+([A-Z0-9][\w\-]*\d)")
_DOB = re.compile(r"\b(?:DOB|Date of birth):?\s+(\d{1,2}/\d{1,2}/\d{4}|\d{1,2} [A-Z][a-z]+ \d{4})")
_SIGNER = re.compile(r"(?:(Dr|Mr|Mrs|Ms)\.?\s+)?([A-Z][\w'\-]*\.?)\s+([A-Z][\w'\-]*[a-z][\w'\-]*)")
_SIGNER_CREDS = re.compile(r"\b(?:MD|DO|PA-C|MB ?ChB|FRCP|FRCS|FCCP)\b")
_SIGNER_ROLE = re.compile(r"Consultant|Attending|Physician|Director|Professor|Hospitalist|Medicine|Surgeon|"
                          r"Fellow")


def _note_patient(lines: Sequence[str]) -> dict[str, str]:
    """The patient's first/last name, MRN and DOB where the head of a note gives them."""
    found: dict[str, str] = {}
    for ln in lines[:15]:
        m = _PATIENT_LINE.match(ln.strip())
        if m and "first" not in found:
            name = _NAME_END.split(m.group(1))[0]
            if "," in name:
                last, _, rest = name.partition(",")
                words = [last.strip(), *rest.split()[:1]][::-1]
            else:
                words = name.split()
            if len(words) >= 2 and all(_NAME_WORD.fullmatch(w) for w in (words[0], words[-1])):
                first, last = (w.title() if w.isupper() else w for w in (words[0], words[-1]))
                found.update(first=first, last=last)
        for key, rx in (("mrn", _MRN), ("dob", _DOB)):
            m = rx.search(ln)
            if m and key not in found:
                found[key] = m.group(1)
    return found


def _note_author(note: Note, invented: Person) -> Person:
    """The signer of ``note`` when its signature names one, else ``invented``."""
    if not note.signature:
        return invented
    head = re.sub(r"^(?:Electronically signed|Signed|Dictated by)\s*:?\s*", "", note.signature[0])
    m = _SIGNER.match(head)
    if not m:
        return invented
    sig = " ".join(note.signature)
    creds = _SIGNER_CREDS.search(sig)
    title = f"{m.group(1)}." if m.group(1) else ("Dr." if creds and creds.group() != "PA-C" else "")
    role = next((ln for ln in note.signature[1:] if _SIGNER_ROLE.search(ln)), invented.role)
    return Person(title, m.group(2), m.group(3), creds.group() if creds else invented.creds, role)


def _split_paras(lines: list[str]) -> list[list[str]]:
    paras: list[list[str]] = [[]]
    for ln in lines:
        if ln.strip():
            paras[-1].append(ln)
        elif paras[-1]:
            paras.append([])
    return [p for p in paras if p]


def load_notes(folder: Path = SAMPLES) -> list[Note]:
    """The sample notes of ``folder``, cleaned, in name order."""
    notes = []
    for path in sorted(folder.glob("*.txt")):
        lines, signature, cc = _clean(path.read_text(encoding="utf-8"))
        notes.append(Note(path.stem, path.stem.split("_")[0], tuple(lines),
                          any(ln.startswith("Dear ") for ln in lines), tuple(signature), tuple(cc)))
    if not notes:
        raise FileNotFoundError(f"no sample notes (*.txt) in {folder}")
    return notes


@dataclass(frozen=True)
class Para:
    """A logical line of the body before layout."""

    kind: str                                     # title | heading | text | row | blank
    text: str = ""
    cells: tuple[tuple[float, str], ...] = ()     # row: (fraction of the column width, text)
    lead: int = 0                                 # leading spaces in the source


_BLANK = Para("blank")


def _is_heading(s: str) -> bool:
    if len(s) > 60:
        return False
    if s.endswith(":") and ":" not in s[:-1]:
        return True
    letters = [c for c in s if c.isalpha()]
    return len(letters) >= 4 and all(c.isupper() for c in letters) and not s.endswith(".")


def _note_paras(lines: Sequence[str], titled: bool) -> list[Para]:
    out: list[Para] = []
    for k, raw in enumerate(lines):
        s = raw.strip()
        if not s:
            out.append(_BLANK)
            continue
        lead = len(raw) - len(raw.lstrip(" "))
        if k == 0 and titled and len(s) <= 70 and not s.endswith(".") \
                and not s.startswith(("Pt:", "Patient", "Date")):
            out.append(Para("title", s))
            continue
        cells = re.split(r" {3,}", s)
        if len(cells) > 1:
            out.append(Para("row", cells=tuple((i / len(cells), c) for i, c in enumerate(cells)), lead=lead))
        elif _is_heading(s):
            out.append(Para("heading", s))
        else:
            out.append(Para("text", s, lead=lead))
    return out


#: (test, unit, low, high, decimals)
_LABS = (("Sodium", "mmol/L", 135, 145, 0), ("Potassium", "mmol/L", 3.5, 5.1, 1),
         ("Chloride", "mmol/L", 98, 107, 0), ("Bicarbonate", "mmol/L", 22, 29, 0),
         ("Urea", "mmol/L", 2.5, 7.8, 1), ("Creatinine", "umol/L", 60, 110, 0),
         ("eGFR", "mL/min/1.73m2", 60, 120, 0), ("Glucose", "mmol/L", 3.9, 7.8, 1),
         ("Haemoglobin", "g/L", 120, 160, 0), ("White cell count", "x10^9/L", 4.0, 11.0, 1),
         ("Platelets", "x10^9/L", 150, 400, 0), ("CRP", "mg/L", 0, 5, 0),
         ("ALT", "U/L", 7, 56, 0), ("Albumin", "g/L", 35, 50, 0), ("INR", "", 0.8, 1.2, 1),
         ("Magnesium", "mmol/L", 0.7, 1.0, 2), ("TSH", "mIU/L", 0.4, 4.0, 2))
_MEDS = (("amlodipine", "5 mg", "PO", "once daily"), ("atorvastatin", "40 mg", "PO", "at night"),
         ("metformin", "500 mg", "PO", "twice daily"), ("bisoprolol", "2.5 mg", "PO", "once daily"),
         ("ramipril", "5 mg", "PO", "once daily"), ("apixaban", "5 mg", "PO", "twice daily"),
         ("furosemide", "40 mg", "PO", "every morning"), ("omeprazole", "20 mg", "PO", "once daily"),
         ("levothyroxine", "75 micrograms", "PO", "before breakfast"),
         ("paracetamol", "1 g", "PO", "four times daily as needed"),
         ("insulin glargine", "18 units", "SC", "at night"), ("salbutamol", "100 micrograms", "INH",
                                                                   "2 puffs as needed"),
         ("sertraline", "50 mg", "PO", "once daily"), ("enoxaparin", "40 mg", "SC", "once daily"),
         ("aspirin", "75 mg", "PO", "once daily"), ("tamsulosin", "400 micrograms", "PO", "at night"))
_LAB_COLUMNS = (0.0, 0.36, 0.54, 0.74)
_IMAGING = "Please find below the report of the imaging examination you requested for the above patient."
_THERAPY = "Thank you for referring this patient to our therapy service. Our assessment is summarised below."
_INTRO = {
    "discharge": "Your patient was discharged from our care on {date}. The discharge summary follows.",
    "progress": "I reviewed the above patient on {date}. My notes from the visit are below for your "
                "information.",
    "cxr": _IMAGING, "ct": _IMAGING, "pt": _THERAPY, "ot": _THERAPY,
}
_CLOSINGS = ("Please do not hesitate to contact me if you have any questions.",
             "We will continue to follow the patient and will keep you informed.",
             "Many thanks for your ongoing care of this patient.")


def _labs(world: World, rng: random.Random) -> list[Para]:
    picked = sorted(rng.sample(range(len(_LABS)), rng.randint(5, 9)))
    out = [Para("heading", rng.choice((f"Laboratory results ({world.date}):", "LABS:", "Blood results:")))]
    if rng.random() < 0.6:
        out.append(Para("row", cells=tuple(zip(_LAB_COLUMNS, ("Test", "Result", "Units", "Reference")))))
    for i in picked:
        name, unit, lo, hi, dec = _LABS[i]
        span = hi - lo
        value = rng.uniform(lo - 0.3 * span, hi + 0.3 * span) if rng.random() < 0.3 else rng.uniform(lo, hi)
        value = max(value, 0.0)
        flag = " H" if value > hi else " L" if value < lo else ""
        cells = (name, f"{value:.{dec}f}{flag}", unit, f"({lo}-{hi})")
        out.append(Para("row", cells=tuple((c, t) for c, t in zip(_LAB_COLUMNS, cells) if t)))
    return [*out, _BLANK]


def _meds(rng: random.Random) -> list[Para]:
    picked = rng.sample(_MEDS, rng.randint(3, 7))
    numbered = rng.random() < 0.5
    out = [Para("heading", rng.choice(("Current medications:", "Medications on discharge:",
                                       "Medication list:")))]
    for k, (drug, dose, route, freq) in enumerate(picked, 1):
        out.append(Para("text", f"{f'{k}.' if numbered else '-'} {drug} {dose} {route} {freq}"))
    return [*out, _BLANK]


def _insert_block(paras: list[Para], block: list[Para], rng: random.Random) -> list[Para]:
    """Insert ``block`` after a blank line: before the plan/assessment if there is one."""
    spots = [i for i in range(1, len(paras)) if paras[i - 1] is _BLANK]
    if not spots:
        return paras + [_BLANK] + block
    planned = [i for i in spots if _PLAN_HEADING.match(paras[i].text)]
    at = planned[0] if planned else rng.choice(spots[len(spots) // 3:] or spots)
    return paras[:at] + block + paras[at:]


def _letter(paras: list[Para], world: World, rng: random.Random) -> list[Para]:
    r = world.recipient
    intro = _INTRO.get(world.kind, _INTRO["progress"])
    head = [Para("text", world.date), _BLANK, Para("text", r.full),
            *(Para("text", ln) for ln in world.recipient_address), _BLANK,
            Para("text", f"Re: {world.patient}, DOB {world.dob}, MRN {world.mrn}"), _BLANK,
            Para("text", f"Dear {r.title} {r.last},"), _BLANK,
            Para("text", intro.format(date=world.date)), _BLANK]
    tail = [_BLANK, Para("text", rng.choice(_CLOSINGS)), _BLANK,
            Para("text", rng.choice(("Yours sincerely,", "Kind regards,", "With best wishes,")))]
    return head + paras + tail


def _compose(notes: Sequence[Note], note: Note, world: World, letter_p: float,
             rng: random.Random) -> list[Para]:
    """The body of one document: a note (maybe sliced or joined with another), mixed with
    template blocks, maybe wrapped in a letter."""
    lines = list(note.lines)
    if not note.letter and len(lines) > 30 and rng.random() < 0.25:
        cuts = [i for i, ln in enumerate(lines) if not ln.strip() and i >= len(lines) // 2]
        if cuts:
            lines = lines[:rng.choice(cuts)]
    paras = _note_paras(lines, titled=not note.letter)
    joined = [note.name]
    while not note.letter and len(joined) < 3 and rng.random() < (0.4 if len(lines) < 40 else 0.2):
        more = rng.choice([n for n in notes if not n.letter and n.name not in joined])
        paras += [_BLANK, *_note_paras(more.lines, titled=True)]
        joined.append(more.name)
    if note.kind in ("discharge", "progress", "consult"):
        if rng.random() < 0.5:
            paras = _insert_block(paras, _labs(world, rng), rng)
        if rng.random() < 0.4:
            paras = _insert_block(paras, _meds(rng), rng)
    if not note.letter and rng.random() < letter_p:
        return _letter(paras, world, rng)
    if not note.letter and not any(_PATIENT_ID.search(ln) for ln in lines[:8]) and rng.random() < 0.6:
        ident = Para("row", cells=((0.0, f"Patient: {world.patient_filed}"), (0.45, f"DOB: {world.dob}"),
                                   (0.72, f"MRN: {world.mrn}")))
        at = 1 if paras and paras[0].kind == "title" else 0
        gap = [] if paras[at:at + 1] == [_BLANK] else [_BLANK]
        paras = paras[:at] + [ident, *gap] + paras[at:]
    return paras


# --------------------------------------------------------------------------------------------
# Pages, drawn strings and the flow of the body
# --------------------------------------------------------------------------------------------

def _width(text: str, font: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return stringWidth(text, font, size)


def _wrap(text: str, font: str, size: float, first: float, rest: float) -> list[str]:
    """Wrap ``text``: the first line to ``first`` points, the others to ``rest``."""
    from reportlab.lib.utils import simpleSplit

    head = simpleSplit(text, font, size, first) or [""]
    if len(head) == 1 or first == rest:
        return head
    remainder = text.split(None, len(head[0].split()))[-1]
    return [head[0], *simpleSplit(remainder, font, size, rest)]


@dataclass(frozen=True)
class Run:
    """One drawn string, in PDF points (origin bottom-left; ``y`` is the baseline)."""

    label: str
    text: str
    x: float
    y: float
    font: str
    size: float
    width: float


@dataclass
class Page:
    number: int
    width: float
    height: float
    runs: list[Run] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    rects: list[tuple[float, float, float, float]] = field(default_factory=list)

    def text(self, label: str, x: float, y: float, text: str, font: str, size: float,
             align: str = "left") -> Run:
        w = _width(text, font, size)
        x = x - w if align == "right" else x - w / 2 if align == "center" else x
        run = Run(label, text, round(x, 2), round(y, 2), font, size, w)
        self.runs.append(run)
        return run


class Piece(NamedTuple):
    """A furniture string for the top/bottom stacks."""

    label: str
    text: str
    font: str
    size: float
    align: str = "left"


@dataclass(frozen=True)
class Frame:
    x0: float
    x1: float
    top: float      # first body baseline
    bottom: float   # lowest body baseline


@dataclass(frozen=True)
class Item:
    """A unit of the flow: a paragraph (wrapped), a table row, or a blank slot."""

    label: str
    text: str = ""
    cells: tuple[tuple[float, str], ...] = ()
    font: str = ""
    size: float = 0.0
    slots: int = 1          # height of each line in body leadings (titles: 2)
    indent: float = 0.0     # first line, points
    hang: float = 0.0       # continuation lines, points
    align: str = "left"
    block: int = 0          # items with the same non-zero block stay on one page
    keep_next: bool = False
    rule: bool = False      # a signature line drawn above the text

    @property
    def blank(self) -> bool:
        return not self.text and not self.cells


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------

def _pagination(style: str, i: int, n: int) -> str:
    return {"of": f"Page {i} of {n}", "slash": f"{i}/{n}", "dash": f"- {i} -", "page": f"Page {i}",
            "p": f"p. {i}", "pageslash": f"Page {i}/{n}"}[style]


class Template:
    """Page geometry and furniture of one family; all random choices are made in ``__init__``."""

    name: ClassVar[str]
    pagination: ClassVar[str]
    body_fonts: ClassVar[tuple[str, ...]] = ("Helvetica", "Times-Roman")
    courier_p: ClassVar[float] = 0.08
    letter_p: ClassVar[float] = 0.3
    cc_p: ClassVar[float] = 0.25
    margins: ClassVar[tuple[float, float]] = (40.0, 68.0)

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.W, self.H = rng.choice((LETTER, A4))
        self.ml, self.mr = rng.uniform(*self.margins), rng.uniform(*self.margins)
        self.mt, self.mb = rng.uniform(28, 46), rng.uniform(22, 40)
        family = "Courier" if rng.random() < self.courier_p else rng.choice(self.body_fonts)
        self.font, self.bold, self.italic = FONTS[family]
        self.size = rng.randint(18, 24) / 2
        self.L = round(self.size * rng.uniform(1.25, 1.45), 1)
        self.ff, self.fb, self.fi = FONTS[rng.choice(("Helvetica", "Times-Roman"))]
        self.pstyle = self.pagination if rng.random() < 0.7 else rng.choice(PAGINATION_STYLES)
        self.bold_headings = rng.random() < 0.6
        self.upper_headings = False
        self.title_size = self.size + rng.choice((1, 2, 3, 4))
        self.title_align = "left"
        self.gap_first = rng.uniform(1.2, 2.5) * self.L
        self.gap_later = rng.uniform(0.8, 1.8) * self.L
        self.gap_bottom = rng.uniform(1.2, 2.5) * self.L
        self.order = rng.choice(_ORDERS)
        self.cc = rng.random() < self.cc_p
        self.sig_space = rng.randint(1, 3)
        self._frames: dict[int, Frame] = {}

    # -- to override ---------------------------------------------------------------------------
    def furniture(self, page: Page, n_pages: int) -> None:
        """Draw everything above and below the body (never using the RNG)."""
        raise NotImplementedError

    def columns(self, page_no: int) -> tuple[float, float]:
        return self.ml, self.W - self.mr

    def side(self, page: Page, frame: Frame) -> None:
        """Draw the side column beside ``frame`` (none by default)."""

    def opening(self) -> list[Item]:
        return []

    def signature(self) -> list[tuple[str, str]]:
        """(font, text) lines of the signature block."""
        a, w = self.world.author, self.world
        return [(self.font, f"Electronically signed by {a.full}, {a.creds} on {w.signed_at}")]

    # -- shared ----------------------------------------------------------------------------------
    def frame(self, page_no: int) -> Frame:
        """The body area of a page: from the extent of the furniture drawn on a probe page."""
        if page_no not in self._frames:
            probe = Page(page_no, self.W, self.H)
            self.furniture(probe, page_no)
            mid = self.H / 2
            top = min([self.H - self.mt] + [r.y - 0.3 * r.size for r in probe.runs if r.y > mid]
                      + [min(y0, y1) for _, y0, _, y1 in probe.lines if y0 > mid]
                      + [y for _, y, _, _ in probe.rects if y > mid])
            bottom = max([self.mb] + [r.y + r.size for r in probe.runs if r.y < mid]
                         + [max(y0, y1) for _, y0, _, y1 in probe.lines if y0 < mid]
                         + [y + h for _, y, _, h in probe.rects if y < mid])
            gap = self.gap_first if page_no == 1 else self.gap_later
            x0, x1 = self.columns(page_no)
            self._frames[page_no] = Frame(x0, x1, round(top - gap - self.size, 1),
                                          round(bottom + self.gap_bottom, 1))
        return self._frames[page_no]

    def items(self, paras: Sequence[Para]) -> list[Item]:
        """Body items for ``paras``, then the signature block and maybe a cc list."""
        out = self.opening()
        space = _width(" ", self.font, self.size)
        column = min(f.x1 - f.x0 for f in (self.frame(1), self.frame(2)))
        for p in paras:
            if p.kind == "blank":
                out.append(Item("body"))
            elif p.kind == "title":
                size = self.title_size
                while size > self.size and _width(p.text, self.bold, size) > column:
                    size -= 0.5
                out.append(Item("body", p.text, font=self.bold, size=size, slots=2, align=self.title_align,
                                keep_next=True))
            elif p.kind == "heading":
                text = p.text.upper() if self.upper_headings else p.text
                out.append(Item("body", text, font=self.bold if self.bold_headings else self.font,
                                size=self.size, keep_next=True))
            elif p.kind == "row":
                out.append(Item("body", cells=p.cells, font=self.font, size=self.size, indent=p.lead * space))
            else:
                m = _LIST_ITEM.match(p.text)
                indent = p.lead * space
                hang = indent + (_width(m.group(), self.font, self.size) if m else 0.0)
                out.append(Item("body", p.text, font=self.font, size=self.size, indent=indent, hang=hang))
        out += [Item("signature", block=1)] * self.sig_space
        for k, (font, text) in enumerate(self.signature()):
            out.append(Item("signature", text, font=font, size=self.size, block=1,
                            rule=k == 0 and self.signature_rule()))
        if self.cc:
            out.append(Item("other", block=2))
            out += [Item("other", f"cc: {c}", font=self.font, size=self.size, block=2) for c in self.world.cc]
        return out

    def signature_rule(self) -> bool:
        return False

    def pag(self, i: int, n: int) -> str:
        return _pagination(self.pstyle, i, n)

    def top_stack(self, page: Page, pieces: Sequence[Piece], y: float | None = None,
                  x0: float | None = None, x1: float | None = None) -> float:
        """Draw ``pieces`` downwards from the top margin (or from baseline ``y``); returns the
        last baseline."""
        x0 = self.ml if x0 is None else x0
        x1 = self.W - self.mr if x1 is None else x1
        base = None
        prev = 0.0
        for p in pieces:
            if base is None:
                base = (self.H - self.mt - p.size) if y is None else y
            else:
                base -= max(prev, p.size) * 1.3
            page.text(p.label, _anchor(p.align, x0, x1), base, p.text, p.font, p.size, p.align)
            prev = p.size
        return self.H - self.mt if base is None else base

    def bottom_stack(self, page: Page, pieces: Sequence[Piece]) -> None:
        """Draw ``pieces`` upwards from the bottom margin, first piece lowest."""
        y = self.mb
        prev = 0.0
        for k, p in enumerate(pieces):
            if k:
                y += max(prev, p.size) * 1.45
            x = _anchor(p.align, self.ml, self.W - self.mr)
            page.text(p.label, x, y, p.text, p.font, p.size, p.align)
            prev = p.size

    def wrapped(self, label: str, text: str, font: str, size: float, align: str = "left",
                width: float | None = None) -> list[Piece]:
        """``text`` as pieces wrapped to ``width`` (the page width between margins), bottom-up."""
        from reportlab.lib.utils import simpleSplit

        width = self.W - self.ml - self.mr if width is None else width
        return [Piece(label, ln, font, size, align) for ln in reversed(simpleSplit(text, font, size, width))]

    def side_width(self, groups: Sequence[tuple[str, Sequence[str]]], size: float) -> float:
        """The width the widest side-column entry needs."""
        return max(_width(t, self.fb if j == 0 else self.ff, size)
                   for heading, entries in groups for j, t in enumerate([heading, *entries])) + 4

    def side_column(self, page: Page, frame: Frame, x: float, groups: Sequence[tuple[str, Sequence[str]]],
                    font: str, bold: str, size: float) -> None:
        """Side-column groups (heading, items), on the half-leading offsets of the body grid."""
        k = 0.5
        for heading, entries in groups:
            for j, text in enumerate([heading, *entries]):
                y = frame.top - k * self.L
                if y < frame.bottom:
                    return
                page.text("side", x, y, text, bold if j == 0 else font, size)
                k += 1
            k += 1


def _anchor(align: str, x0: float, x1: float) -> float:
    return x1 if align == "right" else (x0 + x1) / 2 if align == "center" else x0


_CONFIDENTIAL = (
    "CONFIDENTIAL - contains patient information",
    "This letter contains confidential medical information intended only for the addressee. If you "
    "received it in error, please notify the sender and destroy all copies.",
    "Private and confidential: protected health information. Unauthorised disclosure is prohibited.",
)


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` points."""
    while _width(text, font, size) > width and len(text) > 4:
        text = text[:-5].rstrip(" |,-") + "..."
    return text


class Classic(Template):
    """Left letterhead, left side column on page 1, running header, "Page x of y"."""

    name = "classic"
    pagination = "of"
    letter_p = 0.5

    def __init__(self, world: World, rng: random.Random) -> None:
        super().__init__(world, rng)
        h = world.hospital
        self.head_size = rng.uniform(14, 18)
        self.logo = rng.random() < 0.5
        side_w = rng.uniform(100, 135)
        self.side_size = rng.choice((6.5, 7.0, 7.5, 8.0))
        groups: list[tuple[str, Sequence[str]]] = [
            (rng.choice(("Departments", "Our services", "Clinics")), h.departments[:rng.randint(4, 9)])]
        if rng.random() < 0.5:
            groups.append((rng.choice(("Medical staff", "Consultants", "Physicians")),
                           [p.short for p in world.staff[:rng.randint(2, 6)]]))
        if rng.random() < 0.5:
            groups.append(("Contact", (f"Tel {h.phone}", f"Fax {h.fax}", h.email)))
        self.side_groups = groups
        self.side_w = max(side_w, self.side_width(groups, self.side_size))
        self.full_later = rng.random() < 0.5
        self.running = rng.random() < 0.8
        self.running_rule = rng.random() < 0.5
        self.pag_above = rng.random() < 0.3
        self.pag_align = rng.choice(("right", "right", "center"))
        self.foot_size = rng.choice((7.0, 7.5, 8.0))
        self.footer = rng.choice(_CONFIDENTIAL)

    def columns(self, page_no: int) -> tuple[float, float]:
        if page_no == 1 or not self.full_later:
            return self.ml + self.side_w + 18, self.W - self.mr
        return self.ml, self.W - self.mr

    def furniture(self, page: Page, n_pages: int) -> None:
        h, w = self.world.hospital, self.world
        if page.number == 1:
            y = self.H - self.mt - self.head_size
            x = self.ml
            if self.logo:
                run = page.text("header", x, y, h.initials, self.fb, self.head_size + 4)
                page.rects.append((x - 4, y - 6, run.width + 8, self.head_size + 12))
                x += run.width + 14
            page.text("header", x, y, h.name, self.fb, self.head_size)
            contact = f"Tel {h.phone}  |  Fax {h.fax}  |  {h.web}"
            pieces = [Piece("header", h.address, self.ff, 8), Piece("header", contact, self.ff, 8)]
            y = self.top_stack(page, pieces, y=y - self.head_size * 0.6 - 10)
            page.lines.append((self.ml, y - 7, self.W - self.mr, y - 7))
        elif self.running:
            x0, x1 = self.columns(page.number)
            text = _fit(f"{h.name} | Patient: {w.patient_first[0]}. {w.patient_last} | MRN {w.mrn}",
                        self.ff, 8, x1 - x0)
            y = self.top_stack(page, [Piece("header", text, self.ff, 8)], x0=x0, x1=x1)
            if self.running_rule:
                page.lines.append((x0, y - 5, x1, y - 5))
        foot = self.wrapped("footer", self.footer, self.ff, self.foot_size,
                            width=self.W - self.ml - self.mr - 90)
        pag = Piece("pagination", self.pag(page.number, n_pages), self.ff, 8, self.pag_align)
        self.bottom_stack(page, [*foot, pag] if self.pag_above else [pag, *foot])

    def side(self, page: Page, frame: Frame) -> None:
        if page.number == 1:
            self.side_column(page, frame, self.ml, self.side_groups, self.ff, self.fb, self.side_size)


class Centered(Template):
    """Centred letterhead, two-column admin block, "- x -", printed-on footer."""

    name = "centered"
    pagination = "dash"
    letter_p = 0.7
    body_fonts = ("Times-Roman", "Times-Roman", "Helvetica")

    def __init__(self, world: World, rng: random.Random) -> None:
        super().__init__(world, rng)
        self.title_align = "center" if rng.random() < 0.7 else "left"
        self.head_size = rng.uniform(15, 20)
        self.admin_size = rng.choice((7.5, 8.0, 8.5, 9.0))
        self.admin_box = rng.random() < 0.5
        self.later_admin = rng.random() < 0.7
        left = [("Patient:", world.patient_filed), ("Date of birth:", world.dob), ("MRN:", world.mrn)]
        right = [("Attending:", world.author.full), ("Department:", world.department.split(" of ")[-1]),
                 ("Date:", world.date)]
        if rng.random() < 0.5:
            left.append(("Account:", str(rng.randint(10**7, 10**8 - 1))))
            right.append((rng.choice(("Ward:", "Clinic:")), f"{rng.randint(1, 9)}{rng.choice('ABCDE')}"))
        self.admin = list(zip(left, right))
        self.printed = f"Printed on {world.printed} by {world.user}" + rng.choice(("", " - ClinDocs 4.2", ""))
        self.pag_above = rng.random() < 0.4
        self.copy_mark = rng.random() < 0.25

    def opening(self) -> list[Item]:
        if not self.copy_mark:
            return []
        mark = Item("other", "Copy to patient", font=self.italic, size=self.size, align="right")
        return [mark, Item("body")]

    def signature(self) -> list[tuple[str, str]]:
        a = self.world.author
        return [(self.bold, a.full + (f", {a.creds}" if a.title else "")), (self.font, a.role),
                (self.font, self.world.hospital.name)]

    def furniture(self, page: Page, n_pages: int) -> None:
        h, w = self.world.hospital, self.world
        if page.number == 1:
            y = self.top_stack(page, [
                Piece("header", h.name, self.fb, self.head_size, "center"),
                Piece("header", w.department, self.fi, 9.5, "center"),
                Piece("header", h.address, self.ff, 8, "center"),
                Piece("header", f"Tel: {h.phone}  -  Fax: {h.fax}", self.ff, 8, "center")])
            y -= 8
            page.lines.append((self.ml, y, self.W - self.mr, y))
            top = y - 4
            s = self.admin_size
            mid = self.W / 2 + 10
            lw = max(_width(k, self.fb, s) for (k, _), _ in self.admin) + 6
            rw = max(_width(k, self.fb, s) for _, (k, _) in self.admin) + 6
            for (lk, lv), (rk, rv) in self.admin:
                y -= s * 1.5
                page.text("header", self.ml + 4, y, lk, self.fb, s)
                lv = _fit(lv, self.ff, s, mid - self.ml - lw - 12)
                rv = _fit(rv, self.ff, s, self.W - self.mr - mid - rw)
                page.text("header", self.ml + 4 + lw, y, lv, self.ff, s)
                page.text("header", mid, y, rk, self.fb, s)
                page.text("header", mid + rw, y, rv, self.ff, s)
            if self.admin_box:
                page.rects.append((self.ml, y - 6, self.W - self.ml - self.mr, top - y + 6))
        elif self.later_admin:
            line = f"Patient: {w.patient_filed}   DOB: {w.dob}   MRN: {w.mrn}"
            y = self.top_stack(page, [Piece("header", line, self.ff, 8)])
            page.lines.append((self.ml, y - 5, self.W - self.mr, y - 5))
        pag = Piece("pagination", self.pag(page.number, n_pages), self.ff, 9, "center")
        foot = Piece("footer", self.printed, self.ff, 7)
        self.bottom_stack(page, [foot, pag] if self.pag_above else [pag, foot])


class Minimal(Template):
    """Small letterhead on page 1 only, "x/y" top right, address footer, wide margins."""

    name = "minimal"
    pagination = "slash"
    letter_p = 0.4
    body_fonts = ("Helvetica", "Helvetica", "Times-Roman")
    margins = (60.0, 88.0)

    def __init__(self, world: World, rng: random.Random) -> None:
        super().__init__(world, rng)
        self.head_size = rng.uniform(11, 13.5)
        self.head_align = rng.choice(("left", "right"))
        self.pag_size = rng.choice((8.0, 8.5, 9.0))
        self.foot_size = rng.choice((6.5, 7.0, 7.5))
        h = world.hospital
        self.address = rng.choice((f"{h.name} - {h.address} - Tel {h.phone} - {h.web}",
                                   f"{h.name}, {h.address}. Telephone {h.phone}, fax {h.fax}. {h.email}"))

    def signature(self) -> list[tuple[str, str]]:
        a = self.world.author
        return [(self.font, a.signed), (self.font, a.role)]

    def furniture(self, page: Page, n_pages: int) -> None:
        h = self.world.hospital
        y = self.top_stack(page, [Piece("pagination", self.pag(page.number, n_pages), self.ff, self.pag_size,
                                        "right")])
        if page.number == 1:
            self.top_stack(page, [Piece("header", h.name, self.fb, self.head_size, self.head_align),
                                  Piece("header", h.address, self.ff, 8, self.head_align)], y=y - 24)
        self.bottom_stack(page, self.wrapped("footer", self.address, self.ff, self.foot_size, "center"))


class RightSide(Template):
    """Side column on the right of every page, report title line, "Page x", document-id footer."""

    name = "rightside"
    pagination = "page"
    letter_p = 0.2

    def __init__(self, world: World, rng: random.Random) -> None:
        super().__init__(world, rng)
        h = world.hospital
        side_w = rng.uniform(105, 140)
        self.gutter = rng.uniform(14, 24)
        self.side_size = rng.choice((7.0, 7.5, 8.0))
        self.vrule = rng.random() < 0.5
        self.report_size = rng.choice((8.5, 9.0, 9.5, 10.5))
        report = _KIND_REPORT.get(world.kind, "CLINICAL REPORT")
        self.report = rng.choice((f"{report} - {h.name}", f"{h.name} | {world.department} | {report}"))
        self.letterhead = rng.random() < 0.6
        self.head_size = rng.uniform(13, 16)
        contact = ("Contact", (f"Tel {h.phone}", f"Fax {h.fax}", h.email))
        doctors = (rng.choice(("Our physicians", "Clinical team", "Consultants")),
                   [p.short for p in world.staff[:rng.randint(3, 7)]])
        hours = ("Opening hours", ("Mon-Fri 08:00-17:00", "Sat 09:00-12:00"))
        services = (rng.choice(("Services", "Specialties", "Units")), h.departments[:rng.randint(3, 7)])
        self.groups_first = ([contact, doctors] + ([hours] if rng.random() < 0.5 else [])
                             + ([services] if rng.random() < 0.4 else []))
        self.groups_later = self.groups_first if rng.random() < 0.5 else [contact]
        self.side_w = max(side_w, self.side_width(self.groups_first, self.side_size))
        # mostly on the right; some documents of the family put the same column on the left
        self.left = rng.random() < 0.3
        self.side_x = self.ml if self.left else self.W - self.mr - self.side_w
        version = f"Version 1.{rng.randint(0, 4)}"
        self.doc_footer = rng.choice((
            f"Document ID: {world.doc_number}  |  {version}  |  Created {world.date}",
            f"{world.doc_number} - {world.printed}"))
        self.pag_above = rng.random() < 0.3

    def columns(self, page_no: int) -> tuple[float, float]:
        if self.left:
            return self.ml + self.side_w + self.gutter, self.W - self.mr
        return self.ml, self.side_x - self.gutter

    def furniture(self, page: Page, n_pages: int) -> None:
        h = self.world.hospital
        pieces = []
        if page.number == 1 and self.letterhead:
            pieces = [Piece("header", h.name, self.fb, self.head_size),
                      Piece("header", h.address, self.ff, 8)]
        report = _fit(self.report, self.fb, self.report_size, self.W - self.ml - self.mr)
        pieces.append(Piece("header", report, self.fb, self.report_size))
        y = self.top_stack(page, pieces)
        page.lines.append((self.ml, y - 5, self.W - self.mr, y - 5))
        pag = Piece("pagination", self.pag(page.number, n_pages), self.ff, 8.5, "center")
        foot = Piece("footer", self.doc_footer, self.ff, 7)
        self.bottom_stack(page, [foot, pag] if self.pag_above else [pag, foot])

    def side(self, page: Page, frame: Frame) -> None:
        groups = self.groups_first if page.number == 1 else self.groups_later
        self.side_column(page, frame, self.side_x, groups, self.ff, self.fb, self.side_size)
        if self.vrule:
            x = self.side_x + self.side_w + self.gutter / 2 if self.left else self.side_x - self.gutter / 2
            page.lines.append((x, frame.top + self.L, x, frame.bottom))


class Boxed(Template):
    """Letterhead in a box, boxed running header, name/title/date signature, cc list."""

    name = "boxed"
    pagination = "pageslash"
    letter_p = 0.5
    cc_p = 1.0
    body_fonts = ("Times-Roman", "Helvetica")

    def __init__(self, world: World, rng: random.Random) -> None:
        super().__init__(world, rng)
        self.head_size = rng.uniform(13, 17)
        self.head_align = rng.choice(("left", "center"))
        self.logo = rng.random() < 0.5
        self.later_box = rng.random() < 0.6
        self.copy_mark = rng.choice(("COPY TO PATIENT", "Patient copy", "COPY", ""))
        self.side_box = rng.random() < 0.35
        side_w = rng.uniform(100, 125)
        h = world.hospital
        self.side_groups = [("Clinic contact", (h.phone, h.email)),
                            ("Secretary", (f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                                           f"Ext. {rng.randint(2000, 4999)}"))]
        self.side_w = max(side_w, self.side_width(self.side_groups, 7.5) + 10)
        self.footer = rng.choice(("", f"Confidential medical information - {h.web}", _CONFIDENTIAL[0]))
        self.rule = rng.random() < 0.5
        self.distribution = rng.random() < 0.5

    def columns(self, page_no: int) -> tuple[float, float]:
        if page_no == 1 and self.side_box:
            return self.ml + self.side_w + 22, self.W - self.mr
        return self.ml, self.W - self.mr

    def opening(self) -> list[Item]:
        if not self.copy_mark:
            return []
        return [Item("other", self.copy_mark, font=self.bold, size=self.size, align="right"), Item("body")]

    def signature(self) -> list[tuple[str, str]]:
        a = self.world.author
        lines = [] if self.rule else [(self.font, "Signature: ______________________")]
        return lines + [(self.bold, a.full), (self.font, f"{a.role}, {a.creds}"),
                        (self.font, f"Date: {self.world.date}")]

    def signature_rule(self) -> bool:
        return self.rule

    def items(self, paras: Sequence[Para]) -> list[Item]:
        out = super().items(paras)
        if self.distribution:
            at = next(i for i, it in enumerate(out) if it.label == "other" and it.text.startswith("cc:"))
            out.insert(at, Item("other", "Distribution:", font=self.bold, size=self.size, block=2))
        return out

    def furniture(self, page: Page, n_pages: int) -> None:
        h, w = self.world.hospital, self.world
        pad = 8.0
        x0, x1 = self.ml + pad, self.W - self.mr - pad
        top = self.H - self.mt
        if page.number == 1:
            y = self.top_stack(page, [
                Piece("header", h.name, self.fb, self.head_size, self.head_align),
                Piece("header", w.department, self.ff, 9, self.head_align),
                Piece("header", h.address, self.ff, 8, self.head_align),
                Piece("header", f"Telephone {h.phone}   Fax {h.fax}", self.ff, 8, self.head_align)],
                y=top - pad - self.head_size, x0=x0, x1=x1)
            if self.logo:
                at_right = self.head_align == "left"
                page.text("header", x1 if at_right else x0, top - pad - self.head_size, h.initials, self.fb,
                          self.head_size, "right" if at_right else "left")
            page.rects.append((self.ml, y - pad, self.W - self.ml - self.mr, top - y + pad))
        elif self.later_box:
            text = _fit(f"{h.name} - {w.patient_filed} - DOB {w.dob}", self.ff, 8, x1 - x0)
            y = self.top_stack(page, [Piece("header", text, self.ff, 8)], y=top - 5 - 8, x0=x0, x1=x1)
            page.rects.append((self.ml, y - 5, self.W - self.ml - self.mr, top - y + 5))
        pag = Piece("pagination", self.pag(page.number, n_pages), self.ff, 8, "right")
        self.bottom_stack(page, [pag] + ([Piece("footer", self.footer, self.ff, 7)] if self.footer else []))

    def side(self, page: Page, frame: Frame) -> None:
        if page.number == 1 and self.side_box:
            self.side_column(page, frame, self.ml + 6, self.side_groups, self.ff, self.fb, 7.5)
            rows = sum(1 + len(e) for _, e in self.side_groups) + len(self.side_groups) - 1
            low = frame.top - (rows - 0.5) * self.L - 5
            page.rects.append((self.ml, low, self.side_w, frame.top + 4 - low))


class Courier(Template):
    """Typewriter style: Courier, dash-line headers, accession barcodes, "p. x", dictation block."""

    name = "courier"
    pagination = "p"
    body_fonts = ("Courier",)
    letter_p = 0.1

    def __init__(self, world: World, rng: random.Random) -> None:
        super().__init__(world, rng)
        self.ff, self.fb, self.fi = FONTS["Courier"]
        self.size = rng.randint(18, 22) / 2
        self.L = round(self.size * rng.uniform(1.25, 1.4), 1)
        self.title_size = self.size + rng.choice((0, 1, 2))
        self.upper_headings = rng.random() < 0.5
        self.fs = rng.choice((8.0, 8.5, 9.0))
        self.dash = rng.choice("-=")
        self.barcode_top = rng.random() < 0.5
        self.later = rng.random() < 0.85
        self.footer = rng.choice(("CONFIDENTIAL - FOR AUTHORIZED USE ONLY", f"RPT {world.accession}  "
                                  f"PRINTED {world.printed}", ""))
        self.esign = rng.random() < 0.6

    def signature(self) -> list[tuple[str, str]]:
        a, w = self.world.author, self.world
        lines = [(self.font, f"Dictated by: {a.full.upper()}, {a.creds}"),
                 (self.font, f"Transcribed by: {w.typist}/{a.first[0].lower()}{a.last[0].lower()}"),
                 (self.font, f"D: {w.signed_at}   T: {w.printed}")]
        if self.esign:
            lines.append((self.font, f"Electronically signed by: {a.full.upper()} on {w.signed_at}"))
        return lines

    def furniture(self, page: Page, n_pages: int) -> None:
        h, w = self.world.hospital, self.world
        s = self.fs
        dashes = self.dash * int((self.W - self.ml - self.mr) / _width(self.dash, self.ff, s))
        y = None
        barcode = Piece("other", f"*{w.accession}*", self.fb, s + 1, "right")
        if self.barcode_top:
            y = self.top_stack(page, [barcode]) - 2.2 * s
        if page.number == 1:
            pieces = [Piece("header", dashes, self.ff, s),
                      Piece("header", h.name.upper(), self.fb, s + 2, "center"),
                      Piece("header", w.department.upper(), self.ff, s, "center"),
                      Piece("header", h.address.upper(), self.ff, s, "center"),
                      Piece("header", f"TEL {h.phone}   FAX {h.fax}", self.ff, s, "center"),
                      Piece("header", dashes, self.ff, s)]
        elif self.later:
            running = f"PATIENT: {w.patient_filed.upper()}   MRN: {w.mrn}   (CONT'D)"
            pieces = [Piece("header", running, self.ff, s),
                      Piece("header", dashes, self.ff, s)]
        else:
            pieces = []
        if pieces:
            self.top_stack(page, pieces, y=y)
        bottom = [Piece("pagination", self.pag(page.number, n_pages), self.ff, s, "right")]
        if not self.barcode_top:
            bottom.append(Piece("other", barcode.text, barcode.font, barcode.size))
        if self.footer:
            bottom.append(Piece("footer", self.footer, self.ff, s))
        self.bottom_stack(page, bottom)


_TEMPLATES: dict[str, type[Template]] = {
    t.name: t for t in (Classic, Centered, Minimal, RightSide, Boxed, Courier)}
FAMILIES: tuple[str, ...] = tuple(_TEMPLATES)


# --------------------------------------------------------------------------------------------
# Layout: the flow of items over pages
# --------------------------------------------------------------------------------------------

def _lines_of(it: Item, width: float) -> int:
    if it.blank or it.cells:
        return 1
    return len(_wrap(it.text, it.font, it.size, width - it.indent, width - it.hang))


def _row_fits(it: Item, frame: Frame) -> bool:
    width = frame.x1 - frame.x0 - it.indent
    ends = [frame.x0 + it.indent + f * width + _width(t, it.font, it.size) for f, t in it.cells]
    starts = [frame.x0 + it.indent + f * width for f, _ in it.cells]
    return all(e + 6 <= s for e, s in zip(ends, starts[1:])) and ends[-1] <= frame.x1


def _flow(tpl: Template, items: Sequence[Item]) -> tuple[list[Page], list[int]]:
    """Place ``items`` on pages; returns the pages and the page each item starts on."""
    L = tpl.L
    pages: list[Page] = []
    starts: list[int] = []
    frame = tpl.frame(1)
    y = frame.top

    def new_page() -> None:
        nonlocal frame, y
        pages.append(Page(len(pages) + 1, tpl.W, tpl.H))
        frame = tpl.frame(len(pages))
        y = frame.top

    new_page()
    for i, it in enumerate(items):
        at_top = y == frame.top
        if it.block and not at_top and (i == 0 or items[i - 1].block != it.block):
            group = [x for x in items[i:] if x.block == it.block]
            need = sum(_lines_of(x, frame.x1 - frame.x0) * x.slots for x in group)
            if y - (need - 1) * L < frame.bottom:
                new_page()
        elif it.keep_next and not at_top and y - it.slots * L < frame.bottom:
            new_page()
        starts.append(len(pages))
        if it.blank:
            if y != frame.top:
                y -= L
            continue
        if it.cells and _row_fits(it, frame):
            if y < frame.bottom:
                new_page()
            width = frame.x1 - frame.x0 - it.indent
            for f, t in it.cells:
                pages[-1].text(it.label, frame.x0 + it.indent + f * width, y, t, it.font, it.size)
            y -= L
            continue
        text = it.text or "  ".join(t for _, t in it.cells)
        lines = _wrap(text, it.font, it.size, frame.x1 - frame.x0 - it.indent, frame.x1 - frame.x0 - it.hang)
        k, first = 0, True
        while k < len(lines):
            base = y - (it.slots - 1) * L
            if base < frame.bottom:
                if y == frame.top:
                    raise LayoutError(f"page {len(pages)}: body frame too small for {lines[k]!r}")
                rest = " ".join(lines[k:])
                new_page()
                width = frame.x1 - frame.x0 - it.hang
                lines, k = _wrap(rest, it.font, it.size, width, width), 0
                continue
            x = frame.x0 + (it.indent if first else it.hang)
            pages[-1].text(it.label, _anchor(it.align, x, frame.x1), base, lines[k], it.font, it.size,
                           it.align)
            if it.rule:
                pages[-1].lines.append((x, base + 0.9 * L, x + 160, base + 0.9 * L))
            y = base - L
            k, first = k + 1, False
    return pages, starts


def _paginate(tpl: Template, body: list[Item], closing: list[Item]) -> list[Page]:
    """Lay out body and closing on at most MAX_PAGES pages, cutting the body at a paragraph."""
    while True:
        pages, starts = _flow(tpl, body + closing)
        if len(pages) <= MAX_PAGES:
            break
        limit = next(i for i, p in enumerate(starts) if p > MAX_PAGES)
        cut = [i for i in range(1, min(limit, len(body))) if body[i].blank and body[i].label == "body"]
        body = body[:cut[-1]] if cut else body[:limit // 2]
    n = len(pages)
    for page in pages:
        tpl.furniture(page, n)
        tpl.side(page, tpl.frame(page.number))
    return pages


# --------------------------------------------------------------------------------------------
# Rendering, reading back, alignment, export
# --------------------------------------------------------------------------------------------

def _stream(page: Page, prefer: tuple[str, ...], doc_id: str) -> list[Run]:
    """The page's runs in content-stream order: grouped by label, the preferred group order
    first, any order in which consecutive runs of different labels are vertically apart."""
    rows: dict[int, set[str]] = defaultdict(set)
    for r in page.runs:
        rows[round(r.y)].add(r.label)
    for r in page.runs:
        near = rows[round(r.y) - 1] | rows[round(r.y)] | rows[round(r.y) + 1]
        clash = [o for o in page.runs if o.label != r.label and abs(o.y - r.y) < 1.0] if len(near) > 1 else []
        if clash:
            raise LayoutError(f"{doc_id}: page {page.number}: {r.label} {r.text!r} shares a baseline with "
                              f"{clash[0].label} {clash[0].text!r}")
    for order in (prefer, *(o for o in _ORDERS if o != prefer)):
        runs = sorted(page.runs, key=lambda r: order.index(r.label))
        if all(a.label == b.label or abs(a.y - b.y) >= max(a.size, b.size) for a, b in zip(runs, runs[1:])):
            return runs
    raise LayoutError(f"{doc_id}: page {page.number}: no content-stream order keeps the labels apart")


def _render(tpl: Template, pages: Sequence[Page], doc_id: str) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(tpl.W, tpl.H), invariant=1)
    c.setTitle(doc_id)
    c.setAuthor("medtext synthetic layout corpus (fictional)")
    c.setSubject(tpl.name)
    for page in pages:
        c.setLineWidth(0.6)
        for x0, y0, x1, y1 in page.lines:
            c.line(x0, y0, x1, y1)
        for x, y, w, h in page.rects:
            c.rect(x, y, w, h)
        for r in _stream(page, tpl.order, doc_id):
            c.setFont(r.font, r.size)
            c.drawString(r.x, r.y, r.text)
        c.showPage()
    c.save()
    return buf.getvalue()


def _assign(doc_id: str, text: str, lines: Sequence[dict[str, Any]],
            pages: Sequence[Page]) -> list[str | None]:
    """The label of every extracted line (see the module docstring)."""
    labels: list[str | None] = []
    for ln in lines:
        s = text[ln["start"]:ln["end"]]
        if ln["x0"] is None or not s.strip():
            labels.append(None)
            continue
        height = ln["page_height"]
        score: dict[str, float] = defaultdict(float)
        for r in pages[ln["page"] - 1].runs:
            top, bottom = height - r.y - r.size, height - r.y + 0.3 * r.size
            if min(ln["y1"], bottom) <= max(ln["y0"], top):
                continue
            overlap = min(ln["x1"], r.x + r.width) - max(ln["x0"], r.x)
            if overlap > 0:
                score[r.label] += overlap
        if not score:
            raise LayoutError(f"{doc_id}: page {ln['page']} line {ln['number']} matches no drawn string: "
                              f"{s!r}")
        labels.append(max(score, key=score.__getitem__))
    return labels


def _export(text: str, lines: Sequence[dict[str, Any]]) -> str:
    """Plain text with one line per extracted line, indented from its x position."""
    visible = [ln for ln in lines if ln["x0"] is not None and text[ln["start"]:ln["end"]].strip()]
    left = min((ln["x0"] for ln in visible), default=0.0)
    pages: list[list[str]] = [[] for _ in range(max((ln["page"] for ln in lines), default=1))]
    for ln in lines:
        s = text[ln["start"]:ln["end"]].strip()
        indent = round((ln["x0"] - left) / 5.5) if s and ln["x0"] is not None else 0
        pages[ln["page"] - 1].append(" " * indent + s)
    return "\f".join("\n".join(p) for p in pages)


def _document(doc_id: str, family: str, notes: Sequence[Note], rng: random.Random, out_dir: Path) -> dict:
    note = rng.choice(notes)
    world = _world(rng, note)
    tpl = _TEMPLATES[family](world, rng)
    items = tpl.items(_compose(notes, note, world, tpl.letter_p, rng))
    split = next(i for i, it in enumerate(items) if it.label == "signature")
    pages = _paginate(tpl, items[:split], items[split:])
    pdf_rel, txt_rel = f"pdf/{doc_id}.pdf", f"txt/{doc_id}.txt"
    pdf = out_dir / pdf_rel
    with atomic_path(pdf) as tmp:
        tmp.write_bytes(_render(tpl, pages, doc_id))
    text, lines, _ = read_pdf(pdf, source=str(pdf))
    labels = _assign(doc_id, text, lines, pages)
    txt = _export(text, lines)
    if len(text_lines(txt)) != len(lines):
        raise LayoutError(f"{doc_id}: text export has {len(text_lines(txt))} lines, the PDF {len(lines)}")
    atomic_write_text(out_dir / txt_rel, txt)
    return {"id": doc_id, "family": family, "pages": len(pages), "pdf": pdf_rel, "txt": txt_rel,
            "labels": labels}


def generate(out_dir: Path, n_docs: int, *, families: Sequence[str] | None = None, seed: int = 0) -> Path:
    """Render ``n_docs`` documents, round-robin over ``families``; returns the labels.jsonl path."""
    fams = tuple(families) if families else FAMILIES
    unknown = [f for f in fams if f not in _TEMPLATES]
    if unknown:
        raise ValueError(f"unknown layout families {unknown}; known: {', '.join(FAMILIES)}")
    out_dir = Path(out_dir)
    notes = load_notes()
    records = []
    for i in range(n_docs):
        family = fams[i % len(fams)]
        rng = random.Random(f"{seed}:{family}:{i}")
        records.append(_document(f"{family}-{i:04d}", family, notes, rng, out_dir))
    path = out_dir / "labels.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_labels(path: Path) -> list[dict]:
    """Read labels.jsonl back, checking the label values and, where the text export is present,
    that it has one line per label; raises ValueError naming the document."""
    path = Path(path)
    docs = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        doc = json.loads(raw)
        doc_id = doc.get("id", f"{path}:{n}")
        bad = sorted({str(lab) for lab in doc.get("labels", ()) if lab is not None and lab not in LABELS})
        if "labels" not in doc or bad:
            raise ValueError(f"{doc_id}: bad or missing labels {bad}; expected {', '.join(LABELS)} or null")
        txt = path.parent / doc.get("txt", "")
        if doc.get("txt") and txt.is_file():
            count = len(text_lines(txt.read_text(encoding="utf-8")))
            if count != len(doc["labels"]):
                raise ValueError(f"{doc_id}: {len(doc['labels'])} labels for {count} lines in {txt}")
        docs.append(doc)
    return docs


def _table(docs: Sequence[dict]) -> str:
    rows: dict[str, Counter] = defaultdict(Counter)
    for d in docs:
        c = rows[d["family"]]
        c["docs"] += 1
        c["pages"] += d["pages"]
        c.update("blank" if lab is None else lab for lab in d["labels"])
    cols = ("docs", "pages", *LABELS, "blank")
    out = [f"{'family':<10}" + "".join(f"{c:>11}" for c in cols)]
    total: Counter = Counter()
    for fam in sorted(rows):
        total.update(rows[fam])
        out.append(f"{fam:<10}" + "".join(f"{rows[fam][c]:>11}" for c in cols))
    out.append(f"{'total':<10}" + "".join(f"{total[c]:>11}" for c in cols))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path, help="output folder (pdf/, txt/, labels.jsonl)")
    ap.add_argument("--docs", type=int, default=60, help="number of documents (default 60)")
    ap.add_argument("--families", default="", help=f"comma-separated subset of {','.join(FAMILIES)}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()] or None
    unknown = sorted(set(families or ()) - set(FAMILIES))
    if unknown:
        ap.error(f"unknown families {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    path = generate(args.out_dir, args.docs, families=families, seed=args.seed)
    print(f"{path}: {args.docs} documents")
    print(_table(read_labels(path)))


if __name__ == "__main__":
    main()
