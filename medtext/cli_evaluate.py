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
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="Gold linking file: MedProcNER dev_linking_snomedct.jsonl, "
                                          "or the team's linked notes (corpora/icf/*.jsonl)"),
    fmt: str = typer.Option("medprocner", "--format", help="medprocner or medtext"),
    split: Optional[str] = typer.Option(None, help="medtext format: train, dev, test or heldout (default: all notes)"),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="Evaluate the linker of this preset (default, fast, patient, trf, a .cfg file or a "
                               "saved pipeline folder) as the pipeline builds it: its index, models, examples, "
                               "classifiers and thresholds. --index may replace its index; the options that set "
                               "the linker below are for building one yourself and cannot be combined with it"),
    index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default: the embedded default)"),
    bi_encoder: Optional[str] = typer.Option(
        None, help="Dense candidates: 'index' (the model the index was embedded with) or a model "
                   "name/path matching it; default: lexical only"),
    cross_encoder: Optional[str] = typer.Option(None, help="Re-rank with this CrossEncoder (name, path, "
                                                           "or medtext:linker_cross after `medtext train linker`)"),
    dense_weight: float = typer.Option(0.6, help="Fused score = w * cosine + (1 - w) * lexical score"),
    dense_weight_for: Optional[list[str]] = typer.Option(
        None, help="LABEL=VALUE: this dense weight for mentions of that label (repeatable; 0: lexical), as "
                   "the trf preset's dense_weights (FUNCTION=0)"),
    nil_threshold: float = typer.Option(0.5, help="Top-1 scores below this are NIL"),
    nil_threshold_for: Optional[list[str]] = typer.Option(
        None, help="LABEL=VALUE: this NIL threshold for mentions of that label (repeatable), as the "
                   "presets' nil_thresholds"),
    example_tfidf_for: Optional[list[str]] = typer.Option(
        None, help="LABEL=VALUE: the examples' TF-IDF weight for that label only (repeatable; labels not "
                   "named get none), as the presets' example_tfidf_weight (FUNCTION=0.5); default 0.5 for all"),
    substitution_penalty_for: Optional[list[str]] = typer.Option(
        None, help="LABEL=VALUE: the string scores' penalty for a swapped word for that label only (repeatable; "
                   "labels not named get none); default 0.3 for the SNOMED CT labels, none for FUNCTION, as the presets"),
    prior_weight_for: Optional[list[str]] = typer.Option(
        None, help="LABEL=VALUE: add VALUE x log(1 + the examples coded with a concept) to its candidates' scores for "
                   "that label (repeatable; default none), as the trf preset's prior_weight (0.0075 for the SNOMED CT "
                   "labels)"),
    narrower_for: Optional[list[str]] = typer.Option(
        None, help="LABEL: that label's mentions also read the default index's narrower procedure names "
                   "(repeatable; default none), as the presets' narrower (PROCEDURE)"),
    rerank_weight: float = typer.Option(0.3, help="Re-ranked score = w * cross-encoder probability + "
                                                  "(1 - w) * fused score"),
    use_context: bool = typer.Option(False, help="Give the cross-encoder the mention's sentence"),
    examples: Optional[list[str]] = typer.Option(
        None, help="Annotated mentions as extra concept names: medtext:icf (train + dev), medtext:icf-dev, "
                   "medtext:snomed (the SNOMED CT-coded spans of the team's train notes), medtext:cases (the "
                   "procedure spans of its case reports) or a JSONL path; "
                   "repeat it for their union (never the data evaluated)"),
    classifier: Optional[list[str]] = typer.Option(
        None, help="Mention classifier: medtext:linker_clf, medtext:linker_clf_ft or a model folder; "
                   "give it twice for an ensemble (geometric mean), as the trf preset does (never one "
                   "trained on the data evaluated)"),
    ensemble_weight: Optional[list[float]] = typer.Option(
        None, help="With two or more --classifier: each one's weight in the geometric mean, in their order "
                   "(repeatable; default equal), as the trf preset's ensemble_weights (0.65, 0.35)"),
    classifier_weight: float = typer.Option(0.5, min=0.0, max=1.0, help="Score = w * classifier probability + "
                                                                         "(1 - w) * score"),
    classifier_prior: float = typer.Option(0.0, min=0.0, max=4.0, help="Divide the classifier's probabilities "
                                           "by its classes' training frequencies to this power (logit "
                                           "adjustment; the trf preset's 1.0; 0: off)"),
    bootstrap: int = typer.Option(0, min=0, help="Resample the documents this many times for 95% intervals "
                                               "(e.g. 1000; 0: none)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result here"),
    errors_out: Optional[Path] = typer.Option(
        None, "--errors", help="Write each wrongly decided mention here, one JSON object per line: id, text, label, "
                               "gold codes, the error (wrong code, left NIL, should be NIL), what was linked, the "
                               "gold code's rank and the top 5 candidates. It holds the notes' text: keep it where "
                               "the notes are kept"),
) -> None:
    """Linking accuracy: acc@1/@5/@25 over all coded mentions and over covered ones (gold code in
    the index), top-1 macro-F1 after the NIL threshold, NIL accuracy, mentions/s; with
    --bootstrap, 95% intervals from resampling the documents.

    Example: medtext evaluate linking corpora/icf --format medtext --split test --preset trf --errors
    icf_test_errors.jsonl"""
    from .corpora.linking_data import load_examples, read_medprocner, read_medtext_linking
    from .errors import InputError
    from .evaluate import evaluate_linking
    from .terminologies.default import default_index_dir
    from .terminologies.index import ConceptIndex, TerminologyError
    from .terminologies.linking import Linker
    from .terminologies.mention_classifier import load_classifier

    if fmt not in ("medprocner", "medtext"):
        _fail(f"unknown linking format {fmt!r}: use medprocner or medtext")
    def label_values(items: list[str] | None, option: str) -> dict[str, float]:
        out = {}
        for item in items or []:
            label, _, value = item.partition("=")
            try:
                out[label.strip()] = float(value)
            except ValueError:
                _fail(f"{option} takes LABEL=VALUE, e.g. PROBLEM=0.7 (got {item!r})")
        return out

    if preset is not None:
        setters = ("bi_encoder", "cross_encoder", "dense_weight", "dense_weight_for", "nil_threshold",
                   "nil_threshold_for", "example_tfidf_for", "substitution_penalty_for", "prior_weight_for",
                   "narrower_for", "rerank_weight", "use_context", "examples", "classifier", "ensemble_weight",
                   "classifier_weight", "classifier_prior")
        given = ["--" + k.replace("_", "-") for k in setters
                 # by name: typer carries its own copy of click
                 if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")]
        if given:
            _fail(f"--preset sets the linker as the preset does; drop {', '.join(given)}, or drop --preset and set "
                  "the linker with the options")
    if ensemble_weight and not classifier:
        _fail("--ensemble-weight weighs the --classifier options: give two or more --classifier")
    per_label = label_values(nil_threshold_for, "--nil-threshold-for")
    tfidf = label_values(example_tfidf_for, "--example-tfidf-for")
    dense_by_label = label_values(dense_weight_for, "--dense-weight-for")
    penalties = label_values(substitution_penalty_for, "--substitution-penalty-for")
    priors = label_values(prior_weight_for, "--prior-weight-for")
    try:
        mentions = read_medprocner(data) if fmt == "medprocner" else read_medtext_linking(data, split)
        if not mentions:
            _fail(f"no mentions in {data} (format {fmt}, split {split})")
        if preset is not None:
            from .components.linker import linker_from_preset
            from .errors import ConfigError

            try:  # top 25: the pool the decisions are made in holds 25 concepts whatever top is
                linker = linker_from_preset(preset, top=25, **({"index": str(index)} if index else {}))
            except ConfigError as e:
                _fail(str(e))
            ix = linker.index
        else:
            ix = ConceptIndex.load(index or default_index_dir())
            linker = Linker(ix, bi_encoder=bi_encoder, cross_encoder=cross_encoder, top=25,
                            dense_weight=dense_weight, nil_threshold=nil_threshold, rerank_weight=rerank_weight,
                            use_context=use_context, examples=load_examples(examples) if examples else None,
                            classifier=load_classifier(classifier, weights=ensemble_weight or None)
                            if classifier else None,
                            classifier_weight=classifier_weight, classifier_prior=classifier_prior,
                            nil_thresholds=per_label or None,
                            dense_weights=dense_by_label or None, substitution_penalty=penalties or None,
                            prior_weight=priors, narrower=list(narrower_for or []),
                            **({"example_tfidf_weight": tfidf} if tfidf else {}))
        mistakes: list | None = [] if errors_out else None
        r = evaluate_linking(linker, mentions, system="snomed" if fmt == "medprocner" else None, bootstrap=bootstrap,
                             mistakes=mistakes)
    except (InputError, TerminologyError) as e:
        _fail(str(e))
    r.update({"data": str(data), "format": fmt, "split": split, "index": str(ix.path), "examples": examples or None,
              "classifier": classifier or None, "preset": preset})
    # what the linker was built with, from the linker itself (a preset's settings or the options)
    nil_threshold, per_label = linker.nil_threshold, linker.nil_thresholds
    how = (f"preset {preset}: " if preset is not None else "") + _linker_summary(r["linker"], examples, classifier)
    typer.echo(f"{r['mentions']} coded mentions; coverage {r['coverage']:.1%} ({r['covered']} with a gold code "
               f"in the index); {how}; {r['mentions_per_s']} mentions/s")
    typer.echo(f"{'':<10} {'@1':>6} {'@5':>6} {'@25':>6}")
    for key in ("acc_covered", "acc_all"):
        a = r[key]
        typer.echo(f"{key[4:]:<10} {a['@1']:>6.3f} {a['@5']:>6.3f} {a['@25']:>6.3f}")
    t1, tc = r["top1"], r["top1_category"]
    per = "".join(f", {k} {v}" for k, v in per_label.items())
    typer.echo(f"top-1 after NIL threshold {nil_threshold}{per}: accuracy {t1['accuracy']:.3f}, macro-F1 "
               f"{t1['macro_f1']:.3f} over {t1['classes']} codes; by category {tc['accuracy']:.3f} / "
               f"{tc['macro_f1']:.3f}; coded mentions left NIL {r['nil']['coded_left_nil']:.1%}; over all mentions "
               f"right (a gold code, or NIL when none is in the index) {r['nil']['decided_accuracy']:.3f}")
    cal = r["nil_calibration"]
    typer.echo(f"NIL calibration ({cal['should_be_nil']} mentions should be NIL: no gold code in the index): "
               f"best threshold {cal['best_threshold']:.2f} -> accuracy over all {cal['best_accuracy']:.3f} "
               f"(at {nil_threshold:.2f}: {cal['curve'].get(f'{nil_threshold:.2f}', float('nan')):.3f})")
    if len(cal["by_label"]) > 1:
        typer.echo("  by label (for nil_thresholds): " + ", ".join(
            f"{label} {c['best_threshold']:.2f} ({c['mentions']} mentions, {c['should_be_nil']} should be NIL)"
            for label, c in cal["by_label"].items()))
    if "ci95" in r:
        ci = r["ci95"]
        typer.echo(f"95% intervals ({ci['resamples']} resamples of {ci['documents']} documents): " + ", ".join(
            f"{k} {ci[k][0]:.3f}-{ci[k][1]:.3f}" for k in ci if k not in ("resamples", "documents")))
    _write_json(json_out, r)
    if errors_out:
        from .atomic import atomic_write_text

        atomic_write_text(errors_out, "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in mistakes))
        typer.echo(f"-> {errors_out} ({len(mistakes)} wrongly decided mention{'' if len(mistakes) == 1 else 's'})")


def _linker_summary(d: dict, examples: list[str] | None, classifier: list[str] | None) -> str:
    """One line on how a linker ranks, from its ``describe()``; the example and classifier specs
    name those parts when the options gave them."""
    how = "lexical" if not d["bi_encoder"] else f"lexical + dense ({d['bi_encoder']}, w={d['dense_weight']}" + \
        "".join(f", {k} {v}" for k, v in (d["dense_weights"] or {}).items()) + ")"
    if d["cross_encoder"]:
        how += f" + cross-encoder {d['cross_encoder']} (w={d['rerank_weight']})"
    if examples:
        how += f" + examples {' + '.join(examples)} ({d['examples']})"
    elif d["examples"]:
        how += f" + {d['examples']} examples"
    prior = d["prior_weight"]  # a number for every label or a map from label to weight
    if prior:
        how += " + prior " + (", ".join(f"{k} {v}" for k, v in prior.items()) if isinstance(prior, dict) else str(prior))
    for key, what in (("expand_abbreviations", "abbreviations spelt out"), ("calques", "literal translations replaced"),
                      ("narrower", "narrower procedures read")):
        if d.get(key):
            how += f" + {what} for {', '.join(d[key])}"
    if d["classifier"]:
        weights = d.get("ensemble_weights")
        how += (f" + classifier {' x '.join(classifier) if classifier else d['classifier']} "
                + (f"(members weighed {' / '.join(f'{w:g}' for w in weights)}, " if weights else "(")
                + f"w={d['classifier_weight']}, prior {d['classifier_prior'] or 0.0})")
    return how


@app.command()
def radgraph(
    gold: Path = typer.Argument(..., help="Gold reports: RadGraph JSON (.json) or the team's JSONL "
                                          "file/folder (corpora/radgraph)"),
    predictions: Optional[Path] = typer.Option(
        None, "--predictions", "-p", help="Predicted graphs as RadGraph JSON keyed like the gold (e.g. "
                                          "another tool's output); default: run --preset on the gold texts"),
    preset: str = typer.Option("radiology", help="Preset to run when no --predictions are given"),
    split: Optional[str] = typer.Option(None, help="Team JSONL: train, dev or test (default all)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result here"),
) -> None:
    """Entity and relation micro-F1 (strict spans) and RadGraph F1 (RG_E, RG_ER, full) of
    predicted graphs against gold reports."""
    from .corpora.radgraph_data import gold_items, load_radgraph_json
    from .errors import ConfigError, InputError
    from .evaluate_radgraph import predict_radgraph, score_radgraph

    seconds = None
    try:
        gold_json, _, items = gold_items(gold, split)
        if not gold_json:
            _fail(f"no gold reports in {gold}" + (f" (split {split})" if split else ""))
        if predictions is not None:
            pred_json = load_radgraph_json(predictions)
        else:
            from .pipeline import load

            pred_json, seconds = predict_radgraph(load(preset), items)
        r = score_radgraph(gold_json, pred_json)
    except (InputError, ConfigError) as e:
        _fail(str(e))
    missing = sorted(set(gold_json) - set(pred_json))
    n_rel = sum(len(e["relations"]) for d in pred_json.values() for e in d["entities"].values())
    r.update({"gold": str(gold), "predictions": str(predictions) if predictions else f"preset {preset}",
              "split": split, "missing_predictions": len(missing),
              "reports_per_s": round(len(items) / seconds, 1) if seconds else None,
              "relations_per_s": round(n_rel / seconds, 1) if seconds else None})
    e, rel, rg = r["entities"], r["relations"], r["radgraph_f1"]
    typer.echo(f"{r['reports']} reports ({len(missing)} without a prediction, scored as empty graphs)"
               + (f"; {r['reports_per_s']} reports/s, {r['relations_per_s']} relations/s" if seconds else ""))
    typer.echo(f"entities  P {e['precision']:.3f}  R {e['recall']:.3f}  F1 {e['f1']:.3f}")
    for lab, s in e["by_label"].items():
        typer.echo(f"  {lab:<14} P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}")
    typer.echo(f"relations P {rel['precision']:.3f}  R {rel['recall']:.3f}  F1 {rel['f1']:.3f}")
    for t, s in rel["by_type"].items():
        typer.echo(f"  {t:<14} P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}")
    typer.echo(f"RadGraph F1: RG_E {rg['RG_E']:.3f}  RG_ER {rg['RG_ER']:.3f}  full {rg['full']:.3f}")
    _write_json(json_out, r)


@app.command()
def errors(
    data: Path = typer.Argument(..., help="MEDEC CSV (or its JSONL form), e.g. ../shared/data/medec/ms_validation.csv"),
    data_format: str = typer.Option("medec", "--format", help="Gold format (medec)"),
    predictions: Optional[Path] = typer.Option(
        None, "--predictions", "-p", help="A run to score instead of running a pipeline: MEDEC run lines "
                                          "(TEXT_ID FLAG SENTENCE_ID CORRECTION) or a CSV"),
    preset: str = typer.Option("default", help="Preset to run when no --predictions are given"),
    checks: Optional[str] = typer.Option(None, help="Comma-separated checks to run (default: the preset's)"),
    classifier: Optional[str] = typer.Option(None, help="Trained classifier to add, e.g. medtext:errors_cross"),
    generative: Optional[str] = typer.Option(None, help="Causal LM name or path to add (GPU advised)"),
    device: str = typer.Option("cpu", help="Device of the models (cpu, cuda, cuda:N)"),
    threshold: float = typer.Option(0.0, help="Ignore findings scored below this"),
    copy_sentence: bool = typer.Option(False, help="Answer the flagged sentence itself when a detector has "
                                                   "no correction (otherwise NA)"),
    run_out: Optional[Path] = typer.Option(None, "--run-out", help="Write the answers as a MEDEC run file"),
    bertscore: Optional[str] = typer.Option(None, help="HF model for BERTScore (e.g. microsoft/deberta-xlarge-mnli)"),
    bertscore_layer: Optional[int] = typer.Option(None, help="Hidden layer for BERTScore (default last)"),
    bertscore_baseline: Optional[float] = typer.Option(None, help="BERTScore baseline for rescaling"),
    bleurt: Optional[str] = typer.Option(None, help="HF regression checkpoint for BLEURT (e.g. a BLEURT-20 port)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result here"),
) -> None:
    """MEDEC metrics: error flag accuracy, error sentence accuracy, per error type, and correction
    scores (ROUGE-1 always; BERTScore / BLEURT when their models are given; aggregate = their mean)."""
    from .corpora.medec import read_medec, read_run, write_run
    from .errors import ConfigError, InputError
    from .evaluate_errors import predict_medec, score_medec

    if data_format != "medec":
        _fail(f"--format must be medec, not {data_format!r}")
    seconds = None
    try:
        gold = read_medec(data)
        if not gold:
            _fail(f"no texts in {data}")
        if predictions is not None:
            run = read_run(predictions)
        else:
            overrides = {}
            cfg = {}
            if checks is not None:
                cfg["checks"] = [c.strip() for c in checks.split(",") if c.strip()]
            if classifier:
                cfg["classifier"] = classifier
            if generative:
                cfg["generative"] = generative
            if cfg or device != "cpu":
                overrides["medtext_errors"] = {**cfg, "device": device}
            if "medtext_errors" not in _components(preset):
                _fail(f"preset {preset!r} has no medtext_errors component")
            nlp = _load(preset, **overrides)
            run, seconds = predict_medec(nlp, gold, threshold=threshold, copy_sentence=copy_sentence)
        if run_out:
            write_run(run_out, run)
        r = score_medec(gold, run, bertscore=bertscore, bertscore_layer=bertscore_layer,
                        bertscore_baseline=bertscore_baseline, bleurt=bleurt, device=device)
    except (InputError, ConfigError) as e:
        _fail(str(e))
    r.update({"data": str(data), "predictions": str(predictions) if predictions else f"preset {preset}",
              "texts_per_s": round(len(gold) / seconds, 1) if seconds else None})
    typer.echo(f"{r['texts']} texts ({r['with_error']} with an error), {r['answered']} answered"
               + (f"; {r['texts_per_s']} texts/s" if seconds else ""))
    typer.echo(f"error flag accuracy      {r['flag_accuracy']:.3f}  (P {r['flag_precision']:.3f} "
               f"R {r['flag_recall']:.3f} F1 {r['flag_f1']:.3f})")
    typer.echo(f"error sentence accuracy  {r['sentence_accuracy']:.3f}")
    c = r["corrections"]
    for name in c["aggregate_of"]:
        typer.echo(f"correction {name:<13} {c[name + '_composite']:.3f}")
    typer.echo(f"correction aggregate    {c['aggregate_composite']:.3f}  (mean of {', '.join(c['aggregate_of'])})")
    typer.echo(f"{'error type':<16} {'texts':>5} {'flag acc':>8} {'sent acc':>8}")
    for t, v in r["by_type"].items():
        typer.echo(f"{t:<16} {v['texts']:>5} {v['flag_accuracy']:>8.3f} {v['sentence_accuracy']:>8.3f}")
    _write_json(json_out, r)
