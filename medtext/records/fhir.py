"""FHIR R4 export: one medtext record becomes one FHIR R4 ``Bundle`` (type ``collection``).

:func:`record_to_bundle` turns a record dict into a Bundle (a plain JSON dict),
:class:`FhirRecordWriter` writes one Bundle file per record under ``OUT/fhir/`` and
:func:`validate_bundle` checks a Bundle against the FHIR models of ``fhir.resources``
(``pip install 'medtext[fhir]'``; the package ships R4B models, which are identical to R4 for every
resource used here). Nothing in this module needs ``fhir.resources`` except :func:`validate_bundle`.

Bundle layout
-------------
* ``Bundle.id`` and every ``entry.fullUrl`` are name-based UUIDs (UUID v5) of the ``doc_id`` (and of
  the entity id, for entity resources), so the same record always gives the same Bundle and every
  reference (``urn:uuid:...``) resolves to an entry of the same Bundle. ``resource.id`` is that UUID.
* The first entry is a ``DocumentReference`` for the note: ``status`` current, ``docStatus`` final,
  ``identifier`` ``urn:medtext:doc-id|<doc_id>``, ``description`` = source path,
  ``content[0].attachment`` (``text/plain; charset=utf-8``) with ``data`` (base64 of the UTF-8 text),
  ``size`` (bytes) and ``hash`` (base64 of the SHA-1 of those bytes, as FHIR defines it) when
  ``record["text"]`` is not null; with ``--no-text`` records the attachment carries no data and no hash.
  ``lay_text``, when present, is a second attachment. Extensions hold ``text_sha256``, ``n_chars``,
  ``pages``, the source fields, the pipeline and the entities that gave no resource (see below).
* One resource per entity, then one ``DetectedIssue`` per error finding of ``record["errors"]``.

Entity mapping (``label`` -> resource)
--------------------------------------
=====================  ==========================================================================
label                  resource
=====================  ==========================================================================
PROBLEM                ``Condition`` (``FamilyMemberHistory`` when the mention is about family)
TEST                   ``Observation`` (no value: medtext does not extract results); category by
                       section: labs -> laboratory, physical_exam / vitals / objective -> exam,
                       findings / impression / technique / comparison -> imaging, else none
                       (never vital-signs, which would oblige the vital-signs profile)
FUNCTION               ``Observation``, category ``survey``, ``valueBoolean`` (ICF coding)
OBS-DP / OBS-DA /      ``Observation``, category ``imaging``, ``valueBoolean`` true / false / none
OBS-U (radiology)      and interpretation POS / NEG / IND (``OBS-DA`` = definitely absent)
PROCEDURE, TREATMENT   ``Procedure`` (TREATMENT covers therapies such as rehabilitation; drugs are
                       labelled DRUG by medtext, so every TREATMENT is a Procedure)
DRUG                   ``MedicationStatement`` (``medicationCodeableConcept``)
ANATOMY, ANAT-DP       no resource of its own: it becomes the ``bodySite`` (text, coding, offsets)
                       of every resource that points at it with a ``located_at`` relation
any other label        no resource
=====================  ==========================================================================

Entities that give no resource (anatomy not used as a body site, family mentions that are not
problems, negated family mentions, unknown labels) are listed on the ``DocumentReference`` in
``unmapped-entity`` extensions (entity id, label, reason), so a consumer can count them.

Assertion mapping (``assertion`` is the status that wins; every flag is kept in an extension)
----------------------------------------------------------------------------------------------
=============  ==================================  ========================  =====================
assertion      Condition verificationStatus /      Observation status        Procedure status /
               clinicalStatus                      (TEST; findings)          MedicationStatement
=============  ==================================  ========================  =====================
null, present  confirmed / active                  final; value true         completed (TREATMENT:
                                                                             unknown) / active
negated        refuted / (absent)                  cancelled + dataAbsent-   not-done / not-taken
                                                   Reason not-performed;
                                                   final, value false
uncertain      provisional / (absent)              preliminary; final, no    unknown / unknown
                                                   value, interpretation IND
hypothetical   unconfirmed / (absent)              registered; registered,   preparation / intended
                                                   no value
conditional    unconfirmed / (absent)              final; final, value true  preparation / intended
historical     confirmed / (absent: a past problem final; final, value true  completed / completed
               may be resolved or still chronic,
               the note does not say which)
=============  ==================================  ========================  =====================

``family`` (the assertion, or the flag): ``FamilyMemberHistory`` (status partial, relationship
v3-RoleCode ``FAMMEMB``, ``condition[0].code``) for PROBLEM; other labels and negated family mentions
give no resource (R4 ``FamilyMemberHistory`` records only conditions that a relative has, and cannot
state that a relative does not have one).

``clinicalStatus`` is only set for confirmed conditions (never with ``entered-in-error``, con-5).
Hypothetical and conditional mentions are ``unconfirmed`` rather than ``provisional``: the note
does not put them forward as a working diagnosis.

Codes
-----
``code.text`` is the entity text. The top concept (``kb_id``, else the first of ``concepts``) is the
first coding, with ``userSelected: true`` and its link score in a ``link-score`` extension; codings
from the optional ``crossmap(system, code)`` callable (e.g. SNOMED CT -> ICD-10-CM) follow it. The
other linking candidates are not equivalent codes, so they go to ``concept-candidate`` extensions
rather than into ``code.coding``. An entity without concepts still gets its resource, with only
``code.text``. System URIs: ``snomed`` -> ``http://snomed.info/sct``, ``icf`` ->
``http://hl7.org/fhir/sid/icf`` (this exact URI is what medtext uses for ICF),
``icd10cm`` -> ``http://hl7.org/fhir/sid/icd-10-cm``, ``icd10`` -> ``http://hl7.org/fhir/sid/icd-10``,
``loinc`` -> ``http://loinc.org``, ``rxnorm`` -> ``http://www.nlm.nih.gov/research/umls/rxnorm``,
any other name ``x`` -> ``urn:medtext:system:x``.

Provenance on every entity resource
-----------------------------------
* ``text-offsets`` extension: nested ``start`` and ``end`` (``valueInteger``, character offsets into
  the record text, in Unicode code points, as in the record) and ``entity-id`` (``valueString``).
* ``assertion`` extension: nested ``status`` (the assertion, when not null) and one ``flag`` per flag.
* ``mention`` extension: nested ``label``, ``section`` and the lay term/definition when present.
* ``relation`` extensions (on the head entity's resource): ``label``, ``target-entity-id``,
  ``target`` (a reference when the tail has a resource) and ``score``. ``located_at`` also fills
  ``bodySite``; ``suggestive_of`` also adds the head to the tail's ``Observation.derivedFrom`` or
  ``Condition.evidence.detail``.
* A reference to the ``DocumentReference``: ``Condition.evidence.detail``,
  ``Observation.derivedFrom`` and ``MedicationStatement.derivedFrom``; ``Procedure``,
  ``FamilyMemberHistory`` and ``DetectedIssue`` (``implicated``) have no such element for the
  source note, so the first two carry a ``source-document`` extension (``valueReference``).
  Extension URLs start with ``https://medtext.dev/fhir/StructureDefinition/``.

Subject
-------
FHIR R4 requires ``Condition.subject``, ``Procedure.subject``, ``MedicationStatement.subject`` and
``FamilyMemberHistory.patient``. A record does not know its patient, so the default subject is the
logical reference ``{"type": "Patient", "identifier": {"system": "urn:medtext:doc-id", "value":
<doc_id>}, "display": "patient of document <doc_id>"}``; pass ``subject`` (a FHIR Reference dict,
e.g. ``{"reference": "Patient/123"}``) to point every resource at a real patient.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import math
import re
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote

from ..atomic import atomic_write_text
from ..errors import ConfigError, SchemaError
from .build import SCHEMA_VERSION
from .writers import RecordWriter

log = logging.getLogger(__name__)

__all__ = ["record_to_bundle", "validate_bundle", "FhirRecordWriter", "system_uri", "index_crossmap",
           "Crossmap", "EXT"]

#: ``crossmap(system, code)`` -> ``[(target_system, target_code, target_display or None), ...]``;
#: systems are medtext names (``snomed``, ``icd10cm``...), as in ``concepts`` and ``kb_id``.
Crossmap = Callable[[str, str], "list[tuple[str, str, str | None]]"]

#: base of medtext's extension URLs
EXT = "https://medtext.dev/fhir/StructureDefinition/"

#: namespace of the name-based UUIDs of bundles and resources
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://medtext.dev/fhir")

SYSTEM_URIS: dict[str, str] = {
    "snomed": "http://snomed.info/sct",
    "icf": "http://hl7.org/fhir/sid/icf",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
}

DOC_ID_SYSTEM = "urn:medtext:doc-id"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

ANATOMY_LABELS = frozenset({"ANATOMY", "ANAT-DP"})
FINDING_LABELS = frozenset({"FUNCTION", "OBS-DP", "OBS-DA", "OBS-U"})
RADIOLOGY_OBS = frozenset({"OBS-DP", "OBS-DA", "OBS-U"})

#: Condition verificationStatus (and clinicalStatus, None = absent) per assertion
_CONDITION_STATUS: dict[str | None, tuple[str, str | None]] = {
    None: ("confirmed", "active"), "present": ("confirmed", "active"),
    "negated": ("refuted", None), "uncertain": ("provisional", None),
    "hypothetical": ("unconfirmed", None), "conditional": ("unconfirmed", None),
    "historical": ("confirmed", None),
}
_TEST_STATUS = {"negated": "cancelled", "uncertain": "preliminary", "hypothetical": "registered"}
_PROCEDURE_STATUS = {"negated": "not-done", "uncertain": "unknown", "hypothetical": "preparation",
                     "conditional": "preparation", "historical": "completed"}
_MEDICATION_STATUS = {"negated": "not-taken", "uncertain": "unknown", "hypothetical": "intended",
                      "conditional": "intended", "historical": "completed"}
#: Observation category of a TEST by the section it is in (no category when the section says nothing)
_TEST_CATEGORY_BY_SECTION = {
    "labs": "laboratory", "laboratory": "laboratory", "physical_exam": "exam", "vitals": "exam",
    "objective": "exam", "findings": "imaging", "impression": "imaging", "technique": "imaging",
    "comparison": "imaging",
}
_INTERPRETATION_DISPLAY = {"POS": "Positive", "NEG": "Negative", "IND": "Indeterminate"}


# --- small builders -------------------------------------------------------------------------

def system_uri(name: str) -> str:
    """The FHIR ``Coding.system`` URI of a medtext terminology system name."""
    if name in SYSTEM_URIS:
        return SYSTEM_URIS[name]
    if re.match(r"^[a-z][a-z0-9+.-]*:", name) and not re.search(r"\s", name):
        return name  # already a URI
    return "urn:medtext:system:" + quote(name, safe="-._~")


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def _ref(full_url: str, rtype: str) -> dict[str, Any]:
    return {"reference": full_url, "type": rtype}


def _text(value: Any) -> str | None:
    """A FHIR string (never empty) or None."""
    if value is None:
        return None
    value = str(value)
    return value if value.strip() else None


def _code(value: Any) -> str | None:
    """A FHIR code (no leading/trailing/double whitespace) or None."""
    text = _text(value)
    return " ".join(text.split()) if text is not None else None


def _decimal(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _ext(name: str, **value: Any) -> dict[str, Any]:
    """A simple extension: ``_ext("start", valueInteger=3)``."""
    return {"url": name, **value}


def _complex(url: str, parts: list[dict[str, Any] | None]) -> dict[str, Any]:
    return {"url": EXT + url, "extension": [p for p in parts if p is not None]}


def _opt(name: str, key: str, value: Any) -> dict[str, Any] | None:
    return None if value is None else {"url": name, key: value}


def _concept_coding(system: str, code: str, display: Any, score: Any = None,
                    selected: bool = False) -> dict[str, Any] | None:
    code = _code(code)
    if code is None:
        return None
    coding: dict[str, Any] = {"system": system_uri(system), "code": code}
    if _text(display) is not None:
        coding["display"] = _text(display)
    if selected:
        coding["userSelected"] = True
    if _decimal(score) is not None:
        coding["extension"] = [{"url": EXT + "link-score", "valueDecimal": _decimal(score)}]
    return coding


def _codeable(ent: dict[str, Any], crossmap: Crossmap | None) -> tuple[dict[str, Any], list[dict]]:
    """``(CodeableConcept, candidate extensions)`` of an entity."""
    concepts = [c for c in ent.get("concepts") or [] if isinstance(c, dict)]
    top: tuple[str, str] | None = None
    kb_id = ent.get("kb_id")
    if isinstance(kb_id, str) and kb_id:
        system, _, code = kb_id.partition(":")
        top = (system, code) if code else ("kb", system)
    elif concepts:
        top = (str(concepts[0]["system"]), str(concepts[0]["code"]))
    cc: dict[str, Any] = {}
    codings: list[dict] = []
    candidates: list[dict] = []
    if top is not None:
        match = next((c for c in concepts if (c["system"], c["code"]) == top), None)
        first = _concept_coding(top[0], top[1], match and match.get("display"),
                                match and match.get("score"), selected=True)
        if first is not None:
            codings.append(first)
        if crossmap is not None and first is not None:
            try:
                targets = list(crossmap(top[0], top[1]) or [])
            except Exception as e:
                raise ConfigError(f"crossmap({top[0]!r}, {top[1]!r}) failed: {type(e).__name__}: {e}") from e
            for target in targets:
                if not isinstance(target, (tuple, list)) or len(target) != 3:
                    raise ConfigError(f"crossmap({top[0]!r}, {top[1]!r}) returned {target!r}; a crossmap "
                                      "returns a list of (system, code, display or None) tuples")
                coding = _concept_coding(str(target[0]), str(target[1]), target[2])
                if coding is not None and all((coding["system"], coding["code"]) !=
                                              (c["system"], c["code"]) for c in codings):
                    codings.append(coding)
    for c in concepts:
        if top is not None and (c["system"], c["code"]) == top:
            continue
        coding = _concept_coding(str(c["system"]), str(c["code"]), c.get("display"))
        if coding is not None:
            candidates.append(_complex("concept-candidate", [
                _ext("coding", valueCoding=coding),
                _opt("score", "valueDecimal", _decimal(c.get("score")))]))
    if codings:
        cc["coding"] = codings
    if _text(ent.get("text")) is not None:
        cc["text"] = ent["text"]
    elif not codings:
        cc["text"] = f"{ent.get('label')} {ent.get('id')}"
    return cc, candidates


def _entity_extensions(ent: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``text-offsets``, ``assertion`` and ``mention`` extensions of an entity."""
    exts = [_complex("text-offsets", [
        _ext("start", valueInteger=int(ent["start"])),
        _ext("end", valueInteger=int(ent["end"])),
        _ext("entity-id", valueString=str(ent["id"]))])]
    flags = [f for f in ent.get("flags") or [] if _code(f)]
    if ent.get("assertion") is not None or flags:
        exts.append(_complex("assertion", [_opt("status", "valueCode", _code(ent.get("assertion")))]
                             + [_ext("flag", valueCode=_code(f)) for f in flags]))
    lay = ent.get("lay")
    lay_term = lay.get("term") if isinstance(lay, dict) else lay
    lay_def = lay.get("definition") if isinstance(lay, dict) else None
    exts.append(_complex("mention", [
        _opt("label", "valueString", _text(ent.get("label"))),
        _opt("section", "valueString", _text(ent.get("section"))),
        _opt("lay-term", "valueString", _text(lay_term)),
        _opt("lay-definition", "valueString", _text(lay_def))]))
    return exts


