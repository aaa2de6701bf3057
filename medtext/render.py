"""A self-contained HTML report of records: one file, inline CSS and JS, no external URL.

:func:`render_html` turns records (dicts of ``record.schema.json``) into a single HTML page:

* an index (counts, a per-label bar chart, per-assertion counts, a table of documents and the
  failed inputs of a run);
* one section per document (``id="doc-<n>"``, ``data-doc-id``): the note text exactly as in the
  record (``white-space: pre-wrap``; the text of its ``.note-text`` element equals
  ``record["text"]`` character for character), with layout regions shaded, entities coloured by
  label (``<mark class="ent">``, an assertion badge for non-present assertions, codes and lay
  terms on hover), error findings underlined, RadGraph relations drawn as arcs by inline JS
  (plus a plain list), and the lay version in a second column.

Everything that comes from a record is escaped (``html.escape(quote=True)`` in markup; JSON with
``<``, ``>``, ``&``, U+2028 and U+2029 escaped inside ``<script>``), and a Content-Security-Policy
allows only the report's own script (by hash), so note text cannot inject markup or code.

:func:`render_records_file` reads ``records.jsonl`` (or a run folder holding it, with its
``errors.jsonl``), validates each record and renders it.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import html
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .atomic import atomic_write_text
from .errors import InputError, SchemaError

__all__ = ["render_html", "render_records_file", "read_records_file", "label_colour",
           "LABEL_PALETTE", "ASSERTION_BADGES"]

log = logging.getLogger(__name__)

#: fixed, muted colours of the entity labels medtext produces; other labels get a hash colour
LABEL_PALETTE: dict[str, str] = {
    "PROBLEM": "#c8553d",
    "TEST": "#3f7cac",
    "TREATMENT": "#5b9a5b",
    "DRUG": "#8a63b3",
    "PROCEDURE": "#2a9d8f",
    "ANATOMY": "#d08c2f",
    "FUNCTION": "#a0783c",
    "ANAT-DP": "#d08c2f",
    "OBS-DP": "#c8553d",
    "OBS-U": "#c9a227",
    "OBS-DA": "#6c7a89",
}

#: badge text shown after an entity whose assertion is not "present"
ASSERTION_BADGES: dict[str, str] = {
    "negated": "NEG",
    "uncertain": "UNC",
    "hypothetical": "HYP",
    "historical": "HIST",
    "family": "FAM",
    "conditional": "COND",
}

#: bar colours of the per-assertion chart ("unassessed" = assertion null)
_ASSERTION_COLOURS: dict[str, str] = {
    "present": "#6f93bf", "negated": "#c47a7a", "uncertain": "#d2b05a", "hypothetical": "#9a8cc4",
    "historical": "#7fae9f", "family": "#c99d78", "conditional": "#9aa3ad", "unassessed": "#cfd4da",
}

#: relation label -> CSS class suffix (and arrowhead marker); anything else is "other"
_RELATION_KINDS: dict[str, str] = {"modify": "modify", "located_at": "located_at",
                                   "suggestive_of": "suggestive_of"}
_RELATION_COLOURS: dict[str, str] = {"modify": "#7d6ba8", "located_at": "#3f7cac",
                                     "suggestive_of": "#b5654a", "other": "#7b8794"}

_DOT = " \u00b7 "
_LAYOUT_LABELS = ("header", "footer", "side", "signature", "pagination", "other")
_LINE_BREAK = re.compile(r"\r\n|\n|\r|\f")


# --------------------------------------------------------------------------- escaping helpers

def _esc(value: Any) -> str:
    """``value`` as text safe inside HTML markup and quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _esc_text(text: str) -> str:
    """Note text safe in markup that keeps every character in the DOM: a carriage return as a
    character reference (the HTML parser would turn a raw one into a newline) and a form feed
    as a visible page-break element that still holds the character."""
    out = _esc(text).replace("\r", "&#13;")
    if "\f" in out:
        out = out.replace("\f", '<span class="pb" title="page break">\f</span>')
    return out


