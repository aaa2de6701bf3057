"""FHIR R4 export (medtext.records.fhir): mapping, provenance, validation and the per-record writer.

Records are built by hand and checked with ``validate_record``; every bundle a test builds is
checked with ``validate_bundle`` (fhir.resources R4B models)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest

from medtext.errors import ConfigError, SchemaError
from medtext.records import validate_record
from medtext.records import fhir as fhir_mod
from medtext.records.fhir import (EXT, FhirRecordWriter, record_to_bundle, safe_name, validate_bundle)

pytest.importorskip("fhir.resources.R4B.bundle")


NOTE = ("Chest pain since Monday. No fever. Possible pneumonia. Mother had breast cancer. "
        "Walking independently. Troponin ordered. Underwent appendectomy. Taking aspirin daily. "
        "Physical therapy. Left lung clear.")


def concept(system: str, code: str, display: str | None, score: float = 1.0) -> dict:
    return {"system": system, "code": code, "display": display, "score": score}


def entity(eid: str, text: str, label: str, *, note: str = NOTE, assertion: str | None = "present",
           flags: list[str] | None = None, concepts: list[dict] | None = None, section: str | None = None,
           lay=None, occurrence: int = 0) -> dict:
    """An entity over the ``occurrence``-th match of ``text`` in ``note``."""
    start = -1
    for _ in range(occurrence + 1):
        start = note.index(text, start + 1)
    concepts = concepts or []
    return {"id": eid, "start": start, "end": start + len(text), "text": text, "label": label,
            "section": section, "assertion": assertion, "flags": flags or [],
            "kb_id": f"{concepts[0]['system']}:{concepts[0]['code']}" if concepts else None,
            "concepts": concepts, "lay": lay}


def make_record(entities: list[dict], *, text: str | None = NOTE, doc_id: str = "note_1.txt",
                relations: list[dict] | None = None, errors: list[dict] | None = None,
                lay_text: str | None = None) -> dict:
    """A schema-valid record (checked with validate_record)."""
    full = NOTE if text is None else text
    rec = {
        "schema_version": "1.1", "doc_id": doc_id,
        "source": {"path": f"notes/{doc_id}", "format": "txt", "row": None, "encoding": "utf-8"},
        "text_sha256": hashlib.sha256(full.encode("utf-8")).hexdigest(),
        "n_chars": len(full), "pages": 1, "warnings": [], "text": text, "lines": [],
        "sections": [], "sentences": [{"start": 0, "end": len(full)}],
        "entities": entities, "relations": relations or [], "errors": errors or [],
        "lay_text": lay_text,
        "pipeline": {"name": "en_medtext_default", "version": "0.1.0", "medtext_version": "0.1.0",
                     "components": []},
    }
    validate_record(rec)
    return rec


def bundle_of(rec: dict, **kw) -> dict:
    """record_to_bundle + validate_bundle: every bundle of the tests is valid FHIR R4."""
    bundle = record_to_bundle(rec, **kw)
    validate_bundle(bundle)
    return bundle


def by_entity(bundle: dict) -> dict[str, dict]:
    """entity id -> resource (from the text-offsets extension)."""
    out = {}
    for entry in bundle["entry"]:
        for ext in entry["resource"].get("extension", []):
            if ext["url"] == EXT + "text-offsets":
                eid = [e["valueString"] for e in ext["extension"] if e["url"] == "entity-id"]
                if eid:
                    out[eid[0]] = entry["resource"]
    return out


def ext_values(resource: dict, url: str) -> dict[str, list]:
    """Nested values of the extension ``EXT + url`` (first one) as name -> list of values."""
    ext = next(e for e in resource["extension"] if e["url"] == EXT + url)
    out: dict[str, list] = {}
    for part in ext["extension"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        out.setdefault(part["url"], []).append(value)
    return out


def unmapped(bundle: dict) -> dict[str, str]:
    doc = bundle["entry"][0]["resource"]
    out = {}
    for ext in doc.get("extension", []):
        if ext["url"] == EXT + "unmapped-entity":
            parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in ext["extension"]}
            out[parts["entity-id"]] = parts["reason"]
    return out


SNOMED_CP = concept("snomed", "29857009", "Chest pain")
SNOMED_FEVER = concept("snomed", "386661006", "Fever")
SNOMED_PNEUMONIA = concept("snomed", "233604007", "Pneumonia")


def full_record(**kw) -> dict:
    ents = [
        entity("T1", "Chest pain", "PROBLEM", concepts=[SNOMED_CP, concept("snomed", "102589003", "Atypical chest pain", 0.8)]),
        entity("T2", "fever", "PROBLEM", assertion="negated", flags=["negated"], concepts=[SNOMED_FEVER]),
        entity("T3", "pneumonia", "PROBLEM", assertion="uncertain", flags=["uncertain"], concepts=[SNOMED_PNEUMONIA]),
        entity("T4", "breast cancer", "PROBLEM", assertion="family", flags=["family"], section="family_history",
               concepts=[concept("snomed", "254837009", "Malignant neoplasm of breast")]),
        entity("T5", "Walking", "FUNCTION", concepts=[concept("icf", "d450", "Walking")]),
        entity("T6", "Troponin", "TEST", assertion="hypothetical", flags=["hypothetical"], section="labs",
               concepts=[concept("snomed", "105000003", "Troponin measurement")]),
        entity("T7", "appendectomy", "PROCEDURE", assertion="historical", flags=["historical"],
               concepts=[concept("snomed", "80146002", "Appendectomy")]),
        entity("T8", "aspirin", "DRUG", concepts=[concept("snomed", "387458008", "Aspirin")]),
        entity("T9", "Physical therapy", "TREATMENT"),
        entity("T10", "lung", "ANATOMY", concepts=[concept("snomed", "39607008", "Lung structure")]),
    ]
    return make_record(ents, **kw)


# --- mapping --------------------------------------------------------------------------------

def test_mapping_per_label():
    bundle = bundle_of(full_record())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert bundle["entry"][0]["resource"]["resourceType"] == "DocumentReference"
    res = by_entity(bundle)
    assert {k: v["resourceType"] for k, v in res.items()} == {
        "T1": "Condition", "T2": "Condition", "T3": "Condition", "T4": "FamilyMemberHistory",
        "T5": "Observation", "T6": "Observation", "T7": "Procedure", "T8": "MedicationStatement",
        "T9": "Procedure"}
    assert unmapped(bundle) == {"T10": "anatomy-without-located-at"}
    # FUNCTION: survey observation, ICF coding with the documented URI, a boolean finding
    fn = res["T5"]
    assert fn["category"][0]["coding"][0]["code"] == "survey"
    assert fn["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icf"
    assert fn["code"]["coding"][0]["code"] == "d450" and fn["valueBoolean"] is True
    # TEST in the labs section: laboratory, hypothetical -> registered, no value
    test = res["T6"]
    assert test["category"][0]["coding"][0]["code"] == "laboratory"
    assert test["status"] == "registered" and not any(k.startswith("value") for k in test)
    assert res["T7"]["status"] == "completed"
    med = res["T8"]
    assert med["status"] == "active"
    assert med["medicationCodeableConcept"]["coding"][0]["code"] == "387458008"
    assert res["T9"]["status"] == "unknown" and res["T9"]["code"] == {"text": "Physical therapy"}


def test_radiology_observations_and_body_sites():
    note = "Small hematoma in the left parietal scalp. No fracture. Possible contusion."
    ents = [entity("T1", "hematoma", "OBS-DP", note=note, assertion=None),
            entity("T2", "parietal scalp", "ANAT-DP", note=note, assertion=None),
            entity("T3", "fracture", "OBS-DA", note=note, assertion=None),
            entity("T4", "contusion", "OBS-U", note=note, assertion=None),
            entity("T5", "left", "ANAT-DP", note=note, assertion=None)]
    rels = [{"head": "T1", "tail": "T2", "label": "located_at", "score": 0.9},
            {"head": "T1", "tail": "T4", "label": "suggestive_of", "score": 0.7},
            {"head": "T5", "tail": "T2", "label": "modify", "score": 0.8}]
    bundle = bundle_of(make_record(ents, text=note, relations=rels))
    res = by_entity(bundle)
    assert set(res) == {"T1", "T3", "T4"}
    for r in res.values():
        assert r["resourceType"] == "Observation"
        assert r["category"][0]["coding"][0]["code"] == "imaging"
    interp = {k: r["interpretation"][0]["coding"][0]["code"] for k, r in res.items()}
    assert interp == {"T1": "POS", "T3": "NEG", "T4": "IND"}
    assert res["T1"]["valueBoolean"] is True and res["T3"]["valueBoolean"] is False
    assert "valueBoolean" not in res["T4"]
    # located_at -> bodySite with the anatomy's text and offsets; the anatomy has no resource
    site = res["T1"]["bodySite"]
    assert site["text"] == "parietal scalp"
    assert ext_values(site, "text-offsets") == {"start": [ents[1]["start"]], "end": [ents[1]["end"]],
                                                "entity-id": ["T2"]}
    assert unmapped(bundle) == {"T5": "anatomy-without-located-at"}
    # suggestive_of: the suggested observation is derived from the suggesting one
    t1_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is res["T1"])
    assert {"reference": t1_url, "type": "Observation"} in res["T4"]["derivedFrom"]
    rel = ext_values(res["T1"], "relation")
    assert rel["label"] == ["located_at"] and rel["target-entity-id"] == ["T2"]


@pytest.mark.parametrize("assertion,flags,ver,clinical", [
    ("present", [], "confirmed", "active"),
    (None, [], "confirmed", "active"),
    ("negated", ["negated"], "refuted", None),
    ("uncertain", ["uncertain"], "provisional", None),
    ("hypothetical", ["hypothetical"], "unconfirmed", None),
    ("conditional", ["conditional"], "unconfirmed", None),
    ("historical", ["historical"], "confirmed", None),
    ("negated", ["negated", "historical"], "refuted", None),
])
def test_condition_status(assertion, flags, ver, clinical):
    rec = make_record([entity("T1", "fever", "PROBLEM", assertion=assertion, flags=flags,
                              concepts=[SNOMED_FEVER])])
    cond = by_entity(bundle_of(rec))["T1"]
    assert cond["resourceType"] == "Condition"
    assert cond["verificationStatus"]["coding"][0]["code"] == ver
    assert cond.get("clinicalStatus", {}).get("coding", [{}])[0].get("code") == clinical
    got = ext_values(cond, "assertion") if assertion or flags else {}
    assert got.get("flag", []) == flags
    assert got.get("status", [None]) == [assertion]


def test_negated_problem_is_refuted_and_uncertain_is_provisional():
    res = by_entity(bundle_of(full_record()))
    assert res["T2"]["verificationStatus"]["coding"][0]["code"] == "refuted"
    assert "clinicalStatus" not in res["T2"]
    assert res["T3"]["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert res["T1"]["clinicalStatus"]["coding"][0]["code"] == "active"


@pytest.mark.parametrize("assertion,procedure,medication,test", [
    ("present", "completed", "active", "final"),
    ("negated", "not-done", "not-taken", "cancelled"),
    ("hypothetical", "preparation", "intended", "registered"),
    ("historical", "completed", "completed", "final"),
    ("uncertain", "unknown", "unknown", "preliminary"),
])
def test_procedure_medication_test_status(assertion, procedure, medication, test):
    flags = [] if assertion == "present" else [assertion]
    rec = make_record([entity("T1", "appendectomy", "PROCEDURE", assertion=assertion, flags=flags),
                       entity("T2", "aspirin", "DRUG", assertion=assertion, flags=flags),
                       entity("T3", "Troponin", "TEST", assertion=assertion, flags=flags)])
    res = by_entity(bundle_of(rec))
    assert res["T1"]["status"] == procedure
    assert res["T2"]["status"] == medication
    assert res["T3"]["status"] == test
    if assertion == "negated":
        assert res["T3"]["dataAbsentReason"]["coding"][0]["code"] == "not-performed"


def test_family_history():
    bundle = bundle_of(full_record())
    fmh = by_entity(bundle)["T4"]
    assert fmh["resourceType"] == "FamilyMemberHistory"
    assert fmh["status"] == "partial"
    assert fmh["relationship"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "FAMMEMB",
        "display": "family member"}
    assert fmh["condition"][0]["code"]["coding"][0]["code"] == "254837009"
    assert fmh["patient"]["identifier"]["value"] == "note_1.txt"
    source = next(e for e in fmh["extension"] if e["url"] == EXT + "source-document")
    assert source["valueReference"]["reference"] == bundle["entry"][0]["fullUrl"]


def test_family_mentions_without_fhir_form_are_counted():
    rec = make_record([
        entity("T1", "Troponin", "TEST", assertion="family", flags=["family"]),
        entity("T2", "breast cancer", "PROBLEM", assertion="family", flags=["negated", "family"])])
    bundle = bundle_of(rec)
    assert by_entity(bundle) == {}
    assert unmapped(bundle) == {"T1": "family-non-problem", "T2": "family-negated"}


def test_entity_without_concepts_has_code_text_only():
    rec = make_record([entity("T1", "Chest pain", "PROBLEM")])
    cond = by_entity(bundle_of(rec))["T1"]
    assert cond["code"] == {"text": "Chest pain"}


def test_codings_top_concept_candidates_and_crossmap():
    calls = []

    def crossmap(system, code):
        calls.append((system, code))
        return [("icd10cm", "R07.9", "Chest pain, unspecified"), ("snomed", "29857009", None)]

    rec = full_record()
    cond = by_entity(bundle_of(rec, crossmap=crossmap))["T1"]
    first, *rest = cond["code"]["coding"]
    assert first["system"] == "http://snomed.info/sct" and first["code"] == "29857009"
    assert first["userSelected"] is True and first["display"] == "Chest pain"
    assert first["extension"] == [{"url": EXT + "link-score", "valueDecimal": 1.0}]
    # the crossmap coding follows; a duplicate of the top concept is dropped
    assert rest == [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R07.9",
                     "display": "Chest pain, unspecified"}]
    assert cond["code"]["text"] == "Chest pain"
    assert ("snomed", "29857009") in calls
    # the other linking candidate is an extension, not a coding
    cand = ext_values(cond, "concept-candidate")
    assert cand["coding"][0]["code"] == "102589003" and cand["score"] == [0.8]
    assert all(c["code"] != "102589003" for c in cond["code"]["coding"])


def test_bad_crossmap_is_a_config_error():
    with pytest.raises(ConfigError, match="crossmap"):
        record_to_bundle(full_record(), crossmap=lambda s, c: [("icd10cm", "R07.9")])
    with pytest.raises(ConfigError, match="crossmap.*failed"):
        record_to_bundle(full_record(), crossmap=lambda s, c: {}[s])


def test_system_uris():
    assert fhir_mod.system_uri("snomed") == "http://snomed.info/sct"
    assert fhir_mod.system_uri("icf") == "http://hl7.org/fhir/sid/icf"
    assert fhir_mod.system_uri("icd10cm") == "http://hl7.org/fhir/sid/icd-10-cm"
    assert fhir_mod.system_uri("mesh") == "urn:medtext:system:mesh"
    assert fhir_mod.system_uri("my terms") == "urn:medtext:system:my%20terms"


# --- provenance -----------------------------------------------------------------------------

def test_offsets_extension_matches_entities():
    rec = full_record()
    res = by_entity(bundle_of(rec))
    for ent in rec["entities"]:
        if ent["id"] not in res:
            continue
        offsets = ext_values(res[ent["id"]], "text-offsets")
        assert offsets == {"start": [ent["start"]], "end": [ent["end"]], "entity-id": [ent["id"]]}
        assert NOTE[offsets["start"][0]:offsets["end"][0]] == ent["text"]
        mention = ext_values(res[ent["id"]], "mention")
        assert mention["label"] == [ent["label"]]


def test_references_resolve_within_bundle():
    bundle = bundle_of(full_record())
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == "urn:uuid:" + entry["resource"]["id"]
    refs = list(fhir_mod._references([e["resource"] for e in bundle["entry"]]))
    assert refs and all(r in urls for r in refs)
    doc_url = urls[0]
    res = by_entity(bundle)
    assert res["T1"]["evidence"][0]["detail"][0]["reference"] == doc_url
    assert res["T5"]["derivedFrom"][0]["reference"] == doc_url
    assert res["T8"]["derivedFrom"][0]["reference"] == doc_url
    proc_src = next(e for e in res["T7"]["extension"] if e["url"] == EXT + "source-document")
    assert proc_src["valueReference"]["reference"] == doc_url
    # a dangling reference is caught
    broken = copy.deepcopy(bundle)
    broken["entry"][1]["resource"]["evidence"][0]["detail"][0]["reference"] = "urn:uuid:" + "0" * 32
    with pytest.raises(SchemaError, match="no entry of the bundle"):
        validate_bundle(broken)


def test_bundle_is_deterministic():
    a = bundle_of(full_record())
    b = bundle_of(full_record())
    assert a == b
    c = bundle_of(full_record(doc_id="note_2.txt"))
    assert c["id"] != a["id"]
    assert not {e["fullUrl"] for e in a["entry"]} & {e["fullUrl"] for e in c["entry"]}


def test_document_reference_with_text():
    bundle = bundle_of(full_record(lay_text="Your chest hurt."))
    doc = bundle["entry"][0]["resource"]
    assert doc["status"] == "current" and doc["docStatus"] == "final"
    assert doc["identifier"] == [{"system": "urn:medtext:doc-id", "value": "note_1.txt"}]
    assert doc["description"] == "notes/note_1.txt"
    att = doc["content"][0]["attachment"]
    assert att["contentType"] == "text/plain; charset=utf-8"
    assert base64.b64decode(att["data"]).decode("utf-8") == NOTE
    assert att["hash"] == base64.b64encode(hashlib.sha1(NOTE.encode()).digest()).decode()
    assert att["size"] == len(NOTE.encode())
    assert base64.b64decode(doc["content"][1]["attachment"]["data"]).decode() == "Your chest hurt."
    sha = next(e for e in doc["extension"] if e["url"] == EXT + "text-sha256")
    assert sha["valueString"] == hashlib.sha256(NOTE.encode()).hexdigest()


def test_record_without_text():
    rec = full_record(text=None)
    bundle = bundle_of(rec)
    att = bundle["entry"][0]["resource"]["content"][0]["attachment"]
    assert "data" not in att and "hash" not in att and "size" not in att
    sha = next(e for e in bundle["entry"][0]["resource"]["extension"] if e["url"] == EXT + "text-sha256")
    assert sha["valueString"] == rec["text_sha256"]
    assert len(by_entity(bundle)) == 9  # the entities still map, with their offsets


def test_default_and_custom_subject():
    rec = full_record()
    res = by_entity(bundle_of(rec))
    assert res["T1"]["subject"] == {"type": "Patient",
                                    "identifier": {"system": "urn:medtext:doc-id", "value": "note_1.txt"},
                                    "display": "patient of document note_1.txt"}
    res = by_entity(bundle_of(rec, subject={"reference": "Patient/123"}))
    assert res["T1"]["subject"] == {"reference": "Patient/123"}
    assert res["T4"]["patient"] == {"reference": "Patient/123"}
    assert res["T7"]["subject"] == {"reference": "Patient/123"}
    with pytest.raises(ConfigError, match="Reference"):
        record_to_bundle(rec, subject="Patient/123")


def test_error_findings_become_detected_issues():
    note = "Diagnosis: pneumonia. Started amoxicillin 50 g."
    ents = [entity("T1", "pneumonia", "PROBLEM", note=note), entity("T2", "amoxicillin", "DRUG", note=note)]
    start = note.index("amoxicillin")
    errors = [{"start": start, "end": start + len("amoxicillin 50 g"), "type": "pharmacotherapy",
               "message": "dose looks too high", "correction": "500 mg", "score": 0.9, "detector": "rules"}]
    bundle = bundle_of(make_record(ents, text=note, errors=errors))
    issues = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue"]
    assert len(issues) == 1
    issue = issues[0]["resource"]
    assert issue["detail"] == "dose looks too high"
    assert issue["code"]["coding"][0]["code"] == "pharmacotherapy"
    implicated = {r["reference"] for r in issue["implicated"]}
    drug_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is by_entity(bundle)["T2"])
    assert implicated == {bundle["entry"][0]["fullUrl"], drug_url}
    assert ext_values(issue, "error-check")["correction"] == ["500 mg"]


def test_bad_records_are_schema_errors():
    rec = full_record()
    with pytest.raises(SchemaError, match="schema_version"):
        record_to_bundle({**rec, "schema_version": "2.0"})
    dup = copy.deepcopy(rec)
    dup["entities"][1]["id"] = "T1"
    with pytest.raises(SchemaError, match="two entities"):
        record_to_bundle(dup)
    with pytest.raises(SchemaError, match="validate_record"):
        record_to_bundle({**rec, "entities": None})


# --- validation -----------------------------------------------------------------------------

def test_validate_bundle_names_the_problem():
    bundle = bundle_of(full_record())
    bad = copy.deepcopy(bundle)
    del bad["entry"][1]["resource"]["subject"]
    with pytest.raises(SchemaError, match=r"entry\.1\.resource\.subject \(Condition\): Field required"):
        validate_bundle(bad)
    bad = copy.deepcopy(bundle)
    bad["entry"][1]["resource"]["resourceType"] = "NoSuchResource"
    with pytest.raises(SchemaError, match="not valid FHIR R4"):
        validate_bundle(bad)
    with pytest.raises(SchemaError, match="Bundle"):
        validate_bundle({"resourceType": "Patient"})


def test_validate_bundle_without_fhir_resources(monkeypatch):
    monkeypatch.setitem(sys.modules, "fhir.resources.R4B.bundle", None)
    with pytest.raises(ConfigError, match=r"pip install 'medtext\[fhir\]'"):
        validate_bundle({"resourceType": "Bundle", "type": "collection"})


def test_bundle_round_trips_through_fhir_resources():
    from fhir.resources.R4B.bundle import Bundle

    for rec in (full_record(), full_record(text=None)):
        bundle = bundle_of(rec)
        model = Bundle.model_validate(bundle)
        assert json.loads(model.model_dump_json()) == bundle
        assert type(model.entry[1].resource).__name__ == "Condition"


# --- writer ---------------------------------------------------------------------------------

def test_safe_name():
    assert safe_name("note_1.txt") == "note_1.txt"
    a, b = safe_name("a/b c.txt"), safe_name("a b/c.txt")
    assert a.startswith("a_b_c.txt-") and b.startswith("a_b_c.txt-") and a != b
    assert safe_name("a_b_c.txt") == "a_b_c.txt"
    assert not safe_name("../x").startswith(".")
    assert len(safe_name("x" * 500)) < 140


def test_writer_one_file_per_record(tmp_path, monkeypatch):
    written = []
    real = fhir_mod.atomic_write_text

    def spy(target, text):
        written.append(Path(target))
        real(target, text)

    monkeypatch.setattr(fhir_mod, "atomic_write_text", spy)
    ids = ["a/b c.txt", "a b/c.txt", "a_b_c.txt", "Note.txt", "note.txt", "plain"]
    batches = [[full_record(doc_id=i) for i in ids[:3]], [full_record(doc_id=i) for i in ids[3:]]]
    writer = FhirRecordWriter(tmp_path, subject={"reference": "Patient/7"})
    assert writer.format == "fhir"
    paths = writer.write(batches)
    folder = tmp_path / "fhir"
    assert paths[-1] == folder / "index.jsonl" and written == paths
    files = paths[:-1]
    assert len(files) == len(ids)
    names = [p.name for p in files]
    assert len({n.casefold() for n in names}) == len(names)  # distinct even on case-insensitive disks
    for p in files:
        assert p.parent == folder and p.suffix == ".json"
        assert all(c.isalnum() or c in "._-" for c in p.stem)
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + ["index.jsonl"])  # no temp files left
    index = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]
    assert [row["doc_id"] for row in index] == ids
    for row, p in zip(index, files):
        assert row["file"] == p.name
        bundle = json.loads(p.read_text(encoding="utf-8"))
        validate_bundle(bundle)
        assert bundle["id"] == row["bundle_id"] and len(bundle["entry"]) == row["entries"]
        assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == row["doc_id"]
        assert bundle["entry"][1]["resource"]["subject"] == {"reference": "Patient/7"}
    assert names[2] == "a_b_c.txt.json" and names[5] == "plain.json"
    # the same run again gives the same files
    again = FhirRecordWriter(tmp_path / "again").write(
        [[full_record(doc_id=i) for i in ids]])
    assert [p.name for p in again] == [p.name for p in paths]


def test_writer_with_crossmap(tmp_path):
    writer = FhirRecordWriter(tmp_path, crossmap=lambda s, c: [("icd10cm", "R07.9", None)] if c == "29857009" else [])
    (path, _index) = writer.write([[full_record()]])
    bundle = json.loads(path.read_text())
    validate_bundle(bundle)
    codes = [c["code"] for c in by_entity(bundle)["T1"]["code"]["coding"]]
    assert codes == ["29857009", "R07.9"]


# --- real records: the team's sample notes through the default pipeline ---------------------

def test_sample_records_validate(nlp, samples):
    import medtext

    n = 0
    for path in sorted(samples.glob("*.txt"))[::4]:
        doc = nlp(medtext.make_doc(nlp, next(iter(_documents(path)))))
        rec = medtext.to_record(doc)
        bundle = bundle_of(rec)
        n += 1
        assert len(by_entity(bundle)) + len(unmapped(bundle)) >= len(
            [e for e in rec["entities"] if e["label"] not in fhir_mod.ANATOMY_LABELS])
    assert n >= 8


def _documents(path):
    from medtext.readers import iter_documents

    return iter_documents([path])


def test_writer_keeps_duplicate_doc_ids_apart(tmp_path):
    paths = FhirRecordWriter(tmp_path).write([[full_record(doc_id="x.txt"), full_record(doc_id="x.txt")]])
    assert len({p.name for p in paths}) == 3
    index = [json.loads(line) for line in paths[-1].read_text().splitlines()]
    assert [row["doc_id"] for row in index] == ["x.txt", "x.txt"]


def test_index_crossmap():
    class FakeIndex:
        def __init__(self):
            self.calls = 0

        def concept(self, system, code):
            self.calls += 1
            if (system, code) != ("snomed", "29857009"):
                return None
            return {"crossmaps": [{"target_system": "icd10cm", "target_code": "R07.9",
                                   "target_display": "Chest pain, unspecified", "source": "test"}]}

    index = FakeIndex()
    crossmap = fhir_mod.index_crossmap(index)
    cond = by_entity(bundle_of(make_record([
        entity("T1", "Chest pain", "PROBLEM", concepts=[SNOMED_CP]),
        entity("T2", "Chest pain", "PROBLEM", concepts=[SNOMED_CP], occurrence=0),
        entity("T3", "fever", "PROBLEM", concepts=[SNOMED_FEVER])]), crossmap=crossmap))
    assert [c["code"] for c in cond["T1"]["code"]["coding"]] == ["29857009", "R07.9"]
    assert [c["code"] for c in cond["T3"]["code"]["coding"]] == ["386661006"]
    assert index.calls == 2  # cached
