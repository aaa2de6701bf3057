"""``medtext terminology ...``: build, import, merge, inspect and search terminology indexes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Build, import, merge, inspect and search terminology indexes. Every "
                       "command that reads an index takes --index DIR (default: the embedded "
                       "default under $MEDTEXT_HOME/terminologies/default).")

INDEX_HELP = "Index folder (default: $MEDTEXT_HOME/terminologies/default)"
OUT_HELP = "Folder to write the index to"
EXIT_USAGE, EXIT_DATA = 2, 4


def _fail(message: str, code: int = EXIT_DATA) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _index_dir(index: Optional[Path]) -> Path:
    from medtext.terminologies.default import default_index_dir

    return index or default_index_dir()


def _write(data, out: Path, name: str, merge_with: Optional[List[Path]], embed: Optional[str]) -> None:
    from medtext.terminologies.index import read_index_data, write_index

    for other in merge_with or []:
        data = data.merge(read_index_data(other))
    t = time.perf_counter()
    meta = write_index(data, out, name=name, embed_model=embed)
    c = meta["counts"]
    typer.echo(f"wrote {out}: {c['concepts']:,} concepts ({', '.join(f'{k} {v:,}' for k, v in c['by_system'].items())}), "
               f"{c['synonyms']:,} synonyms, {c['definitions']:,} definitions, {c['crossmaps']:,} cross-maps "
               f"in {time.perf_counter() - t:.1f} s")


def _guard(fn, *args, **kwargs):
    from medtext.terminologies.index import TerminologyError

    try:
        return fn(*args, **kwargs)
    except TerminologyError as e:
        _fail(str(e))


MERGE_HELP = "Merge these existing index folders into the output (provenance is kept per row)"
EMBED_HELP = ("Also embed every synonym with this sentence-transformers model "
              "(e.g. all-MiniLM-L6-v2; needs the trf extra)")


@app.command()
def build(
    name: str = typer.Argument("default", help="Which index to build (only 'default' for now)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help=OUT_HELP + " (default: --index location)"),
    assets: Optional[Path] = typer.Option(None, help="Folder with the asset files (default: ./assets or ../shared/assets)"),
    embed: Optional[str] = typer.Option(None, help=EMBED_HELP),
) -> None:
    """Build the embedded default index from the project assets and PyPI data, offline."""
    if name != "default":
        _fail(f"unknown index {name!r}: only 'default' can be built; use import-* for your own sources", EXIT_USAGE)
    from medtext.terminologies.default import build_default

    out = _index_dir(output)
    data = _guard(build_default, assets)
    _guard(_write, data, out, "default", None, embed)


@app.command("import-rf2")
def import_rf2(
    path: Path = typer.Argument(..., help="RF2 release folder (or its Snapshot folder)"),
    output: Path = typer.Option(..., "-o", "--output", help=OUT_HELP),
    lang: str = typer.Option("us", help="Dialect of preferred terms: us or gb"),
    include_inactive: bool = typer.Option(False, help="Keep inactive concepts (flagged active=false)"),
    merge_with: Optional[List[Path]] = typer.Option(None, "--merge-with", help=MERGE_HELP),
    embed: Optional[str] = typer.Option(None, help=EMBED_HELP),
) -> None:
    """Import your own SNOMED CT release (RF2 Snapshot)."""
    from medtext.terminologies.rf2 import import_rf2 as run

    data = _guard(run, path, lang=lang, include_inactive=include_inactive)
    _guard(_write, data, output, f"snomed-rf2-{lang}", merge_with, embed)


@app.command("import-claml")
def import_claml(
    path: Path = typer.Argument(..., help="ClaML XML file (ICF, ICD-10, ...)"),
    output: Path = typer.Option(..., "-o", "--output", help=OUT_HELP),
    system: Optional[str] = typer.Option(None, help="System name (default: the ClaML title, lower-cased)"),
    lang: str = typer.Option("en", help="Label language to read"),
    merge_with: Optional[List[Path]] = typer.Option(None, "--merge-with", help=MERGE_HELP),
    embed: Optional[str] = typer.Option(None, help=EMBED_HELP),
) -> None:
    """Import a WHO ClaML classification (your own ICF or ICD)."""
    from medtext.terminologies.claml import import_claml as run

    data = _guard(run, path, system=system, lang=lang)
    _guard(_write, data, output, data.concepts[0]["system"], merge_with, embed)


@app.command("import-csv")
def import_csv(
    path: Path = typer.Argument(..., help="CSV or TSV with columns code, term [, synonyms, parent, definition, kind, lay]"),
    output: Path = typer.Option(..., "-o", "--output", help=OUT_HELP),
    system: str = typer.Option(..., help="System name for these codes"),
    merge_with: Optional[List[Path]] = typer.Option(None, "--merge-with", help=MERGE_HELP),
    embed: Optional[str] = typer.Option(None, help=EMBED_HELP),
) -> None:
    """Import a terminology from a table."""
    from medtext.terminologies.csv_import import import_csv as run

    data = _guard(run, path, system=system)
    _guard(_write, data, output, system, merge_with, embed)


@app.command("import-obo")
def import_obo(
    path: Path = typer.Argument(..., help="OBO file (HPO, MONDO, DOID ...)"),
    output: Path = typer.Option(..., "-o", "--output", help=OUT_HELP),
    system: Optional[str] = typer.Option(None, help="System name (default: the file's ontology tag)"),
    merge_with: Optional[List[Path]] = typer.Option(None, "--merge-with", help=MERGE_HELP),
    embed: Optional[str] = typer.Option(None, help=EMBED_HELP),
) -> None:
    """Import an OBO ontology."""
    from medtext.terminologies.obo import import_obo as run

    data = _guard(run, path, system=system)
    _guard(_write, data, output, data.concepts[0]["system"], merge_with, embed)


@app.command()
def merge(
    indexes: List[Path] = typer.Argument(..., help="Index folders, first wins on duplicate concepts"),
    output: Path = typer.Option(..., "-o", "--output", help=OUT_HELP),
    name: str = typer.Option("merged", help="Name of the merged index"),
    embed: Optional[str] = typer.Option(None, help=EMBED_HELP),
) -> None:
    """Merge index folders into one (rows keep their source)."""
    from medtext.terminologies.index import read_index_data

    data = _guard(read_index_data, indexes[0])
    _guard(_write, data, output, name, indexes[1:], embed)


@app.command()
def embed(
    model: str = typer.Option(..., help="sentence-transformers model name or path (all-MiniLM-L6-v2 is "
                                        "packaged; medtext:linker_bi after `medtext train linker`)"),
    index: Optional[Path] = typer.Option(None, "--index", help=INDEX_HELP),
    batch_size: int = typer.Option(256, help="Encoder batch size"),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
) -> None:
    """(Re-)embed every synonym of an index, for the linker's dense candidates. The linker
    refuses a bi-encoder other than the one recorded here."""
    from medtext.terminologies.index import embed_index

    path = _index_dir(index)
    t = time.perf_counter()
    meta = _guard(embed_index, path, model, batch_size=batch_size, device=None if device == "cpu" else device)
    e = meta["embedding"]
    typer.echo(f"embedded {meta['counts']['synonyms']:,} synonyms of {path} with {e['model']} "
               f"({e['dim']}-d) in {time.perf_counter() - t:.1f} s")


@app.command()
def info(index: Optional[Path] = typer.Option(None, "--index", help=INDEX_HELP)) -> None:
    """Counts, sources, versions, licences and attribution of an index."""
    from medtext.terminologies.index import ConceptIndex

    path = _index_dir(index)
    t = time.perf_counter()
    ix = _guard(ConceptIndex.load, path)
    load_s = time.perf_counter() - t
    m = ix.meta
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    typer.echo(f"{m['name']} (format {m['format_version']}, built {m['built_at']}) at {path}")
    typer.echo(f"  {m['counts']['concepts']:,} concepts: " + ", ".join(f"{k} {v:,}" for k, v in m["counts"]["by_system"].items()))
    typer.echo(f"  {m['counts']['synonyms']:,} synonyms, {m['counts']['definitions']:,} definitions, "
               f"{m['counts']['crossmaps']:,} cross-maps, {m['counts']['abbreviations']:,} abbreviation senses")
    emb = m.get("embedding")
    typer.echo(f"  embeddings: {emb['model']} ({emb['dim']}-d {emb['dtype']})" if emb else "  embeddings: none")
    typer.echo(f"  size on disk {size / 1e6:.1f} MB; loaded in {load_s:.2f} s")
    typer.echo("sources:")
    for s in m["sources"]:
        typer.echo(f"  - {s['name']} {s['version']}".rstrip() + (f" [{s['licence']}]" if s["licence"] else ""))
        if s["attribution"]:
            typer.echo(f"      {s['attribution']}")


@app.command()
def search(
    query: str = typer.Argument(..., help="Text to look up, e.g. 'heart attack'"),
    index: Optional[Path] = typer.Option(None, "--index", help=INDEX_HELP),
    system: Optional[str] = typer.Option(None, help="Only this system (snomed, icf, ...)"),
    k: int = typer.Option(10, "-k", min=1, help="How many concepts"),
    mode: str = typer.Option("lexical", help="lexical, dense or hybrid (dense/hybrid need an index built with --embed and the trf extra)"),
) -> None:
    """Ranked concepts for QUERY: code, term, kind, score (the linker's lexical retrieval)."""
    from medtext.terminologies.index import ConceptIndex

    ix = _guard(ConceptIndex.load, _index_dir(index))
    if system and system not in ix.systems:
        _fail(f"no system {system!r} in this index; it has {', '.join(ix.systems)}", EXIT_USAGE)
    if mode not in ("lexical", "dense", "hybrid"):
        _fail(f"--mode must be lexical, dense or hybrid, not {mode!r}", EXIT_USAGE)
    hits = _guard(ix.search, query, k=k, system=system, mode=mode)
    if not hits:
        typer.echo("no match")
        return
    for rank, h in enumerate(hits, 1):
        via = "" if h["match_type"] == "preferred" else f"  (via {h['match_type']} '{h['matched']}')"
        typer.echo(f"{rank:>2}. {h['system']}:{h['code']:<12} {h['score']:.3f}  {h['term']} [{h['kind']}]{via}")
