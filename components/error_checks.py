"""Consistency checks for clinical notes: small documented rules grounded in the team's knowledge
tables (``components/error_data/*.tsv``) and in the note itself.

Each check is a function ``check(note) -> list[finding]`` over a :class:`Note` (the text, its
sentences, drug / organism / lab mentions and, when the pipeline has them, entities with
assertions). A finding is a dict with ``start``/``end`` (the sentence holding the problem),
``type`` (a MEDEC error type, or ``consistency``), ``message``, ``correction`` (the corrected
sentence when the rule can produce one, else None), ``score`` and ``detector``
(``checks:<name>``).

==================== ==============================================================================
check                fires when
==================== ==============================================================================
dose_range           a drug is followed by a dose outside its plausible single adult dose
                     (``drugs.tsv`` min/max, units converted); suggests the 10x / 1000x slip fix
route                a drug is given by a route it does not have (``drugs.tsv`` routes)
schedule             a once-weekly drug (oral methotrexate, alendronate 70 mg) is written daily
do_not_use           Joint Commission "Do Not Use" abbreviations next to a dose (QD, QOD, U, IU,
                     trailing zero, naked decimal, MSO4/MgSO4)
allergy              a drug is prescribed although the note lists an allergy to it or its class
organism_antibiotic  an antibiotic is given for an organism it is inactive against
                     (``organisms.tsv``) and nothing active is given in the same sentence
lab_interpretation   a lab value contradicts the word describing it ("potassium 6.1, low";
                     "hypokalemia with a potassium of 5.9"; ``labs.tsv`` reference ranges)
laterality           one limb / joint / paired organ is called left in one sentence and right
                     in another (never with "bilateral", "both" or a normal-comparison sentence;
                     "Right kidney:" / "Left kidney:" headings of a two-sided report not counted)
assertion_conflict   one finding (one concept and head word) is both affirmed and negated in the
                     same section (entities with ConText assertions needed)
==================== ==============================================================================

Numbers without units, ranges ("1-2 g") and values with units the table does not use are left
alone: the checks prefer silence to a false alarm.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "error_data"
TABLES = {
    "drugs": ("drug", "synonyms", "classes", "unit", "min_dose", "max_dose", "routes", "schedule"),
    "drug_classes": ("class", "synonyms"),
    "organisms": ("organism", "synonyms", "kind", "inactive", "first_line"),
    "labs": ("test", "synonyms", "unit", "low", "high", "high_terms", "low_terms"),
}
# classes too broad to stand for an allergy to one drug of them
BROAD_CLASSES = {"antibacterial", "beta-lactam", "analgesic", "electrolyte", "antiviral", "antifungal"}
# an allergy to one drug of these chemical families is read as an allergy to the family
# (functional classes such as antiemetic or diuretic are not: their members do not cross-react)
CROSS_REACTIVE = {"penicillin", "cephalosporin", "carbapenem", "sulfonamide", "nsaid", "fluoroquinolone",
                  "macrolide", "tetracycline", "aminoglycoside", "ace-inhibitor"}
ANTIMICROBIAL = {"antibacterial", "antifungal", "antiviral", "antimalarial"}


class KnowledgeError(ValueError):
    """A knowledge table is malformed (the message names file and line)."""


@dataclass
class Drug:
    name: str
    classes: list[str]
    unit: str
    min_dose: float | None
    max_dose: float | None
    routes: set[str]
    schedule: str


@dataclass
class Organism:
    name: str
    kind: str
    inactive: set[str]
    first_line: list[str]


@dataclass
class Lab:
    name: str
    unit: str
    low: float
    high: float
    high_terms: list[str]
    low_terms: list[str]


def _split(v: str) -> list[str]:
    return [x.strip().lower() for x in (v or "").split("|") if x.strip()]


def _read_table(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise KnowledgeError(f"{path}: knowledge table not found")
    rows = []
    header = None
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cells = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
            if header is None:
                header = tuple(c.strip().lower() for c in cells)
                if header != columns:
                    raise KnowledgeError(f"{path}:{n}: header must be {' '.join(columns)} (tab-separated), "
                                         f"not {' '.join(header)}")
                continue
            if len(cells) != len(columns):
                raise KnowledgeError(f"{path}:{n}: expected {len(columns)} tab-separated fields, got {len(cells)}")
            rows.append((n, dict(zip(columns, (c.strip() for c in cells)))))
    return rows


def _num(v: str, where: str) -> float | None:
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise KnowledgeError(f"{where}: {v!r} is not a number") from None


@dataclass
class Knowledge:
    drugs: dict[str, Drug] = field(default_factory=dict)
    drug_names: dict[str, str] = field(default_factory=dict)  # name or synonym -> drug
    classes: dict[str, str] = field(default_factory=dict)  # class name or synonym -> class
    organisms: dict[str, Organism] = field(default_factory=dict)
    organism_names: dict[str, str] = field(default_factory=dict)
    labs: dict[str, Lab] = field(default_factory=dict)
    lab_names: dict[str, str] = field(default_factory=dict)
    _lexicons: dict[str, "Lexicon"] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, folder: str | Path | None = None) -> "Knowledge":
        """The tables of ``folder`` (default: the packaged ones), validated."""
        return _load_knowledge(str(Path(folder).resolve()) if folder else str(DATA_DIR))

    def lexicon(self, kind: str) -> "Lexicon":
        """Word-sequence lookup of the drug, organism or lab names (built once)."""
        lex = self._lexicons.get(kind)
        if lex is None:
            names, min_len = {"drugs": (self.drug_names, 3), "organisms": (self.organism_names, 3),
                              "labs": (self.lab_names, 1)}[kind]
            lex = self._lexicons[kind] = Lexicon(names, min_len)
        return lex


def _norm(name: str) -> str:
    return re.sub(r"[\s/]+", "-", name.strip().lower())


_WORD = re.compile(r"[A-Za-z0-9]+")
_JOIN = re.compile(r"[\s/-]+|\.\s*")


def text_words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]


class Lexicon:
    """Names (normalised by :func:`_norm`) found in text as whole word sequences, longest
    first, in one left-to-right pass (linear in the text, whatever the number of names)."""

    def __init__(self, names: dict[str, str], min_len: int):
        self.entries: dict[tuple[str, ...], str] = {}
        for name, key in names.items():
            if len(name) < min_len:
                continue
            words = tuple(w.lower() for w in _WORD.findall(name))
            if words:
                self.entries.setdefault(words, key)
        self.first: dict[str, list[int]] = {}
        for words in self.entries:
            self.first.setdefault(words[0], []).append(len(words))
        for lengths in self.first.values():
            lengths.sort(reverse=True)

    def find(self, text: str, words: list[tuple[int, int, str]] | None = None) -> list[tuple[int, int, str]]:
        """(start, end, key) of every name in ``text`` (``words``: its lower-cased word spans,
        when already computed)."""
        if words is None:
            words = text_words(text)
        out = []
        i = 0
        while i < len(words):
            lengths = self.first.get(words[i][2])
            if lengths:
                for n in lengths:  # longest first
                    seq = words[i:i + n]
                    key = self.entries.get(tuple(w for _, _, w in seq)) if len(seq) == n else None
                    # the words must be joined by spaces, hyphens, slashes or ". " only
                    if key is None or any(not _JOIN.fullmatch(text[a[1]:b[0]]) for a, b in zip(seq, seq[1:])):
                        continue
                    st, en = seq[0][0], seq[-1][1]
                    if en < len(text) and text[en] == "+":
                        en += 1  # "K+"
                    if (st == 0 or text[st - 1] != "-") and (en >= len(text) or text[en] != "-"):
                        out.append((st, en, key))
                        i += n - 1
                        break
            i += 1
        return out


@lru_cache(maxsize=8)
def _names_regex(names: tuple[str, ...], min_len: int) -> re.Pattern:
    alts = []
    for n in sorted(set(names), key=len, reverse=True):
        if len(n) < min_len:
            continue
        alts.append(r"[-/\s]+".join(re.escape(p) for p in re.split(r"[-/\s]+", n)))
    return re.compile(r"(?<![\w-])(?:" + "|".join(alts) + r")(?![\w-])", re.I)


@lru_cache(maxsize=4)
def _load_knowledge(folder: str) -> Knowledge:
    base = Path(folder)
    kb = Knowledge()
    for n, row in _read_table(base / "drug_classes.tsv", TABLES["drug_classes"]):
        c = row["class"].lower()
        kb.classes[_norm(c)] = c
        for syn in _split(row["synonyms"]):
            kb.classes.setdefault(_norm(syn), c)
    for n, row in _read_table(base / "drugs.tsv", TABLES["drugs"]):
        where = f"{base / 'drugs.tsv'}:{n}"
        name = _norm(row["drug"])
        lo, hi = _num(row["min_dose"], where), _num(row["max_dose"], where)
        if lo is not None and hi is not None and lo > hi:
            raise KnowledgeError(f"{where}: min_dose {lo} is above max_dose {hi}")
        classes = [kb.classes.get(_norm(c), c) for c in _split(row["classes"])]
        unknown = [c for c in classes if _norm(c) not in kb.classes]
        if unknown:
            raise KnowledgeError(f"{where}: classes {unknown} are not in drug_classes.tsv")
        kb.drugs[name] = Drug(name, classes, row["unit"].lower(), lo, hi, set(_split(row["routes"])),
                              row["schedule"].lower())
        for s in [row["drug"], *_split(row["synonyms"])]:
            kb.drug_names.setdefault(_norm(s), name)
    for n, row in _read_table(base / "organisms.tsv", TABLES["organisms"]):
        where = f"{base / 'organisms.tsv'}:{n}"
        inactive = set()
        for x in _split(row["inactive"]):
            if _norm(x) in kb.classes:
                inactive.add(kb.classes[_norm(x)])
            elif _norm(x) in kb.drug_names:
                inactive.add(kb.drug_names[_norm(x)])
            else:
                raise KnowledgeError(f"{where}: inactive {x!r} is neither a drug class nor a drug")
        name = row["organism"].lower()
        kb.organisms[name] = Organism(name, row["kind"].lower(), inactive,
                                      [kb.drug_names.get(_norm(d), _norm(d)) for d in _split(row["first_line"])])
        for s in [row["organism"], *_split(row["synonyms"])]:
            kb.organism_names.setdefault(_norm(s), name)
    for n, row in _read_table(base / "labs.tsv", TABLES["labs"]):
        where = f"{base / 'labs.tsv'}:{n}"
        lo, hi = _num(row["low"], where), _num(row["high"], where)
        if lo is None or hi is None or lo >= hi:
            raise KnowledgeError(f"{where}: low must be below high")
        name = row["test"].lower()
        kb.labs[name] = Lab(name, row["unit"].lower(), lo, hi, _split(row["high_terms"]), _split(row["low_terms"]))
        for s in [row["test"], *_split(row["synonyms"])]:
            kb.lab_names.setdefault(_norm(s), name)
    return kb


# --------------------------------------------------------------------------------------------
# the note as the checks see it

@dataclass
class Mention:
    start: int
    end: int
    key: str  # drug / organism / lab name
    sentence: int


@dataclass
class Note:
    text: str
    sentences: list[tuple[int, int]]
    kb: Knowledge
    sections: Callable[[int], str | None] = lambda c: None
    section_start: Callable[[int], int | None] = lambda c: None  # where the section holding c starts
    entities: list = field(default_factory=list)  # spaCy spans (may be empty)
    drugs: list[Mention] = field(default_factory=list)
    organisms: list[Mention] = field(default_factory=list)
    labs: list[Mention] = field(default_factory=list)

    def __post_init__(self):
        self._starts = [s for s, _ in self.sentences]
        self._mention_starts: dict[int, list[int]] = {}
        self._by_sentence: dict[int, dict[int, list[Mention]]] = {}
        self._words = text_words(self.text)
        self.drugs = self._find("drugs")
        self.organisms = self._find("organisms")
        self.labs = self._find("labs")

    def _find(self, kind: str) -> list[Mention]:
        out = []
        for start, end, key in self.kb.lexicon(kind).find(self.text, self._words):
            s = self.sentence_at(start)
            if s is not None:
                out.append(Mention(start, end, key, s))
        return out

    def sentence_at(self, char: int) -> int | None:
        import bisect

        i = bisect.bisect_right(self._starts, char) - 1
        return i if i >= 0 and char < self.sentences[i][1] else None

    def sentence_text(self, i: int) -> str:
        s, e = self.sentences[i]
        return self.text[s:e]

    def next_start(self, mentions: list[Mention], pos: int) -> int | None:
        """Start of the first of ``mentions`` (sorted by position) starting at or after ``pos``."""
        import bisect

        starts = self._mention_starts.get(id(mentions))
        if starts is None:
            starts = self._mention_starts[id(mentions)] = [o.start for o in mentions]
        i = bisect.bisect_left(starts, pos)
        return starts[i] if i < len(starts) else None

    def in_sentences(self, mentions: list[Mention], first: int, last: int) -> list[Mention]:
        """The mentions in sentences ``first``..``last``."""
        by = self._by_sentence.get(id(mentions))
        if by is None:
            by = self._by_sentence[id(mentions)] = {}
            for o in mentions:
                by.setdefault(o.sentence, []).append(o)
        return [o for i in range(first, last + 1) for o in by.get(i, [])]

    def window(self, m: Mention, mentions: list[Mention], chars: int = 60) -> tuple[int, int]:
        """Text after a mention up to the next mention of the same kind, the sentence end or
        ``chars`` characters."""
        end = min(self.sentences[m.sentence][1], m.end + chars)
        nxt = self.next_start(mentions, m.end)
        return m.end, min(end, nxt) if nxt is not None else end

    def finding(self, i: int, check: str, etype: str, message: str, score: float,
                correction: str | None = None) -> dict:
        s, e = self.sentences[i]
        return {"start": s, "end": e, "type": etype, "message": message, "correction": correction,
                "score": score, "detector": f"checks:{check}"}

    def replace(self, i: int, start: int, end: int, new: str) -> str:
        """Sentence ``i`` with characters [start, end) (document offsets) replaced by ``new``."""
        s, e = self.sentences[i]
        return (self.text[s:start] + new + self.text[end:e]).strip()


_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(mg/kg|mg|mcg|µg|ug|micrograms?|milligrams?|grams?|gm?|units?|iu|meq|mmol)"
_DOSE = re.compile(r"[^\d;:]{0,25}?" + _NUMBER + r"\s*" + _UNIT + r"(?![\w/])", re.I)
_RANGE_BEFORE = re.compile(r"\d\s*(?:-|to)\s*$")
_MASS = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gm": 1000.0, "gram": 1000.0,
         "grams": 1000.0, "mcg": 0.001, "µg": 0.001, "ug": 0.001, "microgram": 0.001, "micrograms": 0.001}
_COUNT = {"unit": "units", "units": "units", "iu": "units", "meq": "meq", "mmol": "meq"}


def _to_number(s: str) -> float:
    return float(s.replace(",", ""))


def _convert(value: float, unit: str, target: str) -> float | None:
    """``value unit`` in the table's ``target`` unit, None when not comparable."""
    u, t = unit.lower(), target.lower()
    if u in _MASS and t in _MASS:
        return value * _MASS[u] / _MASS[t]
    if u in _COUNT and _COUNT[u] == _COUNT.get(t, t):
        return value
    if u == t == "mg/kg":
        return value
    return None


