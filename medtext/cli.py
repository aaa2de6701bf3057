"""The ``medtext`` command line. Imports stay lazy so ``--help`` is instant.

Exit codes: 0 every input gave a record; 1 the run finished but some inputs are in
``OUT/errors.jsonl``; 2 bad usage or configuration; 3 the output cannot be written;
130 interrupted (finished chunks are kept: re-run with ``--resume``).
"""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_OUTPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="medtext", no_args_is_help=True, add_completion=False,
    help="Clinical notes (text, PDF, JSONL/CSV/Parquet rows) to structured, coded records.\n\n"
         "Exit codes: 0 all inputs gave records; 1 some inputs failed (see OUT/errors.jsonl); "
         "2 bad usage or config; 3 output not writable; 130 interrupted (use --resume).")


def _add_subcommands() -> None:
    from .cli_evaluate import app as evaluate_app
    from .cli_terminology import app as terminology_app

    app.add_typer(terminology_app, name="terminology")
    app.add_typer(evaluate_app, name="evaluate")


_add_subcommands()


class Format(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"
    csv = "csv"
    fhir = "fhir"
    brat = "brat"
    spacy = "spacy"


class Backend(str, Enum):
    local = "local"
    spark = "spark"


def _run_spark(inputs, output, *, fmt, preset, batch_size, n_process, device, resume, overwrite, limit,
               id_field, text_field, include_text, master, partitions) -> None:
    from .errors import ConfigError, OutputError

    bad = [name for name, off in (("--format", fmt == Format.jsonl), ("--n-process", n_process == 1),
                                  ("--resume", not resume), ("--limit", limit is None)) if not off]
    if bad:
        _fail(f"{', '.join(bad)} do not apply to --backend spark (it writes partitioned Parquet; Spark "
              "schedules the work and retries failed tasks)", EXIT_USAGE)
    try:
        from .spark import run_spark

        summary = run_spark(inputs, output, preset=preset, id_field=id_field, text_field=text_field,
                            master=master, batch_size=batch_size, overwrite=overwrite,
                            include_text=include_text, partitions=partitions, device=device)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    except OutputError as e:
        _fail(str(e), EXIT_OUTPUT)
    typer.echo(f"{summary['documents']} records, {summary['failed']} failed inputs, {summary['entities']} "
               f"entities in {summary['seconds']:.1f} s (spark, {summary['master']}) -> {output}")
    if summary["failed"]:
        typer.echo(f"failed inputs are in {output / 'errors'} (Parquet)")
        raise typer.Exit(EXIT_PARTIAL)


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def run(
    inputs: List[Path] = typer.Argument(..., help="Files or folders: .txt .md .pdf .jsonl .csv .parquet"),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (created if missing)"),
    fmt: Format = typer.Option(Format.jsonl, "--format", "-f", help="Record format"),
    preset: str = typer.Option("default", help="Preset name, .cfg file or saved pipeline folder"),
    batch_size: int = typer.Option(32, min=1, help="Documents per pipeline batch"),
    n_process: int = typer.Option(1, min=1, help="Worker processes for CPU work"),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
    resume: bool = typer.Option(False, help="Continue an earlier run in OUT, skipping finished inputs"),
    overwrite: bool = typer.Option(False, help="Discard an earlier run in OUT and start again"),
    limit: Optional[int] = typer.Option(None, min=1, help="Process at most N (new) documents"),
    id_field: str = typer.Option("id", help="Id column of .jsonl/.csv/.parquet inputs"),
    text_field: str = typer.Option("text", help="Text column of .jsonl/.csv/.parquet inputs"),
    include_text: bool = typer.Option(True, "--text/--no-text", help="Copy the note text into records"),
    chunk_size: int = typer.Option(256, min=1, help="Documents per committed journal part"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar"),
    backend: Backend = typer.Option(Backend.local, help="local (this machine, --n-process workers) or spark "
                                    "(Apache Spark; writes OUT/parquet/<table>/ partitions; medtext[spark])"),
    master: Optional[str] = typer.Option(None, help="Spark master (spark backend; default: the active "
                                         "session, else local[*])"),
    partitions: Optional[int] = typer.Option(None, min=1, help="Spark tasks to spread the documents over "
                                             "(spark backend; default two per core)"),
) -> None:
    """Process notes into records under OUT (records + errors.jsonl + summary.json)."""
    import time

    if backend == Backend.spark:
        _run_spark(inputs, output, fmt=fmt, preset=preset, batch_size=batch_size, n_process=n_process,
                   device=device, resume=resume, overwrite=overwrite, limit=limit, id_field=id_field,
                   text_field=text_field, include_text=include_text, master=master, partitions=partitions)
        return

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .errors import ConfigError, OutputError, UsageError
    from .run import run as do_run

    console = Console(stderr=True)
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.completed} docs"), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), console=console, disable=quiet, transient=False)
    try:
        with progress:
            task = progress.add_task("loading pipeline", total=None, rate="")
            started: list[float] = []

            def tick(_res) -> None:
                if not started:  # the rate counts from the first result, not the model load
                    started.append(time.perf_counter())
                    progress.update(task, description="processing")
                done = progress.tasks[0].completed + 1
                elapsed = time.perf_counter() - started[0]
                progress.update(task, advance=1,
                                rate=f"{done / elapsed:.1f} docs/s" if elapsed > 0.5 else "")

            summary = do_run(inputs, output, fmt=fmt.value, preset=preset, batch_size=batch_size,
                             n_process=n_process, chunk_size=chunk_size, resume=resume,
                             overwrite=overwrite, limit=limit, include_text=include_text,
                             id_field=id_field, text_field=text_field, device=device,
                             on_result=tick)
    except OutputError as e:
        _fail(str(e), EXIT_OUTPUT)
    except (ConfigError, UsageError) as e:
        _fail(str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: finished chunks are kept; re-run with --resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    line = (f"{summary.records} records, {summary.failures} failed inputs, "
            f"{summary.entities} entities, {summary.errors_found} error findings, "
            f"{summary.docs_per_s:.{1 if summary.docs_per_s >= 1 else 3}f} docs/s")
    if summary.skipped_done:
        line += f"; {summary.skipped_done} already done (resumed)"
    typer.echo(f"{line} -> {output}")
    if summary.failures:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.failure_reasons.items()))
        typer.echo(f"failed inputs ({reasons}) are listed in {output / 'errors.jsonl'}")
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def info(preset: str = typer.Option("default", help="Preset to describe"),
         as_json: bool = typer.Option(False, "--json", help="Print the pipeline metadata as JSON")) -> None:
    """Show components, models and terminologies of a preset, with versions and licences."""
    import json

    from . import __version__
    from .errors import ConfigError
    from .pipeline import available_presets, load
    from .records.build import SCHEMA_VERSION, pipeline_info

    try:
        nlp = load(preset)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    meta = pipeline_info(nlp)
    terms = _terminology_summary()
    if as_json:
        typer.echo(json.dumps({"medtext": __version__, "schema_version": SCHEMA_VERSION,
                               "presets": available_presets(), "pipeline": meta,
                               "terminologies": terms}, indent=2))
        return
    typer.echo(f"medtext {__version__} (record schema {SCHEMA_VERSION}); presets: "
               f"{', '.join(available_presets())}")
    typer.echo(f"preset {preset}: pipeline {meta['name']} {meta['version']}")
    for c in meta["components"]:
        typer.echo(f"  - {c['name']:<20} factory={c['factory']} version={c['version']} "
                   f"model={c['model'] or '(rules, no model)'}")
    if not terms:
        typer.echo("terminologies: the default index is not built (`medtext terminology build default`)")
    for t in terms:
        typer.echo(f"terminology {t['name']} at {t['path']}: " + ", ".join(
            f"{k} {v:,}" for k, v in t["counts"]["by_system"].items()))
        for src in t["sources"]:
            typer.echo(f"  - {src['name']} {src['version']}".rstrip() + (f" [{src['licence']}]" if src["licence"] else ""))
            if src["attribution"]:
                typer.echo(f"      {src['attribution']}")


