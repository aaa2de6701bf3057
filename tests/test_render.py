"""The HTML report (``medtext.render``): structure and escaping of the HTML string (always run),
and the page as headless Chromium lays it out and runs its script (skipped without Chromium)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from medtext.errors import InputError, SchemaError
from medtext.lines import text_lines
from medtext.records import SCHEMA_VERSION, validate_record
from medtext.records.build import LINE_KEYS
from medtext.render import (ASSERTION_BADGES, LABEL_PALETTE, label_colour, render_html,
                            render_records_file)

PWNED = "document.title='PWNED'"
EVIL = f"\"><script>{PWNED}</script>"
EVIL_IMG = f"<img src=x onerror=\"{PWNED}\">"
TITLE = "test report"


# --------------------------------------------------------------------------- hand-built records

def _ent(text: str, eid: str, start: int, end: int, label: str, *, assertion: str | None = "present",
         concepts: list | None = None, kb_id: str | None = None, lay=None) -> dict:
    flags = [assertion] if assertion not in (None, "present") else []
    return {"id": eid, "start": start, "end": end, "text": text[start:end], "label": label,
            "section": None, "assertion": assertion, "flags": flags, "kb_id": kb_id,
            "concepts": concepts or [], "lay": lay}


def _find(text: str, part: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(part, start + 1)
    return start, start + len(part)


def _record(doc_id: str, text: str | None, *, entities=(), relations=(), errors=(), labels=None,
            lay_text=None, warnings=(), source_path="notes/x.txt", full_text: str | None = None) -> dict:
    basis = text if text is not None else (full_text or "")
    lines = text_lines(basis)
    labels = labels or {}
    rec = {
        "schema_version": SCHEMA_VERSION, "doc_id": doc_id,
        "source": {"path": source_path, "format": "txt", "row": None, "encoding": "utf-8"},
        "text_sha256": hashlib.sha256(basis.encode("utf-8")).hexdigest(), "n_chars": len(basis),
        "pages": max(ln["page"] for ln in lines), "warnings": list(warnings), "text": text,
        "lines": [{**{k: ln.get(k) for k in LINE_KEYS}, "label": labels.get(i + 1)}
                  for i, ln in enumerate(lines)],
        "sections": [], "sentences": [], "entities": list(entities), "relations": list(relations),
        "errors": list(errors), "lay_text": lay_text, "pipeline": None,
    }
    validate_record(rec)
    return rec


def _radiology() -> dict:
    t = "FINDINGS: Right lower lobe opacity. No pleural effusion.\nIMPRESSION: Pneumonia likely.\n"
    ents = [
        _ent(t, "T1", *_find(t, "Right lower lobe"), "ANAT-DP"),
        _ent(t, "T2", *_find(t, "lower lobe"), "ANAT-DP"),           # nested in T1
        _ent(t, "T3", *_find(t, "opacity"), "OBS-DP"),
        _ent(t, "T4", *_find(t, "pleural"), "ANAT-DP"),
        _ent(t, "T5", *_find(t, "effusion"), "OBS-DA", assertion="negated"),
        _ent(t, "T6", *_find(t, "Pneumonia"), "OBS-U", assertion="uncertain"),
        _ent(t, "T7", *_find(t, "lobe opacity"), "OBS-DP"),           # crosses T1 and T2
        _ent(t, "T8", *_find(t, "opacity"), "OBS-DP", assertion=None),  # same span as T3
    ]
    rels = [{"head": "T3", "tail": "T1", "label": "located_at", "score": 0.9},
            {"head": "T5", "tail": "T4", "label": "located_at", "score": 0.8},
            {"head": "T2", "tail": "T1", "label": "modify", "score": 0.7},
            {"head": "T6", "tail": "T3", "label": "suggestive_of", "score": 0.6}]
    return _record("cxr_1.txt", t, entities=ents, relations=rels)


def _clinical() -> dict:
    t = ("ST. ELSEWHERE HOSPITAL\r\nCardiology clinic\r\nHPI: 70 yo F with cough.\tNo fever.\n"
         "Hx: father had diabetes mellitus.\fPage 2\nPlan: start amoxicillin 500 mg.\n")
    ents = [
        _ent(t, "T1", *_find(t, "clinic\r\nHPI"), "TEST"),            # crosses the header region
        _ent(t, "T2", *_find(t, "cough"), "PROBLEM", kb_id="snomed:49727002",
             concepts=[{"system": "snomed", "code": "49727002", "display": "Cough", "score": 1.0},
                       {"system": "icf", "code": "b450", "display": None, "score": 0.5}],
             lay={"term": "coughing", "definition": "pushing air out of the lungs"}),
        _ent(t, "T3", *_find(t, "fever"), "PROBLEM", assertion="negated"),
        _ent(t, "T4", *_find(t, "diabetes mellitus"), "PROBLEM", assertion="family"),
        _ent(t, "T5", *_find(t, "amoxicillin"), "DRUG", lay="an antibiotic"),
        _ent(t, "T6", *_find(t, "amoxicillin 500 mg"), "TREATMENT"),  # same start as T5
        _ent(t, "T7", *_find(t, "Page 2"), "CUSTOM_LABEL", assertion=None),
    ]
    errs = [{"start": t.index("HPI"), "end": t.index("cough.") + 6, "type": "diagnosis",
             "message": "Cough is unexpected here", "correction": "wheeze", "score": 0.7,
             "detector": "test"},
            {"start": t.index("ver.\nHx"), "end": t.index("father") + 6, "type": "consistency",
             "message": "crosses entities", "correction": None, "score": None, "detector": "test"}]
    return _record("consult_1.txt", t, entities=ents, errors=errs, labels={1: "header", 2: "header", 5: "pagination"},
                   lay_text="Coughing, no fever.\nPlan: start an antibiotic <b>today</b>.")


def _evil() -> dict:
    t = f"Note </script><script>{PWNED}</script> and {EVIL_IMG} end & done \u2028 x <!-- y\n"
    eid = "T1\"></mark><script>" + PWNED + "</script>\u2028"
    ents = [
        _ent(t, eid, *_find(t, EVIL_IMG), f"LAB{EVIL}", kb_id=f"snomed:{EVIL_IMG}",
             concepts=[{"system": "snomed", "code": EVIL, "display": EVIL, "score": 1.0}],
             lay={"term": EVIL_IMG, "definition": EVIL}),
        _ent(t, "T2", *_find(t, "<script>"), "PROBLEM"),
    ]
    rels = [{"head": eid, "tail": "T2", "label": "modify", "score": 0.5}]
    errs = [{"start": 0, "end": 4, "type": "diagnosis", "message": EVIL_IMG, "correction": EVIL,
             "score": 0.5, "detector": EVIL}]
    return _record(EVIL, t, entities=ents, relations=rels, errors=errs, lay_text=f"lay {EVIL} {EVIL_IMG}",
                   warnings=[EVIL_IMG], source_path=EVIL_IMG)


def _no_text() -> dict:
    full = "Denies chest pain."
    ents = [_ent(full, "T1", *_find(full, "chest pain"), "PROBLEM", assertion="negated")]
    return _record("private_1", None, entities=ents, full_text=full)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [_radiology(), _clinical(), _evil(), _no_text()]


@pytest.fixture(scope="module")
def page(records, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "report.html"
    assert render_html(iter(records), out, title=TITLE) == out
    return out


# --------------------------------------------------------------------------- a tiny DOM

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class Node:
    """An element of a parsed page: tag, attributes, children (Nodes and strings)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list["Node"]:
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and (cls is None or cls in n.classes)]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(html_text: str) -> Node:
    b = _Builder()
    b.feed(html_text)
    b.close()
    return b.root