def _fmt(x: float) -> str:
    return f"{x:g}"


def check_dose_range(note: Note) -> list[dict]:
    """Dose of one administration outside the drug's plausible adult range."""
    out = []
    for m in note.drugs:
        drug = note.kb.drugs[m.key]
        if drug.min_dose is None or drug.max_dose is None:
            continue
        a, b = note.window(m, note.drugs, 40)
        d = _DOSE.match(note.text, a, b)
        if not d or _RANGE_BEFORE.search(note.text[a:d.start(1)]) or re.search(r"[,;]|\band\b", note.text[a:d.start(1)]):
            continue
        value, unit = _to_number(d.group(1)), d.group(2)
        v = _convert(value, unit, drug.unit)
        if v is None or drug.min_dose <= v <= drug.max_dose:
            continue
        fix = None
        for factor in (10, 0.1, 1000, 0.001, 100, 0.01):
            if drug.min_dose <= v / factor <= drug.max_dose:
                fixed = value / factor
                fix = note.replace(m.sentence, d.start(1), d.end(1), _fmt(round(fixed, 6)))
                break
        side = "above" if v > drug.max_dose else "below"
        out.append(note.finding(
            m.sentence, "dose_range", "pharmacotherapy",
            f"{drug.name} {d.group(1)} {unit} is {side} the plausible single adult dose "
            f"({_fmt(drug.min_dose)}-{_fmt(drug.max_dose)} {drug.unit})", 0.9 if fix else 0.7, fix))
    return out


