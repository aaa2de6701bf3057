"""Render sample notes to multi-page clinical PDFs with page furniture (letterhead, side column,
running header, footer with "Page x of y", signature), deterministically.

    python -m medtext.corpora.render_pdfs            # rewrites corpora/samples/*.pdf
    python -m medtext.corpora.render_pdfs --out DIR

Needs ``reportlab`` (``pip install 'medtext[pdfgen]'``). Output is byte-stable (invariant mode),
so the committed PDFs only change when this script or the notes change. Every hospital, clinician
and patient name here is invented.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"
PAGE_W, PAGE_H = 612.0, 792.0  # US Letter, points


@dataclass(frozen=True)
class Letterhead:
    hospital: str
    address: str
    departments: tuple[str, ...]
    signer: str


HOSPITALS = (
    Letterhead("Northbrook Valley Medical Center", "1200 Alder Road, Northbrook, ST 40021 - Tel (555) 010-4400",
               ("Internal Medicine", "Cardiology", "Pulmonology", "Nephrology", "Endocrinology",
                "Emergency Medicine", "Rehabilitation"), "Dr. Miriam Okafor, MD"),
    Letterhead("St. Aldric Community Hospital", "45 Harbour Lane, Eastport, ST 40117 - Tel (555) 010-7788",
               ("Radiology", "Orthopaedics", "Physical Therapy", "Occupational Therapy",
                "Geriatrics", "Neurology"), "Dr. Tomas Lindqvist, MD"),
)

#: (note file, letterhead index, patient shown in the running header)
JOBS = (
    ("discharge_01.txt", 0, "Patient: R. Alvarez | MRN 00417731"),
    ("discharge_02.txt", 0, "Patient: H. Brennan | MRN 00420984"),
    ("discharge_03.txt", 0, "Patient: L. Nguyen | MRN 00388102"),
    ("progress_01.txt", 0, "Patient: D. Kowalski | MRN 00391145"),
    ("cxr_02.txt", 1, "Patient: F. Osei | MRN 10077215"),
    ("ct_02.txt", 1, "Patient: M. Haddad | MRN 10079841"),
    ("pt_03.txt", 1, "Patient: C. Rivera | MRN 10081166"),
    ("ot_01.txt", 1, "Patient: J. Whitfield | MRN 10083470"),
)

BODY_FONT, BODY_SIZE, LEADING = "Helvetica", 10.0, 13.0
MAIN_X0, MAIN_X1 = 178.0, 566.0          # body column (right of the side column on page 1)
TOP_FIRST, TOP_OTHER, BOTTOM = 690.0, 740.0, 72.0


def _wrap(text: str) -> list[str]:
    from reportlab.lib.utils import simpleSplit

    out: list[str] = []
    for raw in text.replace("\f", "\n").splitlines():
        if not raw.strip():
            out.append("")
            continue
        out.extend(simpleSplit(raw.rstrip(), BODY_FONT, BODY_SIZE, MAIN_X1 - MAIN_X0) or [""])
    while out and not out[-1]:
        out.pop()
    return out


def _paginate(lines: list[str]) -> list[list[str]]:
    pages: list[list[str]] = [[]]
    y = TOP_FIRST
    for ln in lines:
        if y < BOTTOM + 40:  # leave room for the footer (and the signature on the last page)
            pages.append([])
            y = TOP_OTHER
        pages[-1].append(ln)
        y -= LEADING
    return pages


def render(note: Path, out: Path, head: Letterhead, running: str) -> int:
    """Render ``note`` to ``out``; returns the page count."""
    from reportlab.pdfgen import canvas

    pages = _paginate(_wrap(note.read_text(encoding="utf-8")))
    c = canvas.Canvas(str(out), pagesize=(PAGE_W, PAGE_H), invariant=1)
    c.setTitle(note.stem)
    c.setAuthor("medtext sample corpus (fictional)")
    for i, body in enumerate(pages, start=1):
        if i == 1:
            c.setFont("Helvetica-Bold", 16)
            c.drawString(36, 752, head.hospital)
            c.setFont("Helvetica", 8)
            c.drawString(36, 738, head.address)
            c.setFont("Helvetica-Bold", 7.5)
            c.drawString(36, 690, "Departments")
            c.setFont("Helvetica", 7)
            for k, dept in enumerate(head.departments):
                c.drawString(36, 678 - 11 * k, dept)
            y = TOP_FIRST
        else:
            c.setFont("Helvetica", 8)
            c.drawString(MAIN_X0, 762, f"{head.hospital} | {running}")
            y = TOP_OTHER
        c.setFont(BODY_FONT, BODY_SIZE)
        for ln in body:
            if ln:
                c.drawString(MAIN_X0, y, ln)
            y -= LEADING
        if i == len(pages):
            c.setFont("Helvetica-Oblique", 9)
            c.drawString(MAIN_X0, max(y - 10, BOTTOM + 6), f"Electronically signed by {head.signer}")
        c.setFont("Helvetica", 8)
        c.drawString(36, 40, "CONFIDENTIAL - contains patient information")
        c.drawRightString(MAIN_X1, 26, f"Page {i} of {len(pages)}")
        c.showPage()
    c.save()
    return len(pages)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=SAMPLES, help="folder for the PDFs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, h, running in JOBS:
        n = render(SAMPLES / name, args.out / f"{Path(name).stem}.pdf", HOSPITALS[h], running)
        print(f"{args.out / (Path(name).stem + '.pdf')}: {n} page(s)")


if __name__ == "__main__":
    main()
