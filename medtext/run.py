"""``medtext run``: inputs -> OUT with a resumable journal, atomic outputs and an error row per failure.

Layout of ``OUT``:

``records.jsonl`` | ``parquet/<table>.parquet`` | ``csv/<table>.csv``
    the records, in the chosen format (written at the end of the run, atomically);
``errors.jsonl``
    one row per input that gave no record: doc_id, source, row, reason, message;
``summary.json``
    counts, timing and the pipeline that ran;
``_parts/``
    the run journal: every chunk of finished documents is committed there atomically as
    ``part-NNNNN.records.jsonl`` + ``part-NNNNN.errors.jsonl`` and sealed by ``part-NNNNN.ids``.
    ``--resume`` reads the sealed ids and skips those inputs. Delete ``_parts`` to free space
    once the run is complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .atomic import atomic_path, atomic_write_text
from .errors import OutputError, UsageError
from .readers import Document, InputFailure, iter_documents

log = logging.getLogger(__name__)


class RunJournal:
    """Committed chunks of a run under ``OUT/_parts`` (see the module docstring)."""

    def __init__(self, out_dir: Path):
        self.dir = out_dir / "_parts"

    def exists(self) -> bool:
        return self.dir.is_dir() and any(self.dir.glob("part-*.ids"))

    def clear(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                p.unlink()

    def sealed(self) -> list[int]:
        return sorted(int(p.name[5:10]) for p in self.dir.glob("part-*.ids")) if self.dir.is_dir() else []

    def drop_unsealed(self) -> None:
        sealed = set(self.sealed())
        if self.dir.is_dir():
            for p in self.dir.glob("part-*"):
                if int(p.name[5:10]) not in sealed:
                    p.unlink()

    def done_ids(self) -> set[str]:
        ids: set[str] = set()
        for n in self.sealed():
            ids.update(x for x in (self.dir / f"part-{n:05d}.ids").read_text("utf-8").split("\n") if x)
        return ids

    def commit(self, n: int, records: list[dict], failures: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = self.dir / f"part-{n:05d}"
        for suffix, rows in ((".records.jsonl", records), (".errors.jsonl", failures)):
            with atomic_path(f"{stem}{suffix}") as tmp, open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        ids = [r["doc_id"] for r in records] + [r["doc_id"] for r in failures if r["doc_id"]]
        atomic_write_text(f"{stem}.ids", "\n".join(ids) + "\n")  # the seal, written last

    def iter_rows(self, kind: str) -> Iterator[list[dict]]:
        """Batches of rows (``kind`` = ``records`` or ``errors``), one batch per sealed part."""
        for n in self.sealed():
            with open(self.dir / f"part-{n:05d}.{kind}.jsonl", encoding="utf-8") as f:
                yield [json.loads(line) for line in f if line.strip()]


@dataclass
class RunSummary:
    inputs_seen: int = 0
    records: int = 0
    failures: int = 0
    skipped_done: int = 0
    entities: int = 0
    errors_found: int = 0
    chars: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    previous_records: int = 0
    previous_failures: int = 0

    @property
    def docs_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and prove it is writable, or raise :class:`OutputError`."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".medtext-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to output folder {out_dir}: {e.strerror or e}; choose "
                          "another -o or fix its permissions") from e


def run(inputs: Iterable[Path], out_dir: Path, *, fmt: str = "jsonl", preset: str = "default",
        overrides: dict | None = None, batch_size: int = 32, n_process: int = 1,
        chunk_size: int = 256, resume: bool = False, overwrite: bool = False,
        limit: int | None = None, include_text: bool = True, id_field: str = "id",
        text_field: str = "text", device: str = "cpu",
        on_result: Callable[[Any], None] | None = None) -> RunSummary:
    """Process ``inputs`` into ``out_dir``; see the module docstring for the layout."""
    from .pipeline import Result, iter_results
    from .records.writers import get_writer

    writer = get_writer(fmt, out_dir)
    if fmt == "brat" and not include_text:
        from .errors import ConfigError

        raise ConfigError("--format brat needs the note text next to the annotations: drop --no-text")
    check_writable(out_dir)
    journal = RunJournal(out_dir)
    if journal.exists() and not (resume or overwrite):
        raise UsageError(f"{out_dir} holds an earlier run; pass --resume to continue it or "
                          "--overwrite to start again")
    if overwrite and not resume:
        journal.clear()
    journal.drop_unsealed()
    done = journal.done_ids() if resume else set()
    summary = RunSummary(skipped_done=0)
    part = (journal.sealed() or [-1])[-1] + 1

    def documents() -> Iterator[Document | InputFailure]:
        taken = 0
        for item in iter_documents(inputs, id_field=id_field, text_field=text_field):
            if item.doc_id in done:
                summary.skipped_done += 1
                continue
            if limit is not None and taken >= limit:
                return
            taken += 1
            yield item

    nlp = None
    if n_process <= 1:  # load up front so docs/s measures processing, not the model load
        from .device import use_device
        from .pipeline import load

        t_load = time.perf_counter()
        use_device(device)
        nlp = load(preset, **(overrides or {}))
        summary.load_seconds = time.perf_counter() - t_load
    t0 = time.perf_counter()
    records: list[dict] = []
    failures: list[dict] = []

    def flush() -> None:
        nonlocal part, records, failures
        if records or failures:
            journal.commit(part, records, failures)
            part += 1
            records, failures = [], []

    results: Iterator[Result] = iter_results(
        documents(), nlp=nlp, preset=preset, overrides=overrides, batch_size=batch_size,
        n_process=n_process, chunk_size=chunk_size, include_text=include_text, device=device)
    try:
        for res in results:
            summary.inputs_seen += 1
            if res.record is not None:
                records.append(res.record)
                summary.records += 1
                summary.chars += res.n_chars
                summary.entities += len(res.record["entities"])
                summary.errors_found += len(res.record["errors"])
            else:
                failures.append(res.failure.to_row())
                summary.failures += 1
                r = res.failure.reason
                summary.failure_reasons[r] = summary.failure_reasons.get(r, 0) + 1
            if on_result:
                on_result(res)
            if len(records) + len(failures) >= chunk_size:
                flush()
    finally:
        flush()  # what finished is kept, even on Ctrl-C
        summary.seconds = time.perf_counter() - t0
    _finalize(journal, writer, out_dir, summary, fmt, preset)
    return summary


def _finalize(journal: RunJournal, writer, out_dir: Path, summary: RunSummary, fmt: str,
              preset: str) -> None:
    n_records = 0
    totals = {"pages": 0, "chars": 0, "lines": 0, "sections": 0, "sentences": 0, "entities": 0,
              "relations": 0, "errors_found": 0, "warnings": 0}
    by_format: dict[str, int] = {}
    section_labels: dict[str, int] = {}
    entity_labels: dict[str, int] = {}
    assertions: dict[str, int] = {}
    layout: dict[str, int] = {}

    def counted(batches):
        nonlocal n_records
        for b in batches:
            n_records += len(b)
            for rec in b:
                totals["pages"] += rec.get("pages") or 0
                totals["chars"] += rec.get("n_chars") or 0
                totals["warnings"] += len(rec.get("warnings") or [])
                for key in ("lines", "sections", "sentences", "entities", "relations"):
                    totals[key] += len(rec.get(key) or [])
                totals["errors_found"] += len(rec.get("errors") or [])
                fmt_ = (rec.get("source") or {}).get("format") or "text"
                by_format[fmt_] = by_format.get(fmt_, 0) + 1
                for ln in rec.get("lines") or []:
                    if ln.get("label"):
                        layout[ln["label"]] = layout.get(ln["label"], 0) + 1
                for sec in rec.get("sections") or []:
                    section_labels[sec["label"]] = section_labels.get(sec["label"], 0) + 1
                for ent in rec.get("entities") or []:
                    entity_labels[ent["label"]] = entity_labels.get(ent["label"], 0) + 1
                    status = ent.get("assertion") or "unassessed"
                    assertions[status] = assertions.get(status, 0) + 1
            yield b

    writer.write(counted(journal.iter_rows("records")))
    n_errors = 0
    with atomic_path(out_dir / "errors.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        for batch in journal.iter_rows("errors"):
            for row in batch:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n_errors += 1
    summary.previous_records = n_records - summary.records
    summary.previous_failures = n_errors - summary.failures
    atomic_write_text(out_dir / "summary.json", json.dumps({
        "format": fmt, "preset": preset, "outputs": _outputs(writer.paths, out_dir),
        "this_run": {"inputs": summary.inputs_seen, "records": summary.records,
                     "failures": summary.failures, "failure_reasons": summary.failure_reasons,
                     "entities": summary.entities, "errors_found": summary.errors_found,
                     "skipped_already_done": summary.skipped_done, "chars": summary.chars,
                     "seconds": round(summary.seconds, 3),
                     "load_seconds": round(summary.load_seconds, 3),
                     "docs_per_s": round(summary.docs_per_s, 2)},
        "total": {"records": n_records, "failures": n_errors},
        "contents": {**totals, "records_by_format": dict(sorted(by_format.items())),
                     "sections_by_label": _by_count(section_labels),
                     "entities_by_label": _by_count(entity_labels),
                     "entities_by_assertion": _by_count(assertions),
                     "lines_by_layout": _by_count(layout)},
    }, indent=2) + "\n")


def _outputs(paths: list[Path], out_dir: Path) -> list[str]:
    """What a writer wrote, relative to ``out_dir``; writers with a file per record (FHIR,
    BRAT) are summarised by their folder."""
    rel = [str(p.relative_to(out_dir)) for p in paths]
    if len(rel) <= 20:
        return rel
    return sorted({r.split("/", 1)[0] + "/" if "/" in r else r for r in rel})


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
