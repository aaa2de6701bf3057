"""Entity-linking gold data: MedProcNER (SNOMED CT-coded procedure mentions in Spanish case
reports, with machine-translated English forms) as (mention, gold codes, label) rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medtext.errors import InputError

from .jsonl import iter_jsonl

# MedProcNER labels -> medtext labels (routing to SNOMED CT kinds)
MEDPROCNER_LABELS = {"PROCEDIMIENTO": "PROCEDURE"}


@dataclass
class LinkingMention:
    id: str
    text: str
    codes: list[str]  # a composite mention has several; "NO_CODE" rows have none
    label: str


def read_medprocner(path: Path) -> list[LinkingMention]:
    """``dev_linking_snomedct.jsonl``: the English form (``text_en_machine_translated``) is the mention."""
    out = []
    for where, d in iter_jsonl([Path(path)], what="a MedProcNER linking row", reason="bad_corpus"):
        try:
            codes = [] if d["snomed_ct"] == "NO_CODE" else d["snomed_ct"].split("+")
            out.append(LinkingMention(f"{d['filename']}:{d['start']}", d["text_en_machine_translated"],
                                      codes, MEDPROCNER_LABELS.get(d["label"], d["label"])))
        except (KeyError, AttributeError) as e:
            raise InputError(where, f"not a MedProcNER linking row ({e})", "bad_corpus") from e
    return out