_ROUTES = [
    ("po", r"po|p\.o\.|by mouth|orally|oral"), ("iv", r"iv|i\.v\.|intravenous(?:ly)?|ivpb"),
    ("im", r"im|i\.m\.|intramuscular(?:ly)?"), ("sc", r"sc|sq|s\.c\.|subq|subcut(?:aneous(?:ly)?)?"),
    ("sl", r"sl|sublingual(?:ly)?"), ("pr", r"pr(?! interval| segment)|per rectum|rectal(?:ly)?"),
    ("inh", r"inhaled|inh|via inhaler|mdi"), ("neb", r"neb|nebuli[sz]ed|via nebuli[sz]er"),
    ("top", r"topical(?:ly)?"), ("td", r"transdermal(?:ly)?|patch"),
    ("intranasal", r"intranasal(?:ly)?|nasal spray"), ("intrathecal", r"intrathecal(?:ly)?"),
]
_ROUTE = re.compile(r"(?<![\w.])(" + "|".join(f"(?P<{k}>{p})" for k, p in _ROUTES) + r")(?![\w])", re.I)


def check_route(note: Note) -> list[dict]:
    """Drug given by a route it is not given by (e.g. "insulin glargine 10 units PO"): the route
    word must follow the drug within its clause, and not stand before another drug
    ("azithromycin and nebulized albuterol")."""
    out = []
    classes = _class_rx(note.kb)
    for m in note.drugs:
        drug = note.kb.drugs[m.key]
        if not drug.routes:
            continue
        a, b = note.window(m, note.drugs, 40)
        stop = re.search(r"[;,(]|\b(?:switch\w*|change\w*|then|and|or|plus|with|instead)\b", note.text[a:b], re.I)
        b = a + stop.start() if stop else b
        r = _ROUTE.search(note.text, a, b)
        if not r:
            continue
        nxt = note.text[r.end():r.end() + 20]
        following = note.next_start(note.drugs, r.end())
        if classes.match(nxt.strip()) or (following is not None and following <= r.end() + 20):
            continue
        route = next(k for k, _ in _ROUTES if r.group(k))
        if route in drug.routes or (route == "neb" and "inh" in drug.routes) or (route == "inh" and "neb" in drug.routes):
            continue
        out.append(note.finding(m.sentence, "route", "pharmacotherapy",
                                f"{drug.name} is not given {route.upper()} (routes: "
                                f"{', '.join(sorted(drug.routes))})", 0.7))
    return out


