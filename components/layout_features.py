"""Per-line features for the layout classifier (``medtext_layout``).

Every non-blank line of ``doc._.lines`` becomes one feature row; blank lines are not classified
(they carry no text) but their presence is a feature of their neighbours. Three groups:

- **geometry** (PDF lines: x0/x1/y0/y1 relative to the page, width, font size relative to the
  document's body font, gaps to the previous and next line, distance from the main left margin)
  or what plain text gives (indentation, line length); both get the line's relative position
  within its page, first/last line of page, first/last page;
- **repetition**: on how many other pages the same line occurs once digits are masked ("Page 2
  of 5" and "Page 3 of 5" are one line), and how often it occurs in the document;
- **text shape**: length, token count, upper-case / digit / punctuation ratios, trailing colon
  or full stop, and patterns of page numbers, phone/fax/e-mail, dates, signatures, distribution
  lists and confidentiality notices;

plus hashed lower-cased tokens (digits masked) for the model's embedding table.
"""

from __future__ import annotations

import re
import statistics
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy

MAX_TOKENS = 16
MAX_SEQUENCE = 256

_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_PATTERNS = [re.compile(p, re.I) for p in (
    r"^\W*(page|p\.|pg\.?|seite|pagina)\s*\d+(\s*(of|/|von|de)\s*\d+)?\W*$|^\W*\d+\s*(/|of)\s*\d+\W*$|^\W*-\s*\d+\s*-\W*$",
    r"\b(tel|phone|fax|telephone|e-?mail|www\.|https?:)|@\w+\.|\(\d{3}\)\s*\d{3}",
    r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*\.? \d",
    r"\b(signed|signature|dictated|transcribed|electronically|attending physician|sincerely|regards)\b|,\s*(md|do|pt|ot|rn|np|pa-c|phd)\b",
    r"^\s*(cc|c\.c\.|copy to|copies to|distribution|bcc)\b",
    r"\b(confidential|printed|print date|document id|doc id|page generated|this document|protected health)\b",
    r"^\s*\d*\s*$",
    r"\b(department|dept\.?|division|clinic|hospital|medical center|health system|university)\b",
)]
N_FEATURES = 37 + len(_PATTERNS) + 4


@dataclass
class LineFeatures:
    """The classified lines of one document: ``rows`` index into ``doc._.lines``; ``pages``
    gives how many consecutive rows form each sequence of the contextual layer (a page, or a
    stretch of at most ``MAX_SEQUENCE`` lines of it)."""

    rows: list[int]
    feats: numpy.ndarray       # float32 [n, N_FEATURES]
    token_ids: numpy.ndarray   # uint64 [sum(lengths)]
    token_lengths: numpy.ndarray  # int32 [n]
    pages: list[int]
    texts: list[str] = field(default_factory=list)  # the rows' stripped text (for a text encoder)


def _hash(s: str) -> int:
    return zlib.crc32(s.encode("utf-8"))


def _tokens(text: str) -> list[int]:
    toks = [t.lower() if not t.isdigit() else "<num>" for t in _TOKEN.findall(text)[:MAX_TOKENS]]
    if not toks:
        return [_hash("<empty>")]
    return [_hash(t) for t in toks] + [_hash("<first>" + toks[0]), _hash("<last>" + toks[-1])]


def _key(text: str) -> str:
    return _SPACES.sub(" ", _DIGITS.sub("#", text.lower())).strip()


