"""Entity-linking gold data: MedProcNER (SNOMED CT-coded procedure mentions in Spanish case
reports, with machine-translated English forms) as (mention, gold codes, label) rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from medtext.errors import InputError

from .jsonl import iter_jsonl

# MedProcNER labels -> medtext labels (routing to SNOMED CT kinds)
MEDPROCNER_LABELS = {"PROCEDIMIENTO": "PROCEDURE"}


@dataclass
class LinkingMention:
    id: str
    text: str
    codes: list[str]  # a composite mention has several; "NO_CODE" rows have none
    label: str
    context: str = ""  # the text the mention sits in (offsets below index it), when known
    start: int = 0
    end: int = 0


def read_medprocner(path: Path) -> list[LinkingMention]:
    """``dev_linking_snomedct.jsonl``: the English form (``text_en_machine_translated``) is the mention."""
    out = []
    for where, d in iter_jsonl([Path(path)], what="a MedProcNER linking row", reason="bad_corpus"):
        try:
            codes = [] if d["snomed_ct"] == "NO_CODE" else d["snomed_ct"].split("+")
            out.append(LinkingMention(f"{d['filename']}:{d['start']}", d["text_en_machine_translated"],
                                      codes, MEDPROCNER_LABELS.get(d["label"], d["label"])))
        except (KeyError, AttributeError) as e:
            raise InputError(where, f"not a MedProcNER linking row ({e})", "bad_corpus") from e
    return out


# Team linking gold (ICF): ``[span](LABEL|code)`` markup, composite codes joined by "+";
# "NIL" for a mention no category fits. One note per JSONL line: {"id", "kind", "split", "text"}.
_LINK_MARK = re.compile(r"\[([^\[\]]+)\]\(([A-Z]+)\|([A-Za-z0-9.+\-]+)\)")
ICF_DIR = Path(__file__).resolve().parent / "icf"
# the NER corpus's notes with SNOMED CT codes (every span but FUNCTION; dev, test and the
# train split the examples read), see corpora/GUIDELINES.md
SNOMED_DIR = Path(__file__).resolve().parent / "snomed"
# procedure-coded case reports in the English of machine-translated Spanish journal case
# reports, written and coded by the team (train: the examples; dev: evaluation only), see
# corpora/GUIDELINES.md
CASES_DIR = Path(__file__).resolve().parent / "cases"
# the same genre written by other coders who read no team file and coded each procedure to the
# GPS concept that is exactly it, NIL otherwise (MedProcNER's convention); dev only, never
# examples or training data, see corpora/cases_exact/README.md
CASES_EXACT_DIR = Path(__file__).resolve().parent / "cases_exact"


@dataclass
class LinkedNote:
    id: str
    text: str
    spans: list[tuple[int, int, str, list[str]]]  # start, end, label, codes ([] = NIL)
    split: str = ""
    kind: str = ""


def parse_link_markup(marked: str) -> tuple[str, list[tuple[int, int, str, list[str]]]]:
    from .ner_data import strip_markup

    return strip_markup(marked, _LINK_MARK, lambda a, b, m: (
        a, b, m.group(2), [] if m.group(3) == "NIL" else m.group(3).split("+")))


def read_linked_notes(paths: list[Path] | None = None) -> list[LinkedNote]:
    notes = []
    for where, d in iter_jsonl(paths or [ICF_DIR], what="a linked note", reason="bad_corpus"):
        try:
            text, spans = parse_link_markup(d["text"])
        except (KeyError, TypeError) as e:
            raise InputError(where, f"not a linked note ({e})", "bad_corpus") from e
        if "](" in text:
            raise InputError(where, "markup left after parsing: write [span](LABEL|code)", "bad_corpus")
        notes.append(LinkedNote(d["id"], text, spans, d.get("split", ""), d.get("kind", "")))
    return notes


def read_medtext_linking(path: Path, split: str | tuple[str, ...] | None = None) -> list[LinkingMention]:
    """Mentions of the team's linked notes (``split``: train, dev or test, or a tuple of them;
    None for all); the mention text is the span, the note text its context."""
    splits = (split,) if isinstance(split, str) else split
    out = []
    for note in read_linked_notes([Path(path)]):
        if splits and note.split not in splits:
            continue
        for start, end, label, codes in note.spans:
            out.append(LinkingMention(f"{note.id}:{start}", note.text[start:end], codes, label,
                                      context=note.text, start=start, end=end))
    return out


# the team's notes as examples: never the ICF test split, never the SNOMED CT dev split
TEAM_EXAMPLES = {"medtext:icf": (ICF_DIR, ("train", "dev")), "medtext:icf-train": (ICF_DIR, ("train",)),
                 "medtext:icf-dev": (ICF_DIR, ("dev",)), "medtext:snomed": (SNOMED_DIR, ("train",)),
                 "medtext:cases": (CASES_DIR, ("train",))}
_ICF_CODE = re.compile(r"^[bsde]\d+$")


def load_examples(spec: str | list[str]) -> list[tuple[str, str, str]]:
    """(text, system, code) linking examples from ``spec``: ``"medtext:icf"`` (the team's ICF
    notes, train and dev splits; ``"medtext:icf-train"`` / ``"medtext:icf-dev"`` for one of
    them: the test split stays unseen), ``"medtext:snomed"`` (the SNOMED CT-coded spans of the
    team's train clinical notes), ``"medtext:cases"`` (the procedure spans of the team's 80 train case
    reports in machine-translated English), a JSONL file (or folder of them) of
    ``{"text", "system", "code"}`` rows, or of linked notes in the team's markup
    (``[span](LABEL|code)``; codes like ``d450`` are ICF, others SNOMED CT); a list of specs is
    their union. A malformed row is an :class:`InputError` naming file:line."""
    if not isinstance(spec, str):
        return [row for one in spec for row in load_examples(one)]
    if spec.startswith("medtext:"):
        if spec not in TEAM_EXAMPLES:
            raise InputError(spec, f"unknown example set: use a JSONL path or one of {', '.join(TEAM_EXAMPLES)}",
                             "bad_config")
        path, split = TEAM_EXAMPLES[spec]
        return [(m.text, "icf" if _ICF_CODE.match(c) else "snomed", c)
                for m in read_medtext_linking(path, split) for c in m.codes]
    path = Path(spec)
    if not path.exists():
        raise InputError(spec, "linking examples not found", "not_found")
    out = []
    for where, d in iter_jsonl([path], what="a linking example", reason="bad_corpus"):
        if not isinstance(d, dict):
            raise InputError(where, "not a linking example: write {\"text\", \"system\", \"code\"}", "bad_corpus")
        if "code" in d or "system" in d:
            if not all(isinstance(d.get(k), str) and d.get(k) for k in ("text", "system", "code")):
                raise InputError(where, "a linking example needs non-empty text, system and code", "bad_corpus")
            out.append((d["text"], d["system"], d["code"]))
            continue
        try:
            text, spans = parse_link_markup(d["text"])
        except (KeyError, TypeError) as e:
            raise InputError(where, f"not a linking example or linked note ({e})", "bad_corpus") from e
        out.extend((text[a:b], "icf" if _ICF_CODE.match(c) else "snomed", c)
                   for a, b, _label, codes in spans for c in codes)
    return out


MAX_NAME_CLASSES = 5_000


def index_name_examples(index, systems: set[str]) -> list[tuple[str, str, str]]:
    """(name, system, code) for every name (preferred term and synonyms) the terminology
    ``index`` gives a concept of ``systems``, blocks and chapters left out: a category's expert
    names as training examples beside the annotated mentions (``medtext train linker-clf
    --names``). Meant for small systems such as ICF: more than :data:`MAX_NAME_CLASSES`
    concepts is a :class:`ValueError` (a classifier over all of SNOMED CT is not what this is
    for)."""
    def columns(table: str, *names: str) -> list[list]:
        return [index.tables[table].column(n).to_pylist() for n in names]

    system, code, term, kind = columns("concepts", "system", "code", "term", "kind")
    keep = {(s, c) for s, c, k in zip(system, code, kind) if s in systems and k not in ("block", "chapter")}
    if len(keep) > MAX_NAME_CLASSES:
        raise ValueError(f"--names would add {len(keep):,} concepts of {', '.join(sorted(systems))} as classes "
                         f"(at most {MAX_NAME_CLASSES:,}): use it for small systems such as ICF")
    out = {(t, s, c) for s, c, t in zip(system, code, term) if (s, c) in keep and t}
    out |= {(t, s, c) for s, c, t in zip(*columns("synonyms", "system", "code", "term")) if (s, c) in keep and t}
    return sorted(out, key=lambda r: (r[1], r[2], r[0]))


def index_class_names(index, classes) -> dict[tuple[str, str], list[str]]:
    """Each ``(system, code)`` of ``classes`` that the terminology ``index`` knows -> its names:
    the synonyms in the index's order, the preferred term first when it is not among them
    (``medtext train linker-clf --finetune --head-init names``)."""
    want = set(classes)
    out: dict[tuple[str, str], list[str]] = {}
    syn = index.tables["synonyms"]
    for s, c, t in zip(*(syn.column(n).to_pylist() for n in ("system", "code", "term"))):
        if (s, c) in want and t:
            out.setdefault((s, c), []).append(t)
    con = index.tables["concepts"]
    for s, c, t in zip(*(con.column(n).to_pylist() for n in ("system", "code", "term"))):
        if (s, c) in want and t and t not in out.get((s, c), ()):
            out.setdefault((s, c), []).insert(0, t)
    return out


def icf_codes() -> dict[str, str]:
    """ICF code -> label, from the ICF tables the default terminology is built from."""
    import csv

    data = Path(__file__).resolve().parent.parent / "terminologies" / "data"
    if not data.is_dir():  # installed package layout
        from importlib.resources import files

        data = Path(str(files("medtext.terminologies") / "data"))
    out = {}
    for p in sorted(data.glob("icf_*.tsv")):
        with p.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                out[row["code"]] = row["label"]
    return out


def check_linked_notes(paths: list[Path], index=None) -> dict:
    """Counts and problems of linked notes: unknown codes, empty spans, duplicate ids. ICF codes
    are checked against the ICF tables; SNOMED CT codes need the terminology ``index``, where
    each must be a concept of a kind the span's label is routed to (a PROBLEM coded to a
    procedure is a problem)."""
    from collections import Counter

    from medtext.terminologies.linking import ROUTES

    known = icf_codes()
    kinds = {}
    if index is not None:
        con = index.tables["concepts"]
        kinds = {c: k for s, c, k in zip(con.column("system").to_pylist(), con.column("code").to_pylist(),
                                         con.column("kind").to_pylist()) if s == "snomed"}
    notes = read_linked_notes(paths)
    problems, by_split, by_chapter, ids = [], Counter(), Counter(), Counter(n.id for n in notes)
    problems += [f"duplicate note id {i}" for i, c in ids.items() if c > 1]
    for n in notes:
        for start, end, label, codes in n.spans:
            span = n.text[start:end]
            if span != span.strip() or not span.strip():
                problems.append(f"{n.id}: span {span!r} has edge blanks or is empty")
            for c in codes:
                if _ICF_CODE.match(c):
                    if c not in known:
                        problems.append(f"{n.id}: {span!r} has unknown ICF code {c}")
                    by_chapter[c[:2]] += 1
                elif index is None:
                    problems.append(f"{n.id}: {span!r} has SNOMED CT code {c}: pass the index to check it")
                elif c not in kinds:
                    problems.append(f"{n.id}: {span!r} has SNOMED CT code {c}, not in the index")
                elif f"snomed:{kinds[c]}" not in ROUTES.get(label, []):
                    problems.append(f"{n.id}: {span!r} ({label}) has {c}, a {kinds[c]}, which {label} is not routed to")
                else:
                    by_chapter[f"snomed:{label}"] += 1
            by_split[n.split] += 1
    return {"notes": len(notes), "mentions": sum(len(n.spans) for n in notes),
            "by_split": dict(by_split), "by_chapter": dict(sorted(by_chapter.items())),
            "nil": sum(1 for n in notes for s in n.spans if not s[3]), "problems": problems}


if __name__ == "__main__":  # python -m medtext.corpora.linking_data FILE...
    import json
    import sys

    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex, TerminologyError

    try:  # SNOMED CT codes are checked against the default index when there is one
        index = ConceptIndex.load(default_index_dir())
    except TerminologyError:
        index = None
    print(json.dumps(check_linked_notes([Path(p) for p in sys.argv[1:]], index=index), indent=1))