def _script_json(obj: Any) -> str:
    """JSON of ``obj`` that is inert inside a ``<script>`` element (no ``</script>``, no
    ``<!--``, no JS line terminators)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, rep in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, rep)
    return text


def label_colour(label: str) -> str:
    """The colour (``#rrggbb``) of an entity label: a fixed one for medtext's labels, else a
    stable muted colour derived from a hash of the label."""
    if label in LABEL_PALETTE:
        return LABEL_PALETTE[label]
    digest = hashlib.sha256(label.encode("utf-8", "surrogatepass")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65535
    r, g, b = colorsys.hls_to_rgb(hue, 0.50, 0.38)
    return "#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _fmt_score(score: Any) -> str:
    try:
        return f"{float(score):.2f}"
    except (TypeError, ValueError):
        return "?"


# --------------------------------------------------------------------------- nested markup

@dataclass(eq=False)
class _Mark:
    """One span of markup over the note text: ``rank`` orders nesting (layout region 0 outside,
    error finding 1, entity 2 inside). A mark that crosses another one is split: the first piece
    uses ``open_first``, the others ``open_cont``; the last piece ends with ``close_final``."""

    start: int
    end: int
    rank: int
    order: int
    open_first: str
    open_cont: str
    close_final: str
    close_part: str

    def key(self) -> tuple:
        """Nesting order among marks open at the same place (outer first): by rank, then the
        one opened first (so a mark that crosses an open one is the one split), then longest."""
        return (self.rank, self.start, -self.end, self.order)


def _markup(text: str, marks: list[_Mark]) -> str:
    """HTML of ``text`` with ``marks`` wrapped around their character ranges.

    Walks the text by offsets: at every boundary the open marks are brought into nesting order
    (closing and re-opening only those that cross), so no character is dropped or repeated and
    overlapping or nested spans all render."""
    n = len(text)
    marks = [m for m in marks if 0 <= m.start < m.end <= n]
    starts: dict[int, list[_Mark]] = {}
    for m in marks:
        starts.setdefault(m.start, []).append(m)
    bounds = sorted({0, n, *(m.start for m in marks), *(m.end for m in marks)})
    out: list[str] = []
    stack: list[_Mark] = []
    active: list[_Mark] = []
    opened: set[int] = set()
    pos = 0
    for p in bounds:
        if p > pos:
            out.append(_esc_text(text[pos:p]))
            pos = p
        active = [m for m in active if m.end > p] + starts.get(p, [])
        wanted = sorted(active, key=_Mark.key)
        keep = 0
        while keep < len(stack) and keep < len(wanted) and stack[keep] is wanted[keep]:
            keep += 1
        for m in reversed(stack[keep:]):
            out.append(m.close_final if m.end <= p else m.close_part)
        del stack[keep:]
        for m in wanted[keep:]:
            out.append(m.open_cont if id(m) in opened else m.open_first)
            opened.add(id(m))
            stack.append(m)
    for m in reversed(stack):  # only marks ending at len(text) can remain
        out.append(m.close_final)
    return "".join(out)


def _layout_regions(text: str, lines: list[dict]) -> list[tuple[int, int, str]]:
    """Runs of consecutive lines with the same non-body layout label, as (start, end, label);
    ``end`` takes in the line break after the run so the region renders as whole lines."""
    regions: list[list] = []
    n = len(text)
    for ln in sorted(lines or [], key=lambda ln: (ln.get("start") or 0)):
        start, end, label = ln.get("start"), ln.get("end"), ln.get("label")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= n:
            continue  # empty lines neither start nor break a region
        if label in (None, "body"):
            regions.append([start, end, None])
            continue
        last = regions[-1] if regions else None
        if last and last[2] == label and not text[last[1]:start].strip():
            last[1] = end
        else:
            regions.append([start, end, label])
    out = []
    for start, end, label in regions:
        if label is None:
            continue
        m = _LINE_BREAK.match(text, end)
        out.append((start, m.end() if m else end, str(label)))
    return out


# --------------------------------------------------------------------------- per-record pieces

class _Labels:
    """Entity label -> CSS class ``l<i>`` (labels never reach CSS or class names themselves)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def cls(self, label: str) -> str:
        if label not in self.index:
            self.index[label] = len(self.index)
        return f"l{self.index[label]}"

    def css(self) -> str:
        rules = []
        for label, i in self.index.items():
            c = label_colour(label)
            rules.append(f".l{i}{{--c:{c};--bg:{_rgba(c, 0.17)};--bd:{_rgba(c, 0.75)}}}")
            rules.append(f"body.hide-l{i} mark.l{i}{{background:transparent;border-bottom-color:"
                         f"transparent}}")
        return "\n".join(rules)


def _lay_parts(lay: Any) -> tuple[str | None, str | None]:
    """(term, definition) of an entity's ``lay`` field (a string, a dict or null)."""
    if lay is None:
        return None, None
    if isinstance(lay, str):
        return lay, None
    if isinstance(lay, dict):
        term, definition = lay.get("term"), lay.get("definition")
        return (None if term is None else str(term)), (None if definition is None else str(definition))
    return str(lay), None


def _concept_lines(ent: dict, top: int = 5) -> list[str]:
    lines = []
    for c in (ent.get("concepts") or [])[:top]:
        if not isinstance(c, dict):
            continue
        display = c.get("display")
        lines.append(f"{c.get('system')}:{c.get('code')}" + (f" {display}" if display else "")
                     + f" ({_fmt_score(c.get('score'))})")
    return lines


def _entity_tip(ent: dict) -> str:
    """Plain-text hover box of an entity: label, assertion, codes and lay term."""
    assertion = ent.get("assertion")
    head = f"{ent.get('label')} {ent.get('id')}" + (f" \u00b7 {assertion}" if assertion else "")
    lines = [head]
    flags = [f for f in (ent.get("flags") or []) if f != assertion]
    if flags:
        lines.append("also: " + ", ".join(str(f) for f in flags))
    if ent.get("section"):
        lines.append(f"section: {ent['section']}")
    if ent.get("kb_id"):
        lines.append(f"kb_id: {ent['kb_id']}")
    lines += _concept_lines(ent)
    term, definition = _lay_parts(ent.get("lay"))
    if term:
        lines.append(f"lay: {term}")
    if definition:
        lines.append(f"definition: {definition}")
    return "\n".join(lines)


def _error_tip(k: int, err: dict) -> str:
    lines = [f"E{k} error finding: {err.get('type')} (detector {err.get('detector')}"
             + (f", score {_fmt_score(err.get('score'))}" if err.get("score") is not None else "") + ")",
             str(err.get("message") or "")]
    if err.get("correction"):
        lines.append(f"suggested: {err['correction']}")
    return "\n".join(lines)


def _entity_mark(ent: dict, order: int, labels: _Labels) -> _Mark:
    label = str(ent.get("label"))
    assertion = ent.get("assertion")
    cls = f"{labels.cls(label)}" + (f" a-{assertion}" if assertion in ASSERTION_BADGES else "")
    attrs = (f' data-label="{_esc(label)}" data-entity-id="{_esc(ent.get("id"))}"'
             f' data-assertion="{_esc(assertion or "")}" title="{_esc(_entity_tip(ent))}"')
    badge = ASSERTION_BADGES.get(assertion)
    badge_html = (f'<sup class="badge" data-badge="{badge}" aria-label="{_esc(assertion)}"></sup>'
                  if badge else "")
    return _Mark(int(ent["start"]), int(ent["end"]), 2, order,
                 open_first=f'<mark class="ent {cls}"{attrs}>',
                 open_cont=f'<mark class="ent-part {cls}"{attrs}>',
                 close_final=f"{badge_html}</mark>", close_part="</mark>")


def _error_mark(n: int, k: int, err: dict, order: int) -> _Mark:
    attrs = f' data-error="E{k}" title="{_esc(_error_tip(k, err))}"'
    return _Mark(int(err["start"]), int(err["end"]), 1, order,
                 open_first=f'<span class="error-finding" id="doc-{n}-e{k}"{attrs}>',
                 open_cont=f'<span class="error-part"{attrs}>',
                 close_final=f'<sup class="err-ref" data-ref="E{k}"></sup></span>',
                 close_part="</span>")


def _region_mark(start: int, end: int, label: str, order: int) -> _Mark:
    safe = label if label in _LAYOUT_LABELS else "other"
    attrs = f'class="region region-{safe}" data-region="{_esc(label)}" title="{_esc(label)} region"'
    return _Mark(start, end, 0, order, open_first=f"<span {attrs}>",
                 open_cont=f'<span {attrs} data-part="1">', close_final="</span>", close_part="</span>")


def _is_span(item: Any) -> bool:
    return (isinstance(item, dict) and isinstance(item.get("start"), int)
            and isinstance(item.get("end"), int))


def _note_html(n: int, rec: dict, labels: _Labels) -> str:
    """The marked-up note text of one record (the inside of its ``.note-text`` element)."""
    text = rec["text"]
    marks: list[_Mark] = []
    for start, end, label in _layout_regions(text, rec.get("lines") or []):
        marks.append(_region_mark(start, end, label, len(marks)))
    for k, err in enumerate(rec.get("errors") or [], 1):
        if _is_span(err):
            marks.append(_error_mark(n, k, err, len(marks)))
    for ent in rec.get("entities") or []:
        if _is_span(ent):
            marks.append(_entity_mark(ent, len(marks), labels))
    return _markup(text, marks)


def _entity_table(ents: list[dict], labels: _Labels, *, open_: bool) -> str:
    if not ents:
        return ""
    rows = []
    for ent in ents:
        label = str(ent.get("label"))
        term, definition = _lay_parts(ent.get("lay"))
        codes = "<br>".join(_esc(c) for c in _concept_lines(ent, top=3))
        lay = _esc(term or "") + (f'<div class="muted">{_esc(definition)}</div>' if definition else "")
        rows.append(
            f'<tr><td>{_esc(ent.get("id"))}</td><td class="etext">{_esc(ent.get("text"))}</td>'
            f'<td><span class="sw {labels.cls(label)}"></span>{_esc(label)}</td>'
            f'<td>{_esc(ent.get("assertion") or "")}</td><td>{_esc(", ".join(map(str, ent.get("flags") or [])))}</td>'
            f'<td>{_esc(ent.get("section") or "")}</td>'
            f'<td class="num">{_esc(ent.get("start"))}\u2013{_esc(ent.get("end"))}</td>'
            f'<td>{_esc(ent.get("kb_id") or "")}<div class="muted">{codes}</div></td><td>{lay}</td></tr>')
    return (f'<details class="ent-list"{" open" if open_ else ""}><summary>Entities ({len(ents)})'
            '</summary><div class="table-wrap"><table class="grid"><thead><tr><th>id</th><th>text</th>'
            '<th>label</th><th>assertion</th><th>flags</th><th>section</th><th>chars</th>'
            '<th>codes</th><th>lay</th></tr></thead><tbody>' + "".join(rows)
            + "</tbody></table></div></details>")


def _relation_list(rels: list[dict], ents_by_id: dict[str, dict]) -> str:
    if not rels:
        return ""
    items = []
    for r in rels:
        head, tail = ents_by_id.get(r.get("head")), ents_by_id.get(r.get("tail"))
        kind = _RELATION_KINDS.get(r.get("label"), "other")
        items.append(
            f'<li><span class="rel-ent">{_esc(head.get("text") if head else r.get("head"))}</span>'
            f' <span class="rel-arrow" aria-hidden="true">\u2192</span> <span class="rel-label r-{kind}">'
            f'{_esc(r.get("label"))}</span> <span class="rel-arrow" aria-hidden="true">\u2192</span> '
            f'<span class="rel-ent">{_esc(tail.get("text") if tail else r.get("tail"))}</span>'
            f' <span class="muted">({_esc(r.get("head"))}\u2192{_esc(r.get("tail"))}, '
            f'{_fmt_score(r.get("score"))})</span></li>')
    return (f'<details class="rel-list"><summary>Relations ({len(rels)})</summary><ol>'
            + "".join(items) + "</ol></details>")


def _error_list(n: int, errs: list[dict], text: str | None) -> str:
    if not errs:
        return ""
    items = []
    for k, err in enumerate(errs, 1):
        quote = ""
        if text is not None and _is_span(err):
            quote = f'<blockquote>{_esc(text[err["start"]:err["end"]])}</blockquote>'
        corr = (f'<div class="corr">Suggested correction: <strong>{_esc(err.get("correction"))}</strong></div>'
                if err.get("correction") else "")
        score = f", score {_fmt_score(err.get('score'))}" if err.get("score") is not None else ""
        items.append(
            f'<li><a class="eref" href="#doc-{n}-e{k}">E{k}</a> <span class="etype">{_esc(err.get("type"))}</span>'
            f' <span class="muted">({_esc(err.get("detector"))}{score})</span>'
            f'<div class="emsg">{_esc(err.get("message"))}</div>{corr}{quote}</li>')
    return (f'<div class="callout errors" role="note"><h3>Error findings ({len(errs)})</h3><ol>'
            + "".join(items) + "</ol></div>")


def _doc_section(n: int, rec: dict, labels: _Labels) -> tuple[str, list]:
    """HTML of one document's section and the relations its arcs draw ([head, tail, label])."""
    doc_id = str(rec.get("doc_id"))
    text = rec.get("text")
    ents = [e for e in (rec.get("entities") or []) if isinstance(e, dict)]
    rels = [r for r in (rec.get("relations") or []) if isinstance(r, dict)]
    errs = [e for e in (rec.get("errors") or []) if isinstance(e, dict)]
    lay_text = rec.get("lay_text")
    ents_by_id = {e.get("id"): e for e in ents}
    source = rec.get("source") or {}
    pipeline = rec.get("pipeline") or {}
    meta = [f"{_esc(source.get('format') or 'text')}",
            f"{_esc(rec.get('pages'))} page{'s' if rec.get('pages') != 1 else ''}",
            f"{rec.get('n_chars') or 0:,} chars", f"{len(ents)} entities", f"{len(rels)} relations",
            f"{len(errs)} error findings"]
    if pipeline.get("name"):
        meta.append(f"{_esc(pipeline.get('name'))} {_esc(pipeline.get('version') or '')}")
    src = (f'<div class="muted src">{_esc(source.get("path"))}'
           + (f" row {_esc(source.get('row'))}" if source.get("row") is not None else "")
           + "</div>") if source.get("path") else ""
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in rec.get("warnings") or [])
    warnings = f'<ul class="warnings">{warnings}</ul>' if warnings else ""
    parts = [f'<section class="doc" id="doc-{n}" data-doc-id="{_esc(doc_id)}">',
             f'<header class="doc-head"><h2><span class="doc-n">{n}</span> <span class="doc-id">'
             f'{_esc(doc_id)}</span></h2><a class="alone" href="#only=doc-{n}">show alone</a>'
             f'<a class="up" href="#index">\u2191 index</a>'
             f'<div class="doc-meta">{_DOT.join(meta)}</div>{src}{warnings}</header>']
    two_col = lay_text is not None
    parts.append(f'<div class="doc-body{" two-col" if two_col else ""}"><div class="col note-col">'
                 '<h3>Note</h3>')
    arcs: list = []
    if text is None:
        parts.append('<p class="notice">This record holds no text (it was written with '
                     '<code>--no-text</code>): only the fields the pipeline extracted are shown.</p>')
    else:
        classes = ["note-text"]
        if rels:
            classes.append("has-arcs")
        if any(ln.get("label") not in (None, "body") for ln in rec.get("lines") or [] if isinstance(ln, dict)):
            classes.append("has-regions")
        arcs = [[str(r.get("head")), str(r.get("tail")), str(r.get("label"))] for r in rels]
        parts.append(f'<div class="note-wrap" data-n="{n}"><div class="{" ".join(classes)}" '
                     f'data-doc-id="{_esc(doc_id)}">{_note_html(n, rec, labels)}</div>'
                     '<svg class="arcs" aria-hidden="true" focusable="false"><g class="arc-layer"></g>'
                     '</svg></div>')
    parts.append("</div>")
    if two_col:
        parts.append(f'<div class="col lay-col"><h3>Lay version</h3><div class="lay-text">'
                     f'{_esc_text(lay_text)}</div></div>')
    parts.append("</div>")
    parts.append(_error_list(n, errs, text))
    parts.append(_relation_list(rels, ents_by_id))
    parts.append(_entity_table(ents, labels, open_=text is None))
    parts.append("</section>")
    return "".join(parts), arcs


