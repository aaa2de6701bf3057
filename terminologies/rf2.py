"""Import a SNOMED CT RF2 **Snapshot** release (International or a national edition).

Files are found by prefix anywhere under the path, whatever the edition suffix
(``sct2_Concept_Snapshot_INT_20240101.txt``, ``sct2_Description_Snapshot-en_US1000124_...``):

- ``sct2_Concept_Snapshot*``: concepts; inactive ones are dropped (``include_inactive`` keeps them);
- ``sct2_Description_Snapshot*``: the fully specified name (its semantic tag becomes the kind)
  and synonyms; inactive descriptions are dropped;
- ``der2_cRefset_LanguageSnapshot*``: the preferred term per language refset (``lang="us"`` or
  ``"gb"``); only descriptions acceptable or preferred in that refset are kept;
- ``sct2_Relationship_Snapshot*``: active inferred IS-A rows give the parents;
- ``sct2_TextDefinition_Snapshot*`` (optional): text definitions.

Every identifier is checked (Verhoeff check digit); a bad row stops the import with the file
and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from .index import Source, TerminologyData, TerminologyError
from .textio import read_tsv
from .verhoeff import is_sctid

FSN = "900000000000003001"
SYNONYM = "900000000000013009"
IS_A = "116680003"
INFERRED = "900000000000011006"
PREFERRED = "900000000000548007"
ACCEPTABLE = "900000000000549004"
LANG_REFSETS = {"us": "900000000000509007", "gb": "900000000000508004"}
_TAG = re.compile(r"\s*\(([^()]+)\)\s*$")

SNOMED_ATTRIBUTION = ("This material includes SNOMED Clinical Terms (SNOMED CT) which is used by "
                      "permission of SNOMED International. SNOMED CT is a registered trademark of "
                      "SNOMED International.")


def split_fsn(fsn: str) -> tuple[str, str]:
    """("Myocardial infarction", "disorder") from "Myocardial infarction (disorder)"."""
    m = _TAG.search(fsn)
    return (fsn[:m.start()].strip(), m.group(1)) if m else (fsn.strip(), "")


def find_files(root: Path, prefix: str, *, required: bool = True) -> list[Path]:
    if root.is_file():
        root = root.parent
    found = sorted(p for p in root.rglob(f"{prefix}*") if p.is_file() and p.suffix == ".txt")
    if prefix == "sct2_Relationship_Snapshot":
        found = [p for p in found if "Concrete" not in p.name and "Stated" not in p.name]
    if required and not found:
        raise TerminologyError(f"no {prefix}* file found under this folder: is it an RF2 release "
                               "with a Snapshot folder?", root)
    return found


def _check_id(value: str, path: Path, line: int, what: str) -> None:
    if not is_sctid(value):
        raise TerminologyError(f"{what} {value!r} is not a valid SNOMED CT id (check digit)", path, line)


def import_rf2(path: str | Path, *, lang: str = "us", include_inactive: bool = False,
               system: str = "snomed") -> TerminologyData:
    root = Path(path)
    if not root.exists():
        raise TerminologyError("RF2 path not found", root)
    if lang not in LANG_REFSETS:
        raise TerminologyError(f"unknown language {lang!r}: use one of {', '.join(LANG_REFSETS)}")
    refset = LANG_REFSETS[lang]

    concepts: dict[str, bool] = {}
    versions: set[str] = set()
    concept_files = find_files(root, "sct2_Concept_Snapshot")
    for f in concept_files:
        for n, row in read_tsv(f, ("id", "effectiveTime", "active")):
            _check_id(row["id"], f, n, "concept id")
            if row["id"] in concepts:
                raise TerminologyError(f"duplicate concept id {row['id']} in a Snapshot", f, n)
            concepts[row["id"]] = row["active"] == "1"
            versions.add(row["effectiveTime"])

    # language refset: description id -> acceptability in the chosen dialect
    accept: dict[str, str] = {}
    lang_files = find_files(root, "der2_cRefset_LanguageSnapshot", required=False)
    for f in lang_files:
        for n, row in read_tsv(f, ("active", "refsetId", "referencedComponentId", "acceptabilityId")):
            if row["active"] == "1" and row["refsetId"] == refset:
                accept[row["referencedComponentId"]] = row["acceptabilityId"]
    if lang_files and not accept:
        raise TerminologyError(f"the language refset has no active rows for {lang!r} "
                               f"({refset}); try --lang {'gb' if lang == 'us' else 'us'}", lang_files[0])

    fsn: dict[str, str] = {}
    preferred: dict[str, str] = {}
    synonyms: dict[str, list[tuple[str, str]]] = {}
    for f in find_files(root, "sct2_Description_Snapshot"):
        for n, row in read_tsv(f, ("id", "active", "conceptId", "languageCode", "typeId", "term")):
            _check_id(row["id"], f, n, "description id")
            cid = row["conceptId"]
            if row["active"] != "1" or cid not in concepts:
                continue
            if not (concepts[cid] or include_inactive):
                continue
            acc = accept.get(row["id"]) if lang_files else PREFERRED if row["typeId"] == FSN else ACCEPTABLE
            if row["typeId"] == FSN:
                if acc is not None or cid not in fsn:
                    fsn[cid] = row["term"]
            elif row["typeId"] == SYNONYM and acc is not None:
                if acc == PREFERRED:
                    preferred[cid] = row["term"]
                synonyms.setdefault(cid, []).append((row["term"], row["languageCode"]))

    parents: dict[str, list[str]] = {}
    for f in find_files(root, "sct2_Relationship_Snapshot"):
        for n, row in read_tsv(f, ("active", "sourceId", "destinationId", "typeId", "characteristicTypeId")):
            if row["active"] != "1" or row["typeId"] != IS_A or row["characteristicTypeId"] != INFERRED:
                continue
            _check_id(row["sourceId"], f, n, "sourceId")
            _check_id(row["destinationId"], f, n, "destinationId")
            parents.setdefault(row["sourceId"], []).append(row["destinationId"])

    definitions: dict[str, list[str]] = {}
    for f in find_files(root, "sct2_TextDefinition_Snapshot", required=False):
        for n, row in read_tsv(f, ("id", "active", "conceptId", "term")):
            if row["active"] == "1" and row["conceptId"] in concepts:
                definitions.setdefault(row["conceptId"], []).append(row["term"])

    data = TerminologyData()
    version = max(versions) if versions else ""
    data.sources.append(Source.of_file(
        f"SNOMED CT RF2 ({concept_files[0].stem.split('_', 3)[-1]})", concept_files[0],
        version=version, licence="SNOMED CT Affiliate Licence (your own release)",
        attribution=SNOMED_ATTRIBUTION))
    src = f"rf2:{lang}"
    for cid, active in concepts.items():
        if not (active or include_inactive):
            continue
        if cid not in fsn and cid not in preferred:
            continue  # no description in this language/dialect
        term, tag = split_fsn(fsn.get(cid, ""))
        data.add_concept(system, cid, preferred.get(cid) or term, kind=tag,
                         parents=[p for p in parents.get(cid, []) if p in concepts],
                         active=active, source=src)
        for text, code in synonyms.get(cid, []):
            if text != preferred.get(cid):
                data.add_synonym(system, cid, text, "synonym", src, code)
        if term and term != preferred.get(cid):
            data.add_synonym(system, cid, term, "synonym", src)
        for d in definitions.get(cid, []):
            data.definitions.append({"system": system, "code": cid, "text": d,
                                     "type": "text_definition", "source": src})
    return data
