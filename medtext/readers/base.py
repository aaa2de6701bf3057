"""What a reader produces: a :class:`Document` (text + lines + provenance) or an :class:`InputFailure`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One input document before the pipeline runs. ``text`` is the exact source text."""

    doc_id: str
    text: str
    source: dict[str, Any]
    lines: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


@dataclass
class InputFailure:
    """An input that yields no document; becomes one row of ``errors.jsonl``."""

    doc_id: str | None
    source: dict[str, Any]
    reason: str
    message: str

    def to_row(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "source": self.source.get("path"),
                "row": self.source.get("row"), "reason": self.reason, "message": self.message}