def default_subject(doc_id: str) -> dict[str, Any]:
    """The subject Reference used when the caller gives none: the patient of the document."""
    return {"type": "Patient", "identifier": {"system": DOC_ID_SYSTEM, "value": doc_id},
            "display": f"patient of document {doc_id}"}


# --- the bundle -----------------------------------------------------------------------------

def record_to_bundle(record: dict[str, Any], *, subject: dict[str, Any] | None = None,
                     crossmap: Crossmap | None = None) -> dict[str, Any]:
    """The FHIR R4 ``Bundle`` (``type: collection``, a JSON dict) of one medtext record.

    ``subject``: the FHIR Reference every resource points at (default: the patient of the
    document, see the module docstring). ``crossmap(system, code)``: extra codings for the top
    concept of each entity, as ``(system, code, display or None)`` tuples (see :func:`index_crossmap`).
    Raises :class:`~medtext.errors.SchemaError` when ``record`` is not a medtext record.
    """
    if not isinstance(record, dict):
        raise SchemaError(f"record_to_bundle needs a record dict, not {type(record).__name__}")
    doc_id = record.get("doc_id")
    version = str(record.get("schema_version"))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(f"record {doc_id!r} has schema_version {record.get('schema_version')!r}; the "
                          f"FHIR export reads {SCHEMA_VERSION!r}: re-run medtext on the source notes")
    if not isinstance(doc_id, str) or not doc_id:
        raise SchemaError("record has no doc_id; validate it with medtext.records.validate_record")
    if subject is not None and not isinstance(subject, dict):
        raise ConfigError(f"subject must be a FHIR Reference dict such as {{'reference': 'Patient/123'}}, "
                          f"not {type(subject).__name__}")
    try:
        return _Builder(record, doc_id, subject or default_subject(doc_id), crossmap).bundle()
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SchemaError(f"record {doc_id!r} cannot be exported to FHIR ({type(e).__name__}: {e}); "
                          "validate it with medtext.records.validate_record") from e


