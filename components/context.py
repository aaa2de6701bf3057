"""``medtext_context``: assertion of entities with the ConText algorithm.

For each sentence, trigger phrases (``components/context_rules.py``, written by the team) are
matched on lower-cased tokens; where phrases overlap the longest wins, so pseudo-triggers
("no increase", "not only") silence the triggers inside them. A trigger governs the entities
after it (forward), before it (backward) or both, up to the sentence edge or a terminator
("but", "however", ";" ...). Triggers inside an entity's own span do not apply to it.
Sections add flags too: entities under past medical history are ``historical``, under family
history ``family``.

Sets on every entity: ``ent._.is_negated``, ``is_uncertain``, ``is_hypothetical``,
``is_historical``, ``is_family``, ``is_conditional`` (booleans), and ``ent._.assertion``, the
single status that wins, in this order: family, negated, hypothetical, uncertain, conditional,
historical, else ``present``.
"""

from __future__ import annotations

import bisect
from typing import Iterable

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from .context_rules import SECTION_FLAGS, rules as default_rules

FLAGS = ("negated", "uncertain", "hypothetical", "historical", "family", "conditional")
PRIORITY = ("family", "negated", "hypothetical", "uncertain", "conditional", "historical")
DIRECTIONS = ("forward", "backward", "both")


def register_span_extensions() -> None:
    if not Span.has_extension("assertion"):
        Span.set_extension("assertion", default=None)
    for f in FLAGS:
        if not Span.has_extension(f"is_{f}"):
            Span.set_extension(f"is_{f}", default=False)


class ContextComponent:
    """See the module docstring."""

    version = "1.0.0"

    def __init__(self, nlp: Language, name: str, *, use_defaults: bool = True,
                 extra_rules: Iterable = (), use_sections: bool = True,
                 max_scope: int | None = None):
        from medtext.errors import ConfigError

        register_span_extensions()
        self.name = name
        self.use_sections = use_sections
        self.max_scope = max_scope
        rules = list(default_rules()) if use_defaults else []
        for r in extra_rules:
            if not (isinstance(r, (list, tuple)) and len(r) in (2, 3)):
                raise ConfigError(f"{name}.extra_rules: each rule is [phrase, category, direction], got {r!r}")
            phrase, cat, direction = (list(r) + [None])[:3]
            if cat not in FLAGS + ("pseudo", "terminate"):
                raise ConfigError(f"{name}.extra_rules: unknown category {cat!r} in {r!r}; use one of "
                                  f"{', '.join(FLAGS + ('pseudo', 'terminate'))}")
            if cat in FLAGS and direction not in DIRECTIONS:
                raise ConfigError(f"{name}.extra_rules: direction of {phrase!r} must be one of {DIRECTIONS}")
            rules.append((phrase, cat, direction))
        self.rules = rules
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._rule_of: dict[int, list[tuple[str, str | None]]] = {}
        by_phrase: dict[str, list[tuple[str, str | None]]] = {}
        for phrase, cat, direction in rules:
            by_phrase.setdefault(phrase.lower(), []).append((cat, direction))
        make = nlp.make_doc
        for i, (phrase, cats) in enumerate(sorted(by_phrase.items())):
            key = f"medtext_context_{i}"
            self.matcher.add(key, [make(phrase)])
            self._rule_of[nlp.vocab.strings[key]] = cats

    def triggers(self, doc: Doc) -> list[tuple[int, int, list[tuple[str, str | None]]]]:
        """Non-overlapping (start, end, [(category, direction)]) token spans, longest first."""
        found = sorted(((s, e, self._rule_of[m]) for m, s, e in self.matcher(doc)),
                       key=lambda t: (-(t[1] - t[0]), t[0]))
        taken = [False] * len(doc)
        out = []
        for s, e, cats in found:
            if any(taken[s:e]):
                continue
            for i in range(s, e):
                taken[i] = True
            out.append((s, e, cats))
        return sorted(out)

    def __call__(self, doc: Doc) -> Doc:
        ents = list(doc.ents)
        for ent in ents:
            ent._.assertion = "present"
            for f in FLAGS:
                setattr(ent._, f"is_{f}", False)
        if not ents:
            return doc
        trig = self.triggers(doc)
        if doc.has_annotation("SENT_START"):
            sent_starts = [s.start for s in doc.sents]
        else:  # no sentence splitter before us: a line is a sentence
            sent_starts = [0] + [t.i + 1 for t in doc[:-1] if "\n" in t.text_with_ws]
        terms_by_sent: dict[int, list[int]] = {}
        trig_by_sent: dict[int, list] = {}
        for s, e, cats in trig:
            k = bisect.bisect_right(sent_starts, s) - 1
            if any(c == "terminate" for c, _ in cats):
                terms_by_sent.setdefault(k, []).append(s)
            elif not any(c == "pseudo" for c, _ in cats):
                trig_by_sent.setdefault(k, []).append((s, e, cats))
        section_of = None
        if self.use_sections and doc.spans.get("sections") is not None:
            from medtext.records.build import section_lookup

            section_of = section_lookup(doc)
        for ent in ents:
            k = bisect.bisect_right(sent_starts, ent.start) - 1
            terms = terms_by_sent.get(k, [])
            flags: set[str] = set()
            for s, e, cats in trig_by_sent.get(k, []):
                if s < ent.end and e > ent.start:
                    continue  # a trigger inside the entity's own words
                for cat, direction in cats:
                    if direction in ("forward", "both") and e <= ent.start:
                        if not any(e <= t < ent.start for t in terms) and self._near(ent.start - e):
                            flags.add(cat)
                    if direction in ("backward", "both") and s >= ent.end:
                        if not any(ent.end <= t < s for t in terms) and self._near(s - ent.end):
                            flags.add(cat)
            if section_of is not None:
                label = section_of(ent.start_char)
                if label in SECTION_FLAGS:
                    flags.add(SECTION_FLAGS[label])
            for f in flags:
                setattr(ent._, f"is_{f}", True)
            ent._.assertion = next((f for f in PRIORITY if f in flags), "present")
        return doc

    def _near(self, gap: int) -> bool:
        return self.max_scope is None or gap <= self.max_scope


@Language.factory(
    "medtext_context",
    default_config={"use_defaults": True, "extra_rules": [], "use_sections": True, "max_scope": None},
)
def make_context(nlp: Language, name: str, use_defaults: bool, extra_rules: list,
                 use_sections: bool, max_scope: int | None) -> ContextComponent:
    return ContextComponent(nlp, name, use_defaults=use_defaults, extra_rules=extra_rules,
                            use_sections=use_sections, max_scope=max_scope)