# --------------------------------------------------------------------------- index

@dataclass
class _Totals:
    """Counts over every record seen (rendered or not)."""

    docs: int = 0
    entities: int = 0
    relations: int = 0
    errors: int = 0
    with_lay: int = 0
    without_text: int = 0

    def __post_init__(self) -> None:
        self.labels: dict[str, int] = {}
        self.assertions: dict[str, int] = {}

    def add(self, rec: dict) -> None:
        self.docs += 1
        ents = rec.get("entities") or []
        self.entities += len(ents)
        self.relations += len(rec.get("relations") or [])
        self.errors += len(rec.get("errors") or [])
        self.with_lay += rec.get("lay_text") is not None
        self.without_text += rec.get("text") is None
        for ent in ents:
            if isinstance(ent, dict):
                label = str(ent.get("label"))
                self.labels[label] = self.labels.get(label, 0) + 1
                status = ent.get("assertion") or "unassessed"
                self.assertions[str(status)] = self.assertions.get(str(status), 0) + 1


def _bar_chart(rows: list[tuple[str, int, str, str]], *, title: str, css_class: str) -> str:
    """A horizontal bar chart as inline SVG: rows of (label, count, class, fill colour or "")."""
    if not rows:
        return f'<p class="muted">No {title.lower()}.</p>'
    bar_h, gap, left, bar_w, right = 16, 6, 118, 300, 56
    height = len(rows) * (bar_h + gap) + gap
    width = left + bar_w + right
    top = max(count for _, count, _, _ in rows) or 1
    items = []
    for i, (label, count, cls, fill) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(1.0, bar_w * count / top)
        shown = label if len(label) <= 16 else label[:15] + "\u2026"
        fill_attr = f' fill="{fill}"' if fill else ""
        items.append(
            f'<g class="row"><title>{_esc(label)}: {count:,}</title>'
            f'<text class="lbl" x="{left - 8}" y="{y + bar_h - 4}" text-anchor="end">{_esc(shown)}</text>'
            f'<rect class="bar {cls}" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2"{fill_attr}>'
            f'</rect><text class="cnt" x="{left + w + 6:.1f}" y="{y + bar_h - 4}">{count:,}</text></g>')
    return (f'<figure class="chart {css_class}"><figcaption>{_esc(title)}</figcaption>'
            f'<svg role="img" aria-label="{_esc(title)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(items)}</svg></figure>')