def _sections(dom: Node) -> list[Node]:
    return [n for n in dom.find_all("section", "doc")]


def _check_page(dom: Node, records: list[dict], *, after_js: bool) -> None:
    """What must hold of the page both as written and as Chromium leaves it."""
    sections = _sections(dom)
    assert [s.attrs["id"] for s in sections] == [f"doc-{i}" for i in range(1, len(records) + 1)]
    for sec, rec in zip(sections, records):
        assert sec.attrs["data-doc-id"] == rec["doc_id"]
        notes = sec.find_all("div", "note-text")
        if rec["text"] is None:
            assert not notes and sec.find_all("p", "notice")
            assert len(sec.find_all("details", "ent-list")[0].find_all("tr")) == len(rec["entities"]) + 1
            continue
        (note,) = notes
        assert note.attrs["data-doc-id"] == rec["doc_id"]
        assert note.text() == rec["text"]                     # offsets sacred: not a char lost
        ents = note.find_all("mark", "ent")
        assert len(ents) == len(rec["entities"])
        by_id = {e["id"]: e for e in rec["entities"]}
        for m in ents:
            ent = by_id[m.attrs["data-entity-id"]]
            assert m.attrs["data-label"] == ent["label"]
            assert m.attrs["data-assertion"] == (ent["assertion"] or "")
        for ent in rec["entities"]:
            # an entity is one .ent element, or that plus .ent-part pieces where it crosses another
            pieces = [m for m in note.iter() if m.tag == "mark"
                      and m.attrs.get("data-entity-id") == ent["id"]]
            assert [p.classes & {"ent", "ent-part"} for p in pieces] == \
                [{"ent"}] + [{"ent-part"}] * (len(pieces) - 1)
            assert "".join(p.text() for p in pieces) == ent["text"]
            badge = ASSERTION_BADGES.get(ent["assertion"])
            badges = [b for p in pieces for b in p.find_all("sup", "badge")
                      if _owner(b) is p]
            assert [b.attrs["data-badge"] for b in badges] == ([badge] if badge else [])
        assert len(note.find_all(cls="error-finding")) == len(rec["errors"])
        lay = sec.find_all("div", "lay-col")
        assert len(lay) == (rec["lay_text"] is not None)
        if lay:
            assert lay[0].find_all("div", "lay-text")[0].text() == rec["lay_text"]
        items = sec.find_all("details", "rel-list")
        assert len(items[0].find_all("li")) == len(rec["relations"]) if items else not rec["relations"]
        attr = "data-tip" if after_js else "title"
        for m in ents:
            assert m.attrs.get(attr, "").startswith(f"{by_id[m.attrs['data-entity-id']]['label']} ")


