"""medtext records <-> brat standoff files, and records -> spaCy ``.spacy`` training data.

brat (https://brat.nlplab.org) shows a ``NAME.txt`` with its annotations ``NAME.ann``; people
correct the pipeline's output there, and :func:`brat_to_docbin` turns the corrected files into
spaCy training data ("correct in brat, then retrain").

:func:`write_brat` writes one ``NAME.txt`` + ``NAME.ann`` per record, ``annotation.conf`` and
``visual.conf`` (the brat configuration for the labels written) and ``index.jsonl`` (one
``{"doc_id", "name"}`` per record; :func:`read_brat` uses it to give back the original doc ids).
Write into an empty folder: ``read_brat`` reads every ``*.ann`` in the folder.

The ``.ann`` scheme (lossless for entities, relations and errors):

- entity: ``T<n>\\tLABEL START END\\tTEXT``. A span crossing a line break is written as the
  fragments between the line breaks (``0 5;6 10``, texts joined by a space), as brat requires.
  A label brat cannot take as a type name (anything but letters, digits, ``-`` and ``_``, or a
  label starting with ``ERROR_``) is written as a cleaned type plus ``label=`` in the note.
- assertion: ``A<n>\\tAssertion T<k> VALUE`` (the winning status, when not null) and one binary
  attribute ``A<n>\\tFlag_<flag> T<k>`` per flag, in the record's order.
- codes: one note per entity, ``#<n>\\tAnnotatorNotes T<k>\\tSEGMENT | SEGMENT ...`` where a
  segment is ``kb_id=SYSTEM:CODE``, a concept ``SYSTEM:CODE DISPLAY score=0.87`` (all
  concepts, in order), ``section=NAME``, ``lay=JSON``, ``label=LABEL`` or ``span=START:END``
  (only when the entity starts or ends with a line break, which fragments cannot show).
  Backslash escapes: ``\\\\``, ``\\|``, ``\\n``, ``\\r``, ``\\t``, ``\\uXXXX``.
  A concept typed by hand without ``score=`` reads back with score 1.0; brat normalizations
  (``N<n>\\tReference T<k> DB:ID\\tNAME``) read back as concepts too.
- relation: ``R<n>\\tLABEL Arg1:T<head> Arg2:T<tail>``, its score in a note ``score=0.93``
  (1.0 when absent, e.g. drawn by hand in brat).
- error (``record["errors"]``): an entity of type ``ERROR_<type>`` with a note of
  ``message=``, ``correction=``, ``score=``, ``detector=`` segments (an error drawn by hand in
  brat reads back with message "" and detector "brat").

Reading back: entities are numbered ``T1``.. in ``.ann`` order (brat appends what is drawn by
hand), relations follow.
A discontinuous entity becomes one entity from its first to its last character; a warning is
added to ``record["warnings"]`` unless the gaps hold only line breaks (the fragments written
above). Relations whose label the record schema does not know (only ``modify``,
``located_at``, ``suggestive_of``), relations onto errors, events, equivalences and unknown
attributes or notes are dropped, each with a warning that quotes the ``.ann`` line. A malformed
line, an offset outside the text or a TEXT column that differs from the ``.txt`` raises
:class:`~medtext.errors.InputError` naming the file and line.

Offsets are Python ``str`` indices (Unicode code points), as in records. brat's browser side
counts UTF-16 units, so it may mis-draw spans after characters outside the BMP (emoji); the
files themselves stay correct.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from medtext.atomic import atomic_path
from medtext.errors import InputError

from .ner_data import LABELS as NER_LABELS
from .radgraph_data import ENTITY_LABELS as RADGRAPH_LABELS

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.1"
#: assertion values the record schema allows (besides null)
ASSERTIONS = ("present", "negated", "uncertain", "hypothetical", "historical", "family",
              "conditional")
#: assertion flags the record schema allows, in the order medtext writes them
FLAGS = ("negated", "uncertain", "hypothetical", "historical", "family", "conditional")
#: relation labels the record schema allows
RELATION_LABELS = ("modify", "located_at", "suggestive_of")
#: error types the record schema allows
ERROR_TYPES = ("diagnosis", "management", "treatment", "pharmacotherapy", "causalOrganism",
               "consistency")
#: label families: when one label of a family is written, annotation.conf offers them all
LABEL_FAMILIES = (tuple(NER_LABELS), tuple(RADGRAPH_LABELS))
ERROR_PREFIX = "ERROR_"
FLAG_PREFIX = "Flag_"

#: characters that end a line (``str.splitlines``); a brat span fragment may not cross one
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_TYPE_OK = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_MAX_NAME = 120
_PALETTE = ("#ffccaa", "#aaccff", "#ccffaa", "#ffaacc", "#ddccff", "#ffeeaa", "#aaffee",
            "#e0c0a0", "#c0e0ff", "#f0b0f0", "#b0f0b0", "#ffd0d0")
_FIXED_COLOURS = {"PROBLEM": "#ff9a8c", "TEST": "#8cc4ff", "DRUG": "#a4f0a4",
                  "TREATMENT": "#7fe0c8", "PROCEDURE": "#c8a8ff", "ANATOMY": "#ffe08c",
                  "FUNCTION": "#f0c0e0", "ANAT-DP": "#ffe08c", "OBS-DP": "#ff9a8c",
                  "OBS-U": "#ffc880", "OBS-DA": "#b4b4b4"}
_RELATION_COLOURS = {"modify": "#3060c0", "located_at": "#30a030", "suggestive_of": "#c03030"}
_ERROR_COLOUR = "#ff4040"


# --------------------------------------------------------------------------- note escaping

def _escape(value: str, also: str = "") -> str:
    """``value`` with backslash, pipe, tabs, line breaks, control characters and the characters
    in ``also`` escaped, so it fits one segment of a one-line brat note (a concept's system
    escapes space, ``:`` and ``=``; its code escapes space)."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "|":
            out.append("\\|")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch in LINE_BREAKS or ord(ch) < 0x20 or ch == "\x7f" or ch in also:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