@app.command()
def link(
    mentions: List[str] = typer.Argument(..., help="Mention texts as a note writes them, e.g. 'chest pain'"),
    label: str = typer.Option(..., "--label", "-l",
                              help="Entity label: PROBLEM, TEST, TREATMENT, PROCEDURE, DRUG, ANATOMY or FUNCTION"),
    preset: str = typer.Option("default", help="Preset, .cfg file or saved pipeline folder whose linker is used"),
    index: Optional[Path] = typer.Option(None, "--index", help="Use this index folder instead of the preset's"),
    context: str = typer.Option("", help="The mention's sentence (read only by a cross-encoder with use_context)"),
    k: int = typer.Option(0, "-k", min=0, help="How many candidates to show (default: the linker's top; at most "
                                               "the pool it ranks, 25)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per mention"),
) -> None:
    """Link mentions as a preset's linker does and show why: the code (or NIL: the score it was
    decided on, the best before or after the classifier's mix, against the label's threshold) and
    each candidate's score with its parts: string, cosine, best example, popularity prior,
    classifier probability, re-ranker probability."""
    import json

    from .terminologies.linking import Mention
    from .terminologies.retrieval import VARIANT_WEIGHT

    def num(v):
        return f"{v:>6.3f}" if v is not None else f"{'-':>6}"

    linker = _preset_linker(preset, index, label)
    for row in linker.explain([Mention(text, label, context) for text in mentions], k=k or None):
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
            continue
        decided = (f"{row['linked']['system']}:{row['linked']['code']} {row['linked']['display']}" if row["linked"]
                   else "NIL")
        relation = ">=" if row["linked"] else "<"
        typer.echo(f"{row['text']!r} ({label}) -> {decided}: decided on {row['score']:.3f} {relation} NIL threshold "
                   f"{row['nil_threshold']:g}")
        typer.echo(f"  score = {row['formula']}")
        if row["also_searched"]:
            typer.echo(f"  also searched as {row['also_searched']!r} (its scores x {VARIANT_WEIGHT:g})")
        if not row["candidates"]:
            typer.echo("  no candidates")
            continue
        typer.echo(f"  {'#':>2} {'code':<20} {'score':>6} {'string':>6} {'cosine':>6} {'exampl':>6} {'prior':>6} "
                   f"{'classf':>6} {'rerank':>6}  concept (matched name)")
        for n, c in enumerate(row["candidates"], 1):
            via = f" (via '{c['matched']}')" if c["matched"] and c["matched"] != c["display"] else ""
            typer.echo(f"  {n:>2} {c['system'] + ':' + c['code']:<20} {num(c['score'])} {num(c['string'])} "
                       f"{num(c['cosine'])} {num(c['example'])} {num(c['prior'])} {num(c['classifier'])} "
                       f"{num(c['rerank'])}  {c['display']}{via}")