def extract(text: str, lines: list[dict[str, Any]]) -> LineFeatures:
    rows = [i for i, ln in enumerate(lines) if text[ln["start"]:ln["end"]].strip()]
    n = len(rows)
    feats = numpy.zeros((n, N_FEATURES), dtype="float32")
    if not n:
        return LineFeatures([], feats, numpy.zeros(0, dtype="uint64"), numpy.zeros(0, dtype="int32"), [])
    texts = [text[lines[i]["start"]:lines[i]["end"]] for i in rows]
    lns = [lines[i] for i in rows]
    n_pages = max(ln["page"] for ln in lns)
    page_rows: dict[int, list[int]] = defaultdict(list)
    for j, ln in enumerate(lns):
        page_rows[ln["page"]].append(j)
    keys = [_key(t) for t in texts]
    key_pages: dict[str, set[int]] = defaultdict(set)
    key_count: dict[str, int] = defaultdict(int)
    for k, ln in zip(keys, lns):
        key_pages[k].add(ln["page"])
        key_count[k] += 1
    # geometry of rotated pages (reader sets "rotation") is in the unrotated page's frame: unused
    geo = [ln.get("x0") is not None and bool(ln.get("page_width")) and not ln.get("rotation") for ln in lns]
    sizes = [(ln["font_size"], len(t)) for ln, t, g in zip(lns, texts, geo) if g and ln.get("font_size")]
    body_size = _weighted_median(sizes) if sizes else None
    x0s = [round(ln["x0"]) for ln, g in zip(lns, geo) if g]
    margin = statistics.mode(x0s) if x0s else None
    indents = [ln.get("indent") or 0 for ln in lns]
    max_indent = max(max(indents), 1)
    blank_before = {i for i in range(1, len(lines)) if not text[lines[i - 1]["start"]:lines[i - 1]["end"]].strip()}
    blank_after = {i for i in range(len(lines) - 1) if not text[lines[i + 1]["start"]:lines[i + 1]["end"]].strip()}
    token_ids: list[list[int]] = [[] for _ in range(n)]
    for page, js in page_rows.items():
        m = len(js)
        for pos, j in enumerate(js):
            f = feats[j]
            ln, t = lns[j], texts[j]
            f[0] = pos / max(m - 1, 1)
            f[1] = pos == 0
            f[2] = pos == m - 1
            f[3] = min(pos, 5) / 5
            f[4] = min(m - 1 - pos, 5) / 5
            f[5] = page == 1
            f[6] = page == n_pages
            f[7] = n_pages > 1
            f[8] = rows[j] in blank_before
            f[9] = rows[j] in blank_after
            others = len(key_pages[keys[j]] - {page})
            f[10] = others / max(n_pages - 1, 1)
            f[11] = min(key_count[keys[j]] - 1, 5) / 5
            if geo[j]:
                pw, ph = ln["page_width"], ln["page_height"]
                f[12] = 1.0
                f[13] = ln["x0"] / pw
                f[14] = ln["x1"] / pw
                f[15] = ln["y0"] / ph
                f[16] = ln["y1"] / ph
                f[17] = (ln["x1"] - ln["x0"]) / pw
                f[18] = (ln["x0"] + ln["x1"]) / 2 / pw
                if body_size and ln.get("font_size"):
                    r = ln["font_size"] / body_size
                    f[19] = min(r, 3.0) / 3
                    f[20] = r > 1.15
                    f[21] = r < 0.9
                prev = lns[js[pos - 1]] if pos else None
                nxt = lns[js[pos + 1]] if pos < m - 1 else None
                f[22] = min((ln["y0"] - prev["y1"]) / ph if prev and prev.get("y1") is not None
                            else ln["y0"] / ph, 0.5) * 2
                f[23] = min((nxt["y0"] - ln["y1"]) / ph if nxt and nxt.get("y0") is not None
                            else (ph - ln["y1"]) / ph, 0.5) * 2
                f[24] = min(abs(ln["x0"] - margin) / pw, 0.5) * 2 if margin is not None else 0
                f[25] = abs(ln["x0"] - margin) < 3 if margin is not None else 0
            else:
                f[26] = indents[j] / max_indent
                f[27] = indents[j] == 0
                f[28] = min(indents[j], 40) / 40
            s = t.strip()
            letters = sum(map(str.isalpha, s))
            f[29] = min(len(s), 150) / 150
            words = s.split()
            f[30] = min(len(words), 25) / 25
            f[31] = sum(map(str.isupper, s)) / max(letters, 1)
            f[32] = sum(map(str.isdigit, s)) / len(s)
            f[33] = (len(s) - sum(map(str.isalnum, s)) - sum(map(str.isspace, s))) / len(s)
            f[34] = s.endswith(".")
            f[35] = s.endswith(":")
            f[36] = sum(w[:1].isupper() for w in words) / max(len(words), 1)
            for k, pat in enumerate(_PATTERNS):
                f[37 + k] = pat.search(s) is not None
            token_ids[j] = _tokens(s)
        _columns(feats, [lns[j] for j in js], js, 37 + len(_PATTERNS))
    # share of the document's lines that start at this line's left edge
    base = 37 + len(_PATTERNS)
    edges = numpy.array([round(ln["x0"] / 3) if g else (ln.get("indent") or 0) for ln, g in zip(lns, geo)])
    values, counts = numpy.unique(edges, return_counts=True)
    share = dict(zip(values.tolist(), (counts / n).tolist()))
    feats[:, base + 3] = [share[e] for e in edges.tolist()]
    pages = sorted(page_rows)
    if any(page_rows[p] != list(range(page_rows[p][0], page_rows[p][0] + len(page_rows[p]))) for p in pages):
        raise ValueError("doc._.lines must be in reading order, page by page")
    # the contextual layer reads each page in order, in stretches of at most MAX_SEQUENCE lines
    # (a text file without form feeds is one "page")
    seqs = [min(MAX_SEQUENCE, len(page_rows[p]) - k) for p in pages
            for k in range(0, len(page_rows[p]), MAX_SEQUENCE)]
    return LineFeatures(rows, feats, numpy.array([t for ids in token_ids for t in ids], dtype="uint64"),
                        numpy.array([len(ids) for ids in token_ids], dtype="int32"), seqs,
                        [t.strip() for t in texts])


