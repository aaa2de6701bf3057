"""Approximate nearest-neighbour search over an index's synonym embeddings (faiss HNSW).

Exact search reads every routed embedding row per batch of mentions: fine up to ~100k rows
(the default index has 34k), slow at full SNOMED CT size (~450k synonym rows: ~0.6 s for one
mention on 2 CPUs, see ``benchmarks/linking_scale.py``). The linker then switches to an HNSW
graph (faiss ``IndexHNSWSQ``, inner product over unit vectors = cosine, vectors stored as
float16), restricted to the mention's route with an id bitmap.

The graph is built from the index's embeddings the first time it is needed and stored beside
them (``ann.hnsw.faiss`` + ``ann.json``; faiss' own binary format, no pickle). ``ann.json``
records the embedding model, row count and the embeddings file's size and mtime: a stale graph
(the index was re-embedded) is rebuilt, never used. ``faiss-cpu`` comes with the ``trf`` extra.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy

from medtext.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

GRAPH_FILE = "ann.hnsw.faiss"
META_FILE = "ann.json"


def faiss_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def remove_ann(path: Path) -> None:
    """Drop a stored graph (called when the embeddings change)."""
    for name in (GRAPH_FILE, META_FILE):
        (Path(path) / name).unlink(missing_ok=True)


class AnnIndex:
    def __init__(self, graph, meta: dict[str, Any], ef_search: int):
        self.graph = graph
        self.meta = meta
        self.ef_search = ef_search

    @staticmethod
    def _fingerprint(index) -> dict[str, Any]:
        emb_file = Path(index.path) / "embeddings.f16.npy"
        st = emb_file.stat()
        return {"model": (index.meta.get("embedding") or {}).get("model"),
                "rows": int(index.embeddings.shape[0]), "dim": int(index.embeddings.shape[1]),
                "embeddings_bytes": st.st_size, "embeddings_mtime_ns": st.st_mtime_ns}

    @classmethod
    def load_or_build(cls, index, *, m: int = 32, ef_construction: int = 80,
                      ef_search: int = 128, block: int = 50_000) -> "AnnIndex":
        import faiss

        if index.embeddings is None:
            raise ValueError("the index has no embeddings")
        path = Path(index.path)
        want = {**cls._fingerprint(index), "m": m, "ef_construction": ef_construction}
        meta_file, graph_file = path / META_FILE, path / GRAPH_FILE
        if meta_file.exists() and graph_file.exists():
            try:
                have = json.loads(meta_file.read_text())
            except ValueError:
                have = {}
            if {k: have.get(k) for k in want} == want:
                t = time.perf_counter()
                graph = faiss.read_index(str(graph_file))
                log.debug("loaded the HNSW graph of %s in %.1f s", path, time.perf_counter() - t)
                return cls(graph, have, ef_search)
            log.info("the stored HNSW graph of %s is stale (re-embedded index): rebuilding", path)
        n, d = index.embeddings.shape
        log.info("building an HNSW graph over %d embeddings of %s (once; stored beside them) ...", n, path)
        t = time.perf_counter()
        graph = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        graph.train(numpy.asarray(index.embeddings[:min(n, 10_000)], dtype="float32"))
        for s in range(0, n, block):
            graph.add(numpy.ascontiguousarray(index.embeddings[s:s + block], dtype="float32"))
        meta = {**want, "build_seconds": round(time.perf_counter() - t, 1)}
        try:
            with atomic_path(graph_file) as tmp:
                faiss.write_index(graph, str(tmp))
            atomic_write_text(meta_file, json.dumps(meta, indent=2) + "\n")
        except OSError as e:  # a read-only index still works, it just rebuilds next time
            log.warning("could not store the HNSW graph in %s (%s): it is rebuilt on each load", path, e)
        log.info("HNSW graph built in %.1f s", meta["build_seconds"])
        return cls(graph, meta, ef_search)

    def search(self, queries: numpy.ndarray, k: int, allowed_rows: numpy.ndarray | None = None
               ) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Top-``k`` (cosines, rows) per query, only among ``allowed_rows`` (sorted row ids) when
        given; rows are -1 where fewer than ``k`` were found."""
        import faiss

        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, k)
        if allowed_rows is not None:
            bits = numpy.zeros(self.graph.ntotal, dtype=bool)
            bits[allowed_rows] = True
            packed = numpy.packbits(bits, bitorder="little")
            sel = faiss.IDSelectorBitmap(self.graph.ntotal, faiss.swig_ptr(packed))
            params.sel = sel
        scores, rows = self.graph.search(numpy.ascontiguousarray(queries, dtype="float32"), k, params=params)
        return scores, rows
