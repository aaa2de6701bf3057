"""``medtext evaluate ...``: accuracy of entity recognition and assertion against gold data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Measure accuracy against gold data; prints a table and writes JSON.")
EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _load(preset: str, **overrides):
    from .errors import ConfigError
    from .pipeline import load

    try:
        return load(preset, **overrides)
    except ConfigError as e:
        _fail(str(e))


def _components(preset: str) -> list[str]:
    """Component names of a preset or .cfg file ([] for a saved pipeline folder)."""
    from .errors import ConfigError
    from .pipeline import _preset_config

    try:
        config, _ = _preset_config(preset)
    except ConfigError as e:
        _fail(str(e))
    return list(config["components"]) if config is not None else []


def _write_json(path: Optional[Path], result: dict) -> None:
    if path:
        from .atomic import atomic_write_text

        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        typer.echo(f"-> {path}")


@app.command()
def context(
    paths: Optional[List[Path]] = typer.Argument(None, help="Case files or folders (default: corpora/context)"),
    preset: str = typer.Option("default", help="Preset whose medtext_context is evaluated"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result here"),
    show_failures: bool = typer.Option(True, help="List the cases that went wrong"),
) -> None:
    """Assertion flags (negated, uncertain, hypothetical, historical, family, conditional) per flag."""
    from .corpora.context_cases import read_cases
    from .errors import InputError
    from .evaluate import evaluate_context

    # the gold cases bring their own entities: no need for the terminology matcher
    no_matcher = {"medtext_ner": {"use_matcher": False}} if "medtext_ner" in _components(preset) else {}
    nlp = _load(preset, **no_matcher)
    if "medtext_context" not in nlp.pipe_names:
        _fail(f"preset {preset!r} has no medtext_context component")
    try:
        cases = read_cases(paths or None)
    except InputError as e:
        _fail(str(e))
    r = evaluate_context(nlp, cases)
    typer.echo(f"{r['cases']} cases; all six flags right: {r['all_flags_correct']:.1%}")
    typer.echo(f"{'flag':<13} {'support':>7} {'P':>6} {'R':>6} {'F1':>6} {'acc':>6}")
    for f, v in r["per_flag"].items():
        typer.echo(f"{f:<13} {v['support']:>7} {v['precision']:>6.3f} {v['recall']:>6.3f} {v['f1']:>6.3f} {v['accuracy']:>6.3f}")
    if show_failures:
        for x in r["failures"]:
            typer.echo(f"  x {x['id']}: {x['target']!r} in {x['text']!r}: expected {x['expected'] or 'none'}, got {x['got'] or 'none'}")
    _write_json(json_out, {k: v for k, v in r.items()})


@app.command()
def ner(
    data: Path = typer.Argument(..., help="Gold file or folder"),
    fmt: str = typer.Option(..., "--format", help="ncbi, bc5cdr or medtext"),
    preset: str = typer.Option("default", help="Preset, .cfg file or saved pipeline folder"),
    split: Optional[str] = typer.Option(None, help="For --format medtext: train or dev"),
    labels: Optional[List[str]] = typer.Option(None, "--label", help="Only these labels (repeat)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full result here"),
) -> None:
    """Strict and lenient precision/recall/F1 per label of the preset's entities."""
    from .corpora.ner_data import BC5CDR_TYPES, NCBI_TYPES, read_corpus
    from .errors import InputError
    from .evaluate import evaluate_spans

    try:
        examples = read_corpus(data, fmt, split)
    except InputError as e:
        _fail(str(e))
    if not examples:
        _fail(f"no documents in {data} (format {fmt}, split {split})")
    nlp = _load(preset)
    gold_labels = sorted(set(NCBI_TYPES.values()) if fmt == "ncbi" else set(BC5CDR_TYPES.values())
                         if fmt == "bc5cdr" else {lab for e in examples for *_, lab in e.spans})
    labels = labels or gold_labels
    docs = nlp.pipe((e.text for e in examples), batch_size=32)
    pairs = [(e.spans, [(x.start_char, x.end_char, x.label_) for x in d.ents]) for e, d in zip(examples, docs)]
    r = evaluate_spans(pairs, labels)
    r.update({"data": str(data), "format": fmt, "split": split, "preset": preset, "labels": labels})
    typer.echo(f"{r['documents']} documents, preset {preset}")
    typer.echo(f"{'label':<11} {'strict P':>8} {'R':>6} {'F1':>6}   {'lenient P':>9} {'R':>6} {'F1':>6}  {'gold':>5}")
    for lab in [*labels, "micro"]:
        s, le = r["strict"].get(lab), r["lenient"].get(lab)
        if not s:
            continue
        typer.echo(f"{lab:<11} {s['precision']:>8.3f} {s['recall']:>6.3f} {s['f1']:>6.3f}   "
                   f"{le['precision']:>9.3f} {le['recall']:>6.3f} {le['f1']:>6.3f}  {s['tp'] + s['fn']:>5}")
    _write_json(json_out, r)


@app.command()
def linking(
    data: Path = typer.Argument(..., help="Gold linking file (MedProcNER dev_linking_snomedct.jsonl)"),
    fmt: str = typer.Option("medprocner", "--format", help="medprocner"),
    index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default: the embedded default)"),
    mode: str = typer.Option("lexical", help="lexical, dense or hybrid (dense/hybrid need an index built with --embed)"),
    routed: bool = typer.Option(True, help="Keep only the SNOMED CT kinds the mention's label routes to"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result here"),
) -> None:
    """Candidate retrieval accuracy (acc@1/@5/@25) over all mentions and over covered ones."""
    from .corpora.linking_data import read_medprocner
    from .errors import InputError
    from .evaluate import evaluate_linking
    from .terminologies.default import default_index_dir
    from .terminologies.index import ConceptIndex, TerminologyError

    if fmt != "medprocner":
        _fail(f"unknown linking format {fmt!r}: use medprocner")
    if mode not in ("lexical", "dense", "hybrid"):
        _fail(f"--mode must be lexical, dense or hybrid, not {mode!r}")
    try:
        mentions = read_medprocner(data)
        ix = ConceptIndex.load(index or default_index_dir())
        r = evaluate_linking(ix, mentions, mode=mode, routed=routed)
    except (InputError, TerminologyError) as e:
        _fail(str(e))
    r.update({"data": str(data), "index": str(ix.path)})
    typer.echo(f"{r['mentions']} coded mentions; coverage {r['coverage']:.1%} ({r['covered']} gold codes in the index); "
               f"mode {mode}{', routed by label' if routed else ''}; {r['mentions_per_s']} mentions/s")
    typer.echo(f"{'':<10} {'@1':>6} {'@5':>6} {'@25':>6}")
    for key in ("acc_covered", "acc_all"):
        a = r[key]
        typer.echo(f"{key[4:]:<10} {a['@1']:>6.3f} {a['@5']:>6.3f} {a['@25']:>6.3f}")
    _write_json(json_out, r)
