"""RadGraph-style gold data: the team's annotated reports, and the radgraph package's JSON.

Team format (``corpora/radgraph/*.jsonl``, one report per line)::

    {"id": "cxr-a-001", "split": "train", "kind": "cxr",
     "text": "FINDINGS: [Heart](ANAT-DP T1) size is [normal](OBS-DP T2). No [effusion](OBS-DA T3).",
     "relations": ["T2 located_at T1"]}

Each entity is written inline as ``[span](LABEL ID)``; ``relations`` lists ``"HEAD TYPE TAIL"``
with the relation types ``modify``, ``located_at``, ``suggestive_of``. See
``corpora/radgraph/GUIDELINES.md``.

RadGraph JSON (what the ``radgraph`` package and the RadGraph release use)::

    {doc_key: {"text": "...", "entities": {"1": {"tokens": "effusion", "label": "OBS-DA",
               "start_ix": 12, "end_ix": 12, "relations": [["located_at", "2"]]}}}}

``start_ix``/``end_ix`` are inclusive indices of the whitespace-separated tokens of ``text``
(RadGraph's texts are tokenised, punctuation split off: "No effusion ."). Exporting team
reports tokenises them the same way (:func:`tokenize`); entities must start and end on those
token boundaries.

    python -m medtext.corpora.radgraph_data [FILE_OR_DIR...] [--to-radgraph OUT.json]
        # validate and print counts; optionally write the reports as RadGraph JSON
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from medtext.errors import InputError

from .ner_data import strip_markup

ENTITY_LABELS = ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
RELATION_TYPES = ("modify", "located_at", "suggestive_of")
RADGRAPH_DIR = Path(__file__).parent / "radgraph"
_MARK = re.compile(r"\[([^\[\]]+)\]\((" + "|".join(ENTITY_LABELS) + r") (T\d+)\)")
_WORD = re.compile(r"\w+(?:[-'./]\w+)*|[^\w\s]")
_TOKEN = re.compile(r"\S+")


@dataclass
class RGEntity:
    id: str
    label: str
    start: int  # character offsets into the report text
    end: int
    text: str


@dataclass
class RGReport:
    id: str
    text: str
    entities: list[RGEntity]
    relations: list[tuple[str, str, str]]  # (head id, type, tail id)
    split: str = ""
    kind: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def entity(self, eid: str) -> RGEntity:
        return next(e for e in self.entities if e.id == eid)


def parse_report(d: dict[str, Any], where: str) -> RGReport:
    """A team-format report; every problem raises :class:`InputError` naming the report."""
    rid = d.get("id") if isinstance(d, dict) else None
    if not rid or not isinstance(d.get("text"), str):
        raise InputError(where, "a report needs an 'id' and a 'text'", "bad_corpus")
    text, spans = strip_markup(d["text"], _MARK, lambda a, b, m: (a, b, m.group(2), m.group(3)))
    if re.search(r"\]\((?:[A-Z-]+)", text):
        raise InputError(where, f"report {rid}: markup left after parsing (unknown label, missing id "
                                f"or nested span) near {text[text.index(']('):][:40]!r}", "bad_corpus")
    toks = tokenize(text)
    starts, ends = {x for x, _ in toks}, {y for _, y in toks}
    ents, seen = [], set()
    for a, b, label, eid in spans:
        if eid in seen:
            raise InputError(where, f"report {rid}: entity id {eid} used twice", "bad_corpus")
        seen.add(eid)
        span = text[a:b]
        if span != span.strip() or not span:
            raise InputError(where, f"report {rid}: entity {eid} {span!r} has leading/trailing spaces",
                             "bad_corpus")
        if a not in starts or b not in ends:
            raise InputError(where, f"report {rid}: entity {eid} {span!r} does not start and end on word "
                                    f"boundaries (words: {[text[x:y] for x, y in toks if x < b and y > a]})",
                             "bad_corpus")
        ents.append(RGEntity(eid, label, a, b, span))
    rels = []
    for r in d.get("relations") or []:
        parts = r.split() if isinstance(r, str) else []
        if len(parts) != 3 or parts[1] not in RELATION_TYPES:
            raise InputError(where, f"report {rid}: bad relation {r!r} (use 'T1 located_at T2'; types "
                                    f"{', '.join(RELATION_TYPES)})", "bad_corpus")
        head, rel, tail = parts
        for x in (head, tail):
            if x not in seen:
                raise InputError(where, f"report {rid}: relation {r!r} names unknown entity {x}", "bad_corpus")
        if head == tail:
            raise InputError(where, f"report {rid}: relation {r!r} links an entity to itself", "bad_corpus")
        rels.append((head, rel, tail))
    if len(set(rels)) != len(rels):
        raise InputError(where, f"report {rid}: a relation is listed twice", "bad_corpus")
    return RGReport(rid, text, ents, rels, d.get("split", ""), d.get("kind", ""))


def read_reports(paths: Iterable[Path] | None = None, split: str | None = None) -> list[RGReport]:
    from .jsonl import iter_jsonl

    out, ids = [], set()
    for where, d in iter_jsonl(list(paths or [RADGRAPH_DIR]), what="a RadGraph report", reason="bad_corpus"):
        rep = parse_report(d, where)
        if rep.id in ids:
            raise InputError(where, f"report id {rep.id} occurs twice", "bad_corpus")
        ids.add(rep.id)
        if split is None or rep.split == split:
            out.append(rep)
    return out


# --- RadGraph JSON -----------------------------------------------------------------------------

def tokenize(text: str) -> list[tuple[int, int]]:
    """Word tokens (character spans) as RadGraph splits them: words (with inner - ' . /) and
    single punctuation marks."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


def to_radgraph(reports: Iterable[RGReport]) -> dict[str, Any]:
    """The radgraph package's JSON for ``reports``: text = tokens joined by spaces, entity ids
    "1", "2", ... in order."""
    out: dict[str, Any] = {}
    for rep in reports:
        toks = tokenize(rep.text)
        first = {a: i for i, (a, _) in enumerate(toks)}
        last = {b: i for i, (_, b) in enumerate(toks)}
        num = {e.id: str(k + 1) for k, e in enumerate(rep.entities)}
        ents = {}
        for e in rep.entities:
            if e.start not in first or e.end not in last:
                raise ValueError(f"{rep.id}: entity {e.id} {e.text!r} is not on token boundaries")
            i, j = first[e.start], last[e.end]
            ents[num[e.id]] = {"tokens": " ".join(rep.text[a:b] for a, b in toks[i:j + 1]), "label": e.label,
                               "start_ix": i, "end_ix": j,
                               "relations": [[rel, num[t]] for h, rel, t in rep.relations if h == e.id]}
        out[rep.id] = {"text": " ".join(rep.text[a:b] for a, b in toks), "entities": ents}
    return out


def from_radgraph(data: Any, source: str = "radgraph json") -> list[RGReport]:
    """Reports from RadGraph JSON; a malformed document raises an error naming its doc key."""
    if not isinstance(data, dict):
        raise InputError(source, "RadGraph JSON must be an object {doc_key: {text, entities}}", "bad_corpus")
    reports = []
    for key, doc in data.items():
        try:
            text = doc["text"]
            toks = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
            ents, rels = [], []
            for eid, e in doc["entities"].items():
                i, j = int(e["start_ix"]), int(e["end_ix"])
                if not 0 <= i <= j < len(toks):
                    raise ValueError(f"entity {eid} token range {i}..{j} outside the {len(toks)} tokens")
                if e["label"] not in ENTITY_LABELS:
                    raise ValueError(f"entity {eid} has label {e['label']!r}, not one of {ENTITY_LABELS}")
                a, b = toks[i][0], toks[j][1]
                ents.append(RGEntity(f"T{eid}", e["label"], a, b, text[a:b]))
                for rel in e.get("relations", []):
                    if rel[0] not in RELATION_TYPES or str(rel[1]) not in doc["entities"]:
                        raise ValueError(f"entity {eid} has a bad relation {rel!r}")
                    rels.append((f"T{eid}", rel[0], f"T{rel[1]}"))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(source, f"doc {key!r}: malformed RadGraph entry ({e})", "bad_corpus") from e
        reports.append(RGReport(str(key), text, ents, rels))
    return reports


def load_radgraph_json(path: Path) -> dict[str, Any]:
    """A RadGraph JSON file as is, after checking every document (errors name the doc key)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(str(path), f"cannot read RadGraph JSON ({e})", "bad_corpus") from e
    from_radgraph(data, str(path))
    return data


def gold_items(gold: Path, split: str | None = None
               ) -> tuple[dict[str, Any], list[RGReport], list[tuple[str, str, list[tuple[int, int]]]]]:
    """Gold for scoring: RadGraph JSON (a ``.json`` file, texts already tokenised) or the team's
    JSONL (``split`` chooses). Returns the gold RadGraph JSON, the reports, and per report
    ``(doc key, text to run a pipeline on, word token spans of that text)``."""
    if Path(gold).suffix == ".json":
        data = load_radgraph_json(gold)
        items = [(k, d["text"], [(m.start(), m.end()) for m in _TOKEN.finditer(d["text"])])
                 for k, d in data.items()]
        return data, from_radgraph(data, str(gold)), items
    reports = read_reports([Path(gold)], split=split)
    return to_radgraph(reports), reports, [(r.id, r.text, tokenize(r.text)) for r in reports]


def read_radgraph_json(path: Path) -> list[RGReport]:
    return from_radgraph(load_radgraph_json(path), str(path))


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Validate the team's RadGraph-style reports.")
    ap.add_argument("paths", nargs="*", type=Path, default=[RADGRAPH_DIR])
    ap.add_argument("--to-radgraph", type=Path, help="write them as RadGraph JSON here")
    args = ap.parse_args(argv)
    try:
        reps = read_reports(args.paths)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    by_split: dict[str, int] = {}
    labels: dict[str, int] = {}
    rels: dict[str, int] = {}
    for r in reps:
        by_split[r.split] = by_split.get(r.split, 0) + 1
        for e in r.entities:
            labels[e.label] = labels.get(e.label, 0) + 1
        for _, t, _ in r.relations:
            rels[t] = rels.get(t, 0) + 1
    data = to_radgraph(reps)
    print(f"{len(reps)} reports; splits {by_split}; entities {labels}; relations {rels}")
    if args.to_radgraph:
        from medtext.atomic import atomic_write_text

        atomic_write_text(args.to_radgraph, json.dumps(data, indent=1) + "\n")
        print(f"-> {args.to_radgraph}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
