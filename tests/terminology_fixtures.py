"""Small terminology sources written by the team for tests: an RF2 Snapshot, a ClaML file,
an OBO file and a CSV table. All identifiers carry valid Verhoeff check digits."""

from __future__ import annotations

from pathlib import Path

from medtext.terminologies.verhoeff import check_digit

US, GB = "900000000000509007", "900000000000508004"
PREF, ACC = "900000000000548007", "900000000000549004"
FSN, SYN, DEF = "900000000000003001", "900000000000013009", "900000000000550004"
IS_A, INFERRED, STATED = "116680003", "900000000000011006", "900000000000010007"
FINDING_SITE = "363698007"
MODULE = "900000000000207008"

ROOT, FINDING, DISEASE, HEART_DISEASE, MI = "138875005", "404684003", "64572001", "56265001", "22298006"
HEART, HEMORRHAGE = "80891009", "50960005"
RETIRED = "99990011" + check_digit("99990011")  # an inactive concept
ORPHAN_OF_INACTIVE_ISA = MI

CONCEPTS = [  # id, active, fsn, us preferred, gb preferred, other synonyms (both dialects)
    (ROOT, "1", "SNOMED CT Concept (SNOMED RT+CTV3)", "SNOMED CT Concept", None, []),
    (FINDING, "1", "Clinical finding (finding)", "Clinical finding", None, []),
    (DISEASE, "1", "Disease (disorder)", "Disease", None, ["Disorder"]),
    (HEART_DISEASE, "1", "Heart disease (disorder)", "Heart disease", None, ["Cardiac disease"]),
    (MI, "1", "Myocardial infarction (disorder)", "Myocardial infarction", None,
     ["Heart attack", "Infarction of heart"]),
    (HEART, "1", "Heart structure (body structure)", "Heart structure", None, ["Heart"]),
    (HEMORRHAGE, "1", "Hemorrhage (morphologic abnormality)", "Hemorrhage", "Haemorrhage", ["Bleeding"]),
    (RETIRED, "0", "Old retired thing (disorder)", "Old retired thing", None, []),
]
ISA = [(FINDING, ROOT), (DISEASE, FINDING), (HEART_DISEASE, DISEASE), (MI, HEART_DISEASE),
       (HEART, ROOT), (HEMORRHAGE, ROOT)]


def _ids(partition: str):
    n = 1000
    while True:
        n += 1
        stem = f"{n}{partition}"
        yield stem + check_digit(stem)


