"""Document-level consistency for ``medtext_ner``: abbreviations defined in the text, repeated mentions.

A token tagger decides each mention from a few words of context, so the same drug or disease
can be found in one sentence and missed in the next, and an abbreviation is rarely recognised
on its own ("STZ", "IBS"). Two rules use the rest of the document:

1. **Abbreviations.** A short form defined in parentheses or brackets right after an entity,
   "irritable bowel syndrome (IBS)", "acetylsalicylic acid [ASA]", "testosterone (T, 5 mg/kg)",
   takes the entity's label when the long form spells it (the Schwartz & Hearst 2003 test:
   the short form's letters appear in order in the words before the parenthesis, its first
   letter at the start of a word). Every occurrence of the short form in the document then
   becomes an entity with that label, and entities that are exactly the short form take that
   label. The other way round: a short form of 2+ characters whose long form has no entity
   on any of its words ("hormone therapy (HT)", "bone mineral density (BMD)") is not an
   entity anywhere in the document, whatever the tagger or the matcher said about it.
2. **Repeated mentions.** An entity of at least ``min_chars`` characters whose text has one
   label throughout the document labels its other occurrences (ignoring case).

New entities never overlap existing ones (or the section headers) and are whole tokens; short
forms of up to 4 characters match only as written ("CP", not "cp"). Measured on the dev sets
(``benchmarks/ner.py``): see the README's NER section.
"""

from __future__ import annotations

from collections import defaultdict

from spacy.tokens import Doc, Span
from spacy.util import filter_spans

_OPEN = ("(", "[")
_CLOSE = (")", "]", ";", ",", ":")
_LONG_FORM_STOP = (".", ";", ":", "(", ")")


def long_form_start(short: str, text: str) -> int | None:
    """Where the long form of ``short`` starts in ``text`` (the words before the parenthesis):
    the shortest end of ``text`` that holds the short form's letters and digits in order, the
    first one at the start of a word; None when there is none (Schwartz & Hearst 2003)."""
    si, ti = len(short) - 1, len(text) - 1
    while si >= 0:
        c = short[si].lower()
        if not c.isalnum():
            si -= 1
            continue
        while ti >= 0 and (text[ti].lower() != c or (si == 0 and ti > 0 and text[ti - 1].isalnum())):
            ti -= 1
        if ti < 0:
            return None
        ti -= 1
        si -= 1
    return text.rfind(" ", 0, ti + 1) + 1


def _key(span: Span) -> tuple[str, ...]:
    """How occurrences are compared: short forms (<= 4 characters) as written, others lower-cased."""
    short = len(span.text) <= 4
    return tuple(t.text if short else t.lower_ for t in span)


def abbreviation_definitions(doc: Doc) -> list[tuple[Span, Span]]:
    """``(long form, short form)`` for every "long form (SF)" or "long form [SF]" in the
    document (SF: 2-10 characters, at most 2 words, starting with a letter or digit and holding
    a letter, or one capital letter; closed by the bracket, ";", "," or ":")."""
    out = []
    n = len(doc)
    for i, tok in enumerate(doc):
        if tok.text not in _OPEN or i == 0:
            continue
        k = i + 1
        while k < n and k - i <= 4 and doc[k].text not in _CLOSE:
            k += 1
        if k >= n or doc[k].text not in _CLOSE or k == i + 1:
            continue
        short = doc[i + 1:k]
        s = short.text
        one_letter = len(s) == 1 and "A" <= s <= "Z"
        if not (2 <= len(s) <= 10 or one_letter) or not s[0].isalnum() or not any(c.isalpha() for c in s) or len(s.split()) > 2:
            continue
        # the long form: at most min(|SF| + 5, 2 |SF|) words back (Schwartz & Hearst), within the clause
        a = i
        while a > 0 and i - a < min(len(s) + 5, 2 * len(s)) + 6 and doc[a - 1].text not in _LONG_FORM_STOP:
            a -= 1
        if a == i:
            continue
        before = doc[a:i]
        off = long_form_start(s, before.text)
        if off is None:
            continue
        long = doc.char_span(before.start_char + off, before.end_char, alignment_mode="expand")
        if long is None or len(long.text) <= len(s) or s.lower() in long.text.lower().split():
            continue
        out.append((long, short))
    return out


def propagate(doc: Doc, ents: list[Span], *, min_chars: int = 5, blocked: set[int] = frozenset()) -> list[Span]:
    """``ents`` plus what the two rules of the module docstring add (and relabel); tokens in
    ``blocked`` (section headers) never become entities."""
    labels: dict[tuple[str, ...], str] = {}
    conflicting = set()
    for e in ents:
        if len(e.text) >= min_chars:
            k = _key(e)
            if labels.setdefault(k, e.label_) != e.label_:
                conflicting.add(k)
    for k in conflicting:
        del labels[k]
    by_end = {e.end: e for e in ents}
    short_labels = {}
    not_entities = set()
    for long, short in abbreviation_definitions(doc):
        e = by_end.get(long.end)
        if e is not None:  # the entity may start before the long form ("acute myocardial infarction (MI)")
            short_labels[_key(short)] = e.label_
        elif len(short.text) >= 2 and not any(x.start < long.end and long.start < x.end for x in ents):
            not_entities.add(_key(short))
    not_entities -= set(short_labels)  # defined twice, once as an entity: the entity wins
    if not_entities:
        ents = [e for e in ents if _key(e) not in not_entities]
        for k in not_entities:
            labels.pop(k, None)
    if short_labels:
        labels.update(short_labels)
        ents = [e if short_labels.get(_key(e), e.label_) == e.label_
                else Span(doc, e.start, e.end, label=short_labels[_key(e)]) for e in ents]
    if not labels:
        return list(ents)
    taken = set(blocked)
    for e in ents:
        taken.update(range(e.start, e.end))
    by_first = defaultdict(list)
    for k, label in labels.items():
        by_first[k[0]].append((k, label))
    new = []
    for i, tok in enumerate(doc):
        for first in {tok.text, tok.lower_}:
            for k, label in by_first.get(first, ()):
                end = i + len(k)
                if end > len(doc) or any(j in taken for j in range(i, end)):
                    continue
                span = doc[i:end]
                if _key(span) == k:
                    new.append(Span(doc, i, end, label=label))
    return sorted(list(ents) + filter_spans(new), key=lambda s: s.start)
