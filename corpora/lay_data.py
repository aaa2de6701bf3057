"""The team's lay-language gold sets (``corpora/lay``): abbreviation senses in context and lay
rewrites of note passages.

``abbreviations.jsonl``: one occurrence per line ``{"id", "text", "start", "end", "abbr",
"sense", "split"}``: ``text[start:end] == abbr`` (as written in the note), ``sense`` one of the
senses the Vanderbilt abbreviation inventory lists for ``abbr`` (case-insensitive lookup), split
``dev`` or ``test``.

``rewrites.jsonl``: ``{"id", "source", "lay", "split"}``: a passage of a clinical note and the
team's patient-readable rewrite of it.

``python -m medtext.corpora.lay_data`` validates both files (and checks senses against
``../shared/assets/vanderbilt_clinical_abbreviations.tsv`` when it is there).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from medtext.errors import InputError

LAY_DIR = Path(__file__).parent / "lay"
VANDERBILT = Path(__file__).resolve().parents[2] / "shared" / "assets" / "vanderbilt_clinical_abbreviations.tsv"


@dataclass
class AbbrCase:
    id: str
    text: str
    start: int
    end: int
    abbr: str
    sense: str
    split: str


@dataclass
class Rewrite:
    id: str
    source: str
    lay: str
    split: str


def vanderbilt_senses(path: Path = VANDERBILT) -> dict[str, set[str]]:
    """abbreviation (lower-case) -> its senses (lower-case) in the Vanderbilt inventory."""
    out: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            out.setdefault(row["abbreviation"].strip().lower(), set()).add(row["sense"].strip().lower())
    return out


def _lines(path: Path):
    from .jsonl import iter_jsonl

    return iter_jsonl([path], what="a lay gold case", reason="bad_corpus")


def read_abbreviations(path: Path = LAY_DIR / "abbreviations.jsonl", split: str | None = None,
                       senses: dict[str, set[str]] | None = None) -> list[AbbrCase]:
    out, ids = [], set()
    for where, d in _lines(path):
        try:
            c = AbbrCase(str(d["id"]), d["text"], int(d["start"]), int(d["end"]), d["abbr"], d["sense"].strip().lower(),
                         d["split"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(where, f"bad abbreviation case ({e})", "bad_corpus") from None
        if c.text[c.start:c.end] != c.abbr:
            raise InputError(where, f"text[{c.start}:{c.end}] is {c.text[c.start:c.end]!r}, not {c.abbr!r}", "bad_corpus")
        if c.split not in ("dev", "test"):
            raise InputError(where, f"split must be dev or test, not {c.split!r}", "bad_corpus")
        if c.id in ids:
            raise InputError(where, f"id {c.id} occurs twice", "bad_corpus")
        if senses is not None and c.sense not in senses.get(c.abbr.lower().strip("."), set()):
            raise InputError(where, f"{c.sense!r} is not a Vanderbilt sense of {c.abbr!r}", "bad_corpus")
        ids.add(c.id)
        if split is None or c.split == split:
            out.append(c)
    return out


def read_rewrites(path: Path = LAY_DIR / "rewrites.jsonl", split: str | None = None) -> list[Rewrite]:
    out, ids = [], set()
    for where, d in _lines(path):
        try:
            r = Rewrite(str(d["id"]), d["source"], d["lay"], d["split"])
        except (KeyError, TypeError) as e:
            raise InputError(where, f"bad rewrite ({e})", "bad_corpus") from None
        if not r.source.strip() or not r.lay.strip():
            raise InputError(where, "source and lay must not be empty", "bad_corpus")
        if r.split not in ("dev", "test"):
            raise InputError(where, f"split must be dev or test, not {r.split!r}", "bad_corpus")
        if r.id in ids:
            raise InputError(where, f"id {r.id} occurs twice", "bad_corpus")
        ids.add(r.id)
        if split is None or r.split == split:
            out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    from collections import Counter

    senses = vanderbilt_senses() if VANDERBILT.is_file() else None
    try:
        if (LAY_DIR / "abbreviations.jsonl").is_file():
            ab = read_abbreviations(senses=senses)
            print(f"abbreviations: {len(ab)} cases, {len({c.abbr.lower() for c in ab})} abbreviations, "
                  f"splits {dict(Counter(c.split for c in ab))}"
                  + ("" if senses else " (senses not checked: Vanderbilt asset missing)"))
        if (LAY_DIR / "rewrites.jsonl").is_file():
            rw = read_rewrites()
            print(f"rewrites: {len(rw)} passages, splits {dict(Counter(r.split for r in rw))}")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