def _columns(feats: numpy.ndarray, page_lines: list[dict[str, Any]], js: list[int], base: int,
             block: int = 256) -> None:
    """Column structure of one page: body lines share their column with most lines of the page;
    a side column or a margin note shares it with few and sits beside other lines. Pairwise
    comparisons go in blocks of rows, so a page of 100k text lines stays small in memory."""
    m = len(page_lines)
    rows = numpy.asarray(js)
    if all(ln.get("x0") is not None and ln.get("page_width") and not ln.get("rotation") for ln in page_lines):
        x0 = numpy.array([ln["x0"] for ln in page_lines])
        x1 = numpy.array([ln["x1"] for ln in page_lines])
        y0 = numpy.array([ln["y0"] for ln in page_lines])
        y1 = numpy.array([ln["y1"] for ln in page_lines])
        width = numpy.maximum(x1 - x0, 1.0)
        for s in range(0, m, block):
            b = slice(s, s + block)
            overlap = numpy.minimum(x1[b, None], x1[None, :]) - numpy.maximum(x0[b, None], x0[None, :])
            same_column = overlap > 0.5 * numpy.minimum(width[b, None], width[None, :])
            rows_overlap = (numpy.minimum(y1[b, None], y1[None, :]) - numpy.maximum(y0[b, None], y0[None, :])) > 0
            feats[rows[b], base] = same_column.sum(1) / m
            feats[rows[b], base + 1] = (rows_overlap & (overlap <= 0)).any(1)
            feats[rows[b], base + 2] = (numpy.abs(x0[b, None] - x0[None, :]) < 3).sum(1) / m
    else:
        indent = numpy.array([ln.get("indent") or 0 for ln in page_lines])
        counts = numpy.bincount(indent, minlength=int(indent.max()) + 2)
        near = counts[indent] + counts[indent + 1] + numpy.where(indent > 0, counts[numpy.maximum(indent - 1, 0)], 0)
        feats[rows, base + 2] = near / m


def _weighted_median(pairs: list[tuple[float, int]]) -> float:
    pairs = sorted(pairs)
    half = sum(w for _, w in pairs) / 2
    acc = 0
    for v, w in pairs:
        acc += w
        if acc >= half:
            return v
    return pairs[-1][0]
