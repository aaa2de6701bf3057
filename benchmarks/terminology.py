"""Terminology index: build time, size on disk, load time and search latency.

    python benchmarks/terminology.py [--index DIR] [--repeat 5]

Loads the index in fresh processes (``--repeat`` times; the median is quoted), then times the
first search (which builds the lexical retriever) and 200 searches over clinical phrases.
Prints a table and writes benchmarks/results/terminology.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["heart attack", "shortness of breath", "SOB", "htn", "type 2 diabetes", "pneumonia",
           "pnuemonia", "walking", "transfers", "ADLs", "stairs", "low back pain", "CHF",
           "atrial fibrillation", "urinary tract infection", "chest pain", "fall", "dizziness",
           "blood thinner", "water pill"]

LOAD = ("import time, sys; t = time.perf_counter(); "
        "from medtext.terminologies.index import ConceptIndex; "
        "ix = ConceptIndex.load(sys.argv[1]); print(time.perf_counter() - t)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "terminology.json")
    args = p.parse_args()

    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex

    index = args.index or default_index_dir()
    loads = [float(subprocess.run([sys.executable, "-c", LOAD, str(index)], check=True,
                                  capture_output=True, text=True).stdout) for _ in range(args.repeat)]
    ix = ConceptIndex.load(index)
    t = time.perf_counter()
    ix.search("warm up")
    first = time.perf_counter() - t
    lat = []
    for _ in range(10):
        for q in QUERIES:
            t = time.perf_counter()
            ix.search(q, k=10)
            lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    size = sum(f.stat().st_size for f in index.iterdir() if f.is_file())
    emb = index / "embeddings.f16.npy"
    result = {
        "benchmark": "terminology", "index": ix.meta["name"], "built_at": ix.meta["built_at"],
        "counts": ix.meta["counts"], "size_mb": round(size / 1e6, 2),
        "embeddings_mb": round(emb.stat().st_size / 1e6, 2) if emb.exists() else 0,
        "load_s_median": round(statistics.median(loads), 3), "load_s_max": round(max(loads), 3),
        "first_search_s": round(first, 3), "search_ms_p50": round(lat[len(lat) // 2], 2),
        "search_ms_p95": round(lat[int(len(lat) * 0.95)], 2), "searches": len(lat),
        "machine": {"cpus": os.cpu_count()}, "date": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    c = ix.meta["counts"]
    print(f"index {ix.meta['name']}: {c['concepts']:,} concepts, {c['synonyms']:,} synonyms; "
          f"{result['size_mb']} MB on disk ({result['embeddings_mb']} MB embeddings)")
    print(f"{'load (fresh process, import + read)':<40} median {result['load_s_median']:.3f} s, max {result['load_s_max']:.3f} s")
    print(f"{'first search (builds retriever)':<40} {result['first_search_s']:.3f} s")
    print(f"{'search latency (lexical, k=10)':<40} p50 {result['search_ms_p50']:.2f} ms, p95 {result['search_ms_p95']:.2f} ms")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