def write_rf2(root: Path, *, crlf: bool = True) -> Path:
    """An RF2 release folder: Snapshot/Terminology + Snapshot/Refset/Language, INT and a US extension file."""
    term = root / "Snapshot" / "Terminology"
    lang = root / "Snapshot" / "Refset" / "Language"
    term.mkdir(parents=True)
    lang.mkdir(parents=True)
    eol = "\r\n" if crlf else "\n"

    def write(path: Path, header: list[str], rows: list[list[str]]) -> None:
        path.write_text(eol.join("\t".join(r) for r in [header, *rows]) + eol, encoding="utf-8",
                        newline="")

    write(term / "sct2_Concept_Snapshot_INT_20250101.txt",
          ["id", "effectiveTime", "active", "moduleId", "definitionStatusId"],
          [[c[0], "20250101", c[1], MODULE, "900000000000074008"] for c in CONCEPTS])
    desc_ids, ref_ids = _ids("11"), _ids("99")
    desc_int, desc_us, refset = [], [], []
    dh = ["id", "effectiveTime", "active", "moduleId", "conceptId", "languageCode", "typeId", "term",
          "caseSignificanceId"]
    for cid, _active, fsn, us, gb, others in CONCEPTS:
        def add(text: str, type_id: str, us_acc: str | None, gb_acc: str | None, active: str = "1",
                target: list = desc_int) -> None:
            did = next(desc_ids)
            target.append([did, "20250101", active, MODULE, cid, "en", type_id, text, "900000000000448009"])
            for ref, acc in ((US, us_acc), (GB, gb_acc)):
                if acc:
                    refset.append([next(ref_ids), "20250101", "1", MODULE, ref, did, acc])

        add(fsn, FSN, PREF, PREF)
        if gb:  # dialect-specific preferred terms: the US one comes from the US extension file
            add(us, SYN, PREF, None, target=desc_us)
            add(gb, SYN, None, PREF)
        else:
            add(us, SYN, PREF, PREF)
        for o in others:
            add(o, SYN, ACC, ACC)
        if cid == MI:
            add("Cardiac infarction", SYN, ACC, ACC, active="0")  # inactive description
    write(term / "sct2_Description_Snapshot-en_INT_20250101.txt", dh, desc_int)
    write(term / "sct2_Description_Snapshot-en_US1000124_20250301.txt", dh, desc_us)
    write(term / "sct2_TextDefinition_Snapshot-en_INT_20250101.txt", dh,
          [[next(desc_ids), "20250101", "1", MODULE, MI, "en", DEF,
            "Necrosis of heart muscle caused by an interruption of its blood supply.", "900000000000448009"]])
    rel_ids = _ids("12")
    rels = [[next(rel_ids), "20250101", "1", MODULE, s, d, "0", IS_A, INFERRED, "900000000000451002"]
            for s, d in ISA]
    rels.append([next(rel_ids), "20250101", "0", MODULE, MI, FINDING, "0", IS_A, INFERRED,
                 "900000000000451002"])  # inactive IS-A
    rels.append([next(rel_ids), "20250101", "1", MODULE, MI, HEART, "1", FINDING_SITE, INFERRED,
                 "900000000000451002"])  # not IS-A
    rels.append([next(rel_ids), "20250101", "1", MODULE, MI, ROOT, "0", IS_A, STATED,
                 "900000000000451002"])  # stated, not inferred
    write(term / "sct2_Relationship_Snapshot_INT_20250101.txt",
          ["id", "effectiveTime", "active", "moduleId", "sourceId", "destinationId", "relationshipGroup",
           "typeId", "characteristicTypeId", "modifierId"], rels)
    write(lang / "der2_cRefset_LanguageSnapshot-en_INT_20250101.txt",
          ["id", "effectiveTime", "active", "moduleId", "refsetId", "referencedComponentId",
           "acceptabilityId"], refset)
    return root


CLAML = """<?xml version="1.0" encoding="UTF-8"?>
<ClaML version="2.0.0">
  <Title name="ICF" version="test-1">Test functioning classification</Title>
  <Class code="d" kind="component"><Rubric kind="preferred"><Label xml:lang="en">Activities and participation</Label></Rubric></Class>
  <Class code="d4" kind="chapter"><SuperClass code="d"/><Rubric kind="preferred"><Label xml:lang="en">Getting around</Label></Rubric></Class>
  <Class code="d450" kind="category"><SuperClass code="d4"/>
    <Rubric kind="preferred"><Label xml:lang="en">Walking</Label></Rubric>
    <Rubric kind="definition"><Label xml:lang="en">Moving along on foot, step by step.</Label></Rubric>
    <Rubric kind="inclusion"><Label xml:lang="en">strolling</Label></Rubric>
  </Class>
  <Class code="d4500" kind="category"><SuperClass code="d450"/>
    <Rubric kind="preferred"><Label xml:lang="en">Walking <Fragment>short</Fragment> distances</Label></Rubric>
  </Class>
</ClaML>
"""

OBO = """format-version: 1.2
data-version: test/2025-01-01
ontology: tp

[Term]
id: TP:0000001
name: Phenotypic abnormality

[Term]
id: TP:0000002
name: Myocardial infarction
def: "Death of part of the heart muscle." []
synonym: "Heart attack" EXACT layperson []
synonym: "MI" EXACT abbreviation []
synonym: "Heart problem" BROAD []
is_a: TP:0000001 ! Phenotypic abnormality
xref: SNOMEDCT_US:22298006

[Term]
id: TP:0000003
name: Old term
is_obsolete: true

[Typedef]
id: part_of
name: part of
"""

CSV = """code,term,synonyms,parent,definition
A1,Local problem list,problems,,A site-specific grouping.
A2,Chest pain,CP|chest discomfort,A1,Pain felt in the chest.
A3,Shortness of breath,SOB|dyspnoea,A1,
"""
