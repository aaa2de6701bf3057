"""Custom attributes medtext adds to spaCy objects, registered once (idempotent).

Doc
    ``doc._.doc_id`` (str) the document id; ``doc._.source`` (dict: path, format, row, encoding);
    ``doc._.lines`` (list of line dicts, see :mod:`medtext.lines`); ``doc._.warnings`` (list of str,
    e.g. an encoding fallback); ``doc._.line_labels`` (one layout label per line, or None: set by
    ``medtext_layout``); ``doc._.record`` (getter: the record dict of :func:`medtext.to_record`).
Span
    ``span._.section`` (getter: label of the section the span starts in, or None).
"""

from __future__ import annotations

from spacy.tokens import Doc, Span

_REGISTERED = False


def _record_getter(doc: Doc):
    from .records.build import to_record

    return to_record(doc)


def _section_getter(span: Span):
    from .records.build import section_at

    return section_at(span.doc, span.start_char)


def register_extensions() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    for name, default in (("doc_id", None), ("source", None), ("lines", None), ("warnings", None),
                          ("line_labels", None)):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=default)
    if not Doc.has_extension("record"):
        Doc.set_extension("record", getter=_record_getter)
    if not Span.has_extension("section"):
        Span.set_extension("section", getter=_section_getter)
    _REGISTERED = True
