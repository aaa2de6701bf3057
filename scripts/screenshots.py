#!/usr/bin/env python
"""Screenshots of the HTML report for the docs: renders records with ``medtext.render`` and
photographs the pages with headless Chromium.

Writes into ``--out-dir`` (default ``docs/img``):

``viewer.png``
    one document of ``--records`` shown alone (``#only=doc-<n>``): note with layout regions,
    coloured entities, assertion badges and the lay version beside it;
``viewer_index.png``
    the top of the report of ``--records``: counts, charts and the table of documents;
``viewer_radiology.png``
    one document with RadGraph relation arcs, from ``--radiology-records`` (or from
    ``--records`` when those hold relations).

Usage::

    python scripts/screenshots.py --records out/demo/records.jsonl \\
        --radiology-records out/radiology/records.jsonl --out-dir docs/img
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from medtext.render import read_records_file, render_html

MAX_BYTES = 500_000
WINDOW = "1400,1000"


def find_chromium() -> str:
    """Path of a Chromium/Chrome binary, or exit with a clear message."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        sys.exit("screenshots: Chromium is not on PATH (chromium, chromium-browser or google-chrome)")
    return exe


def screenshot(chromium: str, page: Path, fragment: str, png: Path, profile: Path) -> None:
    """Photograph ``page`` (opened at ``fragment``) into ``png`` at the window size ``WINDOW``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--window-size={WINDOW}", "--force-device-scale-factor=1", "--virtual-time-budget=2000",
           f"--screenshot={png.resolve()}", page.resolve().as_uri() + fragment]
    res = subprocess.run(cmd, capture_output=True, timeout=60)
    if res.returncode != 0 or not png.is_file():
        sys.exit(f"screenshots: Chromium failed on {page}{fragment}:\n"
                 + res.stderr.decode("utf-8", "replace")[-2000:])
    shrink(png)
    print(f"wrote {png} ({png.stat().st_size // 1024} KiB)")


def shrink(png: Path) -> None:
    """Re-encode ``png`` as a 256-colour palette image when it is over ``MAX_BYTES`` (needs
    Pillow; without it the file is kept as Chromium wrote it)."""
    if png.stat().st_size <= MAX_BYTES:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"warning: {png} is over {MAX_BYTES // 1000} KB and Pillow is not installed to shrink it")
        return
    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def _score(rec: dict) -> tuple:
    """How much of the viewer a document shows off near its top (bigger is better)."""
    top = 1200  # about what one screen of the note shows in two columns
    labels = {ln.get("label") for ln in rec.get("lines") or [] if ln["start"] < top}
    non_present = sum(1 for e in rec.get("entities") or []
                      if e.get("assertion") not in (None, "present") and e["start"] < top)
    return (rec.get("text") is not None, bool(rec.get("errors")), rec.get("lay_text") is not None,
            bool(labels - {None, "body"}), min(non_present, 10), -len(rec.get("text") or ""))


def pick_doc(records: list[dict], doc_id: str | None, *, relations: bool = False) -> int:
    """1-based number of the document to show: ``doc_id`` if given, else the best candidate
    (with ``relations``: a short note with the fewest arcs per character)."""
    if doc_id is not None:
        for n, rec in enumerate(records, 1):
            if rec["doc_id"] == doc_id:
                return n
        sys.exit(f"screenshots: no document {doc_id!r} in the records")
    if relations:  # a short note with enough arcs to show, but not crowded with them
        cands = [(len(r["relations"]) / len(r["text"]), n) for n, r in enumerate(records, 1)
                 if r.get("text") and len(r["text"]) <= 1500 and len(r.get("relations") or []) >= 10]
        cands = cands or [(len(r["text"]), n) for n, r in enumerate(records, 1)
                          if r.get("text") and r.get("relations")]
        if not cands:
            sys.exit("screenshots: none of these records has relations (use the radiology preset)")
        return min(cands)[1]
    return max(range(len(records)), key=lambda i: _score(records[i])) + 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=Path, default=Path("out/demo/records.jsonl"),
                    help="records.jsonl (or a run folder) for viewer.png and viewer_index.png")
    ap.add_argument("--radiology-records", type=Path, default=None,
                    help="records with relations for viewer_radiology.png (default: --records)")
    ap.add_argument("--out-dir", type=Path, default=Path("docs/img"))
    ap.add_argument("--doc", default=None, help="doc_id shown in viewer.png (default: picked)")
    ap.add_argument("--radiology-doc", default=None, help="doc_id shown in viewer_radiology.png")
    args = ap.parse_args(argv)

    chromium = find_chromium()
    records = list(read_records_file(args.records))
    if not records:
        sys.exit(f"screenshots: no records in {args.records}")
    rad = list(read_records_file(args.radiology_records)) if args.radiology_records else records
    with tempfile.TemporaryDirectory(prefix="medtext-shots-") as tmp:
        tmp_dir = Path(tmp)
        report = render_html(records, tmp_dir / "report.html", title="medtext report")
        screenshot(chromium, report, f"#only=doc-{pick_doc(records, args.doc)}",
                   args.out_dir / "viewer.png", tmp_dir / "profile")
        screenshot(chromium, report, "", args.out_dir / "viewer_index.png", tmp_dir / "profile")
        if args.radiology_records or any(r.get("relations") for r in records):
            rad_report = render_html(rad, tmp_dir / "radiology.html", title="medtext report: radiology")
            n = pick_doc(rad, args.radiology_doc, relations=True)
            screenshot(chromium, rad_report, f"#only=doc-{n}", args.out_dir / "viewer_radiology.png",
                       tmp_dir / "profile")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