class _Builder:
    """Builds the Bundle of one record (one instance per record)."""

    def __init__(self, record: dict, doc_id: str, subject: dict, crossmap: Crossmap | None):
        self.record = record
        self.doc_id = doc_id
        self.subject = subject
        self.crossmap = crossmap
        self.doc_url = "urn:uuid:" + _uuid("document", doc_id)
        self.entities = {}
        for ent in record["entities"]:
            if ent["id"] in self.entities:
                raise SchemaError(f"record {doc_id!r} has two entities with id {ent['id']!r}")
            self.entities[ent["id"]] = ent
        self.resources: dict[str, dict] = {}  # entity id -> resource
        self.urls: dict[str, str] = {}  # entity id -> fullUrl
        self.unmapped: list[tuple[dict, str]] = []

    def subj(self) -> dict:
        return copy.deepcopy(self.subject)

    def doc_ref(self) -> dict:
        return _ref(self.doc_url, "DocumentReference")

    def bundle(self) -> dict[str, Any]:
        for ent in self.record["entities"]:
            self.add_entity(ent)
        used_sites = self.apply_relations()
        for ent in self.record["entities"]:
            if ent["label"] in ANATOMY_LABELS and ent["id"] not in used_sites:
                self.unmapped.append((ent, "anatomy-without-located-at"))
        entries = [{"fullUrl": self.doc_url, "resource": self.document()}]
        entries += [{"fullUrl": self.urls[eid], "resource": res} for eid, res in self.resources.items()]
        entries += self.issues()
        return {"resourceType": "Bundle", "id": _uuid("bundle", self.doc_id), "type": "collection",
                "entry": entries}

    # --- the note ---
    def document(self) -> dict[str, Any]:
        rec = self.record
        doc: dict[str, Any] = {"resourceType": "DocumentReference", "id": self.doc_url[9:]}
        src = rec.get("source") or {}
        pipeline = rec.get("pipeline") or None
        exts = [
            {"url": EXT + "text-sha256", "valueString": rec["text_sha256"]},
            {"url": EXT + "n-chars", "valueInteger": int(rec["n_chars"])},
            {"url": EXT + "pages", "valueInteger": int(rec["pages"])},
            _complex("source", [_opt("path", "valueString", _text(src.get("path"))),
                                _opt("format", "valueString", _text(src.get("format"))),
                                _opt("row", "valueInteger", src.get("row")),
                                _opt("encoding", "valueString", _text(src.get("encoding")))]),
        ]
        if pipeline:
            exts.append(_complex("pipeline", [
                _opt("name", "valueString", _text(pipeline.get("name"))),
                _opt("version", "valueString", _text(pipeline.get("version"))),
                _opt("medtext-version", "valueString", _text(pipeline.get("medtext_version")))]))
        for ent, reason in self.unmapped:
            exts.append(_complex("unmapped-entity", [
                _ext("entity-id", valueString=str(ent["id"])),
                _opt("label", "valueString", _text(ent.get("label"))),
                _ext("reason", valueCode=reason)]))
        doc["extension"] = [e for e in exts if e.get("extension", True)]
        doc["identifier"] = [{"system": DOC_ID_SYSTEM, "value": self.doc_id}]
        doc["status"] = "current"
        doc["docStatus"] = "final"
        doc["subject"] = self.subj()
        if _text(src.get("path")) is not None:
            doc["description"] = src["path"]
        content = [{"attachment": self.attachment(rec.get("text"), _text(src.get("path")) or self.doc_id)}]
        if _text(rec.get("lay_text")) is not None:
            content.append({"attachment": self.attachment(rec["lay_text"], "plain-language version")})
        doc["content"] = content
        return doc

    @staticmethod
    def attachment(text: str | None, title: str) -> dict[str, Any]:
        att: dict[str, Any] = {"contentType": "text/plain; charset=utf-8"}
        if text is not None:
            data = text.encode("utf-8")
            att["data"] = base64.b64encode(data).decode("ascii")
            att["size"] = len(data)
            att["hash"] = base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")
        att["title"] = title
        return att

    # --- entities ---
    def add_entity(self, ent: dict) -> None:
        label = ent["label"]
        assertion = ent.get("assertion")
        flags = set(ent.get("flags") or [])
        if label in ANATOMY_LABELS:
            return  # a body site at most, decided by the relations
        if assertion == "family" or "family" in flags:
            if label != "PROBLEM":
                self.unmapped.append((ent, "family-non-problem"))
            elif assertion == "negated" or "negated" in flags:
                self.unmapped.append((ent, "family-negated"))
            else:
                self.put(ent, self.family_history(ent))
            return
        if label == "PROBLEM":
            res = self.condition(ent)
        elif label == "TEST":
            res = self.test(ent)
        elif label in FINDING_LABELS:
            res = self.finding(ent)
        elif label in ("PROCEDURE", "TREATMENT"):
            res = self.procedure(ent)
        elif label == "DRUG":
            res = self.medication(ent)
        else:
            self.unmapped.append((ent, "unknown-label"))
            return
        self.put(ent, res)

    def put(self, ent: dict, res: dict) -> None:
        url = "urn:uuid:" + _uuid("entity", self.doc_id, str(ent["id"]))
        res = {"resourceType": res.pop("resourceType"), "id": url[9:], **res}
        self.urls[ent["id"]] = url
        self.resources[ent["id"]] = res

    def head(self, rtype: str, ent: dict, *, source_ext: bool = False) -> tuple[dict, dict, list]:
        """``(resource, CodeableConcept, candidate extensions)`` with the common extensions set."""
        cc, candidates = _codeable(ent, self.crossmap)
        exts = _entity_extensions(ent) + candidates
        if source_ext:
            exts.append({"url": EXT + "source-document", "valueReference": self.doc_ref()})
        return {"resourceType": rtype, "extension": exts}, cc, candidates

    def condition(self, ent: dict) -> dict:
        res, cc, _ = self.head("Condition", ent)
        ver, clinical = _CONDITION_STATUS.get(ent.get("assertion"), ("unconfirmed", None))
        if clinical is not None:
            res["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": clinical}]}
        res["verificationStatus"] = {"coding": [{"system": CONDITION_VER, "code": ver}]}
        res["code"] = cc
        res["subject"] = self.subj()
        res["evidence"] = [{"detail": [self.doc_ref()]}]
        return res

    def _observation(self, ent: dict, status: str, category: str | None) -> dict:
        res, cc, _ = self.head("Observation", ent)
        res["status"] = status
        if category is not None:
            res["category"] = [{"coding": [{"system": OBS_CATEGORY, "code": category}]}]
        res["code"] = cc
        res["subject"] = self.subj()
        res["derivedFrom"] = [self.doc_ref()]
        return res

    def test(self, ent: dict) -> dict:
        assertion = ent.get("assertion")
        res = self._observation(ent, _TEST_STATUS.get(assertion, "final"),
                                _TEST_CATEGORY_BY_SECTION.get(ent.get("section") or ""))
        if assertion == "negated":
            res["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT, "code": "not-performed"}]}
            self._move_derived(res)
        return res

    def finding(self, ent: dict) -> dict:
        label, assertion = ent["label"], ent.get("assertion")
        category = "imaging" if label in RADIOLOGY_OBS else "survey"
        if assertion == "hypothetical":
            return self._observation(ent, "registered", category)
        res = self._observation(ent, "final", category)
        if label == "OBS-U" or assertion == "uncertain":
            value, interp = None, "IND"
        elif label == "OBS-DA" or assertion == "negated":
            value, interp = False, "NEG"
        else:
            value, interp = True, "POS"
        if value is not None:
            res["valueBoolean"] = value
        res["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": interp,
                                              "display": _INTERPRETATION_DISPLAY[interp]}]}]
        self._move_derived(res)
        return res

    @staticmethod
    def _move_derived(res: dict) -> None:
        """Keep the R4 element order (derivedFrom after value/interpretation) for readability."""
        res["derivedFrom"] = res.pop("derivedFrom")

    def procedure(self, ent: dict) -> dict:
        res, cc, _ = self.head("Procedure", ent, source_ext=True)
        assertion = ent.get("assertion")
        default = "unknown" if ent["label"] == "TREATMENT" else "completed"
        res["status"] = _PROCEDURE_STATUS.get(assertion, default)
        res["code"] = cc
        res["subject"] = self.subj()
        return res

    def medication(self, ent: dict) -> dict:
        res, cc, _ = self.head("MedicationStatement", ent)
        res["status"] = _MEDICATION_STATUS.get(ent.get("assertion"), "active")
        res["medicationCodeableConcept"] = cc
        res["subject"] = self.subj()
        res["derivedFrom"] = [self.doc_ref()]
        return res

    def family_history(self, ent: dict) -> dict:
        res, cc, _ = self.head("FamilyMemberHistory", ent, source_ext=True)
        res["status"] = "partial"
        res["patient"] = self.subj()
        res["relationship"] = {"coding": [{"system": ROLE_CODE, "code": "FAMMEMB",
                                           "display": "family member"}]}
        res["condition"] = [{"code": cc}]
        return res

    # --- relations ---
    def apply_relations(self) -> set[str]:
        """Relation extensions, body sites and suggestive_of links; the ids used as body sites."""
        used: set[str] = set()
        located: dict[str, list[tuple[float, dict]]] = {}
        for rel in self.record.get("relations") or []:
            head, tail, label = rel["head"], rel["tail"], rel["label"]
            res = self.resources.get(head)
            tail_ent = self.entities.get(tail)
            if res is None or tail_ent is None:
                continue
            res["extension"].append(_complex("relation", [
                _ext("label", valueCode=_code(label)),
                _ext("target-entity-id", valueString=str(tail)),
                _opt("target", "valueReference",
                     _ref(self.urls[tail], self.resources[tail]["resourceType"]) if tail in self.urls else None),
                _opt("score", "valueDecimal", _decimal(rel.get("score")))]))
            if label == "located_at" and tail_ent["label"] in ANATOMY_LABELS:
                located.setdefault(head, []).append((-(_decimal(rel.get("score")) or 0), tail_ent))
            elif label == "suggestive_of" and tail in self.resources:
                target = self.resources[tail]
                link = _ref(self.urls[head], res["resourceType"])
                if target["resourceType"] == "Observation" and res["resourceType"] == "Observation":
                    if link not in target["derivedFrom"]:
                        target["derivedFrom"].append(link)
                elif target["resourceType"] == "Condition":
                    target["evidence"].append({"detail": [link]})
        for head, sites in located.items():
            res = self.resources[head]
            if res["resourceType"] not in ("Condition", "Observation", "Procedure"):
                continue
            sites = [ent for _, ent in sorted(sites, key=lambda s: s[0])]
            if res["resourceType"] == "Observation":
                sites = sites[:1]  # Observation.bodySite is 0..1: the best-scored site
            body = []
            for ent in sites:
                cc, _ = _codeable(ent, self.crossmap)
                body.append({"extension": _entity_extensions(ent)[:1], **cc})
                used.add(ent["id"])
            self._insert_body_site(res, body)
        return used

    @staticmethod
    def _insert_body_site(res: dict, body: list[dict]) -> None:
        """Set ``bodySite`` right after ``code`` (R4 element order, for readability)."""
        value: Any = body[0] if res["resourceType"] == "Observation" else body
        items = list(res.items())
        res.clear()
        for key, val in items:
            res[key] = val
            if key == "code":
                res["bodySite"] = value
        if "bodySite" not in res:
            res["bodySite"] = value

    # --- error findings ---
    def issues(self) -> list[dict]:
        entries = []
        for i, err in enumerate(self.record.get("errors") or []):
            url = "urn:uuid:" + _uuid("error", self.doc_id, str(i))
            implicated = [self.doc_ref()]
            for eid, ent in self.entities.items():
                if eid in self.resources and ent["start"] < err["end"] and err["start"] < ent["end"]:
                    implicated.append(_ref(self.urls[eid], self.resources[eid]["resourceType"]))
            res: dict[str, Any] = {
                "resourceType": "DetectedIssue", "id": url[9:],
                "extension": [
                    _complex("text-offsets", [_ext("start", valueInteger=int(err["start"])),
                                              _ext("end", valueInteger=int(err["end"]))]),
                    _complex("error-check", [
                        _opt("detector", "valueString", _text(err.get("detector"))),
                        _opt("score", "valueDecimal", _decimal(err.get("score"))),
                        _opt("correction", "valueString", _text(err.get("correction")))])],
                "status": "preliminary",
                "code": {"coding": [{"system": "urn:medtext:system:error-type", "code": _code(err["type"])}],
                         "text": f"possible {err['type']} error"},
                "patient": self.subj(),
                "implicated": implicated,
            }
            if _text(err.get("message")) is not None:
                res["detail"] = err["message"]
            entries.append({"fullUrl": url, "resource": res})
        return entries