_DAILY = re.compile(r"\b(daily|qd|q\.d\.|once a day|every day|each day|per day|/day|bid|b\.i\.d\.|tid|"
                    r"t\.i\.d\.|qid|q\.i\.d\.|twice (?:a|per|each) day|three times|four times|q\s?\d+\s?h|"
                    r"every \d+ hours|nightly|qhs|each morning|every morning)\b", re.I)
_WEEKLY = re.compile(r"\b(weekly|once a week|every week|q\s?week|qwk|per week|/week|a week)\b", re.I)


def check_schedule(note: Note) -> list[dict]:
    """A once-weekly drug written with a daily (or more frequent) schedule."""
    out = []
    for m in note.drugs:
        drug = note.kb.drugs[m.key]
        if drug.schedule != "weekly":
            continue
        a, b = note.window(m, note.drugs, 60)
        f = _DAILY.search(note.text, a, b)
        if not f or _WEEKLY.search(note.text, a, b):
            continue
        out.append(note.finding(m.sentence, "schedule", "pharmacotherapy",
                                f"{drug.name} is dosed once weekly; written as {f.group(0)!r}", 0.9,
                                note.replace(m.sentence, f.start(), f.end(), "weekly")))
    return out


_DNU = [
    (re.compile(r"(?<![\w.])(q\.?d\.?)(?![\w])", re.I), "daily", "QD (mistaken for QID)"),
    (re.compile(r"(?<![\w.])(q\.?o\.?d\.?)(?![\w])", re.I), "every other day", "QOD (mistaken for QD/QID)"),
    (re.compile(r"\d\s*(U)(?![\w/])"), "units", "U (mistaken for 0, 4 or cc)"),
    (re.compile(r"\d\s*(IU)(?![\w/])"), "units", "IU (mistaken for IV or 10)"),
    (re.compile(r"(?<![\d.])\d+(\.0)\s*(?:mg|mcg|g|units?|ml|meq)(?![\w/])", re.I), "", "trailing zero (1.0 read as 10)"),
    (re.compile(r"(?<![\d.\w])(\.)\d+\s*(?:mg|mcg|g|units?|ml|meq)(?![\w/])", re.I), "0.", "naked decimal (.5 read as 5)"),
    (re.compile(r"(?<![\w])(MSO4|MgSO4)(?![\w])"), None, "MSO4/MgSO4 (morphine and magnesium sulfate confused)"),
]


def check_do_not_use(note: Note) -> list[dict]:
    """Joint Commission "Do Not Use" abbreviations in a medication order."""
    out = []
    for i in range(len(note.sentences)):
        s, e = note.sentences[i]
        for rx, fix, what in _DNU:
            m = rx.search(note.text, s, e)
            if not m:
                continue
            if fix is not None and m.group(1).endswith(".") and not fix.endswith(".") and \
                    m.end(1) == e:  # the abbreviation's dot also ended the sentence
                fix += "."
            corr = None if fix is None else note.replace(i, m.start(1), m.end(1), fix)
            out.append(note.finding(i, "do_not_use", "pharmacotherapy",
                                    f"'Do Not Use' abbreviation: {what}", 0.4, corr))
            break
    return out


_NOT_GIVEN = re.compile(r"\b(allerg\w*|intoleran\w*|avoid\w*|contraindicat\w*|no|not|never|without|"
                        r"hold|held|discontinu\w*|stop\w*|d/c|instead of|switched from|changed from|"
                        r"reaction|rash|anaphylaxis|hives)\b[^.;]*$", re.I)
