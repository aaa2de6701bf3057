"""What the linker costs at full SNOMED CT size: a synthetic 350k-concept index.

    python benchmarks/linking_scale.py [--concepts 350000] [--out benchmarks/results/linking_scale.json]

Terms are made from the default index's real synonyms with added qualifiers (so the lexical
retriever sees realistic token statistics). Embedding 450k terms with MiniLM takes ~25 min on
2 CPUs (34k take 110 s, linear), so each synthetic term's vector is its source synonym's real
MiniLM vector plus noise (norm 0.5), renormalised: the clustered geometry real embeddings have
(random unit vectors are used when the default index is not embedded). Measures: index write
and load time, size on disk, lexical retriever build time and latency, dense exact search
latency for one mention and for a batch of 64 (what ``nlp.pipe`` sends), the HNSW graph
(faiss; build and load time, latency, recall@64 against exact search), peak RSS. Lexical
queries are real synonyms (with a typo in half of them); dense queries are real synonym
vectors with a little noise.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
QUALIFIERS = ["left", "right", "bilateral", "acute", "chronic", "recurrent", "primary", "secondary",
              "of upper limb", "of lower limb", "of trunk", "in pregnancy", "due to trauma",
              "congenital", "severe", "mild", "partial", "complete", "juvenile", "postoperative"]


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concepts", type=int, default=350_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "linking_scale.json")
    args = p.parse_args()

    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex, Source, TerminologyData, write_index
    from medtext.terminologies.linking import Linker, Mention

    rng = random.Random(0)
    base = ConceptIndex.load(default_index_dir())
    syn = base.tables["synonyms"]
    real_rows = [i for i, s in enumerate(syn.column("system").to_pylist()) if s == "snomed"]
    all_terms = syn.column("term").to_pylist()
    real = [all_terms[i] for i in real_rows]
    source: dict[str, int] = {}  # synthetic code -> index into real_rows of its source term
    data = TerminologyData(sources=[Source(name="synthetic", version="0")])
    seen: set[str] = set()
    t0 = time.perf_counter()
    i = 0
    while i < args.concepts:
        j = rng.randrange(len(real))
        term = real[j]
        q = rng.sample(QUALIFIERS, rng.randint(0, 2))
        name = " ".join([*q[:1], term, *q[1:]]) if q else term
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        code = str(100000 + i)
        data.add_concept("snomed", code, name, kind="disorder")
        source[code] = j
        if rng.random() < 0.3:
            data.add_synonym("snomed", code, f"{name} (disorder)")
        i += 1
    gen_s = time.perf_counter() - t0
    out: dict = {"concepts": args.concepts, "generate_seconds": round(gen_s, 1)}
    work = Path(tempfile.mkdtemp(prefix="linkscale"))
    try:
        t = time.perf_counter()
        write_index(data, work / "ix", name="synthetic")
        out["write_seconds"] = round(time.perf_counter() - t, 1)
        import pyarrow.parquet as pq

        codes = pq.read_table(work / "ix" / "synonyms.parquet", columns=["code"]).column("code").to_pylist()
        out["synonyms"] = len(codes)
        nrng = numpy.random.default_rng(0)
        if base.embeddings is not None and base.embeddings.shape[1] == args.dim:
            src = numpy.asarray(base.embeddings[numpy.array(real_rows)], dtype="float32")
            vecs = src[numpy.array([source[c] for c in codes])]
            vecs += nrng.standard_normal(vecs.shape, dtype=numpy.float32) * (0.5 / args.dim ** 0.5)
            out["vectors"] = "real MiniLM vectors of the source synonyms + noise"
        else:
            src = None
            vecs = nrng.standard_normal((len(codes), args.dim), dtype=numpy.float32)
            out["vectors"] = "random unit vectors (the default index is not embedded)"
        vecs /= numpy.linalg.norm(vecs, axis=1, keepdims=True)
        numpy.save(work / "ix" / "embeddings.f16.npy", vecs.astype("float16"))
        del vecs
        meta = json.loads((work / "ix" / "metadata.json").read_text())
        meta["embedding"] = {"model": "synthetic-random", "dim": args.dim, "dtype": "float16", "rows": "synonyms",
                             "normalized": True}
        (work / "ix" / "metadata.json").write_text(json.dumps(meta))
        out["disk_mb"] = round(sum(f.stat().st_size for f in (work / "ix").iterdir()) / 2**20, 1)
        del data
        t = time.perf_counter()
        ix = ConceptIndex.load(work / "ix")
        out["load_seconds"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        linker = Linker(ix, bi_encoder=None, top=25)
        out["linker_build_seconds"] = round(time.perf_counter() - t, 1)
        out["rss_after_linker_mb"] = rss_mb()
        queries = rng.sample(real, 400)
        queries = [q if k % 2 else q[:3] + q[4:] for k, q in enumerate(queries)]  # half with a typo
        lat = []
        for q in queries[:200]:
            t = time.perf_counter()
            linker.lexical.search(q, k=linker.n_candidates * 4, system="snomed")
            lat.append(time.perf_counter() - t)
        out["lexical_ms_p50"] = round(statistics.median(lat) * 1000, 2)
        out["lexical_ms_p95"] = round(sorted(lat)[int(len(lat) * 0.95)] * 1000, 2)
        # dense exact search over every routed row (the linker's _dense_scores), random queries
        linker.route_concepts("PROBLEM")
        rows = linker._route_rows["PROBLEM"]
        if src is not None:
            qv = src[numpy.random.default_rng(1).choice(len(src), 64, replace=False)]
            qv = qv + numpy.random.default_rng(2).standard_normal(qv.shape).astype("float32") * (0.3 / args.dim ** 0.5)
        else:
            qv = numpy.random.default_rng(1).standard_normal((64, args.dim)).astype("float32")
        qv = (qv / numpy.linalg.norm(qv, axis=1, keepdims=True)).astype("float32")
        single, batch = [], []
        for _ in range(5):
            t = time.perf_counter()
            linker._dense_scores(rows, qv[:1])
            single.append(time.perf_counter() - t)
            t = time.perf_counter()
            linker._dense_scores(rows, qv)
            batch.append(time.perf_counter() - t)
        out["dense_rows"] = int(len(rows))
        out["dense_exact_ms_1_query"] = round(statistics.median(single) * 1000, 1)
        out["dense_exact_ms_64_queries"] = round(statistics.median(batch) * 1000, 1)
        out["dense_exact_ms_per_mention_in_batch"] = round(statistics.median(batch) * 1000 / 64, 2)
        # the HNSW graph: build (once, stored beside the index), load, latency, recall vs exact
        try:
            from medtext.terminologies.ann import AnnIndex

            t = time.perf_counter()
            ann = AnnIndex.load_or_build(ix)
            out["hnsw_build_seconds"] = round(time.perf_counter() - t, 1)
            out["hnsw_disk_mb"] = round((work / "ix" / "ann.hnsw.faiss").stat().st_size / 2**20, 1)
            t = time.perf_counter()
            ann = AnnIndex.load_or_build(ix)
            out["hnsw_load_seconds"] = round(time.perf_counter() - t, 2)
            k = linker.n_candidates
            exact = linker._dense_scores(rows, qv)
            truth = [set(rows[numpy.argsort(-exact[:, j])[:k]].tolist()) for j in range(64)]
            single, batch = [], []
            for _ in range(5):
                t = time.perf_counter()
                ann.search(qv[:1], k, rows)
                single.append(time.perf_counter() - t)
                t = time.perf_counter()
                _, found = ann.search(qv, k, rows)
                batch.append(time.perf_counter() - t)
            out["hnsw_ms_1_query"] = round(statistics.median(single) * 1000, 2)
            out["hnsw_ms_64_queries"] = round(statistics.median(batch) * 1000, 1)
            out[f"hnsw_recall_at_{k}"] = round(statistics.mean(
                len(truth[j] & set(found[j].tolist())) / k for j in range(64)), 4)
            out["hnsw_recall_at_10"] = round(statistics.mean(
                len(set(rows[numpy.argsort(-exact[:, j])[:10]].tolist()) & set(found[j][:10].tolist())) / 10
                for j in range(64)), 4)
        except ImportError:
            out["hnsw"] = "faiss not installed"
        t = time.perf_counter()
        rs = linker.link([Mention(q, "PROBLEM") for q in queries[200:264]])
        out["lexical_link_64_mentions_seconds"] = round(time.perf_counter() - t, 2)
        out["linked_share"] = round(sum(not r.nil for r in rs) / len(rs), 3)
        out["peak_rss_mb"] = rss_mb()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for k, v in out.items():
        print(f"{k:<38} {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
