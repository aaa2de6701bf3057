"""Assertion (ConText) gold cases: ``corpora/context/*.jsonl``, written by the team.

One case per line: ``{"id", "text", "target", "occurrence", "label", "flags": {negated,
uncertain, hypothetical, historical, family, conditional}, "note"}``; ``target`` is the entity
text, found in ``text`` at its ``occurrence`` (1-based). See corpora/GUIDELINES.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medtext.errors import InputError

from .jsonl import iter_jsonl

FLAGS = ("negated", "uncertain", "hypothetical", "historical", "family", "conditional")
CASES_DIR = Path(__file__).resolve().parent / "context"


@dataclass
class ContextCase:
    id: str
    text: str
    start: int
    end: int
    label: str
    flags: dict[str, bool]
    note: str = ""


def read_cases(paths: list[Path] | None = None) -> list[ContextCase]:
    cases, seen = [], set()
    for where, d in iter_jsonl(paths or [CASES_DIR], what="a context case", reason="bad_case"):
        try:
            text, target, occ = d["text"], d["target"], int(d.get("occurrence", 1))
            flags = {k: bool(d["flags"][k]) for k in FLAGS}
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(where, f"not a context case ({e})", "bad_case") from e
        start = -1
        for _ in range(occ):
            start = text.find(target, start + 1)
            if start < 0:
                raise InputError(where, f"target {target!r} does not occur {occ} time(s)", "bad_case")
        if d["id"] in seen:
            raise InputError(where, f"duplicate case id {d['id']}", "bad_case")
        seen.add(d["id"])
        cases.append(ContextCase(d["id"], text, start, start + len(target), d.get("label", "PROBLEM"),
                                 flags, d.get("note", "")))
    return cases


def case_doc(nlp, case: ContextCase):
    """The case's Doc, run through every pipe before ``medtext_context`` with the target as its
    only entity, then through the context component."""
    doc = nlp.make_doc(case.text)
    for name, proc in nlp.pipeline:
        if name == "medtext_context":
            span = doc.char_span(case.start, case.end, label=case.label, alignment_mode="expand")
            doc.ents = [span]
        doc = proc(doc)
    return doc