_SIMPLE_UNESCAPES = {"\\": "\\", "|": "|", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(value: str) -> str:
    """Inverse of :func:`_escape`; a backslash before anything else stays as typed."""
    if "\\" not in value:
        return value
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if nxt in _SIMPLE_UNESCAPES:
                out.append(_SIMPLE_UNESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", value[i + 2:i + 6]):
                out.append(chr(int(value[i + 2:i + 6], 16)))
                i += 6
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _short(text: str, limit: int = 60) -> str:
    """``repr`` of ``text``, cut to about ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --------------------------------------------------------------------------- writing

def safe_name(doc_id: str) -> str:
    """A file base name for ``doc_id``: ``[A-Za-z0-9._-]`` kept, anything else ``_``, a
    trailing ``.txt``/``.pdf`` removed (brat adds ``.txt``). Not yet disambiguated."""
    name = str(doc_id)
    if name.lower().endswith((".txt", ".pdf")):
        name = name[:-4]
    name = _NAME_BAD.sub("_", name)[:_MAX_NAME]
    if not name or name.startswith(".") or name.upper().split(".")[0] in _WINDOWS_RESERVED:
        name = "doc_" + name
    return name


def _unique_name(doc_id: str, taken: set[str]) -> str:
    """:func:`safe_name`, with ``_2``, ``_3``.. added until it is new (compared ignoring case,
    for case-insensitive file systems); adds the result to ``taken``."""
    base = safe_name(doc_id)
    name, k = base, 1
    while name.lower() in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name.lower())
    return name


def brat_type(label: str) -> str:
    """The brat type name written for an entity ``label``: the label itself when brat takes it
    (letters, digits, ``-``, ``_``; not starting with ``ERROR_``), else a cleaned form."""
    if _TYPE_OK.match(label) and not label.startswith(ERROR_PREFIX):
        return label
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", label)
    return "ENTITY_" + cleaned if not cleaned or cleaned.startswith(ERROR_PREFIX) else cleaned


def _fragments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) pieces of ``text[start:end]`` between line breaks (empty pieces dropped);
    the whole span when that leaves none."""
    frags: list[tuple[int, int]] = []
    s = start
    for i in range(start, end):
        if text[i] in LINE_BREAKS:
            if i > s:
                frags.append((s, i))
            s = i + 1
    if end > s:
        frags.append((s, end))
    return frags or [(start, end)]


def _span_line(tid: str, btype: str, text: str, start: int, end: int) -> tuple[str, bool]:
    """The ``T`` line of a span, and whether its fragments miss characters at its ends (then
    the note must carry ``span=``)."""
    frags = _fragments(text, start, end)
    offsets = ";".join(f"{s} {e}" for s, e in frags)
    shown = " ".join(text[s:e] for s, e in frags)
    trimmed = (frags[0][0], frags[-1][1]) != (start, end)
    return f"{tid}\t{btype} {offsets}\t{shown}", trimmed


def _concept_segment(c: dict[str, Any]) -> str:
    seg = f"{_escape(str(c.get('system', '')), ' :=')}:{_escape(str(c.get('code', '')), ' ')}"
    display = c.get("display")
    if display is not None:
        seg += " " + _escape(str(display))
    score = c.get("score")
    return seg + f" score={float(score if score is not None else 1.0)!r}"


def _entity_note(ent: dict[str, Any], btype: str, trimmed: bool) -> str:
    segs = []
    if ent.get("kb_id") is not None:
        segs.append("kb_id=" + _escape(str(ent["kb_id"])))
    segs.extend(_concept_segment(c) for c in ent.get("concepts") or [])
    if ent.get("section") is not None:
        segs.append("section=" + _escape(str(ent["section"])))
    if ent.get("lay") is not None:
        segs.append("lay=" + _escape(json.dumps(ent["lay"], ensure_ascii=False)))
    if btype != ent["label"]:
        segs.append("label=" + _escape(ent["label"]))
    if trimmed:
        segs.append(f"span={ent['start']}:{ent['end']}")
    return " | ".join(segs)


def _error_note(err: dict[str, Any], trimmed: bool) -> str:
    segs = ["message=" + _escape(str(err.get("message") or ""))]
    if err.get("correction") is not None:
        segs.append("correction=" + _escape(str(err["correction"])))
    if err.get("score") is not None:
        segs.append(f"score={float(err['score'])!r}")
    segs.append("detector=" + _escape(str(err.get("detector") or "")))
    if trimmed:
        segs.append(f"span={err['start']}:{err['end']}")
    return " | ".join(segs)


def _check_span(doc: str, what: str, start: Any, end: Any, n_chars: int) -> None:
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= n_chars):
        raise InputError(doc, f"{what} has offsets {start!r}..{end!r} outside the text "
                              f"(0..{n_chars})")


def record_to_ann(record: dict[str, Any]) -> tuple[str, set[str]]:
    """The ``.ann`` text of one record, and the brat entity types it uses.
    Raises :class:`InputError` for a record without text or with inconsistent annotations."""
    doc = str(record.get("doc_id"))
    text = record.get("text")
    if text is None:
        raise InputError(doc, "the record has no text (it was written with --no-text); brat "
                              "needs the text: run medtext again with --text")
    lines: list[str] = []
    types: set[str] = set()
    n_t = n_a = n_r = n_note = 0
    ids: dict[str, str] = {}

    def note(target: str, body: str) -> None:
        nonlocal n_note
        if body:
            n_note += 1
            lines.append(f"#{n_note}\tAnnotatorNotes {target}\t{body}")

    for ent in record.get("entities") or []:
        eid = str(ent.get("id"))
        if eid in ids:
            raise InputError(doc, f"entity id {eid!r} is used twice; ids must be unique")
        _check_span(doc, f"entity {eid}", ent.get("start"), ent.get("end"), len(text))
        start, end = ent["start"], ent["end"]
        if ent.get("text") is not None and ent["text"] != text[start:end]:
            raise InputError(doc, f"entity {eid} text {_short(ent['text'])} differs from the "
                                  f"record text at {start}..{end}: {_short(text[start:end])}")
        n_t += 1
        tid = ids[eid] = f"T{n_t}"
        btype = brat_type(str(ent.get("label")))
        types.add(btype)
        line, trimmed = _span_line(tid, btype, text, start, end)
        lines.append(line)
        if ent.get("assertion") is not None:
            n_a += 1
            lines.append(f"A{n_a}\tAssertion {tid} {ent['assertion']}")
        for flag in ent.get("flags") or []:
            n_a += 1
            lines.append(f"A{n_a}\t{FLAG_PREFIX}{flag} {tid}")
        note(tid, _entity_note({**ent, "label": str(ent.get("label"))}, btype, trimmed))
    for rel in record.get("relations") or []:
        head, tail = str(rel.get("head")), str(rel.get("tail"))
        for arg in (head, tail):
            if arg not in ids:
                raise InputError(doc, f"relation {rel.get('label')!r} refers to entity {arg!r}, "
                                      "which the record does not have")
        n_r += 1
        rid = f"R{n_r}"
        lines.append(f"{rid}\t{rel.get('label')} Arg1:{ids[head]} Arg2:{ids[tail]}")
        if rel.get("score") is not None:
            note(rid, f"score={float(rel['score'])!r}")
    for err in record.get("errors") or []:
        _check_span(doc, f"error {err.get('type')!r}", err.get("start"), err.get("end"),
                    len(text))
        n_t += 1
        tid = f"T{n_t}"
        btype = ERROR_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", str(err.get("type")))
        types.add(btype)
        line, trimmed = _span_line(tid, btype, text, err["start"], err["end"])
        lines.append(line)
        note(tid, _error_note(err, trimmed))
    return "".join(line + "\n" for line in lines), types


def _write_text(target: Path, text: str) -> None:
    """Write ``text`` as UTF-8 without newline translation, atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def _colour(label: str) -> str:
    if label in _FIXED_COLOURS:
        return _FIXED_COLOURS[label]
    if label.startswith(ERROR_PREFIX):
        return _ERROR_COLOUR
    return _PALETTE[int(hashlib.sha1(label.encode()).hexdigest(), 16) % len(_PALETTE)]


def annotation_conf(entity_types: Iterable[str]) -> str:
    """brat's ``annotation.conf`` for these entity types (plus the rest of their label family),
    the three relation labels, the ``Assertion`` and ``Flag_*`` attributes, overlaps allowed."""
    types = set(entity_types)
    for family in LABEL_FAMILIES:
        if types & set(family):
            types |= set(family)
    plain = sorted(t for t in types if not t.startswith(ERROR_PREFIX))
    errors = sorted(t for t in types if t.startswith(ERROR_PREFIX))
    out = ["# brat annotation configuration written by medtext (medtext.corpora.brat)",
           "[entities]", *plain, *errors, "", "[relations]"]
    out += [f"{r}\tArg1:<ENTITY>, Arg2:<ENTITY>" for r in RELATION_LABELS]
    out += ["<OVERLAP>\tArg1:<ENTITY>, Arg2:<ENTITY>, <OVL-TYPE>:<ANY>", "", "[events]", "",
            "[attributes]", f"Assertion\tArg:<ENTITY>, Value:{'|'.join(ASSERTIONS)}"]
    out += [f"{FLAG_PREFIX}{f}\tArg:<ENTITY>" for f in FLAGS]
    return "\n".join(out) + "\n"


def visual_conf(entity_types: Iterable[str], labels: dict[str, str] | None = None) -> str:
    """brat's ``visual.conf``: a display name (``labels``: brat type -> original label) and a
    colour per entity type, a colour per relation label."""
    labels = labels or {}
    types = set(entity_types)
    for family in LABEL_FAMILIES:
        if types & set(family):
            types |= set(family)
    ordered = sorted(types, key=lambda t: (t.startswith(ERROR_PREFIX), t))
    out = ["# brat visual configuration written by medtext (medtext.corpora.brat)", "[labels]"]
    for t in ordered:
        shown = labels.get(t, t).replace("|", "/")
        out.append(f"{t} | {shown}")
    out += [f"{r} | {r.replace('_', ' ')}" for r in RELATION_LABELS]
    out += ["", "[drawing]", "SPAN_DEFAULT\tfgColor:black, bgColor:lightgreen, borderColor:darken",
            "ARC_DEFAULT\tcolor:black, arrowHead:triangle-5", "ATTRIBUTE_DEFAULT\tglyph:*"]
    out += [f"{t}\tbgColor:{_colour(t)}, borderColor:darken" for t in ordered]
    out += [f"{r}\tcolor:{c}" for r, c in _RELATION_COLOURS.items()]
    return "\n".join(out) + "\n"


def write_brat(records: Iterable[dict[str, Any]], folder: Path) -> list[Path]:
    """Write ``records`` as a brat collection in ``folder`` (see the module docstring); returns
    the files written (``.txt`` and ``.ann`` per record, then ``annotation.conf``,
    ``visual.conf``, ``index.jsonl``). Every file is written atomically.

    A record whose ``text`` is null raises :class:`InputError` (run medtext with ``--text``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    index: list[dict[str, str]] = []
    types: set[str] = set()
    shown: dict[str, str] = {}
    for record in records:
        ann, used = record_to_ann(record)
        types |= used
        for ent in record.get("entities") or []:
            label = str(ent.get("label"))
            shown.setdefault(brat_type(label), label)
        doc_id = str(record.get("doc_id"))
        name = _unique_name(doc_id, taken)
        txt_path, ann_path = folder / f"{name}.txt", folder / f"{name}.ann"
        _write_text(txt_path, record["text"])
        _write_text(ann_path, ann)
        written += [txt_path, ann_path]
        index.append({"doc_id": doc_id, "name": name})
    for fname, body in (("annotation.conf", annotation_conf(types)),
                        ("visual.conf", visual_conf(types, shown)),
                        ("index.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n"
                                                for row in index))):
        _write_text(folder / fname, body)
        written.append(folder / fname)
    log.info("brat: wrote %d documents to %s", len(index), folder)
    return written


# --------------------------------------------------------------------------- reading

_T_LINE = re.compile(r"^(T[^\t ]*)\t(\S+) (\d+ \d+(?:;\d+ \d+)*)\t(.*)$", re.S)
_A_LINE = re.compile(r"^([AM][^\t ]*)\t(\S+) (\S+)(?: (\S+))?$")
_R_LINE = re.compile(r"^(R[^\t ]*)\t(\S+) (\S+):(\S+) (\S+):(\S+)$")
_NOTE_LINE = re.compile(r"^(#[^\t ]*)\t(\S+) (\S+)(?:\t(.*))?$", re.S)
_N_LINE = re.compile(r"^(N[^\t ]*)\t(\S+) (\S+) ([^\t]+)(?:\t(.*))?$", re.S)
_SCORE_TAIL = re.compile(r"^(?:(.*) )?score=(\S+)$", re.S)
_KEY_SEG = re.compile(r"^([a-z_]+)=(.*)$", re.S)
_ENTITY_KEYS = {"kb_id", "section", "lay", "label", "span"}
_ERROR_KEYS = {"message", "correction", "score", "detector", "span"}


def _index_names(folder: Path) -> dict[str, str]:
    """name -> doc_id from ``folder/index.jsonl`` (empty when there is none)."""
    path = folder / "index.jsonl"
    if not path.is_file():
        return {}
    names: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            names[str(row["name"])] = str(row["doc_id"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}:{n}", f"not an index row {{\"doc_id\", \"name\"}} ({e}); "
                                            "fix or delete index.jsonl") from e
    return names


def _pairs(path: Path) -> list[tuple[Path, Path]]:
    """(ann, txt) pairs for a folder, a ``.ann`` or a ``.txt`` path."""
    path = Path(path)
    if path.is_dir():
        anns = sorted(path.glob("*.ann"))
    elif path.suffix in (".ann", ".txt"):
        anns = [path.with_suffix(".ann")]
    else:
        raise InputError(str(path), "not a brat folder, .ann or .txt file")
    pairs = []
    for ann in anns:
        txt = ann.with_suffix(".txt")
        for p in (ann, txt):
            if not p.is_file():
                raise InputError(str(p), f"missing: brat needs both {ann.name} and {txt.name}")
        pairs.append((ann, txt))
    return pairs


def _read_text(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise InputError(str(path), f"not UTF-8 text ({e}); brat files are UTF-8") from e


def _float(value: str, where: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InputError(where, f"{what} {value!r} is not a number") from None


def _parse_span_key(value: str, where: str, n_chars: int) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+):(\d+)", value.strip())
    if not m or not int(m[1]) <= int(m[2]) <= n_chars:
        raise InputError(where, f"span={value!r} in the note is not START:END within the text "
                                f"(0..{n_chars})")
    return int(m[1]), int(m[2])


def read_brat(path: Path) -> Iterator[dict[str, Any]]:
    """Records (schema 1.1, validated) from a brat folder (every ``*.ann`` with its ``.txt``,
    in name order) or a single ``.ann``/``.txt``. ``doc_id`` is the file stem, or the original
    doc id when the folder has medtext's ``index.jsonl``. See the module docstring for what is
    read and which problems raise :class:`InputError`."""
    path = Path(path)
    pairs = _pairs(path)
    names = _index_names(path if path.is_dir() else path.parent)
    for ann, txt in pairs:
        yield _read_pair(ann, txt, names.get(ann.stem, ann.stem))


def _read_pair(ann: Path, txt: Path, doc_id: str) -> dict[str, Any]:
    from medtext.errors import SchemaError
    from medtext.records import validate_record

    text = _read_text(txt)
    n_chars = len(text)
    warnings: list[str] = []
    spans: dict[str, dict[str, Any]] = {}  # brat T id -> parsed span
    order: list[str] = []
    attrs: list[tuple[str, str, str, str | None, str]] = []
    rels: list[tuple[str, str, str, str, str]] = []
    notes: dict[str, list[tuple[str, str]]] = {}
    norms: list[tuple[str, str, str, str | None]] = []
    ann_text = _read_text(ann)
    for n, raw in enumerate(ann_text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        where = f"{ann}:{n}"
        kind = line[0]
        if kind == "T":
            m = _T_LINE.match(line)
            if not m:
                raise InputError(where, f"malformed text-bound line {_short(line)}; expected "
                                        "'T<n><TAB>TYPE START END[;START END..]<TAB>TEXT'")
            tid, btype, offsets, found = m.groups()
            if tid in spans:
                raise InputError(where, f"annotation id {tid} is used twice")
            frags = [tuple(int(x) for x in part.split(" ")) for part in offsets.split(";")]
            for s, e in frags:
                if not 0 <= s <= e <= n_chars:
                    raise InputError(where, f"{tid} offsets {s} {e} are outside {txt.name} "
                                            f"(0..{n_chars} characters)")
            expected = " ".join(text[s:e] for s, e in frags)
            if found != expected:
                raise InputError(where, f"{tid} text {_short(found)} does not match {txt.name} "
                                        f"at {offsets}: expected {_short(expected)}")
            spans[tid] = {"type": btype, "frags": sorted(frags), "line": where, "raw": line}
            order.append(tid)
        elif kind in "AM":
            m = _A_LINE.match(line)
            if not m:
                raise InputError(where, f"malformed attribute line {_short(line)}; expected "
                                        "'A<n><TAB>NAME T<k>[ VALUE]'")
            attrs.append((*m.groups(), where))  # type: ignore[arg-type]
        elif kind == "R":
            m = _R_LINE.match(line)
            if not m:
                raise InputError(where, f"malformed relation line {_short(line)}; expected "
                                        "'R<n><TAB>LABEL Arg1:T<k> Arg2:T<m>'")
            rid, label, r1, a1, r2, a2 = m.groups()
            args = {r1: a1, r2: a2}
            if set(args) != {"Arg1", "Arg2"}:
                raise InputError(where, f"relation {rid} needs the roles Arg1 and Arg2, not "
                                        f"{r1} and {r2}")
            rels.append((rid, label, args["Arg1"], args["Arg2"], where))
        elif kind == "#":
            m = _NOTE_LINE.match(line)
            if not m:
                raise InputError(where, f"malformed note line {_short(line)}; expected "
                                        "'#<n><TAB>AnnotatorNotes ID<TAB>NOTE'")
            _, ntype, target, body = m.groups()
            if ntype != "AnnotatorNotes":
                warnings.append(f"{ann.name}:{n}: note type {ntype!r} ignored: {line}")
                continue
            notes.setdefault(target, []).append((body or "", where))
        elif kind == "N":
            m = _N_LINE.match(line)
            if not m:
                raise InputError(where, f"malformed normalization line {_short(line)}; "
                                        "expected 'N<n><TAB>Reference T<k> DB:ID<TAB>NAME'")
            _, _, target, ref, name = m.groups()
            if ":" not in ref:
                raise InputError(where, f"normalization reference {ref!r} is not DB:ID")
            norms.append((target, *ref.split(":", 1), name, where))  # type: ignore[arg-type]
        elif kind in "E*":
            warnings.append(f"{ann.name}:{n}: brat events and equivalences are not part of "
                            f"medtext records; ignored: {line}")
        else:
            raise InputError(where, f"malformed line {_short(line)}: brat lines start with T, "
                                    "R, A, M, N, E, * or #")

    def need(target: str, where: str) -> dict[str, Any]:
        if target not in spans:
            raise InputError(where, f"refers to {target}, which is not a text-bound annotation "
                                    f"in {ann.name}")
        return spans[target]

    entities: dict[str, dict[str, Any]] = {}
    errors: dict[str, dict[str, Any]] = {}
    for tid in order:
        sp = spans[tid]
        frags = sp["frags"]
        start, end = frags[0][0], max(e for _, e in frags)
        gaps = [text[a:b] for (_, a), (b, _) in zip(frags, frags[1:]) if b > a]
        if any(ch not in LINE_BREAKS for gap in gaps for ch in gap):
            warnings.append(f"{ann.name}: discontinuous annotation {tid} merged into one span "
                            f"{start}..{end}: {sp['raw']}")
        sp["start"], sp["end"] = start, end
        btype = sp["type"]
        if btype.startswith(ERROR_PREFIX) and btype[len(ERROR_PREFIX):] in ERROR_TYPES:
            errors[tid] = {"start": start, "end": end, "type": btype[len(ERROR_PREFIX):],
                           "message": "", "correction": None, "score": None,
                           "detector": "brat"}
        else:
            entities[tid] = {"id": tid, "start": start, "end": end, "text": text[start:end],
                             "label": btype, "section": None, "assertion": None, "flags": [],
                             "kb_id": None, "concepts": [], "lay": None}

    for target, bodies in notes.items():
        if target.startswith("R"):
            continue  # relation scores, read with the relations
        for body, where in bodies:
            need(target, where)
            if target in errors:
                _apply_error_note(errors[target], body, where, text, warnings)
            else:
                _apply_entity_note(entities[target], body, where, text, warnings)
    for target, system, code, name, where in norms:
        need(target, where)
        if target in entities:
            concepts = entities[target]["concepts"]
            if not any(c["system"] == system and c["code"] == code for c in concepts):
                concepts.append({"system": system, "code": code, "display": name,
                                 "score": 1.0})
    for aid, name, target, value, where in attrs:
        need(target, where)
        if target not in entities:
            warnings.append(f"{ann.name}: attribute {aid} on error annotation {target} "
                            f"ignored: {name} {target} {value or ''}".rstrip())
            continue
        ent = entities[target]
        if name == "Assertion":
            if value not in ASSERTIONS:
                raise InputError(where, f"Assertion value {value!r} is not one of "
                                        f"{', '.join(ASSERTIONS)}")
            ent["assertion"] = value
        elif name.startswith(FLAG_PREFIX) and name[len(FLAG_PREFIX):] in FLAGS:
            flag = name[len(FLAG_PREFIX):]
            if value not in (None, "true", "True"):
                raise InputError(where, f"{name} is a binary attribute; it takes no value "
                                        f"(found {value!r})")
            if flag not in ent["flags"]:
                ent["flags"].append(flag)
        else:
            warnings.append(f"{ann.name}: attribute {name!r} is not part of medtext records; "
                            f"ignored: {aid} {name} {target} {value or ''}".rstrip())

    relations = []
    for rid, label, head, tail, where in rels:
        need(head, where)
        need(tail, where)
        if label not in RELATION_LABELS:
            warnings.append(f"{ann.name}: relation label {label!r} is not one of "
                            f"{', '.join(RELATION_LABELS)}; dropped: {rid} {label} "
                            f"Arg1:{head} Arg2:{tail}")
            continue
        if head not in entities or tail not in entities:
            warnings.append(f"{ann.name}: relation {rid} links an error annotation; dropped: "
                            f"{rid} {label} Arg1:{head} Arg2:{tail}")
            continue
        score = 1.0
        for body, nwhere in notes.get(rid, []):
            for seg in body.split(" | "):
                m = _KEY_SEG.match(seg.strip())
                if m and m[1] == "score":
                    score = _float(m[2], nwhere, "relation score")
                elif seg.strip():
                    warnings.append(f"{ann.name}: note on {rid} not understood; ignored: {seg}")
        relations.append({"head": head, "tail": tail, "label": label, "score": score})
    for target in notes:
        if target.startswith("R") and target not in {r[0] for r in rels}:
            raise InputError(notes[target][0][1], f"note refers to {target}, which is not a "
                                                  f"relation in {ann.name}")

    ents = list(entities.values())  # file order: the record's order for medtext's own files
    new_ids = {e["id"]: f"T{i}" for i, e in enumerate(ents, 1)}
    for e in ents:
        e["id"] = new_ids[e["id"]]
    for r in relations:
        r["head"], r["tail"] = new_ids[r["head"]], new_ids[r["tail"]]
    record = {
        "schema_version": SCHEMA_VERSION,
        "doc_id": doc_id,
        "source": {"path": str(txt), "format": "brat", "row": None, "encoding": "utf-8"},
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "n_chars": n_chars,
        "pages": 1,
        "warnings": warnings,
        "text": text,
        "lines": [],
        "sections": [],
        "sentences": [],
        "entities": ents,
        "relations": relations,
        "errors": list(errors.values()),
        "lay_text": None,
        "pipeline": None,
    }
    try:
        validate_record(record)
    except SchemaError as e:
        raise InputError(str(ann), f"does not give a valid medtext record: {e}") from e
    return record


def _set_span(obj: dict[str, Any], value: str, where: str, text: str) -> None:
    start, end = _parse_span_key(value, where, len(text))
    if start > obj["start"] or end < obj["end"]:
        raise InputError(where, f"span={value} in the note does not cover the annotated "
                                f"fragments {obj['start']}..{obj['end']}")
    obj["start"], obj["end"] = start, end
    if "text" in obj:
        obj["text"] = text[start:end]


def _apply_entity_note(ent: dict[str, Any], body: str, where: str, text: str,
                       warnings: list[str]) -> None:
    """Fill ``ent`` from the segments of its AnnotatorNotes ``body``."""
    for seg in body.split(" | "):
        if not seg.strip():
            continue
        key = _KEY_SEG.match(seg)
        if key and key[1] in _ENTITY_KEYS:
            name, value = key[1], _unescape(key[2])
            if name == "kb_id":
                ent["kb_id"] = value
            elif name == "section":
                ent["section"] = value
            elif name == "label":
                ent["label"] = value
            elif name == "span":
                _set_span(ent, value, where, text)
            else:
                try:
                    ent["lay"] = json.loads(value)
                except ValueError as e:
                    raise InputError(where, f"lay= in the note is not JSON ({e})") from e
            continue
        head, _, rest = seg.partition(" ")
        system, colon, code = head.partition(":")
        if not (colon and system and code):
            warnings.append(f"{Path(where).name}: note segment on {ent['id']} not understood; "
                            f"ignored: {seg}")
            continue
        m = _SCORE_TAIL.match(rest)
        display: str | None = rest or None
        score = 1.0
        if m:  # "DISPLAY score=X" or "score=X" (display null); "" before score: display ""
            display = m[1]
            score = _float(m[2], where, "concept score")
        ent["concepts"].append({"system": _unescape(system), "code": _unescape(code),
                                "display": None if display is None else _unescape(display),
                                "score": score})


def _apply_error_note(err: dict[str, Any], body: str, where: str, text: str,
                      warnings: list[str]) -> None:
    """Fill ``err`` from the ``key=value`` segments of its AnnotatorNotes ``body``."""
    for seg in body.split(" | "):
        if not seg.strip():
            continue
        key = _KEY_SEG.match(seg)
        if not key or key[1] not in _ERROR_KEYS:
            warnings.append(f"{Path(where).name}: note segment on error not understood; "
                            f"ignored: {seg}")
            continue
        name, value = key[1], _unescape(key[2])
        if name == "score":
            err["score"] = _float(value, where, "error score")
        elif name == "span":
            _set_span(err, value, where, text)
        else:
            err[name] = value


# --------------------------------------------------------------------------- spaCy DocBin

_BLANK: dict[int, Any] = {}


def _tokenizer_nlp(vocab_or_nlp: Any) -> "Language":
    """A Language whose ``make_doc`` tokenises: the given one, a blank English pipeline on the
    given Vocab, or a shared blank English pipeline."""
    import spacy
    from spacy.language import Language
    from spacy.vocab import Vocab

    if isinstance(vocab_or_nlp, Language):
        return vocab_or_nlp
    if vocab_or_nlp is not None and not isinstance(vocab_or_nlp, Vocab):
        raise TypeError(f"expected a spaCy Language or Vocab, not {type(vocab_or_nlp).__name__}")
    key = id(vocab_or_nlp)
    cached = _BLANK.get(key)
    if cached is None or (vocab_or_nlp is not None and cached.vocab is not vocab_or_nlp):
        cached = spacy.blank("en", vocab=vocab_or_nlp if vocab_or_nlp is not None else True)
        _BLANK.clear()
        _BLANK[key] = cached
    return cached


def record_to_doc(record: dict[str, Any], vocab_or_nlp: Any = None) -> "Doc":
    """A spaCy Doc of a record, for training or inspection.

    The text is tokenised by ``vocab_or_nlp`` (a Language; or a Vocab / None: a blank English
    tokenizer). Entities become char spans (expanded to token boundaries) with label and
    ``kb_id_``: all of them in ``doc.spans["entities"]``, and ``doc.ents`` the non-overlapping
    subset (longest first). Errors go to ``doc.spans["errors"]``, sections to
    ``doc.spans["sections"]``, labelled lines to ``doc.spans["layout"]``; sentence starts are
    set from ``record["sentences"]``. ``doc.user_data["medtext"]`` holds ``doc_id``, the full
    ``entities``, ``relations`` and ``errors`` of the record and ``warnings`` (entities left
    out of ``doc.ents``, spans that cover no token). Read it back from a DocBin with
    :func:`medtext_user_data` (msgpack turns its lists into tuples)."""
    from spacy.tokens import SpanGroup
    from spacy.util import filter_spans

    doc_id = str(record.get("doc_id"))
    text = record.get("text")
    if text is None:
        raise InputError(doc_id, "the record has no text (it was written with --no-text); "
                                 "spaCy training data needs the text: run medtext with --text")
    doc = _tokenizer_nlp(vocab_or_nlp).make_doc(text)
    warnings: list[str] = []

    def span(start: int, end: int, label: str, what: str, kb_id: str | None = None):
        sp = doc.char_span(start, end, label=label, kb_id=kb_id or 0, alignment_mode="expand")
        if sp is None or len(sp) == 0:
            warnings.append(f"{what} {start}..{end} covers no token; left out")
            return None
        return sp

    sentences = record.get("sentences") or []
    if sentences and len(doc):
        starts = set()
        for s in sentences:
            sp = doc.char_span(s["start"], max(s["end"], s["start"] + 1),
                               alignment_mode="expand")
            if sp is not None and len(sp):
                starts.add(sp.start)
        for tok in doc:
            tok.is_sent_start = tok.i == 0 or tok.i in starts

    ent_spans = []
    for ent in record.get("entities") or []:
        sp = span(ent["start"], ent["end"], str(ent["label"]), f"entity {ent.get('id')}",
                  ent.get("kb_id"))
        if sp is not None:
            ent_spans.append(sp)
    doc.spans["entities"] = SpanGroup(doc, name="entities", spans=ent_spans)
    kept = filter_spans(ent_spans)
    doc.ents = kept
    if len(kept) < len(ent_spans):
        warnings.append(f"{len(ent_spans) - len(kept)} overlapping entities kept only in "
                        "doc.spans['entities'], not in doc.ents")
    err_spans = [sp for err in record.get("errors") or []
                 if (sp := span(err["start"], err["end"], str(err["type"]), "error"))]
    if err_spans:
        doc.spans["errors"] = err_spans
    sec_spans = [sp for sec in record.get("sections") or []
                 if (sp := span(sec["start"], sec["end"], str(sec["label"]), "section"))]
    if sec_spans:
        doc.spans["sections"] = sec_spans
    layout = [sp for ln in record.get("lines") or [] if ln.get("label") and ln["end"] > ln["start"]
              and (sp := span(ln["start"], ln["end"], ln["label"], "line"))]
    if layout:
        doc.spans["layout"] = layout
    doc.user_data["medtext"] = {
        "doc_id": doc_id,
        "entities": [dict(e) for e in record.get("entities") or []],
        "relations": [dict(r) for r in record.get("relations") or []],
        "errors": [dict(e) for e in record.get("errors") or []],
        "warnings": warnings,
    }
    return doc


def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def medtext_user_data(doc: "Doc") -> dict[str, Any]:
    """``doc.user_data["medtext"]`` as plain JSON shapes: DocBin's msgpack gives lists back as
    tuples, this turns them into lists again (so entities compare equal to the record's)."""
    return _lists(doc.user_data.get("medtext") or {})


def records_to_docbin(records: Iterable[dict[str, Any]], path: Path, nlp: Any = None) -> int:
    """Write ``records`` as a spaCy ``.spacy`` file (``DocBin(store_user_data=True)``, docs from
    :func:`record_to_doc`) atomically at ``path``; returns the number of docs. The file is spaCy
    training data for ``ner`` (``doc.ents``) and ``spancat`` (``doc.spans["entities"]``)."""
    from spacy.tokens import DocBin

    db = DocBin(store_user_data=True)
    n = left_out = 0
    for record in records:
        doc = record_to_doc(record, nlp)
        left_out += len(doc.user_data["medtext"]["warnings"])
        db.add(doc)
        n += 1
    with atomic_path(path) as tmp:
        db.to_disk(tmp)
    log.info("docbin: wrote %d docs to %s (%d notes on entities left out of doc.ents or "
             "spans; see user_data['medtext']['warnings'])", n, path, left_out)
    return n


def brat_to_docbin(folder: Path, out_path: Path, nlp: Any = None) -> int:
    """:func:`read_brat` then :func:`records_to_docbin`: brat files corrected by hand -> spaCy
    training data. Returns the number of docs."""
    return records_to_docbin(read_brat(folder), out_path, nlp)