@app.command("map")
def map_cmd(
    terms: Path = typer.Argument(..., help="The terms: a .csv or .tsv with a header row, .jsonl, .parquet, or a "
                                           ".txt file with one term per line"),
    output: Path = typer.Option(..., "--output", "-o", help="The table to write (.csv, .tsv, .jsonl or .parquet): "
                                                           "every input row, in order, with the medtext_* columns "
                                                           "added"),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="Entity label of every term: PROBLEM, TEST, "
                                        "TREATMENT, PROCEDURE, DRUG, ANATOMY or FUNCTION"),
    label_column: Optional[str] = typer.Option(None, help="Column holding each row's label (instead of --label)"),
    column: str = typer.Option("term", help="Column holding the terms"),
    preset: str = typer.Option("default", help="Preset, .cfg file or saved pipeline folder whose linker is used"),
    index: Optional[Path] = typer.Option(None, "--index", help="Use this index folder instead of the preset's"),
    k: int = typer.Option(3, "-k", min=1, max=25, help="Candidates listed per row for review"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar"),
) -> None:
    """Code a list of terms (a problem list, lab test names, a procedure catalogue): each row gets
    the code the linker decides, its name, the score it was decided on, a status (linked, nil,
    empty, error) and the top candidates for review. Each distinct term is linked once."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .errors import InputError, OutputError
    from .term_map import map_terms, read_terms, table_format

    if (label is None) == (label_column is None):
        _fail("give --label (one label for every term) or --label-column (a label per row)", EXIT_USAGE)
    try:  # the input and the output's format first: a bad one fails before the linker's load
        table_format(output, "output")
        table = read_terms(terms, column, label_column)
    except InputError as e:
        _fail(str(e), EXIT_USAGE)
    except OutputError as e:
        _fail(str(e), EXIT_OUTPUT)
    linker = _preset_linker(preset, index, label)
    console = Console(stderr=True)
    bar = Progress(TextColumn("[bold]linking"), BarColumn(), TextColumn("{task.completed}/{task.total} terms"),
                   TimeElapsedColumn(), console=console, disable=quiet, transient=True)
    try:
        with bar:
            task = bar.add_task("linking", total=None)
            summary = map_terms(linker, terms, output, column=column, label=label, label_column=label_column, k=k,
                                progress=lambda done, total: bar.update(task, completed=done, total=total),
                                table=table)
    except (OutputError, OSError) as e:
        _fail(str(e), EXIT_OUTPUT)
    counts = ", ".join(f"{st} {summary.by_status.get(st, 0):,}" for st in ("linked", "nil", "empty", "error"))
    rate = f", {summary.distinct / summary.seconds:.0f} terms/s" if summary.seconds > 0 and summary.distinct else ""
    typer.echo(f"{summary.rows:,} rows ({summary.distinct:,} distinct terms) in {summary.seconds:.1f} s{rate}: "
               f"{counts} -> {output}", err=True)
    if summary.by_status.get("error"):
        raise typer.Exit(EXIT_PARTIAL)


def _preset_linker(preset: str, index: Optional[Path], label: Optional[str] = None):
    """The linker of ``preset``'s ``medtext_linker`` (see :func:`_load_preset_linker`); exits with a usage
    error when ``label`` is given and the linker has no route for it."""
    linker = _load_preset_linker(preset, index)
    if label is not None and label not in linker.routes:
        _fail(f"this linker has no route for label {label!r}; it links {', '.join(sorted(linker.routes))}", EXIT_USAGE)
    return linker


def _load_preset_linker(preset: str, index: Optional[Path]):
    """The ``medtext_linker`` of ``preset`` alone (a blank pipeline with the preset's linker settings;
    a saved pipeline folder is loaded whole), its index replaced by ``index`` when given."""
    from .errors import ConfigError
    from .extensions import register_extensions
    from .pipeline import _preset_config, load

    try:
        config, _ = _preset_config(preset)
        if config is None:
            if index is not None:
                _fail("--index does not apply to a saved pipeline folder (its linker keeps its index)", EXIT_USAGE)
            nlp = load(preset)
            if "medtext_linker" not in nlp.pipe_names:
                _fail(f"{preset} has no medtext_linker component", EXIT_USAGE)
            return nlp.get_pipe("medtext_linker").linker
        components = config.get("components", {})
        if "medtext_linker" not in components:
            _fail(f"preset {preset!r} has no medtext_linker component", EXIT_USAGE)
        settings = {key: value for key, value in components["medtext_linker"].items() if key != "factory"}
        if index is not None:
            settings["index"] = str(index)
        import spacy

        register_extensions()
        return spacy.blank("en").add_pipe("medtext_linker", config=settings).linker
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)


def _terminology_summary() -> list[dict]:
    """Name, path, counts and sources of the installed default index (none if not built)."""
    import json

    from .terminologies.default import default_index_dir

    meta_path = default_index_dir() / "metadata.json"
    if not meta_path.is_file():
        return []
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return [{"name": meta["name"], "path": str(meta_path.parent), "counts": meta["counts"],
             "sources": meta["sources"], "embedding": meta.get("embedding")}]


train_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Train medtext's statistical components into $MEDTEXT_HOME/models.")
app.add_typer(train_app, name="train")


@train_app.command("ner")
def train_ner_cmd(
    data: Optional[Path] = typer.Option(None, help="Folder with ncbi_disease/ and bc5cdr/ (default ../shared/data)"),
    max_steps: int = typer.Option(6000, min=1, help="Training steps"),
    eval_frequency: int = typer.Option(500, min=1, help="Evaluate on dev every N steps"),
    seed: int = typer.Option(0, help="Random seed"),
    arch: str = typer.Option("cnn", help="cnn (the default preset: a CNN under a BILUO tagger; CPU), "
                                         "cnn-parser (the same CNN under spaCy's transition-based "
                                         "ner; slower), trf (a transformer encoder under a BILUO "
                                         "tagger, averaged with the CNN's in the trf preset; GPU "
                                         "advised) or trf-parser (the transformer under spaCy's ner)"),
    model: Optional[str] = typer.Option(None, help="trf, trf-parser backbone: a Hugging Face name or local path "
                                                   "(default: the packaged all-MiniLM-L6-v2)"),
    learn_rate: Optional[float] = typer.Option(None, help="Peak learning rate (default: the "
                                                          "config's, 1e-3 cnn / 1e-4 trf)"),
    gpu_id: int = typer.Option(-1, help="GPU to train on (-1: CPU)"),
    vectors: Optional[str] = typer.Option(None, help="cnn, cnn-parser: static word vectors, \"minilm\" (distilled "
                                                     "from the packaged all-MiniLM-L6-v2; trf extra) "
                                                     "or a spaCy pipeline folder with vectors"),
    ensemble: Optional[int] = typer.Option(None, min=1, help="cnn: train this many taggers (seeds SEED, "
                                                             "SEED+1 ...) and average their tag "
                                                             "probabilities (default 2 for cnn, as "
                                                             "shipped; 1 otherwise)"),
) -> None:
    """Train the NER (PROBLEM, TEST, DRUG, TREATMENT, PROCEDURE, ANATOMY, FUNCTION)."""
    import logging

    from .errors import ConfigError
    from .train import train_ner

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = train_ner(data_dir=data, max_steps=max_steps, eval_frequency=eval_frequency, seed=seed,
                         arch=arch, model=model, learn_rate=learn_rate, gpu_id=gpu_id,
                         vectors=vectors, ensemble=ensemble)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    typer.echo(f"installed the NER model at {path}")


@train_app.command("linker")
def train_linker_cmd(
    index: Optional[Path] = typer.Option(None, "--index", help="Index to train on and re-embed "
                                                               "(default: the embedded default)"),
    base: str = typer.Option("all-MiniLM-L6-v2", help="Starting weights for both encoders "
                                                      "(sentence-transformers / HF name or path)"),
    bi: bool = typer.Option(True, help="Fine-tune the bi-encoder (--no-bi keeps the one trained before)"),
    cross: bool = typer.Option(True, help="Also train the cross-encoder re-ranker"),
    bi_epochs: int = typer.Option(1, min=1, help="Bi-encoder epochs"),
    ce_epochs: int = typer.Option(1, min=1, help="Cross-encoder epochs"),
    max_pairs: int = typer.Option(30000, min=100, help="Most terminology synonym pairs for the bi-encoder"),
    max_queries: int = typer.Option(2500, min=10, help="Most terminology queries for the cross-encoder"),
    negatives: int = typer.Option(5, min=1, help="Hard negatives per cross-encoder query"),
    system: Optional[list[str]] = typer.Option(None, "--system", help="Train on the names and team "
                                               "mentions of this terminology system only (repeatable, "
                                               "e.g. --system snomed; default: every system)"),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
    seed: int = typer.Option(0, help="Random seed"),
) -> None:
    """Fine-tune the linker's bi-encoder (SapBERT-style, on terminology synonyms and the team's
    linked notes: ICF train and dev, SNOMED CT train notes, train case reports), re-embed the
    index with it, and train the cross-encoder re-ranker on its hard negatives. Models go to
    $MEDTEXT_HOME/models/linker_bi and linker_cross; use them with medtext_linker.bi_encoder =
    "index" and cross_encoder = "medtext:linker_cross"."""
    import json
    import logging

    from .errors import ConfigError
    from .terminologies.index import TerminologyError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from .train_linker import train_linker

        report = train_linker(index_path=index, base=base, bi=bi, cross=cross, bi_epochs=bi_epochs,
                              ce_epochs=ce_epochs, max_pairs=max_pairs, max_queries=max_queries,
                              negatives=negatives, systems=set(system) if system else None,
                              seed=seed, device=None if device == "cpu" else device)
    except ImportError as e:
        _fail(f"training the linker needs the transformer stack ({e}): pip install 'medtext[trf]'", EXIT_USAGE)
    except (ConfigError, TerminologyError) as e:
        _fail(str(e), EXIT_USAGE)
    typer.echo(json.dumps(report, indent=2))


@train_app.command("linker-clf")
def train_linker_clf_cmd(
    examples: str = typer.Option("medtext:icf", help="Annotated mentions: medtext:icf (the team's ICF "
                                                     "train + dev notes; never the test split), "
                                                     "medtext:icf-train, or a JSONL path (see "
                                                     "medtext_linker.examples)"),
    out: Optional[Path] = typer.Option(None, help="Model folder (default $MEDTEXT_HOME/models/linker_clf, "
                                                  "what the presets' medtext:linker_clf reads; with --encoder "
                                                  "models/linker_clf_trf; with --finetune models/linker_clf_ft)"),
    l2: float = typer.Option(3e-5, min=0.0, help="L2 penalty on the weights"),
    min_df: int = typer.Option(2, min=1, help="Drop features seen in fewer training mentions"),
    steps: int = typer.Option(300, min=1, help="Full-batch Adam steps"),
    seed: int = typer.Option(0, help="Random seed"),
    encoder: Optional[str] = typer.Option(
        None, help="Also use this sentence-transformers model's embedding of each mention as features "
                   "(all-MiniLM-L6-v2 = the packaged copy, medtext:linker_bi = the fine-tuned bi-encoder, "
                   "or a name/path; needs the trf extra at training and run time)"),
    encoder_weight: float = typer.Option(2.0, min=0.0, help="Scale of the embedding features (against the "
                                                             "unit-length n-gram blocks)"),
    finetune: bool = typer.Option(False, "--finetune", help="Fine-tune the encoder (--encoder, default "
                                  "all-MiniLM-L6-v2) with a linear layer instead of the n-gram regression; "
                                  "default --out models/linker_clf_ft. Needs the trf extra"),
    epochs: int = typer.Option(4, min=1, help="With --finetune: passes over the examples"),
    learn_rate: float = typer.Option(1e-4, min=0.0, help="With --finetune: the encoder's peak learning rate "
                                     "(the linear layer's is ten times it)"),
    batch_size: int = typer.Option(32, min=1, help="With --finetune: mentions per step"),
    device: Optional[str] = typer.Option(None, help="With --finetune: torch device (cpu, cuda, cuda:1)"),
    seeds: int = typer.Option(1, min=1, help="With --finetune: members fine-tuned with seeds --seed, --seed + 1, "
                              "...; their probabilities' geometric mean is the classifier's (less "
                              "dependent on one seed; each member costs the training time and an "
                              "encoder call per mention again)"),
    augment: float = typer.Option(0.0, min=0.0, max=1.0, help="With --finetune: the probability that a mention "
                                  "is rewritten in an epoch (digits, side, level of assistance and pronouns "
                                  "changed; same training time)"),
    head_init: Optional[str] = typer.Option(
        None, "--head-init", help="With --finetune: how the linear layer starts: names (the default: each "
                                  "category's row from the base encoder's embeddings of its names in the default "
                                  "index, a zero-shot name matcher to start from; ICF two-fold macro-F1 0.648 -> "
                                  "0.689) or random (PyTorch's draw, as before 2026-12-05)"),
    names: bool = typer.Option(False, "--names", help="Also learn the default index's names (preferred "
                               "terms and synonyms) of every concept of the examples' systems, so "
                               "categories without examples become classes (for small systems such as ICF)"),
) -> None:
    """Train the linker's mention classifier (softmax regression over word and character n-grams
    of annotated mentions, optionally with sentence embeddings; numpy, a few minutes on 2 CPUs)
    that re-ranks candidates. Without --encoder no transformer stack is needed. With --finetune,
    a sentence encoder is fine-tuned as the classifier (about 2 min per epoch on 2 CPUs)."""
    import json

    from rich.progress import Progress

    from .corpora.linking_data import load_examples
    from .errors import InputError
    from .pipeline import models_dir
    from .terminologies.index import TerminologyError
    from .terminologies.mention_classifier import MentionClassifier

    if head_init is not None and not finetune:
        _fail("--head-init is for --finetune (the n-gram classifier has no encoder to embed the names with)",
              EXIT_USAGE)
    head_init = head_init or "names"
    if head_init not in ("random", "names"):
        _fail(f"--head-init is names or random, not {head_init!r}", EXIT_USAGE)
    try:
        rows = load_examples(examples)
    except InputError as e:
        _fail(str(e), EXIT_USAGE)
    n_names = 0
    if names:
        from .corpora.linking_data import index_name_examples
        from .terminologies.default import default_index_dir
        from .terminologies.index import ConceptIndex

        try:
            extra = index_name_examples(ConceptIndex.load(default_index_dir()), {s for _, s, _ in rows})
        except (TerminologyError, ValueError) as e:
            _fail(str(e), EXIT_USAGE)
        rows, n_names = rows + extra, len(extra)
    if finetune:
        target = out or models_dir() / "linker_clf_ft"
        class_names = None
        if head_init == "names":
            from .corpora.linking_data import index_class_names
            from .terminologies.default import default_index_dir
            from .terminologies.index import ConceptIndex

            try:
                class_names = index_class_names(ConceptIndex.load(default_index_dir()), {(s, c) for _, s, c in rows})
            except TerminologyError as e:
                _fail(f"{e} (the category names for --head-init names come from it; --head-init random needs "
                      "no index)", EXIT_USAGE)
        try:
            from .terminologies.finetuned_classifier import FinetunedClassifier

            with Progress(transient=True) as bar:
                task = bar.add_task(f"fine-tuning on {len(rows):,} mentions", total=None)
                clf = FinetunedClassifier.train(
                    rows, base=encoder or "all-MiniLM-L6-v2", epochs=epochs, learn_rate=learn_rate,
                    batch_size=batch_size, seed=seed, seeds=seeds, augment=augment, device=device,
                    class_names=class_names,
                    progress=lambda step, total, loss: bar.update(task, completed=step, total=total,
                                                                  description=f"loss {loss:.3f}"))
        except ImportError as e:
            _fail(f"--finetune needs the transformer stack ({e}): pip install 'medtext[trf]'", EXIT_USAGE)
        except (ValueError, OSError, TerminologyError) as e:
            _fail(str(e), EXIT_USAGE)
        clf.meta["examples_source"] = examples
        clf.meta["index_names"] = n_names
        clf.save(target)
        typer.echo(json.dumps({"path": str(target), **{k: clf.meta[k] for k in (
            "examples", "index_names", "classes", "base", "epochs", "seeds", "augment", "head_init", "named_classes",
            "train_loss", "train_accuracy", "train_seconds")}}, indent=2))
        return
    target = out or models_dir() / ("linker_clf_trf" if encoder else "linker_clf")
    with Progress(transient=True) as bar:
        task = bar.add_task(f"training on {len(rows):,} mentions", total=steps)
        try:
            clf = MentionClassifier.train(rows, l2=l2, min_df=min_df, steps=steps, seed=seed,
                                          encoder=encoder, encoder_weight=encoder_weight,
                                          progress=lambda step, loss: bar.update(task, completed=step,
                                                                                 description=f"loss {loss:.3f}"))
        except (ValueError, TerminologyError) as e:
            _fail(str(e), EXIT_USAGE)
    clf.meta["examples_source"] = examples
    clf.meta["index_names"] = n_names
    clf.save(target)
    typer.echo(json.dumps({"path": str(target), **{k: clf.meta[k] for k in (
        "examples", "index_names", "classes", "features", "train_loss", "train_accuracy", "train_seconds")},
        "encoder": clf.encoder}, indent=2))


@train_app.command("layout")
def train_layout_cmd(
    docs: int = typer.Option(360, min=12, help="Synthetic letters to render (spread over the template families)"),
    holdout: Optional[str] = typer.Option(None, help="Keep this template family out of training"),
    epochs: int = typer.Option(12, min=1, help="Passes over the training letters"),
    out: Optional[Path] = typer.Option(None, help="Where to save (default $MEDTEXT_HOME/models/layout, "
                                       "models/layout_trf with --text-encoder)"),
    seed: int = typer.Option(0, help="Random seed (corpus and training)"),
    text_encoder: Optional[str] = typer.Option(
        None, help="Add a frozen sentence encoder's embedding of each line (sentence-transformers / "
        "Hugging Face name or path; all-MiniLM-L6-v2 is packaged), saved to models/layout_trf; opt-in "
        "(it did not beat the line features, see README). Needs the trf extra"),
) -> None:
    """Train the layout classifier (medtext_layout: body / header / footer / side / signature /
    pagination / other per line) on synthetic letters rendered to PDF and plain text with known
    line labels (medtext.corpora.layout_gen). CPU, a few minutes."""
    import json
    import logging

    from .errors import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from .train_layout import train_layout

        report = train_layout(docs=docs, holdout=holdout, epochs=epochs, out=out, seed=seed,
                              text_encoder=text_encoder)
    except ImportError as e:
        _fail(f"rendering the training letters needs reportlab ({e}): pip install 'medtext[pdfgen]'", EXIT_USAGE)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    typer.echo(json.dumps(report, indent=2))


@train_app.command("relations")
def train_relations_cmd(
    train: Optional[Path] = typer.Option(None, help="RadGraph JSON to train on (e.g. the licensed "
                                                    "RadGraph train.json); default: the team's reports"),
    dev: Optional[Path] = typer.Option(None, help="RadGraph JSON for model selection (with --train)"),
    epochs: Optional[int] = typer.Option(None, min=1, help="Passes over the training reports (default 40 "
                                         "with the CNN, 20 with --arch trf)"),
    out: Optional[Path] = typer.Option(None, help="Where to save (default $MEDTEXT_HOME/models/radgraph, "
                                       "models/radgraph_trf with --arch trf)"),
    seed: int = typer.Option(0, help="Random seed"),
    arch: str = typer.Option("cnn", help="cnn (the radiology preset; CPU) or trf (the radiology_trf preset: "
                             "a Hugging Face encoder under both models; needs the trf extra)"),
    model: Optional[str] = typer.Option(None, help="--arch trf: Hugging Face encoder name or path "
                                        "(default all-MiniLM-L6-v2, packaged)"),
    learn_rate: Optional[float] = typer.Option(None, help="Adam learning rate (trf default 1e-4 with warm-up)"),
    gpu_id: int = typer.Option(-1, help="GPU to train on (-1 = CPU)"),
) -> None:
    """Train the radiology preset's models: RadGraph entities (CNN NER) and relations
    (medtext_relations), on the team's reports (corpora/radgraph, train split; dev for model
    selection) or on RadGraph JSON. CPU, about 2-3 min for the team's 102 reports with the CNN."""
    import json
    import logging

    from .errors import ConfigError, InputError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if dev is not None and train is None:
        _fail("--dev needs --train", EXIT_USAGE)
    try:
        from .train_relations import train_relations

        report = train_relations(train_json=train, dev_json=dev, epochs=epochs, out=out, seed=seed,
                                 arch=arch, model=model, learn_rate=learn_rate, gpu_id=gpu_id)
    except (InputError, ConfigError) as e:
        _fail(str(e), EXIT_USAGE)
    typer.echo(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))


