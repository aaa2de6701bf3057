"""MEDEC (medical error detection and correction) data: read the CSV/JSONL, read/write runs.

MEDEC (Ben Abacha et al., MEDIQA-CORR 2024) gives, per clinical text: the text, its numbered
sentences (``"0 First sentence.\\n1 Second..."``), an error flag, the error type (diagnosis,
management, treatment, pharmacotherapy, causalOrganism), the id of the erroneous sentence
(``-1`` when there is none) and the corrected sentence. ``read_medec`` accepts the official CSV
(columns ``Text ID, Text, Sentences, Error Flag, Error Type, Error Sentence ID, Error Sentence,
Corrected Sentence, Corrected Text``) and the JSONL form of ``../shared/data/medec``.

A *run* (a system's answers) is the shared task's submission format, one line per text::

    ms-val-0 1 5 Culture tests indicate Trichomonas vaginalis.
    ms-val-5 0 -1 NA

``read_run`` also takes a CSV with the columns ``Text ID, Error Flag, Error Sentence ID,
Corrected Sentence``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from medtext.errors import InputError

ERROR_TYPES = ("diagnosis", "management", "treatment", "pharmacotherapy", "causalOrganism")
_NUMBERED = re.compile(r"^(\d+) ?(.*)$")
_RUN_LINE = re.compile(r"^(\S+)\s+([01])\s+(-?\d+)\s*(.*)$")


@dataclass
class MedecText:
    text_id: str
    text: str
    sentences: list[str]
    flag: int
    error_type: str | None = None
    sentence_id: int = -1
    error_sentence: str | None = None
    corrected_sentence: str | None = None
    spans: list[tuple[int, int] | None] = field(default_factory=list)

    def __post_init__(self):
        if not self.spans:
            self.spans = align_sentences(self.text, self.sentences)


@dataclass
class RunAnswer:
    flag: int
    sentence_id: int
    correction: str | None  # None = "NA"


def parse_sentences(block: str) -> list[str]:
    """The numbered ``Sentences`` field -> sentence texts indexed by their number. A line that
    does not start with a number continues the previous sentence."""
    out: dict[int, str] = {}
    last = None
    for line in (block or "").splitlines():
        m = _NUMBERED.match(line)
        if m and (last is None or int(m.group(1)) == last + 1):
            last = int(m.group(1))
            out[last] = m.group(2).strip()
        elif last is not None:
            out[last] = (out[last] + " " + line.strip()).strip()
    return [out.get(i, "") for i in range(max(out) + 1)] if out else []


def align_sentences(text: str, sentences: list[str]) -> list[tuple[int, int] | None]:
    """Character spans of each sentence in ``text``, searched in order (None when a sentence
    cannot be found, e.g. MEDEC rewrote its whitespace)."""
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for s in sentences:
        s = s.strip()
        if not s:
            spans.append(None)
            continue
        i = text.find(s, cursor)
        if i < 0:
            # whitespace-insensitive search
            pattern = r"\s+".join(re.escape(w) for w in s.split())
            m = re.compile(pattern).search(text, cursor)
            if not m:
                spans.append(None)
                continue
            i, j = m.start(), m.end()
        else:
            j = i + len(s)
        spans.append((i, j))
        cursor = j
    return spans


def _na(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):  # pandas-style NaN
        return None
    value = str(value).replace("\r", " ").replace("\n", " ").strip()
    return None if value in ("", "NA", "nan", "None") else value


def _int(value, default: int) -> int:
    if value is None or str(value).strip() in ("", "NA", "nan", "None"):
        return default
    return int(float(str(value).strip()))


def _row_to_text(row: dict, where: str) -> MedecText:
    try:
        flag = _int(row["flag"], 0)
        if flag not in (0, 1):
            raise ValueError(f"error flag must be 0 or 1, not {row['flag']!r}")
        etype = _na(row.get("type"))
        if etype is not None and etype not in ERROR_TYPES:
            raise ValueError(f"unknown error type {etype!r} (expected one of {', '.join(ERROR_TYPES)})")
        sentences = parse_sentences(row["sentences"] or "")
        sid = _int(row.get("sentence_id"), -1)
        if flag and not 0 <= sid < len(sentences):
            raise ValueError(f"error sentence id {sid} is not one of the {len(sentences)} sentences")
        return MedecText(text_id=str(row["id"]).strip(), text=row["text"] or "", sentences=sentences,
                         flag=flag, error_type=etype if flag else None, sentence_id=sid if flag else -1,
                         error_sentence=_na(row.get("error_sentence")),
                         corrected_sentence=_na(row.get("corrected_sentence")))
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(where, f"not a MEDEC row: {e}", reason="bad_medec") from None


_CSV_COLUMNS = {"Text ID": "id", "Text": "text", "Sentences": "sentences", "Error Flag": "flag",
                "Error Type": "type", "Error Sentence ID": "sentence_id",
                "Error Sentence": "error_sentence", "Corrected Sentence": "corrected_sentence"}
_JSONL_KEYS = {"text_id": "id", "text": "text", "sentences": "sentences", "error_flag": "flag",
               "error_type": "type", "error_sentence_id": "sentence_id",
               "error_sentence": "error_sentence", "corrected_sentence": "corrected_sentence"}


def read_medec(path: str | Path) -> list[MedecText]:
    """MEDEC texts from the official CSV or the JSONL form. Raises :class:`InputError` naming
    the file and row of the first malformed row."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such MEDEC file", reason="not_found")
    out: list[MedecText] = []
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}", f"not JSON ({e.msg})", reason="bad_medec") from None
                out.append(_row_to_text({v: obj.get(k) for k, v in _JSONL_KEYS.items()}, f"{path}:{n}"))
    else:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("Text ID", "Text", "Sentences", "Error Flag") if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(str(path), f"not a MEDEC CSV: missing columns {missing}", reason="bad_medec")
            for n, row in enumerate(reader, 2):
                out.append(_row_to_text({v: row.get(k) for k, v in _CSV_COLUMNS.items()}, f"{path}:{n}"))
    ids = [t.text_id for t in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(str(path), f"text id {dup!r} appears more than once", reason="bad_medec")
    return out


def read_run(path: str | Path) -> dict[str, RunAnswer]:
    """A system's answers: the shared task's run format (``ID FLAG SENT_ID CORRECTION``) or a
    CSV with ``Text ID, Error Flag, Error Sentence ID, Corrected Sentence``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such run file", reason="not_found")
    out: dict[str, RunAnswer] = {}
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if not {"Text ID", "Error Flag"} <= set(reader.fieldnames or []):
                raise InputError(str(path), "a run CSV needs the columns Text ID, Error Flag, "
                                 "Error Sentence ID, Corrected Sentence", reason="bad_run")
            for n, row in enumerate(reader, 2):
                try:
                    flag = _int(row["Error Flag"], 0)
                    out[row["Text ID"].strip()] = RunAnswer(
                        flag, _int(row.get("Error Sentence ID"), -1),
                        _na(row.get("Corrected Sentence")) if flag else None)
                except ValueError as e:
                    raise InputError(f"{path}:{n}", f"bad run row: {e}", reason="bad_run") from None
        return out
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            m = _RUN_LINE.match(line)
            if not m:
                raise InputError(f"{path}:{n}", "expected `TEXT_ID FLAG SENTENCE_ID CORRECTION`",
                                 reason="bad_run")
            flag = int(m.group(2))
            corr = m.group(4).strip().strip('"').strip()
            out[m.group(1)] = RunAnswer(flag, int(m.group(3)), (corr or None) if flag and corr != "NA" else None)
    return out


def write_run(path: str | Path, answers: dict[str, RunAnswer]) -> None:
    """Write answers in the shared task's run format (atomically)."""
    from medtext.atomic import atomic_write_text

    lines = []
    for tid, a in answers.items():
        corr = " ".join((a.correction or "").split()) if a.flag else ""
        lines.append(f"{tid} {a.flag} {a.sentence_id if a.flag else -1} {corr or 'NA'}")
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def text_groups(texts: list[MedecText], overlap: float = 0.5) -> list[int]:
    """A group id per text: texts sharing more than ``overlap`` of their sentences are versions
    of one case (MEDEC pairs an erroneous text with its correct version), so cross-validation
    must keep them in the same fold."""
    sets = [set(s for s in t.sentences if s) for t in texts]
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    index: dict[str, list[int]] = {}
    for i, s in enumerate(sets):
        for sent in s:
            index.setdefault(sent, []).append(i)
    for i, s in enumerate(sets):
        shared: dict[int, int] = {}
        for sent in s:
            for j in index[sent]:
                if j > i:
                    shared[j] = shared.get(j, 0) + 1
        for j, k in shared.items():
            if k / max(1, min(len(s), len(sets[j]))) > overlap:
                parent[find(i)] = find(j)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(texts))]
