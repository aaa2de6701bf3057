"""The on-disk terminology index: a folder of Parquet tables plus ``metadata.json``.

Layout of an index folder (format version 1)::

    metadata.json          name, format_version, built_at, sources (name, version, licence,
                           attribution, file, checksum), counts, embedding (model id, dim, dtype)
    concepts.parquet       system, code, term, kind, parents (list), active, source
    synonyms.parquet       system, code, term, type (preferred|synonym|lay|abbreviation), source, lang
    definitions.parquet    system, code, text, type (lay|description|text_definition), source
    crossmaps.parquet      system, code, target_system, target_code, target_display, source
    abbreviations.parquet  abbreviation, sense, cui, frequency, source   (optional)
    embeddings.f16.npy     float16 [n_synonyms, dim], row i = synonyms row i   (optional)

Tables are written atomically (temp file + rename; the metadata last) and read with pyarrow.
Embeddings are memory-mapped. Builders and importers produce a :class:`TerminologyData`; call
:func:`write_index` to save it and :meth:`ConceptIndex.load` to read it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtext.atomic import atomic_path, atomic_write_text
from medtext.errors import MedtextError

from .ann import remove_ann

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SYNONYM_TYPES = ("preferred", "synonym", "lay", "abbreviation")
TABLES = {
    "concepts": ("system", "code", "term", "kind", "parents", "active", "source"),
    "synonyms": ("system", "code", "term", "type", "source", "lang"),
    "definitions": ("system", "code", "text", "type", "source"),
    "crossmaps": ("system", "code", "target_system", "target_code", "target_display", "source"),
    "abbreviations": ("abbreviation", "sense", "cui", "frequency", "source"),
}


class TerminologyError(MedtextError):
    """A terminology source or index is missing, malformed or inconsistent."""

    reason = "terminology_error"

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        self.path, self.line = path, line
        super().__init__(where + message)


@dataclass
class Source:
    """Provenance of one input to an index."""

    name: str
    version: str = ""
    licence: str = ""
    attribution: str = ""
    file: str = ""
    checksum: str = ""  # sha256 of the file read

    @classmethod
    def of_file(cls, name: str, path: Path | None, **kw) -> "Source":
        return cls(name=name, file=path.name if path else "",
                   checksum=sha256_file(path) if path and path.is_file() else "", **kw)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class TerminologyData:
    """Rows of every table, in memory, plus sources; what importers return."""

    concepts: list[dict] = field(default_factory=list)
    synonyms: list[dict] = field(default_factory=list)
    definitions: list[dict] = field(default_factory=list)
    crossmaps: list[dict] = field(default_factory=list)
    abbreviations: list[dict] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)

    def add_concept(self, system: str, code: str, term: str, *, kind: str = "", parents=(),
                    active: bool = True, source: str = "") -> None:
        self.concepts.append({"system": system, "code": code, "term": term, "kind": kind,
                              "parents": list(parents), "active": active, "source": source})
        self.synonyms.append({"system": system, "code": code, "term": term, "type": "preferred",
                              "source": source, "lang": None})

    def add_synonym(self, system: str, code: str, term: str, type: str = "synonym",
                    source: str = "", lang: str | None = None) -> None:
        if type not in SYNONYM_TYPES:
            raise ValueError(f"synonym type {type!r} is not one of {SYNONYM_TYPES}")
        self.synonyms.append({"system": system, "code": code, "term": term, "type": type,
                              "source": source, "lang": lang})

    def merge(self, other: "TerminologyData") -> "TerminologyData":
        """A new dataset holding both; concepts present in both keep ``self``'s row."""
        seen = {(c["system"], c["code"]) for c in self.concepts}
        merged = TerminologyData(
            concepts=self.concepts + [c for c in other.concepts if (c["system"], c["code"]) not in seen],
            synonyms=self.synonyms + other.synonyms,
            definitions=self.definitions + other.definitions,
            crossmaps=self.crossmaps + other.crossmaps,
            abbreviations=self.abbreviations + other.abbreviations,
            sources=self.sources + other.sources)
        return merged

    def dedupe(self) -> None:
        """Drop repeated synonyms (same concept, same normalised term: the better type wins)."""
        rank = {t: i for i, t in enumerate(SYNONYM_TYPES)}
        best: dict[tuple, dict] = {}
        for s in self.synonyms:
            key = (s["system"], s["code"], normalize(s["term"]))
            if not key[2]:
                continue
            if key not in best or rank[s["type"]] < rank[best[key]["type"]]:
                best[key] = s
        self.synonyms = list(best.values())
        self.crossmaps = list({(c["system"], c["code"], c["target_system"], c["target_code"]): c
                               for c in self.crossmaps}.values())
        self.definitions = list({(d["system"], d["code"], d["type"], d["text"]): d
                                 for d in self.definitions}.values())

    def check(self) -> None:
        """Raise :class:`TerminologyError` on duplicate codes or cycles in the hierarchy."""
        seen: set[tuple[str, str]] = set()
        for c in self.concepts:
            key = (c["system"], c["code"])
            if key in seen:
                raise TerminologyError(f"duplicate concept {key[0]}:{key[1]} (source {c['source']})")
            seen.add(key)
        parents = {(c["system"], c["code"]): c["parents"] for c in self.concepts}
        state: dict[tuple, int] = {}  # 1 = on the current path, 2 = done
        for start in parents:
            if state.get(start) == 2:
                continue
            stack = [(start, iter(parents[start]))]
            state[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                    continue
                child = (node[0], nxt)
                if child not in parents:
                    continue
                if state.get(child) == 1:
                    path = [n[1] for n, _ in stack] + [nxt]
                    raise TerminologyError(f"cycle in the {node[0]} hierarchy: {' -> '.join(path)}")
                if state.get(child) is None:
                    state[child] = 1
                    stack.append((child, iter(parents[child])))


def normalize(text: str) -> str:
    """Lower-case, unify dashes/quotes, collapse whitespace; the key for matching terms."""
    t = text.lower().replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-")
    return " ".join(t.replace(",", " ").split())


def _table(rows: list[dict], name: str):
    import pyarrow as pa

    cols = TABLES[name]
    data = {c: [r.get(c) for r in rows] for c in cols}
    if name == "concepts":
        return pa.table({**data, "parents": pa.array(data["parents"], type=pa.list_(pa.string())),
                         "active": pa.array(data["active"], type=pa.bool_())})
    if name == "abbreviations":
        return pa.table({**data, "frequency": pa.array(data["frequency"], type=pa.float64())})
    return pa.table({c: pa.array(v, type=pa.string()) for c, v in data.items()})


def write_index(data: TerminologyData, out_dir: Path, *, name: str, description: str = "",
                embed_model: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Save ``data`` as an index folder; return its metadata. Embeds synonyms if ``embed_model``."""
    import pyarrow.parquet as pq

    data.dedupe()
    data.check()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the metadata goes last: a folder without it is an unfinished build
    (out_dir / "metadata.json").unlink(missing_ok=True)
    data.synonyms.sort(key=lambda s: (s["system"], s["code"], SYNONYM_TYPES.index(s["type"]), s["term"]))
    for tname in TABLES:
        rows = getattr(data, tname)
        if tname == "abbreviations" and not rows:
            (out_dir / "abbreviations.parquet").unlink(missing_ok=True)
            continue
        with atomic_path(out_dir / f"{tname}.parquet") as tmp:
            pq.write_table(_table(rows, tname), tmp, compression="zstd")
    (out_dir / "embeddings.f16.npy").unlink(missing_ok=True)
    remove_ann(out_dir)
    embedding = None
    if embed_model:
        embedding = _write_embeddings(out_dir, [s["term"] for s in data.synonyms], embed_model,
                                      batch_size=batch_size)
    systems: dict[str, int] = {}
    for c in data.concepts:
        systems[c["system"]] = systems.get(c["system"], 0) + 1
    meta = {
        "name": name, "description": description, "format_version": FORMAT_VERSION,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": [vars(s) for s in data.sources],
        "counts": {"concepts": len(data.concepts), "synonyms": len(data.synonyms),
                   "definitions": len(data.definitions), "crossmaps": len(data.crossmaps),
                   "abbreviations": len(data.abbreviations), "by_system": systems},
        "embedding": embedding,
    }
    atomic_write_text(out_dir / "metadata.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def _write_embeddings(out_dir: Path, terms: list[str], model: str, *, batch_size: int = 256,
                      device: str | None = None) -> dict[str, Any]:
    import numpy

    from .embeddings import embed_terms

    t = time.perf_counter()
    if terms:
        vectors, model_id = embed_terms(terms, model, batch_size=batch_size, device=device)
    else:  # an empty terminology: an empty matrix of the model's width
        from .embeddings import load_model, resolve_model

        model_id = resolve_model(model)[1]
        dim = load_model(model, device=device).get_embedding_dimension()
        vectors = numpy.zeros((0, dim), dtype="float32")
    with atomic_path(out_dir / "embeddings.f16.npy") as tmp, open(tmp, "wb") as f:
        numpy.save(f, vectors.astype("float16"))
    return {"model": model_id, "dim": int(vectors.shape[1]), "dtype": "float16",
            "rows": "synonyms", "normalized": True, "seconds": round(time.perf_counter() - t, 1)}


def embed_index(path: str | Path, model: str, *, batch_size: int = 256,
                device: str | None = None) -> dict[str, Any]:
    """(Re-)embed every synonym of an existing index with ``model``; returns the new metadata.
    The old embeddings stay valid until the new ones and the metadata are written."""
    index = ConceptIndex.load(path, mmap=False)
    terms = index.tables["synonyms"].column("term").to_pylist()
    meta = dict(index.meta)
    # a crash part-way leaves an index without embeddings (a clear error), never a mismatch
    meta["embedding"] = None
    atomic_write_text(Path(path) / "metadata.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    remove_ann(Path(path))
    meta["embedding"] = _write_embeddings(Path(path), terms, model, batch_size=batch_size, device=device)
    atomic_write_text(Path(path) / "metadata.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


class ConceptIndex:
    """A loaded, read-only index. Tables are pyarrow Tables; search structures are built lazily."""

    def __init__(self, path: Path, meta: dict, tables: dict, embeddings=None):
        self.path = path
        self.meta = meta
        self.tables = tables
        self.embeddings = embeddings
        self._retriever = None
        self._dense = None
        self._concept_rows: dict[tuple[str, str], int] | None = None

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> "ConceptIndex":
        import pyarrow.parquet as pq

        path = Path(path)
        meta_path = path / "metadata.json"
        if not meta_path.is_file():
            hint = (" (an unfinished build: run the build again)" if (path / "concepts.parquet").exists()
                    else "; build one with `medtext terminology build default` or an import-* command")
            raise TerminologyError(f"no terminology index here{hint}", path)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise TerminologyError(f"metadata.json is not valid JSON ({e})", meta_path) from e
        if meta.get("format_version") != FORMAT_VERSION:
            raise TerminologyError(f"index format {meta.get('format_version')} is not supported "
                                   f"(this medtext reads format {FORMAT_VERSION}); rebuild it", path)
        tables = {}
        for name in TABLES:
            p = path / f"{name}.parquet"
            if p.exists():
                tables[name] = pq.read_table(p, memory_map=mmap)
            elif name != "abbreviations":
                raise TerminologyError(f"{p.name} is missing; rebuild the index", path)
        embeddings = None
        emb = path / "embeddings.f16.npy"
        if emb.exists():
            import numpy

            embeddings = numpy.load(emb, mmap_mode="r" if mmap else None, allow_pickle=False)
        return cls(path, meta, tables, embeddings)

    # --- lookups ---------------------------------------------------------------------------
    @property
    def systems(self) -> list[str]:
        return sorted(self.meta["counts"]["by_system"])

    def __len__(self) -> int:
        return self.tables["concepts"].num_rows

    def _rows(self) -> dict[tuple[str, str], int]:
        if self._concept_rows is None:
            t = self.tables["concepts"]
            self._concept_rows = {(s, c): i for i, (s, c) in enumerate(
                zip(t.column("system").to_pylist(), t.column("code").to_pylist()))}
        return self._concept_rows

    def concept(self, system: str, code: str) -> dict[str, Any] | None:
        """The concept row with its synonyms, definitions and cross-maps; None if unknown."""
        i = self._rows().get((system, code))
        if i is None:
            return None
        row = self.tables["concepts"].slice(i, 1).to_pylist()[0]
        key = {"system": system, "code": code}
        row["synonyms"] = self._where("synonyms", key)
        row["definitions"] = self._where("definitions", key)
        row["crossmaps"] = self._where("crossmaps", key)
        return row

    def _where(self, table: str, key: dict[str, str]) -> list[dict]:
        import pyarrow.compute as pc

        t = self.tables[table]
        mask = pc.and_(pc.equal(t.column("system"), key["system"]), pc.equal(t.column("code"), key["code"]))
        return [{k: v for k, v in r.items() if k not in ("system", "code")}
                for r in t.filter(mask).to_pylist()]

    def search(self, query: str, *, k: int = 10, system: str | None = None,
               mode: str = "lexical") -> list[dict[str, Any]]:
        """Top ``k`` concepts for ``query``: system, code, term, kind, score, matched synonym.

        ``mode``: ``lexical`` (exact + fuzzy string match), ``dense`` (embedding cosine; the
        index must have embeddings and the trf extra must be installed) or ``hybrid`` (each
        concept keeps the better of its lexical score and 0.95 x its cosine)."""
        if mode not in ("lexical", "dense", "hybrid"):
            raise ValueError(f"mode must be lexical, dense or hybrid, not {mode!r}")
        if self._retriever is None:
            from .retrieval import LexicalRetriever

            self._retriever = LexicalRetriever.from_index(self)
        lexical = self._retriever.search(query, k=k, system=system) if mode != "dense" else []
        if mode == "lexical":
            return lexical
        if self._dense is None:
            from .embeddings import DenseRetriever

            self._dense = DenseRetriever(self)
        best: dict[tuple[str, str], dict] = {(h["system"], h["code"]): h for h in lexical}
        r = self._retriever
        for row, cos in self._dense.search_rows(query, n=max(50, 5 * k), system=system):
            key = (r.systems[row], r.codes[row])
            score = round(cos * (0.95 if mode == "hybrid" else 1.0), 4)
            if key not in best or score > best[key]["score"]:
                term, kind = r.concept_terms.get(key, (r.terms[row], ""))
                best[key] = {"system": key[0], "code": key[1], "term": term, "kind": kind,
                             "score": score, "matched": r.terms[row],
                             "match_type": "dense:" + SYNONYM_TYPES[r.type_rank[row]]}
        return sorted(best.values(), key=lambda h: -h["score"])[:k]

    def attribution(self) -> list[str]:
        return [f"{s['name']} {s['version']}".strip() + (f" ({s['licence']})" if s["licence"] else "")
                + (f": {s['attribution']}" if s["attribution"] else "")
                for s in self.meta.get("sources", [])]


def read_index_data(path: str | Path) -> TerminologyData:
    """An index folder back as :class:`TerminologyData` (to merge it with others)."""
    index = ConceptIndex.load(path, mmap=False)
    data = TerminologyData(sources=[Source(**s) for s in index.meta.get("sources", [])])
    for name in TABLES:
        if name in index.tables:
            setattr(data, name, index.tables[name].to_pylist())
    return data