@train_app.command("errors")
def train_errors_cmd(
    data: Optional[Path] = typer.Option(None, help="MEDEC CSV or JSONL (default $MEDTEXT_DATA/medec/ms_validation.jsonl, "
                                                   "MEDTEXT_DATA defaulting to ../shared/data)"),
    synthetic: bool = typer.Option(True, help="Add the errors injected into the team's notes"),
    base: str = typer.Option("all-MiniLM-L6-v2", help="Starting weights (CrossEncoder / HF name or path)"),
    epochs: int = typer.Option(1, min=1, help="Passes over the training pairs"),
    threshold: Optional[float] = typer.Option(None, help="Flag threshold saved with the model (default: the "
                                                         "best out-of-fold threshold of benchmarks/errors_cv.py, else 0.5)"),
    out: Optional[Path] = typer.Option(None, help="Where to save (default $MEDTEXT_HOME/models/errors_cross)"),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
    seed: int = typer.Option(0, help="Random seed"),
) -> None:
    """Train medtext_errors' sentence classifier (a cross-encoder over sentence + note) on MEDEC and
    the team's injected errors. Use it with medtext_errors.classifier = "medtext:errors_cross".
    About 5 min on 2 CPUs for MEDEC-MS validation plus the injected notes; a GPU takes seconds."""
    import json
    import logging

    from .errors import ConfigError, InputError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from .train_errors import train_errors

        report = train_errors(data=data, synthetic=synthetic, base=base, epochs=epochs, threshold=threshold,
                              out=out, seed=seed, device=None if device == "cpu" else device)
    except ImportError as e:
        _fail(f"training the classifier needs the transformer stack ({e}): pip install 'medtext[trf]'", EXIT_USAGE)
    except (ConfigError, InputError) as e:
        _fail(str(e), EXIT_USAGE)
    typer.echo(json.dumps(report, indent=2))