# --- validation -----------------------------------------------------------------------------

def _references(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Check ``bundle`` against the FHIR R4 models of ``fhir.resources`` (its ``R4B`` package, the
    same as R4 for the resources medtext writes), and that every ``urn:uuid:`` reference resolves
    to an entry. Raises :class:`~medtext.errors.SchemaError` naming the problems, or
    :class:`~medtext.errors.ConfigError` when ``fhir.resources`` is not installed."""
    try:
        from fhir.resources.R4B.bundle import Bundle
    except ImportError as e:
        raise ConfigError(f"validating FHIR bundles needs fhir.resources with its R4B models ({e}): "
                          "pip install 'medtext[fhir]'") from e
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise SchemaError("not a FHIR Bundle: expected a dict with resourceType 'Bundle'")
    name = f"FHIR bundle {bundle.get('id')!r}"
    entries = bundle.get("entry") or []
    try:
        Bundle.model_validate(bundle)
    except Exception as e:  # pydantic ValidationError, or KeyError for an unknown resourceType
        errors = e.errors() if hasattr(e, "errors") else None
        if not errors:
            raise SchemaError(f"{name} is not valid FHIR R4: {type(e).__name__}: {e}") from e
        lines = []
        for err in errors[:5]:
            loc = list(err.get("loc", ()))
            where = ".".join(str(p) for p in loc) or "(top level)"
            if len(loc) > 1 and loc[0] == "entry" and isinstance(loc[1], int) and loc[1] < len(entries):
                res = (entries[loc[1]] or {}).get("resource") or {}
                where += f" ({res.get('resourceType')})"
            lines.append(f"{where}: {err.get('msg')}")
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise SchemaError(f"{name} is not valid FHIR R4: " + "; ".join(lines) + more) from e
    urls = [entry.get("fullUrl") for entry in entries]
    dupes = sorted({u for u in urls if u and urls.count(u) > 1})
    if dupes:
        raise SchemaError(f"{name} has entries sharing a fullUrl: {', '.join(dupes[:3])}")
    known = set(urls)
    for i, entry in enumerate(entries):
        for ref in _references(entry.get("resource")):
            if ref.startswith("urn:uuid:") and ref not in known:
                raise SchemaError(f"{name}: entry {i} ({entry['resource'].get('resourceType')}) refers "
                                  f"to {ref}, which is no entry of the bundle")


# --- cross-maps from a terminology index ----------------------------------------------------

def index_crossmap(index: Any) -> Crossmap:
    """A ``crossmap`` callable backed by a ``medtext.terminologies`` ``ConceptIndex`` (its
    ``crossmaps`` table, e.g. SNOMED CT -> ICD-10-CM); lookups are cached."""
    cache: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}

    def crossmap(system: str, code: str) -> list[tuple[str, str, str | None]]:
        key = (system, code)
        if key not in cache:
            row = index.concept(system, code) or {}
            cache[key] = [(m["target_system"], m["target_code"], m.get("target_display"))
                          for m in row.get("crossmaps") or []]
        return cache[key]

    return crossmap


# --- writer ---------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 120


def safe_name(doc_id: str) -> str:
    """A file stem for ``doc_id``: ``[A-Za-z0-9._-]`` kept, anything else ``_``. When that loses
    information (or the name would be hidden, empty or too long) a short hash of the doc_id is
    appended, so two doc_ids that read the same after the replacement get different names
    whatever their order."""
    stem = _UNSAFE.sub("_", doc_id)
    if stem == doc_id and not stem.startswith(".") and 0 < len(stem) <= _MAX_STEM:
        return stem
    digest = hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:10]
    return f"{stem.lstrip('.')[:_MAX_STEM] or 'doc'}-{digest}"


class FhirRecordWriter(RecordWriter):
    """One FHIR R4 Bundle JSON file per record under ``OUT/fhir/<safe name>.json`` (each written
    atomically) and ``OUT/fhir/index.jsonl``: one ``{"doc_id", "file", "bundle_id", "entries"}``
    line per record, ``file`` relative to ``OUT/fhir/``. ``subject`` and ``crossmap`` are passed to
    :func:`record_to_bundle`."""

    format = "fhir"

    def __init__(self, out_dir: str | Path, *, subject: dict[str, Any] | None = None,
                 crossmap: Crossmap | None = None):
        super().__init__(out_dir)
        self.subject = subject
        self.crossmap = crossmap

    def write(self, batches: Iterable[list[dict[str, Any]]]) -> list[Path]:
        folder = self.out_dir / "fhir"
        used: dict[str, str] = {}  # casefolded file name -> doc_id (names must differ on any file system)
        index_lines: list[str] = []
        paths: list[Path] = []
        for batch in batches:
            for rec in batch:
                bundle = record_to_bundle(rec, subject=self.subject, crossmap=self.crossmap)
                doc_id = rec["doc_id"]
                stem = safe_name(doc_id)
                if stem.casefold() in used:
                    digest = hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:10]
                    base, n = f"{stem}-{digest}", 1
                    stem = base
                    while stem.casefold() in used:
                        n += 1
                        stem = f"{base}-{n}"
                    if used.get(safe_name(doc_id).casefold()) == doc_id:
                        log.warning("doc_id %r occurs more than once; its bundles go to separate files "
                                    "(see fhir/index.jsonl)", doc_id)
                used[stem.casefold()] = doc_id
                target = folder / f"{stem}.json"
                atomic_write_text(target, json.dumps(bundle, ensure_ascii=False, indent=1) + "\n")
                paths.append(target)
                index_lines.append(json.dumps({"doc_id": doc_id, "file": target.name,
                                               "bundle_id": bundle["id"], "entries": len(bundle["entry"])},
                                              ensure_ascii=False))
        index = folder / "index.jsonl"
        atomic_write_text(index, "".join(line + "\n" for line in index_lines))
        paths.append(index)
        self.paths = paths
        return paths
