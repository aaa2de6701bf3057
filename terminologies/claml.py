"""Import a WHO ClaML file (ICF, ICD-10, ICD-O ...): classes, labels, hierarchy, definitions."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from .index import Source, TerminologyData, TerminologyError

SYNONYM_RUBRICS = {"preferredLong", "inclusion", "modifierlink"}


def _text(el) -> str:
    return " ".join("".join(el.itertext()).split())


def import_claml(path: str | Path, *, system: str | None = None, lang: str = "en") -> TerminologyData:
    """One concept per ``<Class>``: preferred label as term, ``SuperClass`` as parents,
    ``definition`` rubrics as definitions, ``inclusion``/``preferredLong`` as synonyms."""
    path = Path(path)
    if not path.is_file():
        raise TerminologyError("ClaML file not found", path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise TerminologyError(f"not well-formed XML ({e})", path, e.position[0]) from e
    if root.tag != "ClaML":
        raise TerminologyError(f"root element is <{root.tag}>, not <ClaML>", path)
    title = root.find("Title")
    name = (title.get("name") if title is not None else None) or path.stem
    version = (title.get("version") if title is not None else "") or ""
    system = system or name.lower()
    data = TerminologyData()
    data.sources.append(Source.of_file(name, path, version=version,
                                       licence="as licensed to you by the publisher"))
    seen: set[str] = set()
    for cls in root.iter("Class"):
        code = cls.get("code")
        if not code:
            raise TerminologyError("a <Class> without a code attribute", path)
        if code in seen:
            raise TerminologyError(f"duplicate class code {code}", path)
        seen.add(code)
        label, synonyms, definitions = None, [], []
        for rubric in cls.findall("Rubric"):
            kind = rubric.get("kind")
            for lab in rubric.findall("Label"):
                lab_lang = lab.get("{http://www.w3.org/XML/1998/namespace}lang")
                if lab_lang and lab_lang != lang:
                    continue
                text = _text(lab)
                if not text:
                    continue
                if kind == "preferred" and label is None:
                    label = text
                elif kind in SYNONYM_RUBRICS:
                    synonyms.append(text)
                elif kind == "definition":
                    definitions.append(text)
        if label is None:
            raise TerminologyError(f"class {code} has no preferred label in {lang!r}", path)
        parents = [s.get("code") for s in cls.findall("SuperClass") if s.get("code")]
        data.add_concept(system, code, label, kind=cls.get("kind", ""), parents=parents, source=system)
        for s in synonyms:
            data.add_synonym(system, code, s, "synonym", system)
        for d in definitions:
            data.definitions.append({"system": system, "code": code, "text": d,
                                     "type": "text_definition", "source": system})
    if not seen:
        raise TerminologyError("no <Class> elements found", path)
    return data
