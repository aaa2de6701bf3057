"""OBO 1.2/1.4 flat-file reader (HPO, MONDO, DOID releases) and ``import-obo``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .index import Source, TerminologyData, TerminologyError
from .textio import open_text

_SYN = re.compile(r'^"((?:[^"\\]|\\.)*)"\s+(EXACT|RELATED|BROAD|NARROW)(?:\s+([A-Za-z_:\-]+))?')
_DEF = re.compile(r'^"((?:[^"\\]|\\.)*)"')


@dataclass
class OboTerm:
    id: str
    name: str = ""
    definition: str = ""
    synonyms: list[tuple[str, str, str | None]] = field(default_factory=list)  # text, scope, type
    parents: list[str] = field(default_factory=list)
    xrefs: list[str] = field(default_factory=list)
    obsolete: bool = False
    line: int = 0


def read_obo(path: Path) -> tuple[dict[str, str], list[OboTerm]]:
    """(header tags, [Term] stanzas) of an OBO file; errors name the file and line."""
    header: dict[str, str] = {}
    terms: list[OboTerm] = []
    cur: OboTerm | None = None
    in_term = False
    with open_text(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("!"):
                continue
            if line.startswith("["):
                in_term = line == "[Term]"
                cur = None
                continue
            if ":" not in line:
                raise TerminologyError(f"not an OBO tag-value line: {line[:60]!r}", path, n)
            tag, _, value = line.partition(":")
            value = value.strip()
            if "!" in value and tag in ("is_a", "xref", "id"):
                value = value.split("!", 1)[0].strip()
            if not in_term:
                if not terms and cur is None:
                    header.setdefault(tag, value)
                continue
            if tag == "id":
                cur = OboTerm(id=value, line=n)
                terms.append(cur)
            elif cur is None:
                raise TerminologyError(f"{tag!r} before the stanza's id", path, n)
            elif tag == "name":
                cur.name = value
            elif tag == "def":
                m = _DEF.match(value)
                cur.definition = m.group(1).replace('\\"', '"') if m else value
            elif tag == "synonym":
                m = _SYN.match(value)
                if m:
                    cur.synonyms.append((m.group(1).replace('\\"', '"'), m.group(2), m.group(3)))
            elif tag == "is_a":
                cur.parents.append(value.split()[0])
            elif tag == "xref":
                cur.xrefs.append(value.split()[0])
            elif tag == "is_obsolete":
                cur.obsolete = value == "true"
    if not terms:
        raise TerminologyError("no [Term] stanzas found: not an OBO file?", path)
    return header, terms


def import_obo(path: Path, *, system: str | None = None, licence: str = "",
               include_obsolete: bool = False) -> TerminologyData:
    """One concept per term (code = the term id), EXACT synonyms, layperson synonyms, is_a parents."""
    path = Path(path)
    header, terms = read_obo(path)
    system = system or header.get("ontology", path.stem).lower()
    data = TerminologyData()
    data.sources.append(Source.of_file(system, path, version=header.get("data-version", ""),
                                       licence=licence))
    seen: dict[str, int] = {}
    for t in terms:
        if t.obsolete and not include_obsolete:
            continue
        if t.id in seen:
            raise TerminologyError(f"duplicate term id {t.id} (first at line {seen[t.id]})", path, t.line)
        seen[t.id] = t.line
        if not t.name:
            raise TerminologyError(f"term {t.id} has no name", path, t.line)
        data.add_concept(system, t.id, t.name, kind="term", parents=t.parents,
                         active=not t.obsolete, source=system)
        for text, scope, typ in t.synonyms:
            if typ == "layperson":
                data.add_synonym(system, t.id, text, "lay", system)
            elif scope == "EXACT":
                data.add_synonym(system, t.id, text, "abbreviation" if typ == "abbreviation" else "synonym", system)
        if t.definition:
            data.definitions.append({"system": system, "code": t.id, "text": t.definition,
                                     "type": "description", "source": system})
    return data