_NOT_GIVEN_AFTER = re.compile(r"^[^.;]{0,30}?\b(made (?:him|her|them|me)|caused|gave (?:him|her)|led to|resulted|"
                              r"reaction|intoleran\w*|rash|hives|allerg\w*|was stopped|stopped|discontinued|"
                              r"held|avoid\w*)\b", re.I)
_NO_ALLERGY = re.compile(r"\b(nkda|nka|no known (?:drug )?allergies|no (?:drug )?allergies)\b", re.I)


def _prescribed(note: Note, m: Mention) -> bool:
    """The drug mention reads as given (not avoided, held, stopped, or a past reaction)."""
    s, e = note.sentences[m.sentence]
    before = note.text[max(s, m.start - 60):m.start]
    return not _NOT_GIVEN.search(before) and not _NOT_GIVEN_AFTER.search(note.text[m.end:e])


def _class_rx(kb: Knowledge) -> re.Pattern:
    return _names_regex(tuple(kb.classes), min_len=3)


_TOLERATED = re.compile(r"\b(tolerat\w*|without (?:a )?reaction|no reaction)\b", re.I)

def _allergens_in(note: Note, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the drug / class words an allergy statement within [start, end) names."""
    out = []
    for m in _class_rx(note.kb).finditer(note.text, start, end):
        out.append((m.start(), m.end()))
    first, last = note.sentence_at(start), note.sentence_at(max(start, end - 1))
    if first is not None and last is not None:
        out += [(m.start, m.end) for m in note.in_sentences(note.drugs, first, last) if start <= m.start < end]
    return out


def _allergy_statements(note: Note) -> dict[int, list[tuple[int, int]]]:
    """Sentence -> allergen spans: every drug/class word of a sentence in the first lines (300
    characters) of the allergies section or starting with "Allergies:" (unless it says the drug
    was tolerated), and elsewhere the words right after "allergic to", "allergy to",
    "allergies:" or right before "allergy"."""
    out: dict[int, list[tuple[int, int]]] = {}
    for i, (s, e) in enumerate(note.sentences):
        if _NO_ALLERGY.search(note.text, s, e) or _TOLERATED.search(note.text, s, e):
            continue
        head = note.section_start(s)
        in_section = note.sections(s) == "allergies" and (head is None or s - head <= 300)
        if in_section or re.match(r"\s*(?:drug\s+)?allerg\w*\s*(?:/\s*intolerances?)?\s*:", note.text[s:e], re.I):
            spans = _allergens_in(note, s, e)
        else:
            spans = []
            for cue in re.finditer(r"\b(?:allergic|allergy|allergies|intolerant|intolerance)\s*(?:to|:)\s*", note.text[s:e], re.I):
                a = s + cue.end()
                b = min(e, a + 60)
                stop = re.search(r"[.;]|\b(?:and|but|so|started|given|plus)\b", note.text[a:b])
                spans += _allergens_in(note, a, a + stop.start() if stop else b)
            for cue in re.finditer(r"\b(?:allergy|intolerance)\b", note.text[s:e], re.I):
                a = s + cue.start()
                spans += [sp for sp in _allergens_in(note, max(s, a - 30), a) if not note.text[sp[1]:a].strip(" -/")]
        if spans:
            out[i] = spans
    return out


def check_allergy(note: Note) -> list[dict]:
    """A drug prescribed although the note lists an allergy to it or to its class."""
    statements = _allergy_statements(note)
    if not statements:
        return []
    allergen_drugs: set[str] = set()
    allergen_classes: set[str] = set()
    for spans in statements.values():
        for a, b in spans:
            word = _norm(note.text[a:b])
            if word in note.kb.classes:
                allergen_classes.add(note.kb.classes[word])
            elif word in note.kb.drug_names:
                allergen_drugs.add(note.kb.drug_names[word])
    allergy = set(statements)
    derived = {c: d for d in allergen_drugs for c in note.kb.drugs[d].classes[:1] if c in CROSS_REACTIVE}
    out = []
    for m in note.drugs:
        if m.sentence in allergy or not _prescribed(note, m):
            continue
        drug = note.kb.drugs[m.key]
        if note.kb.classes.get(_norm(note.text[m.start:m.end])) is not None:
            continue  # "penicillin" as a class word, not an order
        if m.key in allergen_drugs:
            msg, score = f"{drug.name} is given, but the note lists an allergy to it", 0.9
        elif set(drug.classes) & allergen_classes:
            c = next(c for c in drug.classes if c in allergen_classes)
            msg, score = f"{drug.name} ({c}) is given, but the note lists a {c} allergy", 0.85
        elif set(drug.classes[:1]) & set(derived):
            c = drug.classes[0]
            msg, score = (f"{drug.name} ({c}) is given, but the note lists an allergy to "
                          f"{derived[c]}, of the same class", 0.7)
        else:
            continue
        out.append(note.finding(m.sentence, "allergy", "pharmacotherapy", msg, score))
    return out


_ORG_NEGATED = re.compile(r"\b(negative for|no|not|without|ruled out|rule out|r/o|excluded|vaccin\w*|immuni[sz]\w*)\b[^.;]*$", re.I)
_ORG_NEGATED_AFTER = re.compile(r"^[^.;]{0,40}?\b(negative|not detected|not isolated|vaccin\w*|immuni[sz]\w*|titer|serolog\w*|igg)\b", re.I)


def check_organism_antibiotic(note: Note) -> list[dict]:
    """An antibiotic given for an organism it is intrinsically inactive against, with nothing
    active given alongside it."""
    out = []
    seen = set()
    for o in note.organisms:
        s = note.sentences[o.sentence][0]
        if _ORG_NEGATED.search(note.text[max(s, o.start - 50):o.start]) or \
                _ORG_NEGATED_AFTER.search(note.text[o.end:note.sentences[o.sentence][1]]):
            continue
        org = note.kb.organisms[o.key]
        for m in note.in_sentences(note.drugs, o.sentence, o.sentence + 2):
            if not _prescribed(note, m):
                continue
            drug = note.kb.drugs[m.key]
            if not ANTIMICROBIAL & set(drug.classes):
                continue
            if not ({drug.name, *drug.classes} & org.inactive):
                continue
            # an active drug in the same sentence, or between the organism and this drug ("if MRSA
            # coverage still needed, linezolid. Dose cefepime for CRRT") covers the organism
            lo, hi = min(o.sentence, m.sentence), max(o.sentence, m.sentence)
            others = [x for x in note.in_sentences(note.drugs, lo, hi) if x.key != m.key]
            if any(not ({note.kb.drugs[x.key].name, *note.kb.drugs[x.key].classes} & org.inactive)
                   and ANTIMICROBIAL & set(note.kb.drugs[x.key].classes)
                   for x in others):
                continue
            if (m.sentence, m.key, o.key) in seen:
                continue
            seen.add((m.sentence, m.key, o.key))
            corr = None
            if org.first_line:
                corr = note.replace(m.sentence, m.start, m.end, org.first_line[0])
            score = 0.6 if org.kind in ("virus", "fungus", "parasite") else 0.8
            out.append(note.finding(m.sentence, "organism_antibiotic", "pharmacotherapy",
                                    f"{drug.name} is inactive against {org.name}"
                                    + (f" (first line: {', '.join(org.first_line)})" if org.first_line else ""),
                                    score, corr))
    return out


_LAB_VALUE = re.compile(r"\s*(?:level|count|concentration)?\s*(?:\([^)]{0,12}\)\s*)?"
                        r"(?:of|was|is|were|at|:|=|-)?\s*(?:of\s*)?"
                        r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*([a-zµ/%^0-9.]+(?:/[a-zµ0-9^.]+)?)?", re.I)
_HIGH_WORDS = r"high|elevated|increased|raised|above normal"
_LOW_WORDS = r"low|decreased|reduced|depressed|below normal"
_NORMAL_WORDS = r"normal|within normal limits|wnl|unremarkable"
_INTERP = re.compile(rf"\b(?:(?P<high>{_HIGH_WORDS})|(?P<low>{_LOW_WORDS})|(?P<normal>{_NORMAL_WORDS}))\b", re.I)
_FLIP = {"high": "low", "elevated": "low", "increased": "decreased", "raised": "low", "above normal": "below normal",
         "low": "high", "decreased": "increased", "reduced": "increased", "depressed": "elevated",
         "below normal": "above normal"}
_EQUIV_UNITS = [{"meq/l", "mmol/l"}, {"10^3/ul", "k/ul", "x10^3/ul", "10^9/l", "x10^9/l", "thou/ul", "k/mm3",
                                       "10^3/mm3"}]


def _lab_value(lab: Lab, value: float, unit: str | None) -> float | None:
    """The value in the table's unit (None when the stated unit is not comparable)."""
    if not unit or unit.lower().rstrip(".") in ("", "and", "on", "in", "with", "mg", "the", "which", "but"):
        if "10^3" in lab.unit and value >= 1000:
            return value / 1000
        return value
    u, t = unit.lower().rstrip(".").replace("μ", "µ").replace("mcl", "ul"), lab.unit
    if u in ("mmol", "meq", "mval"):
        return None  # an amount given ("sodium phosphate 15 mmol IV"), not a level
    if u == t or any(u in g and t in g for g in _EQUIV_UNITS):
        return value
    if "10^3" in t and u in ("/mm3", "/ul", "/µl", "cells/ul", "/mm^3", "cells/mm3"):
        return value / 1000
    if t == "g/dl" and u == "g/l":
        return value / 10
    if not re.match(r"^[a-zµ%/^0-9.]+$", u) or not re.search(r"[/%]|^(mg|g|u|iu|ng|pg|mmhg|sec|s|seconds)$", u):
        return value  # a word, not a unit
    return None


def _direction(lab: Lab, v: float) -> str:
    return "high" if v > lab.high else "low" if v < lab.low else "normal"


def check_lab_interpretation(note: Note) -> list[dict]:
    """A lab value that contradicts the word describing it."""
    out = []
    for m in note.labs:
        lab = note.kb.labs[m.key]
        name = note.text[m.start:m.end]
        d = _LAB_VALUE.match(note.text, m.end, note.sentences[m.sentence][1])
        if not d or (len(name) <= 2 and d.start(1) - m.end > 3):
            continue  # "K" / "Hb" only directly before a number
        v = _lab_value(lab, _to_number(d.group(1)), d.group(2))
        if v is None:
            continue
        actual = _direction(lab, v)
        s, e = note.sentences[m.sentence]
        # an interpretation word right after the value or right before the test name
        gap = re.compile(r"[\s,(:-]*").match(note.text, d.end(), e)
        after = _INTERP.match(note.text, gap.end(), e)
        before = None
        for hit in _INTERP.finditer(note.text, max(s, m.start - 25), m.start):
            if not note.text[hit.end():m.start].strip():
                before = hit
        word = after or before
        stated = next(k for k in ("high", "low", "normal") if word.group(k)) if word else None
        term_hit = None
        if stated is None:
            for kind, terms in (("high", lab.high_terms), ("low", lab.low_terms)):
                for t in terms:
                    tm = re.search(rf"\b{re.escape(t)}\b", note.text[s:e], re.I)
                    if tm:
                        stated, term_hit = kind, (s + tm.start(), s + tm.end(), t)
                        break
                if stated:
                    break
            # a term describes one lab: skip when the sentence has another value of the same test
            if term_hit and sum(1 for x in note.labs if x.sentence == m.sentence and x.key == m.key) > 1:
                continue
        if stated is None:
            continue
        margin = 0.1 * (lab.high - lab.low)
        wrong = ((stated == "high" and v < lab.low) or (stated == "low" and v > lab.high)
                 or (stated == "normal" and (v < lab.low - margin or v > lab.high + margin)))
        if not wrong:
            continue
        corr = None
        if word is not None and stated != "normal":
            w = word.group(0).lower()
            if w in _FLIP:
                corr = note.replace(m.sentence, word.start(), word.end(), _FLIP[w])
        elif word is not None:
            corr = note.replace(m.sentence, word.start(), word.end(), actual)
        elif term_hit is not None:
            src, dst = (lab.high_terms, lab.low_terms) if stated == "high" else (lab.low_terms, lab.high_terms)
            k = src.index(term_hit[2])
            if k < len(dst):
                corr = note.replace(m.sentence, term_hit[0], term_hit[1], dst[k])
        said = word.group(0) if word is not None else term_hit[2]
        out.append(note.finding(m.sentence, "lab_interpretation", "diagnosis",
                                f"{lab.name} {d.group(1)} is {actual} (reference {_fmt(lab.low)}-{_fmt(lab.high)} "
                                f"{lab.unit}) but is described as {said!r}", 0.8, corr))
    return out


# sites where a left/right mix-up is a wrong-site error rather than two findings (limbs, joints,
# paired organs); lung lobes and vessels are left out: findings on both sides are common there
_SITES = ("shoulder", "elbow", "wrist", "hand", "finger", "thumb", "hip", "knee", "ankle", "foot", "toe",
          "arm", "forearm", "leg", "thigh", "calf", "eye", "ear", "breast", "kidney", "ovary", "testis",
          "testicle", "groin", "heel", "shin")
_LATERAL = re.compile(r"\b(left|right|bilateral(?:ly)?|both)\b[\s-]*(?:sided\s+)?(?:[a-z]+\s+){0,2}?"
                      r"(" + "|".join(_SITES) + r")s?\b", re.I)
_HEADING_AFTER = re.compile(r"[ \t]*:")
_NORMALISH = re.compile(r"\b(normal|unremarkable|intact|no|without|negative|clear|compar\w*|contralateral|"
                        r"prior|previous|history|old|status post|s/p)\b", re.I)


def check_laterality(note: Note) -> list[dict]:
    """One limb, joint or paired organ called left in one sentence and right in another (never
    when the note says bilateral/both for it, or names both sides in one sentence; headings
    "Right kidney:" and "Left kidney:" of a report describing each side do not count)."""
    found = []  # (site, side, sentence, written as a heading: "Right kidney: 11.8 cm ...")
    for m in _LATERAL.finditer(note.text):
        i = note.sentence_at(m.start())
        if i is None:
            continue
        side = m.group(1).lower()
        side = "both" if side.startswith("bilateral") or side == "both" else side
        heading = bool(_HEADING_AFTER.match(note.text, m.end())) and \
            not note.text[note.text.rfind("\n", 0, m.start()) + 1:m.start()].strip()
        found.append((m.group(2).lower(), side, i, heading))
    # a report that describes each side under its own heading names both on purpose: those
    # headings are not evidence of a mix-up (the other mentions of the site still are)
    headed: dict[str, set[str]] = {}
    for site, side, _, heading in found:
        if heading:
            headed.setdefault(site, set()).add(side)
    sides: dict[str, dict[str, list[int]]] = {}
    for site, side, i, heading in found:
        if not (heading and {"left", "right"} <= headed.get(site, set())):
            sides.setdefault(site, {}).setdefault(side, []).append(i)
    out = []
    for site, by in sides.items():
        if "both" in by or not ({"left", "right"} <= set(by)):
            continue
        left = [i for i in by["left"] if i not in by["right"] and not _NORMALISH.search(note.sentence_text(i))]
        right = [i for i in by["right"] if i not in by["left"] and not _NORMALISH.search(note.sentence_text(i))]
        if not left or not right:
            continue
        # the side named less often is the suspect (the later one on a tie)
        minority, majority = (left, "right") if (len(left), -left[-1]) < (len(right), -right[-1]) else (right, "left")
        named = "left" if majority == "right" else "right"
        for i in sorted(set(minority)):
            out.append(note.finding(i, "laterality", "consistency",
                                    f"the {site} is {named} here but {majority} elsewhere in the note", 0.5))
    return out


def _flagged(ent, flag: str) -> bool:
    return bool(ent.has_extension(f"is_{flag}") and getattr(ent._, f"is_{flag}"))


_PLAIN_NEGATION = re.compile(r"\b(?:no|denies|denied|without|negative for|not)\s+(?:any\s+|evidence of\s+|signs? of\s+)?$", re.I)
_SIDE_WORD = re.compile(r"\b(left|right)\b", re.I)
_ACTIVE_FLAGS = ("historical", "hypothetical", "family", "conditional", "uncertain")


def _head_word(text: str) -> str:
    """The last word of a mention, lower-cased, without a plural -s ("seizures" -> "seizure")."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    return _singular(words[-1]) if words else ""


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


# body-site words (team-written): two mentions of one finding at different sites ("CT cervical
# spine: no fracture" / "X-ray of the right hip: femoral neck fracture") do not contradict each
# other. Sides (left/right) are handled apart (_SIDE_WORD).
_SITE_WORDS = frozenset("""
abdomen abdominal ankle anterior antrum aorta aortic appendix arm arms axilla axillary back
bladder bowel brain breast breasts bronchi buttock buttocks calf cardiac carotid cecum cerebellar
cerebral cervical cervix chest clavicle coccyx colon colonic cornea coronary cranial duodenum
ear ears elbow esophagus esophageal eye eyes eyelid face facial femoral femur fibula finger
fingers flank foot feet forearm forehead gallbladder gastric gluteal groin hand hands head
heart heel hepatic hip hips humerus ileum iliac inguinal intestine jaw jejunum joint kidney
kidneys knee knees labia larynx leg legs lip lips liver lumbar lung lungs mandible maxillary
mediastinal mediastinum mouth nasal neck nose occipital orbit orbital ovary ovarian palate
pancreas pancreatic parietal patella pelvic pelvis penis penile perianal perineal perineum
periwound pharynx pleura pleural popliteal prostate pulmonary radius rectal rectum renal retina
rib ribs sacral sacrum scalp scapula scrotal scrotum shin shoulder shoulders sinus sinuses
skull spinal spine spleen splenic sternum stomach temporal testicle testicular testis thigh
thoracic thorax throat thumb thyroid tibia toe toes tongue tonsil tonsils trachea ulna ureter
urethra uterine uterus vagina vaginal wound wrist
""".split())
_MOD_STOP = frozenset("a an the of in on at to for with and or any new acute".split())


def _words(text: str) -> set[str]:
    return {_singular(w) for w in re.findall(r"[^\W\d_]+", text.lower())} - _MOD_STOP


def _sites(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W\d_]+", text.lower()) if w in _SITE_WORDS}


def _contradicts(neg_mods: set[str], neg_sites: set[str], pos_mods: set[str], pos_sites: set[str]) -> bool:
    """Whether an affirmed mention contradicts a negated one of the same finding (each given by
    its qualifier words and its sentence's body-site words): not when the negation is narrower
    ("no severe hypoglycemia" beside "hypoglycemia": its qualifiers are not all in the affirmed
    mention), nor when both sentences name body sites and share none."""
    if not neg_mods <= pos_mods:
        return False
    return not (neg_sites and pos_sites and not neg_sites & pos_sites)


def check_assertion_conflict(note: Note) -> list[dict]:
    """A finding affirmed in one sentence and negated in another of the same section (see
    :func:`_contradicts` for what does not count)."""
    seen: dict[tuple[str | None, str], dict[bool, list]] = {}
    for ent in note.entities:
        if ent.label_ != "PROBLEM" or any(_flagged(ent, f) for f in _ACTIVE_FLAGS):
            continue
        i = note.sentence_at(ent.start_char)
        if i is None:
            continue
        if _flagged(ent, "negated"):
            # only a plain "no X" / "denies X": not "no new X", list scopes or qualified sides
            before = note.text[note.sentences[i][0]:ent.start_char]
            if not _PLAIN_NEGATION.search(before) or _SIDE_WORD.search(note.sentence_text(i)):
                continue
        # the same concept and the same head word: "no electrographic seizures" does not
        # contradict "epilepsy" even where the linker gives both one code
        head = _head_word(ent.text)
        key = (ent.kb_id_ or re.sub(r"\s+", " ", ent.text.lower()).strip(), head)
        item = (i, ent, _words(ent.text) - {head}, _sites(note.sentence_text(i)))
        seen.setdefault((note.sections(ent.start_char), key), {}).setdefault(_flagged(ent, "negated"), []).append(item)
    out = []
    for (section, _key), by in seen.items():
        if True in by and False in by:
            neg_sents = {neg[0] for neg in by[True]}
            pos = [p for p in by[False] if p[0] not in neg_sents]
            hits = [neg for neg in by[True] if any(_contradicts(*neg[2:], *p[2:]) for p in pos)]
            if not hits:
                continue
            i, ent = hits[-1][:2]
            out.append(note.finding(i, "assertion_conflict", "consistency",
                                    f"{ent.text!r} is negated here but affirmed elsewhere"
                                    + (f" in {section}" if section else ""), 0.5))
    return out


CHECKS: dict[str, Callable[[Note], list[dict]]] = {
    "dose_range": check_dose_range,
    "route": check_route,
    "schedule": check_schedule,
    "do_not_use": check_do_not_use,
    "allergy": check_allergy,
    "organism_antibiotic": check_organism_antibiotic,
    "lab_interpretation": check_lab_interpretation,
    "laterality": check_laterality,
    "assertion_conflict": check_assertion_conflict,
}


# run when a config does not name its checks: do_not_use flags documentation style (IU, q.d.) found
# in many correct notes, so it is opt-in
DEFAULT_CHECKS = tuple(c for c in CHECKS if c != "do_not_use")


def run_checks(note: Note, names: Iterable[str] | None = None) -> list[dict]:
    """Findings of the named checks (:data:`DEFAULT_CHECKS` when None), one per (sentence, check)."""
    out, seen = [], set()
    for name in (DEFAULT_CHECKS if names is None else names):
        for f in CHECKS[name](note):
            key = (f["start"], f["detector"])
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


_SENTENCE = re.compile(r"(?:[^\n.!?]|[.!?](?![\s\"')\]]|$))+(?:[.!?]+|(?=\n)|$)")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans by end punctuation (not inside numbers such as 2.5) and line breaks, the
    splitting used when there is no spaCy pipeline."""
    out = []
    for m in _SENTENCE.finditer(text):
        chunk = m.group(0)
        if chunk.strip():
            s = m.start() + len(chunk) - len(chunk.lstrip())
            out.append((s, s + len(chunk.strip())))
    return out


def check_text(text: str, names: Iterable[str] | None = None, *, kb: Knowledge | None = None) -> list[dict]:
    """Run the checks on plain text with :func:`split_sentences` (no spaCy pipeline; entity-
    based checks then find nothing)."""
    return run_checks(Note(text, split_sentences(text), kb or Knowledge.load()), names)
