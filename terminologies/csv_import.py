"""Import a terminology from a CSV/TSV table: code, term, and optional synonyms, parent,
definition, kind columns (several synonyms or parents separated by ``|``)."""

from __future__ import annotations

from pathlib import Path

from .index import Source, TerminologyData, TerminologyError
from .textio import read_tsv


def import_csv(path: str | Path, *, system: str, code_column: str = "code",
               term_column: str = "term", licence: str = "", version: str = "") -> TerminologyData:
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    data = TerminologyData()
    data.sources.append(Source.of_file(system, path, version=version, licence=licence))
    seen: dict[str, int] = {}
    for n, row in read_tsv(path, (code_column, term_column), delimiter=delimiter):
        code, term = row[code_column].strip(), row[term_column].strip()
        if not code or not term:
            raise TerminologyError(f"empty {code_column if not code else term_column}", path, n)
        if code in seen:
            raise TerminologyError(f"duplicate code {code} (first on line {seen[code]})", path, n)
        seen[code] = n
        parents = [p.strip() for p in (row.get("parent") or row.get("parents") or "").split("|") if p.strip()]
        data.add_concept(system, code, term, kind=row.get("kind", "") or "", parents=parents,
                         source=system)
        for s in (row.get("synonyms") or "").split("|"):
            if s.strip():
                data.add_synonym(system, code, s.strip(), "synonym", system)
        for s in (row.get("lay") or "").split("|"):
            if s.strip():
                data.add_synonym(system, code, s.strip(), "lay", system)
        if (row.get("definition") or "").strip():
            data.definitions.append({"system": system, "code": code, "text": row["definition"].strip(),
                                     "type": "description", "source": system})
    if not seen:
        raise TerminologyError("no rows", path)
    return data