def _owner(badge: Node) -> Node:
    node = badge.parent
    while node.tag != "mark":
        node = node.parent
    return node


def _security_checks(dom: Node) -> None:
    assert [t.text() for t in dom.find_all("head")[0].find_all("title")] == [TITLE]
    assert not dom.find_all("img")
    scripts = dom.find_all("script")
    assert len(scripts) == 2 and scripts[0].attrs.get("type") == "application/json"
    assert "<" not in scripts[0].text() and ">" not in scripts[0].text()
    for node in dom.iter():
        assert not any(k.startswith("on") for k in node.attrs), (node.tag, node.attrs)


# --------------------------------------------------------------------------- always run

def test_page_structure_and_text(page, records):
    raw = page.read_text("utf-8")
    dom = parse(raw)
    _check_page(dom, records, after_js=False)
    index = dom.find_all("section", "index")[0]
    cards = {c.find_all(cls="k")[0].text(): c.find_all(cls="v")[0].text() for c in index.find_all(cls="card")}
    assert cards["Documents"] == "4"
    assert cards["Entities"] == str(sum(len(r["entities"]) for r in records))
    assert cards["Relations"] == "5" and cards["Error findings"] == "3"
    labels = {e["label"] for r in records for e in r["entities"]}
    chart = index.find_all("figure", "labels")[0]
    assert len(chart.find_all("rect", "bar")) == len(labels)
    assert {t.text() for t in chart.find_all("title")} == {
        f"{lab}: {sum(e['label'] == lab for r in records for e in r['entities'])}" for lab in labels}
    links = [a for a in index.find_all("table", "docs")[0].find_all("a")]
    assert [a.attrs["href"] for a in links] == ["#doc-1", "#doc-2", "#doc-3", "#doc-4"]
    assert [a.text() for a in links] == [r["doc_id"] for r in records]
    # layout regions: the two header lines as one block, the pagination line, a page break
    clinical = _sections(dom)[1]
    regions = [r for r in clinical.find_all("span", "region") if "data-part" not in r.attrs]
    assert [(r.attrs["data-region"], r.text()) for r in regions] == [
        ("header", "ST. ELSEWHERE HOSPITAL\r\nCardiology clinic\r\n"), ("pagination", "Page 2\n")]
    assert clinical.find_all("mark", "ent-part")  # T1 continues past the header region
    assert len(clinical.find_all("span", "pb")) == 1
    # a nested entity is inside its outer one; the crossing one is split
    rad = _sections(dom)[0]
    outer = [m for m in rad.find_all("mark", "ent") if m.attrs["data-entity-id"] == "T1"][0]
    assert "T2" in {m.attrs.get("data-entity-id") for m in outer.find_all("mark")}
    assert [m.attrs["data-entity-id"] for m in rad.find_all("mark", "ent-part")] == ["T7"]
    # the data the script reads: the relations of the documents with text
    data = json.loads(dom.find_all("script")[0].text())
    assert {k: len(v) for k, v in data["relations"].items()} == {"1": 4, "3": 1}