@app.command()
def export(
    output: Path = typer.Argument(..., help="Folder to save the pipeline to (spaCy's to_disk layout)"),
    preset: str = typer.Option("default", help="Preset to export"),
    name: Optional[str] = typer.Option(None, help="Package name written into meta.json"),
    version: Optional[str] = typer.Option(None, help="Package version written into meta.json"),
) -> None:
    """Save a preset as a spaCy pipeline folder (for `spacy package` or `medtext run --preset DIR`)."""
    from . import __version__
    from .errors import ConfigError
    from .pipeline import load

    try:
        nlp = load(preset)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    if name:
        nlp.meta["name"] = name
    if version:
        nlp.meta["version"] = version
    nlp.meta["requirements"] = [f"medtext>={__version__}"]
    nlp.meta.setdefault("description", f"medtext preset {preset}")
    nlp.meta["license"] = "Apache-2.0"
    try:
        nlp.to_disk(output)
    except OSError as e:
        _fail(f"cannot write {output}: {e}", EXIT_OUTPUT)
    typer.echo(f"saved {preset} ({', '.join(nlp.pipe_names)}) to {output}")


@contextmanager
def _writing(output: Path):
    """Exit 2 with the message of a medtext error (bad input, schema), 3 when OUTPUT cannot be written."""
    from .errors import MedtextError

    try:
        yield
    except MedtextError as e:
        _fail(str(e), EXIT_USAGE)
    except OSError as e:
        _fail(f"cannot write {output}: {e}", EXIT_OUTPUT)


