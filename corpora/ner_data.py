"""NER corpora as (id, text, [(start, end, label)]): NCBI-disease and BC5CDR (PubTator-derived
JSONL in ../shared/data) and the team's annotated notes (``corpora/annotated/*.jsonl``, inline
``[span](LABEL)`` markup; see corpora/GUIDELINES.md). ``to_docbin`` writes spaCy training data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from medtext.errors import InputError

from .jsonl import iter_jsonl

LABELS = ("PROBLEM", "TEST", "DRUG", "TREATMENT", "PROCEDURE", "ANATOMY", "FUNCTION")
NCBI_TYPES = {"SpecificDisease": "PROBLEM", "DiseaseClass": "PROBLEM", "Modifier": "PROBLEM",
              "CompositeMention": "PROBLEM"}
BC5CDR_TYPES = {"Disease": "PROBLEM", "Chemical": "DRUG"}
ANNOTATED_DIR = Path(__file__).resolve().parent / "annotated"
_MARK = re.compile(r"\[([^\[\]]+)\]\((" + "|".join(LABELS) + r")\)")


@dataclass
class NerExample:
    id: str
    text: str
    spans: list[tuple[int, int, str]]
    split: str = ""
    kind: str = ""


def read_pubtator_jsonl(path: Path, types: dict[str, str]) -> Iterator[NerExample]:
    """NCBI-disease / BC5CDR JSONL: offsets index ``title + " " + abstract``."""
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            text = d["title"] + " " + d["abstract"]
            spans = []
            for m in d["mentions"]:
                if m["type"] not in types:
                    continue
                start, end = m["start"], m["end"]
                if text[start:end] != m["text"]:
                    # a few source mentions carry trailing blanks past the text: trim, or fail
                    if text[start:end].strip() != m["text"].strip():
                        raise ValueError(f"mention {m['text']!r} does not match its offsets")
                    end = start + len(text[start:end].rstrip())
                spans.append((start, end, types[m["type"]]))
        except (ValueError, KeyError) as e:
            raise InputError(f"{path}:{n}", f"not a PubTator-style JSONL document ({e})", "bad_corpus") from e
        yield NerExample(str(d.get("pmid", n)), text, sorted(set(spans)))


def strip_markup(marked: str, pattern: re.Pattern, span) -> tuple[str, list[tuple]]:
    """Plain text and spans from inline ``[text](...)`` markup matched by ``pattern`` (group 1
    is the text); ``span(start, end, match)`` makes each span."""
    out, spans, pos, length = [], [], 0, 0
    for m in pattern.finditer(marked):
        before = marked[pos:m.start()]
        out.append(before)
        length += len(before)
        spans.append(span(length, length + len(m.group(1)), m))
        out.append(m.group(1))
        length += len(m.group(1))
        pos = m.end()
    out.append(marked[pos:])
    return "".join(out), spans


def parse_markup(marked: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Plain text and spans from ``[span](LABEL)`` markup."""
    return strip_markup(marked, _MARK, lambda a, b, m: (a, b, m.group(2)))


def read_annotated(paths: list[Path] | None = None) -> Iterator[NerExample]:
    for where, d in iter_jsonl(paths or [ANNOTATED_DIR], what="an annotated note", reason="bad_corpus"):
        try:
            text, spans = parse_markup(d["text"])
        except (KeyError, TypeError) as e:
            raise InputError(where, f"not an annotated note ({e})", "bad_corpus") from e
        if "](" in text:
            raise InputError(where, "markup left after parsing: unknown label or nested span", "bad_corpus")
        yield NerExample(d["id"], text, spans, d.get("split", ""), d.get("kind", ""))


def read_corpus(path: Path, fmt: str, split: str | None = None) -> list[NerExample]:
    """``fmt``: ncbi, bc5cdr or medtext (the team's notes; ``split`` picks train or dev)."""
    if fmt == "ncbi":
        return list(read_pubtator_jsonl(path, NCBI_TYPES))
    if fmt == "bc5cdr":
        return list(read_pubtator_jsonl(path, BC5CDR_TYPES))
    if fmt == "medtext":
        return [e for e in read_annotated([path]) if split is None or e.split == split]
    raise InputError(str(path), f"unknown corpus format {fmt!r}: use ncbi, bc5cdr or medtext", "bad_format")


def to_docbin(nlp, examples: list[NerExample], out: Path) -> tuple[int, int]:
    """Write a spaCy DocBin; returns (docs, spans). Spans not on token boundaries are expanded."""
    from spacy.tokens import DocBin
    from spacy.util import filter_spans

    db = DocBin(store_user_data=False)
    n_spans = 0
    for ex in examples:
        doc = nlp.make_doc(ex.text)
        ents = [doc.char_span(s, e, label=lab, alignment_mode="expand") for s, e, lab in ex.spans]
        ents = filter_spans([x for x in ents if x is not None])
        doc.ents = ents
        n_spans += len(ents)
        db.add(doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    db.to_disk(out)
    return len(examples), n_spans