def _index_html(title: str, totals: _Totals, doc_rows: list[str], failures: list[dict] | None,
                labels: _Labels, shown: int) -> str:
    cards = [("Documents", totals.docs), ("Entities", totals.entities),
             ("Relations", totals.relations), ("Error findings", totals.errors),
             ("Lay versions", totals.with_lay)]
    if failures is not None:
        cards.append(("Failed inputs", len(failures)))
    card_html = "".join(f'<div class="card{" bad" if name == "Failed inputs" and value else ""}">'
                        f'<div class="v">{value:,}</div><div class="k">{name}</div></div>'
                        for name, value in cards)
    label_rows = [(label, count, f"bar-ent {labels.cls(label)}", "")
                  for label, count in sorted(totals.labels.items(), key=lambda kv: (-kv[1], kv[0]))]
    order = list(_ASSERTION_COLOURS)
    assertion_rows = [(a, c, "bar-assert", _ASSERTION_COLOURS.get(a, "#9aa3ad")) for a, c in
                      sorted(totals.assertions.items(),
                             key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))]
    notes = []
    if shown < totals.docs:
        notes.append(f"Counts cover all {totals.docs:,} documents; the first {shown:,} are shown "
                     "below (max_docs).")
    if totals.without_text:
        notes.append(f"{totals.without_text:,} record{'s hold' if totals.without_text != 1 else ' holds'} "
                     "no text (written with --no-text).")
    note_html = "".join(f'<p class="muted">{_esc(t)}</p>' for t in notes)
    table = ('<div class="table-wrap docs-wrap"><table class="grid docs"><thead><tr><th>#</th>'
             '<th>document</th><th>format</th><th class="num">pages</th><th class="num">chars</th>'
             '<th class="num">entities</th><th class="num">negated</th><th class="num">relations</th>'
             '<th class="num">errors</th><th>lay</th></tr></thead><tbody>' + "".join(doc_rows)
             + "</tbody></table></div>") if doc_rows else '<p class="muted">No documents.</p>'
    fail_html = ""
    if failures:
        rows = "".join(
            f'<tr><td>{_esc(f.get("doc_id") or "")}</td><td>{_esc(_failure_source(f))}</td>'
            f'<td>{_esc(f.get("reason") or f.get("kind") or "")}</td><td>{_esc(f.get("message") or "")}</td></tr>'
            for f in failures)
        fail_html = ('<h2 id="failures">Failed inputs</h2><div class="table-wrap"><table class="grid fails">'
                     '<thead><tr><th>document</th><th>source</th><th>reason</th><th>message</th></tr>'
                     f'</thead><tbody>{rows}</tbody></table></div>')
    return (f'<section class="index" id="index"><h1>{_esc(title)}</h1><div class="cards">{card_html}</div>'
            f'{note_html}<div class="charts">'
            + _bar_chart(label_rows, title="Entities by label", css_class="labels")
            + _bar_chart(assertion_rows, title="Entities by assertion", css_class="assertions")
            + f'</div><h2>Documents</h2>{table}{fail_html}</section>')


