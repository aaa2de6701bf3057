"""Reading the team's JSONL gold files: one JSON object per line, in files or folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from medtext.errors import InputError


def iter_jsonl(paths: list[Path], *, what: str, reason: str) -> Iterator[tuple[str, dict]]:
    """(``file:line`` location, object) for every non-blank line of the ``*.jsonl`` files in
    ``paths`` (files, or folders read in name order); a missing path, a file that is not UTF-8
    text and bad JSON raise :class:`InputError`."""
    files: list[Path] = []
    for p in paths:
        if not p.exists():
            raise InputError(str(p), f"not found (expected {what}: a .jsonl file or a folder of them)", "not_found")
        files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise InputError(str(f), f"not UTF-8 text (byte {e.start}): expected {what} per line", reason) from e
        except OSError as e:
            raise InputError(str(f), f"cannot be read ({e.strerror or e})", "unreadable") from e
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield f"{f}:{n}", json.loads(line)
            except ValueError as e:
                raise InputError(f"{f}:{n}", f"not {what} ({e})", reason) from e