def _read_records(source: Path):
    """Records from a records.jsonl, a `medtext run` folder or a BRAT folder, validated."""
    from .records import validate_record

    if source.is_dir() and not (source / "records.jsonl").exists() and any(source.glob("*.ann")):
        from .corpora.brat import read_brat

        yield from read_brat(source)
        return
    from .frames import _records

    for rec in _records(source):
        validate_record(rec)
        yield rec


@app.command()
def convert(
    source: Path = typer.Argument(..., metavar="INPUT", help="records.jsonl, the -o folder of a JSONL `medtext "
                                  "run`, or a BRAT folder (.txt + .ann, e.g. corrected in brat)"),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (created if missing)"),
    to: Format = typer.Option(..., "--to", help="Output format (fhir: one R4 Bundle per document; brat: "
                              ".txt/.ann for annotation tools; spacy: a DocBin for `spacy train`)"),
) -> None:
    """Convert records to another format (e.g. JSONL -> FHIR, BRAT -> JSONL, JSONL -> spaCy DocBin)."""
    from itertools import islice

    from .records.writers import get_writer

    if not source.exists():
        _fail(f"{source} does not exist", EXIT_USAGE)
    records = _read_records(source)

    def batches():
        while True:
            batch = list(islice(records, 256))
            if not batch:
                return
            yield batch

    with _writing(output):
        output.mkdir(parents=True, exist_ok=True)
        paths = get_writer(to.value, output).write(batches())
    typer.echo(f"wrote {len(paths)} file(s) to {output}")