def _failure_source(f: dict) -> str:
    src = f.get("source")
    if isinstance(src, dict):
        src = src.get("path")
    row = f.get("row")
    return f"{src or ''}" + (f" row {row}" if row is not None else "")


def _doc_row(n: int, rec: dict) -> str:
    ents = rec.get("entities") or []
    negated = sum(1 for e in ents if isinstance(e, dict) and e.get("assertion") == "negated")
    lay = "\u2713" if rec.get("lay_text") is not None else ""
    n_err = len(rec.get("errors") or [])
    return (f'<tr><td class="num">{n}</td><td><a href="#doc-{n}">{_esc(rec.get("doc_id"))}</a></td>'
            f'<td>{_esc((rec.get("source") or {}).get("format") or "")}</td>'
            f'<td class="num">{_esc(rec.get("pages"))}</td><td class="num">{rec.get("n_chars") or 0:,}</td>'
            f'<td class="num">{len(ents)}</td><td class="num">{negated}</td>'
            f'<td class="num">{len(rec.get("relations") or [])}</td>'
            f'<td class="num{" hot" if n_err else ""}">{n_err}</td><td>{lay}</td></tr>')


# --------------------------------------------------------------------------- page

_CSS = """
:root{--ink:#1f2933;--muted:#66727f;--line:#e1e5ea;--paper:#fff;--bg:#f5f6f8;--accent:#2f6690;
--sans:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;color-scheme:light}
*{box-sizing:border-box}
html{scroll-behavior:auto}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 var(--sans)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.topbar{position:sticky;top:0;z-index:10;background:rgba(255,255,255,.96);border-bottom:1px solid var(--line);
padding:7px 20px;display:flex;gap:14px;align-items:center;flex-wrap:wrap;box-shadow:0 1px 3px rgba(0,0,0,.04)}
.topbar .brand{font-weight:650;letter-spacing:.01em;margin-right:6px;white-space:nowrap}
.topbar .brand a{color:var(--ink)}
.legend{display:flex;gap:4px 10px;flex-wrap:wrap;align-items:center;font-size:12px}
.legend label{display:inline-flex;align-items:center;gap:4px;cursor:default;white-space:nowrap;color:#39444f}
.legend input{display:none;margin:0}
.js .legend input{display:inline-block;cursor:pointer}
.js .legend label{cursor:pointer}
.legend .sep{width:1px;height:16px;background:var(--line);margin:0 4px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;background:var(--bg);border:1px solid var(--bd);vertical-align:-1px;margin-right:4px}
.legend .sw{margin-right:0}
.toggles{display:none}.js .toggles{display:contents}
main{max-width:1500px;margin:0 auto;padding:18px 20px 60px}
h1{font-size:22px;margin:4px 0 14px;font-weight:650}
h2{font-size:17px;margin:22px 0 10px;font-weight:650}
h3{font-size:12px;margin:0 0 6px;font-weight:600;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.muted{color:var(--muted)}
.index,.doc{background:var(--paper);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin-bottom:18px;
scroll-margin-top:60px}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin-bottom:6px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:118px;background:#fafbfc}
.card .v{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.card .k{font-size:12px;color:var(--muted)}
.card.bad{border-color:#e3b5b0;background:#fdf5f4}.card.bad .v{color:#a8352b}
.charts{display:flex;gap:36px;flex-wrap:wrap;margin-top:10px}
.chart{margin:6px 0}.chart figcaption{font-size:12px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.06em;margin-bottom:4px}
.chart text{font:12px var(--sans);fill:#39444f}.chart text.cnt{fill:var(--muted);font-variant-numeric:tabular-nums}
.chart rect.bar-ent{fill:var(--c);fill-opacity:.8}
.table-wrap{overflow:auto;border:1px solid var(--line);border-radius:6px}
.docs-wrap{max-height:340px}
table.grid{border-collapse:collapse;width:100%;font-size:13px}
table.grid th{position:sticky;top:0;background:#f3f5f7;text-align:left;font-weight:600;color:#47525e;z-index:1}
table.grid th,table.grid td{padding:4px 10px;border-bottom:1px solid #edf0f3;vertical-align:top}
table.grid tr:last-child td{border-bottom:0}
table.grid td.num,table.grid th.num{text-align:right;font-variant-numeric:tabular-nums}
td.hot{color:#a8352b;font-weight:600}
.doc-head{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 12px;margin-bottom:12px}
.doc-head h2{margin:0;font-size:16px;flex:1 1 auto;word-break:break-all}
.doc-n{display:inline-block;min-width:26px;padding:0 6px;border-radius:10px;background:#eef2f6;color:#50606f;font-size:12px;text-align:center;vertical-align:2px}
.doc-meta{flex-basis:100%;font-size:12.5px;color:var(--muted)}
.src{flex-basis:100%;font-size:12px;word-break:break-all}
.up,.alone{font-size:12px}.js .alone{display:inline}.alone{display:none}
body.solo .index,body.solo section.doc:not(.solo-doc){display:none}
.showall{display:none;font-size:12px}body.solo .showall{display:inline}
.warnings{flex-basis:100%;margin:6px 0 0;padding:6px 10px 6px 28px;background:#fff8e6;border:1px solid #f0dfb0;border-radius:6px;font-size:12.5px}
.doc-body{display:block}
.doc-body.two-col{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:22px}
@media (max-width:900px){.doc-body.two-col{display:block}.lay-col{margin-top:16px}}
.note-wrap{position:relative}
.note-text{white-space:pre-wrap;overflow-wrap:anywhere;font:13px/1.75 var(--mono);background:#fcfcfd;border:1px solid var(--line);
border-radius:6px;padding:10px 14px;tab-size:4;color:#1d2731}
.note-text.has-arcs{line-height:2.75;padding-top:18px}
.note-text.has-regions{padding-left:84px}
.lay-text{white-space:pre-wrap;overflow-wrap:anywhere;font:14px/1.65 var(--sans);background:#fbfcf9;border:1px solid #e3e8dc;
border-radius:6px;padding:10px 14px;color:#26302a}
svg.arcs{position:absolute;left:0;top:0;overflow:visible;pointer-events:none}
body.hide-arcs svg.arcs{display:none}
path.arc{fill:none;stroke-width:1.3;stroke-opacity:.85}
path.arc.far{stroke-dasharray:3 2;stroke-opacity:.45}text.arc-label.far{display:none}
.note-wrap.focus path.arc,.note-wrap.focus text.arc-label{opacity:.12}
.note-wrap.focus path.arc.on,.note-wrap.focus text.arc-label.on{opacity:1;stroke-opacity:1;display:inline}
.note-wrap.focus path.arc.on{stroke-width:2}
text.arc-label{font:600 9.5px var(--sans);text-anchor:middle;dominant-baseline:central;paint-order:stroke;stroke:#fcfcfd;stroke-width:3px;stroke-linejoin:round}
.r-modify{stroke:#7d6ba8;color:#7d6ba8}.r-located_at{stroke:#3f7cac;color:#3f7cac}
.r-suggestive_of{stroke:#b5654a;color:#b5654a}.r-other{stroke:#7b8794;color:#7b8794}
text.arc-label.r-modify{fill:#7d6ba8}text.arc-label.r-located_at{fill:#3f7cac}
text.arc-label.r-suggestive_of{fill:#b5654a}text.arc-label.r-other{fill:#7b8794}
mark.ent,mark.ent-part{background:var(--bg);color:inherit;border-bottom:2px solid var(--bd);border-radius:2px;padding:0;
-webkit-box-decoration-break:clone;box-decoration-break:clone}
mark.a-negated{text-decoration:line-through;text-decoration-color:rgba(40,48,56,.55);text-decoration-thickness:1px}
mark.a-uncertain,mark.a-hypothetical,mark.a-conditional{border-bottom-style:dashed}
mark.a-historical,mark.a-family{border-bottom-style:dotted}
sup.badge,sup.err-ref{font:700 8.5px/1 var(--sans);letter-spacing:.03em;vertical-align:super;margin-left:1px;
padding:0 2px;border-radius:3px;text-decoration:none;display:inline-block}
sup.badge{color:#4a5561;background:#fff;border:1px solid #c9d0d7}
sup.badge::after{content:attr(data-badge)}
mark.a-negated sup.badge{color:#8c3b34;border-color:#dfb3ae}
.error-finding,.error-part{text-decoration:underline wavy #cf3b2f;text-decoration-thickness:1px;text-underline-offset:3px;
text-decoration-skip-ink:none;background:rgba(207,59,47,.05)}
sup.err-ref{color:#fff;background:#cf3b2f}
sup.err-ref::after{content:attr(data-ref)}
body.hide-errors .error-finding,body.hide-errors .error-part{text-decoration:none;background:transparent}
body.hide-errors sup.err-ref{display:none}
.region{display:block;position:relative;background:#eef1f5;box-shadow:-6px 0 0 #eef1f5,6px 0 0 #eef1f5;border-radius:1px}
.region::before{content:attr(data-region);position:absolute;right:100%;margin-right:12px;top:0;font:600 9px/2 var(--sans);
letter-spacing:.06em;text-transform:uppercase;color:#7a8694;white-space:nowrap}
.note-text.has-arcs .region::before{line-height:3}
.region[data-part]::before{content:none}
.region-side{background:#f4f1e8;box-shadow:-6px 0 0 #f4f1e8,6px 0 0 #f4f1e8}
.region-signature{background:#edf4ee;box-shadow:-6px 0 0 #edf4ee,6px 0 0 #edf4ee}
.region-pagination,.region-other{background:#f1eff4;box-shadow:-6px 0 0 #f1eff4,6px 0 0 #f1eff4}
body.hide-regions .region{background:transparent;box-shadow:none}body.hide-regions .region::before{content:none}
.pb{display:block;height:0;overflow:hidden;border-top:1px dashed #b8c0c8;margin:8px 0;color:transparent}
.notice{background:#f3f6fa;border:1px dashed #c5cfdb;border-radius:6px;padding:10px 14px;color:#3c4a58}
.callout.errors{margin-top:14px;border:1px solid #efc9c4;border-left:4px solid #cf3b2f;background:#fdf6f5;border-radius:6px;padding:10px 14px}
.callout.errors h3{color:#a8352b}
.callout ol{margin:0;padding-left:20px}.callout li{margin:6px 0}
.callout .eref{font-weight:700;color:#cf3b2f}.etype{font-weight:600}
.emsg{margin-top:2px}.corr{margin-top:2px;color:#2d5e36}
.callout blockquote{margin:4px 0 0;padding:2px 8px;border-left:3px solid #e7b7b1;font:12.5px/1.5 var(--mono);color:#5a3a36;white-space:pre-wrap}
details{margin-top:12px}
summary{cursor:pointer;font-size:13px;font-weight:600;color:#47525e}
.rel-list ol{margin:6px 0 0;padding-left:24px;columns:2 420px;font-size:13px}
.rel-list li{break-inside:avoid}
.rel-ent{font-family:var(--mono);font-size:12.5px}
.rel-label{font-weight:600;font-size:12px}
.rel-arrow{color:#9aa3ad}
.ent-list .table-wrap{max-height:420px;margin-top:6px}
.etext{font-family:var(--mono);font-size:12.5px}
.tip{position:fixed;z-index:50;max-width:420px;background:#1f2933;color:#f3f5f7;font:12px/1.5 var(--sans);white-space:pre-line;
padding:7px 10px;border-radius:6px;box-shadow:0 4px 14px rgba(0,0,0,.22);pointer-events:none}
.tip[hidden]{display:none}
footer.foot{color:var(--muted);font-size:12px;text-align:center;margin:10px 0 0}
@media print{.topbar{position:static}.tip{display:none}}
"""

