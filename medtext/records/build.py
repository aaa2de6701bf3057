"""Doc -> record dict, the one shape every writer derives from (see ``record.schema.json``)."""

from __future__ import annotations

import bisect
import hashlib
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..lines import count_pages, text_lines

if TYPE_CHECKING:
    from spacy.tokens import Doc

SCHEMA_VERSION = "1.1"
LINE_KEYS = ("start", "end", "page", "number", "x0", "y0", "x1", "y1", "font_size",
             "page_width", "page_height", "indent")
ASSERTION_FLAGS = ("negated", "uncertain", "hypothetical", "historical", "family", "conditional")


def section_lookup(doc: "Doc"):
    """A function: character offset -> label of the section holding it (None outside any).
    Build it once per doc; each lookup is a binary search."""
    sections = doc.spans.get("sections") if doc.spans else None
    if not sections:
        return lambda char: None
    starts = [s.start_char for s in sections]
    ends = [s.end_char for s in sections]
    labels = [s.label_ for s in sections]

    def lookup(char: int) -> str | None:
        i = bisect.bisect_right(starts, char) - 1
        return labels[i] if i >= 0 and char < ends[i] else None

    return lookup


def section_at(doc: "Doc", char: int) -> str | None:
    """Label of the section containing character offset ``char`` (None outside any section).
    For many lookups on one doc, use :func:`section_lookup`."""
    return section_lookup(doc)(char)


def _ext(obj, name: str, default=None):
    return getattr(obj._, name) if obj.has_extension(name) else default


def _entity(doc: "Doc", i: int, ent, section_of) -> dict[str, Any]:
    assertion = _ext(ent, "assertion")
    concepts = _ext(ent, "concepts") or []
    return {
        "id": f"T{i + 1}",
        "start": ent.start_char,
        "end": ent.end_char,
        "text": ent.text,
        "label": ent.label_,
        "section": section_of(ent.start_char),
        "assertion": assertion if isinstance(assertion, str) else None,
        "flags": [f for f in ASSERTION_FLAGS if _ext(ent, f"is_{f}")],
        "kb_id": ent.kb_id_ or None,
        "concepts": [
            {"system": c[0], "code": c[1], "display": c[2], "score": float(c[3])}
            if isinstance(c, (tuple, list)) else dict(c) for c in concepts
        ],
        "lay": _ext(ent, "lay"),
    }


def _layout_labels(doc: "Doc") -> dict[int, str]:
    if "layout" not in doc.spans:
        return {}
    return {s.start_char: s.label_ for s in doc.spans["layout"]}


def to_record(doc: "Doc", *, include_text: bool = True, nlp=None) -> dict[str, Any]:
    """The record of one processed Doc (a plain JSON-serialisable dict)."""
    text = doc.text  # built on each access: read it once
    lines = _ext(doc, "lines") or text_lines(text)
    line_labels = _ext(doc, "line_labels")
    if not line_labels or len(line_labels) != len(lines):
        layout = _layout_labels(doc)
        line_labels = [layout.get(ln["start"]) for ln in lines]
    section_of = section_lookup(doc)
    ents = list(doc.ents)
    ent_ids = {(e.start_char, e.end_char, e.label_): f"T{i + 1}" for i, e in enumerate(ents)}
    relations = []
    if _ext(doc, "relations"):
        from medtext.components.relations import relation_spans

        for head, tail, label, score in relation_spans(doc):
            relations.append({
                "head": ent_ids.get((head.start_char, head.end_char, head.label_)),
                "tail": ent_ids.get((tail.start_char, tail.end_char, tail.label_)),
                "label": label, "score": float(score)})
    errors = []
    for err in _ext(doc, "errors") or []:
        errors.append({k: err.get(k) for k in ("start", "end", "type", "message", "correction",
                                                "score", "detector")})
    source = _ext(doc, "source") or {}
    sents = list(doc.sents) if (doc.has_annotation("SENT_START") or doc.is_parsed) else []
    record = {
        "schema_version": SCHEMA_VERSION,
        "doc_id": _ext(doc, "doc_id") or hashlib.sha256(text.encode()).hexdigest()[:16],
        "source": {"path": source.get("path"), "format": source.get("format"),
                   "row": source.get("row"), "encoding": source.get("encoding")},
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "n_chars": len(text),
        "pages": count_pages(lines),
        "warnings": list(_ext(doc, "warnings") or []),
        "text": text if include_text else None,
        "lines": [{**{k: ln.get(k) for k in LINE_KEYS}, "label": label}
                  for ln, label in zip(lines, line_labels)],
        "sections": [{"label": s.label_, "start": s.start_char, "end": s.end_char}
                     for s in doc.spans.get("sections", [])] if doc.spans else [],
        "sentences": [{"start": s.start_char, "end": s.start_char + len(s.text.rstrip())}
                      for s in sents if s.text.strip()],
        "entities": [_entity(doc, i, e, section_of) for i, e in enumerate(ents)],
        "relations": relations,
        "errors": errors,
        "lay_text": _ext(doc, "lay_text"),
        "pipeline": pipeline_info(nlp) if nlp is not None else _PIPELINES.get(id(doc.vocab), (None, None))[1],
    }
    return record


# pipelines made by medtext.load, keyed by id(vocab) (a Doc shares its pipeline's vocab); the
# vocab is kept in the value so the id cannot be reused while the entry lives
_PIPELINES: dict[int, tuple[Any, dict[str, Any]]] = {}


def register_pipeline(nlp) -> None:
    """Let ``to_record(doc)`` name the pipeline that made ``doc``."""
    _PIPELINES[id(nlp.vocab)] = (nlp.vocab, pipeline_info(nlp))


def pipeline_info(nlp) -> dict[str, Any]:
    """Name, versions and model ids of a loaded pipeline, as recorded with every document."""
    components = []
    for name, proc in nlp.pipeline:
        components.append({
            "name": name,
            "factory": nlp.get_pipe_meta(name).factory,
            "version": getattr(proc, "version", None),
            "model": nlp.meta.get("medtext_models", {}).get(name) or getattr(proc, "model_id", None),
        })
    return {"name": f"{nlp.meta.get('lang', 'en')}_{nlp.meta.get('name', 'pipeline')}",
            "version": nlp.meta.get("version"), "medtext_version": __version__,
            "components": components}
