"""Reading the team's JSONL gold files: one JSON object per line, in files or folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from medtext.errors import InputError


def iter_jsonl(paths: list[Path], *, what: str, reason: str) -> Iterator[tuple[str, dict]]:
    """(``file:line`` location, object) for every non-blank line of the ``*.jsonl`` files in
    ``paths`` (files, or folders read in name order); bad JSON raises :class:`InputError`."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield f"{f}:{n}", json.loads(line)
            except ValueError as e:
                raise InputError(f"{f}:{n}", f"not {what} ({e})", reason) from e