_JS = r"""(function () {
  "use strict";
  var doc = document, root = doc.documentElement;
  root.classList.add("js");
  var DATA = {};
  try { DATA = JSON.parse(doc.getElementById("medtext-data").textContent) || {}; } catch (e) { DATA = {}; }
  var RELS = DATA.relations || {};
  var KINDS = {modify: "modify", located_at: "located_at", suggestive_of: "suggestive_of"};
  var SVGNS = "http://www.w3.org/2000/svg";
  var each = function (list, fn) { Array.prototype.forEach.call(list, fn); };

  // hover boxes: move titles into data-tip so one styled box shows them (nested ones joined)
  each(doc.querySelectorAll(".note-text [title]"), function (el) {
    el.setAttribute("data-tip", el.getAttribute("title"));
    el.removeAttribute("title");
  });
  var tip = doc.createElement("div");
  tip.className = "tip"; tip.hidden = true; tip.setAttribute("role", "tooltip");
  doc.body.appendChild(tip);
  function place(ev) {
    var x = ev.clientX + 14, y = ev.clientY + 18, w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = Math.max(8, ev.clientX - w - 14);
    if (y + h > window.innerHeight - 8) y = Math.max(8, ev.clientY - h - 18);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  doc.addEventListener("mouseover", function (ev) {
    var parts = [], el = ev.target;
    while (el && el.nodeType === 1 && el !== doc.body) {
      var t = el.getAttribute("data-tip");
      if (t) parts.push(t);
      if (el.classList.contains("note-text")) break;
      el = el.parentElement;
    }
    if (!parts.length) { tip.hidden = true; return; }
    tip.textContent = parts.join("\n\n");
    tip.hidden = false; place(ev);
  });
  doc.addEventListener("mousemove", function (ev) { if (!tip.hidden) place(ev); });
  // hovering an entity brings out its arcs and fades the others
  doc.addEventListener("mouseover", function (ev) {
    var mark = ev.target.closest ? ev.target.closest("mark[data-entity-id]") : null;
    var wrap = mark && mark.closest(".note-wrap");
    each(doc.querySelectorAll(".note-wrap.focus"), function (w) {
      if (w !== wrap) { w.classList.remove("focus"); each(w.querySelectorAll(".on"), function (a) { a.classList.remove("on"); }); }
    });
    if (!wrap) return;
    var id = mark.getAttribute("data-entity-id"), any = false;
    each(wrap.querySelectorAll("svg.arcs [data-head]"), function (a) {
      var on = a.getAttribute("data-head") === id || a.getAttribute("data-tail") === id;
      a.classList.toggle("on", on); any = any || on;
    });
    wrap.classList.toggle("focus", any);
  });
  doc.addEventListener("mouseleave", function () { tip.hidden = true; });

  // relation arcs: drawn over the laid-out text, redrawn when the layout changes
  function anchor(el, base) {
    var rects = el.getClientRects(), r = rects.length ? rects[0] : el.getBoundingClientRect();
    return {x: r.left + r.width / 2 - base.left, y: r.top - base.top};
  }
  function svgEl(name, attrs) {
    var el = doc.createElementNS(SVGNS, name);
    for (var k in attrs) el.setAttribute(k, attrs[k]);
    return el;
  }
  function drawArcs(wrap) {
    var rels = RELS[wrap.getAttribute("data-n")];
    var svg = wrap.querySelector("svg.arcs"), layer = svg && svg.querySelector("g.arc-layer");
    if (!rels || !layer) return;
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    var byId = new Map();
    each(wrap.querySelectorAll("mark.ent"), function (el) {
      var id = el.getAttribute("data-entity-id");
      if (!byId.has(id)) byId.set(id, el);
    });
    var base = wrap.getBoundingClientRect();
    svg.setAttribute("width", Math.round(base.width));
    svg.setAttribute("height", Math.round(base.height));
    var arcs = [];
    rels.forEach(function (r) {
      var h = byId.get(r[0]), t = byId.get(r[1]);
      if (!h || !t) return;
      var a = anchor(h, base), b = anchor(t, base);
      arcs.push({r: r, a: a, b: b, kind: KINDS[r[2]] || "other", same: Math.abs(a.y - b.y) < 4,
                 lo: Math.min(a.x, b.x), hi: Math.max(a.x, b.x), level: 1});
    });
    // arcs on one line nest: an arc is one level above the highest arc inside its span
    var line = arcs.filter(function (x) { return x.same; });
    line.sort(function (p, q) { return (p.hi - p.lo) - (q.hi - q.lo); });
    line.forEach(function (x, i) {
      for (var j = 0; j < i; j++) {
        var y = line[j];
        if (Math.abs(y.a.y - x.a.y) < 4 && y.lo >= x.lo - 0.5 && y.hi <= x.hi + 0.5) x.level = Math.max(x.level, y.level + 1);
      }
    });
    arcs.sort(function (p, q) { return (p.same - q.same) || (q.level - p.level); });
    arcs.forEach(function (x) {
      var a = x.a, b = x.b, kind = x.kind, r = x.r, far = x.same ? "" : " far";
      var c = x.same ? Math.min(26, 5 + 6 * x.level) : 22;
      var ay = a.y + 1, by = b.y + 1;
      layer.appendChild(svgEl("path", {
        "class": "arc r-" + kind + far, "marker-end": "url(#mt-arrow-" + kind + ")",
        "data-head": r[0], "data-tail": r[1],
        d: "M" + a.x.toFixed(1) + "," + ay.toFixed(1) + " C" + a.x.toFixed(1) + "," + (ay - c).toFixed(1) +
           " " + b.x.toFixed(1) + "," + (by - c).toFixed(1) + " " + b.x.toFixed(1) + "," + by.toFixed(1)
      }));
      var label = svgEl("text", {"class": "arc-label r-" + kind + far, x: ((a.x + b.x) / 2).toFixed(1),
                                 y: ((ay + by) / 2 - 0.75 * c).toFixed(1),
                                 "data-head": r[0], "data-tail": r[1]});
      label.textContent = r[2].replace(/_/g, " ");
      layer.appendChild(label);
    });
  }
  var wraps = [];
  each(doc.querySelectorAll(".note-wrap[data-n]"), function (w) {
    if ((RELS[w.getAttribute("data-n")] || []).length) wraps.push(w);
  });
  function drawAll() { wraps.forEach(drawArcs); }
  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; drawAll(); });
  }
  drawAll();
  window.addEventListener("resize", schedule);
  window.addEventListener("load", schedule);
  doc.addEventListener("toggle", schedule, true);
  if (window.ResizeObserver) {
    var ro = new ResizeObserver(schedule);
    wraps.forEach(function (w) { ro.observe(w); });
  }

  // "#only=doc-<n>" shows that document alone (the index and the other documents hidden)
  function solo() {
    var m = /^#only=(doc-[0-9]+)$/.exec(window.location.hash), target = m && doc.getElementById(m[1]);
    var was = doc.body.classList.contains("solo");
    doc.body.classList.toggle("solo", !!target);
    each(doc.querySelectorAll("section.doc.solo-doc"), function (s) { s.classList.remove("solo-doc"); });
    if (target) { target.classList.add("solo-doc"); window.scrollTo(0, 0); }
    else if (was && window.location.hash.length > 1) {
      var el = doc.getElementById(window.location.hash.slice(1));
      if (el) el.scrollIntoView();
    }
    schedule();
  }
  window.addEventListener("hashchange", solo);
  solo();

  // legend filters: hide the colours of a label, or arcs / layout regions / error findings
  each(doc.querySelectorAll("input[data-toggle]"), function (cb) {
    cb.addEventListener("change", function () {
      doc.body.classList.toggle("hide-" + cb.getAttribute("data-toggle"), !cb.checked);
      schedule();
    });
  });
})();
"""