@app.command()
def render(
    source: Path = typer.Argument(..., metavar="INPUT", help="records.jsonl or the -o folder of a JSONL "
                                  "`medtext run` (its errors.jsonl failures are listed too)"),
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write (self-contained, works offline)"),
    title: str = typer.Option("medtext report", help="Page title"),
    max_docs: Optional[int] = typer.Option(None, min=1, help="Render at most N documents (all are counted)"),
) -> None:
    """Write a self-contained HTML report: layout shading, entities by label, assertion badges,
    codes on hover, relation arcs, error findings and the lay version side by side."""
    from .render import render_records_file

    with _writing(output):
        path = render_records_file(source, output, title=title, max_docs=max_docs)
    typer.echo(f"wrote {path}")


@app.command()
def summary(output: Path = typer.Argument(..., help="Output folder of an earlier `medtext run`")) -> None:
    """Print what a finished run holds (counts, sections, failures) from OUT/summary.json."""
    import json

    path = output / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"{path} not found: is {output} the -o folder of a finished `medtext run`?", EXIT_USAGE)
    except (OSError, ValueError) as e:
        _fail(f"cannot read {path}: {e}", EXIT_USAGE)
    total, run_, contents = data["total"], data["this_run"], data.get("contents", {})
    typer.echo(f"{output}: {total['records']} records, {total['failures']} failed inputs "
               f"(preset {data['preset']}, format {data['format']})")
    if contents:
        typer.echo("  by format: " + ", ".join(f"{k} {v}" for k, v in contents["records_by_format"].items()))
        typer.echo("  " + ", ".join(f"{k} {contents[k]:,}" for k in
                                    ("pages", "lines", "sections", "sentences", "entities",
                                     "relations", "errors_found", "warnings")))
        top = list(contents["sections_by_label"].items())[:12]
        typer.echo("  sections: " + ", ".join(f"{k} {v}" for k, v in top))
        for key, title in (("entities_by_label", "entities"), ("entities_by_assertion", "assertion"),
                           ("lines_by_layout", "layout")):
            if contents.get(key):
                typer.echo(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in contents[key].items()))
    if run_["failure_reasons"]:
        typer.echo("  failures: " + ", ".join(f"{k} {v}" for k, v in sorted(run_["failure_reasons"].items()))
                   + f" (see {output / 'errors.jsonl'})")
    typer.echo(f"  last run: {run_['records']} records in {run_['seconds']:.2f} s "
               f"({run_['docs_per_s']:.1f} docs/s, model load {run_.get('load_seconds', 0):.2f} s)")
    typer.echo("  outputs: " + ", ".join(data["outputs"] + ["errors.jsonl", "summary.json"]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