def test_escaping_and_no_external_resources(page, records):
    raw = page.read_text("utf-8")
    dom = parse(raw)
    _security_checks(dom)
    assert "<img" not in raw and "<script>document" not in raw
    data = raw.split('id="medtext-data">', 1)[1].split("</script>", 1)[0]
    assert "\\u003c/script\\u003e" in data and "\\u2028" in data and "\u2028" not in data
    assert json.loads(data)["relations"]["3"][0][0] == records[2]["entities"][0]["id"]
    evil = _sections(dom)[2]
    assert evil.attrs["data-doc-id"] == EVIL
    assert evil.find_all(cls="doc-id")[0].text() == EVIL
    assert EVIL_IMG in evil.find_all("div", "lay-text")[0].text()
    assert evil.find_all(cls="emsg")[0].text() == EVIL_IMG
    mark = [m for m in evil.find_all("mark", "ent") if m.attrs["data-entity-id"] != "T2"][0]
    assert f"snomed:{EVIL} {EVIL} (1.00)" in mark.attrs["title"]
    # no URL the page could fetch: links are fragments, no src, no url() but markers
    for node in dom.iter():
        assert "src" not in node.attrs
        assert node.attrs.get("href", "#").startswith("#")
    assert not re.search(r"url\((?!#mt-arrow-)", raw) and "@import" not in raw
    assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg\b)", raw)
    csp = [m for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp[0].attrs["content"]


def test_colours_and_max_docs(records, tmp_path):
    assert label_colour("PROBLEM") == LABEL_PALETTE["PROBLEM"]
    assert re.fullmatch(r"#[0-9a-f]{6}", label_colour("SOMETHING")) and \
        label_colour("SOMETHING") == label_colour("SOMETHING") != label_colour("OTHER")
    out = render_html(records, tmp_path / "sub" / "r.html", max_docs=1, failures=[])
    dom = parse(out.read_text("utf-8"))
    assert len(_sections(dom)) == 1
    cards = {c.find_all(cls="k")[0].text(): c.find_all(cls="v")[0].text()
             for c in dom.find_all(cls="card")}
    assert cards["Documents"] == "4" and cards["Failed inputs"] == "0"
    assert "first 1 are shown" in dom.find_all("section", "index")[0].text()
    assert list((tmp_path / "sub").iterdir()) == [out]  # no temporary left behind


def test_render_records_file_run_folder(records, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:2]), "utf-8")
    failure = {"doc_id": "bad.pdf", "source": "in/bad.pdf", "row": None, "reason": "encrypted",
               "message": f"PDF is encrypted {EVIL_IMG}"}
    (run / "errors.jsonl").write_text(json.dumps(failure) + "\n", "utf-8")
    out = render_records_file(run, tmp_path / "report.html", title=TITLE)
    dom = parse(out.read_text("utf-8"))
    assert len(_sections(dom)) == 2 and not dom.find_all("img")
    fails = dom.find_all("table", "fails")[0].find_all("td")
    assert [td.text() for td in fails] == ["bad.pdf", "in/bad.pdf", "encrypted", failure["message"]]
    # the records file itself works too (errors.jsonl beside it is still read)
    out2 = render_records_file(run / "records.jsonl", tmp_path / "report2.html")
    assert "Failed inputs" in out2.read_text("utf-8")