def _legend(totals: _Totals, labels: _Labels) -> str:
    items = []
    for label, count in sorted(totals.labels.items(), key=lambda kv: (-kv[1], kv[0])):
        cls = labels.cls(label)
        items.append(f'<label title="{count:,} entities"><input type="checkbox" checked data-toggle="{cls}">'
                     f'<span class="sw {cls}"></span>{_esc(label)}</label>')
    toggles = ('<span class="toggles"><span class="sep"></span>'
               + "".join(f'<label><input type="checkbox" checked data-toggle="{key}">{name}</label>'
                         for key, name in (("arcs", "arcs"), ("regions", "layout"), ("errors", "errors")))
               + "</span>")
    return f'<div class="legend" aria-label="entity labels">{"".join(items)}{toggles}</div>'


def _arrow_defs() -> str:
    markers = "".join(
        f'<marker id="mt-arrow-{kind}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path class="arrowhead" d="M0,0.5 L8,4 L0,7.5 z" '
        f'fill="{colour}"></path></marker>'
        for kind, colour in _RELATION_COLOURS.items())
    return ('<svg class="defs" width="0" height="0" style="position:absolute" aria-hidden="true" '
            f'focusable="false"><defs>{markers}</defs></svg>')


def _csp(js: str) -> str:
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


def render_html(records: Iterable[dict], out_path: Path, *, title: str = "medtext report",
                max_docs: int | None = None, failures: Iterable[dict] | None = None) -> Path:
    """Write one self-contained HTML report of ``records`` to ``out_path`` (atomically).

    ``records`` are record dicts (``record.schema.json``), consumed once; with ``max_docs`` only
    the first ``max_docs`` get a section (the index counts all). ``failures`` are the rows of a
    run's ``errors.jsonl`` ({doc_id, source, row, reason, message}); given, the index lists them
    as failed inputs. Returns ``out_path``."""
    from . import __version__

    if max_docs is not None and max_docs < 0:
        raise ValueError(f"max_docs must be >= 0, not {max_docs}")
    out_path = Path(out_path)
    labels = _Labels()
    totals = _Totals()
    sections: list[str] = []
    doc_rows: list[str] = []
    arcs: dict[str, list] = {}
    for rec in records:
        totals.add(rec)
        n = totals.docs
        if max_docs is not None and n > max_docs:
            continue
        html_, doc_arcs = _doc_section(n, rec, labels)
        sections.append(html_)
        doc_rows.append(_doc_row(n, rec))
        if doc_arcs:
            arcs[str(n)] = doc_arcs
    fail_list = None if failures is None else [f for f in failures if isinstance(f, dict)]
    for label in sorted(totals.labels):
        labels.cls(label)
    index = _index_html(title, totals, doc_rows, fail_list, labels, len(sections))
    page = "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(_JS)}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f'<meta name="generator" content="medtext {_esc(__version__)}">\n',
        f"<title>{_esc(title)}</title>\n<style>{_CSS}\n{labels.css()}\n</style>\n</head>\n<body>\n",
        f'<header class="topbar"><span class="brand"><a href="#index">{_esc(title)}</a></span>'
        f'{_legend(totals, labels)}<a class="showall" href="#index">show all documents</a></header>\n',
        _arrow_defs(), "\n<main>\n", index, "\n", "\n".join(sections),
        f'\n<footer class="foot">medtext {_esc(__version__)} \u00b7 {totals.docs:,} documents</footer>\n</main>\n',
        f'<script type="application/json" id="medtext-data">{_script_json({"relations": arcs})}</script>\n',
        f"<script>{_JS}</script>\n</body>\n</html>\n",
    ])
    atomic_write_text(out_path, page)
    log.info("wrote %s (%d documents, %d shown)", out_path, totals.docs, len(sections))
    return out_path


# --------------------------------------------------------------------------- files

def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SchemaError(f"{path}:{lineno}: not a JSON line ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise SchemaError(f"{path}:{lineno}: a record must be a JSON object, not "
                                  f"{type(row).__name__}")
            yield lineno, row


def _records_path(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        candidate = path / "records.jsonl"
        if not candidate.is_file():
            raise InputError(str(path), "no records.jsonl in this folder; the HTML report reads "
                             "JSON Lines records (run medtext with --format jsonl, or pass the "
                             "records file itself)", reason="no_records")
        return candidate
    if not path.is_file():
        raise InputError(str(path), "no such file or folder", reason="not_found")
    return path


def read_records_file(path: Path) -> Iterator[dict]:
    """Records of a ``records.jsonl`` file (or of a run folder holding one), each validated
    against the record schema; a bad line raises :class:`SchemaError` naming the file and line."""
    from .records import validate_record

    src = _records_path(path)
    for lineno, rec in _jsonl_rows(src):
        try:
            validate_record(rec)
        except SchemaError as e:
            raise SchemaError(f"{src}:{lineno}: {e}") from None
        yield rec


def render_records_file(path: Path, out_path: Path, **kw: Any) -> Path:
    """Render ``path`` (a ``records.jsonl``, or a run folder holding ``records.jsonl`` and
    maybe ``errors.jsonl``) to the HTML report ``out_path``; ``kw`` go to :func:`render_html`
    (``title``, ``max_docs``). The failed inputs of ``errors.jsonl`` beside the records are listed
    in the index. Returns ``out_path``."""
    src = _records_path(path)
    errors_file = src.parent / "errors.jsonl"
    if "failures" not in kw and errors_file.is_file() and errors_file != src:
        kw["failures"] = [row for _, row in _jsonl_rows(errors_file)]
    return render_html(read_records_file(src), out_path, **kw)