def test_render_records_file_errors(records, tmp_path):
    old = {**records[0], "schema_version": "1.0"}
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(records[1]) + "\n" + json.dumps(old) + "\n", "utf-8")
    with pytest.raises(SchemaError, match=r"records\.jsonl:2: .*schema_version '1\.0'.*re-run medtext"):
        render_records_file(path, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
    path.write_text("{not json\n", "utf-8")
    with pytest.raises(SchemaError, match=r"records\.jsonl:1: not a JSON line"):
        render_records_file(path, tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no records.jsonl"):
        render_records_file(empty, tmp_path / "r.html")


# --------------------------------------------------------------------------- in Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not on PATH (chromium, "
                                    "chromium-browser or google-chrome): browser checks skipped")


@pytest.fixture(scope="module")
def dumped(page, tmp_path_factory) -> str:
    """The DOM of the page after Chromium loaded it and ran its script (one browser run)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
           "--window-size=1200,900", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, timeout=60)
    out = res.stdout.decode("utf-8")  # bytes: keep any \r of the notes as it is
    assert res.returncode == 0 and "<html" in out, res.stderr.decode("utf-8", "replace")[-2000:]
    return out


@needs_chromium
def test_browser_page_after_script(dumped, records):
    dom = parse(dumped)
    html_el = dom.find_all("html")[0]
    assert "js" in html_el.classes                         # the report's script ran
    _check_page(dom, records, after_js=True)
    arcs = dom.find_all("path", "arc")
    with_text = [r for r in records if r["text"] is not None]
    assert len(arcs) == sum(len(r["relations"]) for r in with_text)
    assert len(dom.find_all("text", "arc-label")) == len(arcs)
    rad = _sections(dom)[0]
    drawn = [(p.attrs["data-head"], p.attrs["data-tail"]) for p in rad.find_all("path", "arc")]
    assert sorted(drawn) == sorted((r["head"], r["tail"]) for r in records[0]["relations"])
    for p in arcs:
        assert re.fullmatch(r"M[-\d.]+,[-\d.]+ C[-\d., ]+", p.attrs["d"]), p.attrs["d"]
    evil_arc = _sections(dom)[2].find_all("path", "arc")
    assert [p.attrs["data-head"] for p in evil_arc] == [records[2]["entities"][0]["id"]]


@needs_chromium
def test_browser_no_injection(dumped):
    dom = parse(dumped)
    _security_checks(dom)
    assert "PWNED" not in dom.find_all("head")[0].find_all("title")[0].text()
    assert len(dom.find_all("div", "tip")) == 1            # the hover box the script added
