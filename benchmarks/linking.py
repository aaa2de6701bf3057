"""Entity linking accuracy and speed: MedProcNER dev (SNOMED CT procedures, English forms),
the team's ICF test split and its held-out ICF notes, the team's SNOMED CT-coded dev and
test notes (``corpora/snomed``) and its dev case reports in machine-translated English
(``corpora/cases``, ``snomed-cases-dev``; since 2026-12-04) and those of coders who coded each
procedure to the exact concept, NIL otherwise, as MedProcNER does (``corpora/cases_exact``,
``snomed-exact-dev``; since 2026-12-06), for each linker configuration.

    python benchmarks/linking.py [--data ../shared/data] [--configs lexical,dense-base,...] [--bootstrap 1000]
                                 [--sets snomed-notes-dev,snomed-cases-dev]

Each figure comes with a 95% interval from resampling the documents (notes, MedProcNER case
reports) with replacement, ``--bootstrap`` times (``ci95`` in the JSON).

Configurations (each needs what the one before it built):

- ``lexical``      exact + fuzzy synonyms, no model;
- ``dense-base``   + all-MiniLM-L6-v2 candidates (an index copy embedded with it is made once
                   under $MEDTEXT_HOME/terminologies/default-minilm);
- ``dense-tuned``  + the fine-tuned bi-encoder (``medtext train linker``: the default index is
                   embedded with medtext:linker_bi);
- ``rerank``       dense-tuned + the cross-encoder medtext:linker_cross (score = 0.3 * its
                   probability + 0.7 * the fused score);
- ``lexical-ex``, ``dense-base-ex``, ``dense-tuned-ex``: those configurations with the team's ICF train
                   and dev mentions as examples (``examples = "medtext:icf"``; the ICF test split
                   is never seen; MedProcNER mentions are procedures, which no example is routed to);
- ``lexical-ex-clf`` (**the presets**), ``dense-tuned-ex-clf``: + the mention classifier
                   ``medtext:linker_clf`` (``$MEDTEXT_HOME/models/linker_clf`` or the packaged copy,
                   trained on the same train and dev mentions) at ``classifier_weight`` 0.5;
- ``dense-base-ex-clf``, ``dense-base-ex-clf-trf``: the all-MiniLM-L6-v2 candidates with the examples
                   and either classifier (what `bi_encoder = "index"` over a MiniLM-embedded
                   default index gives);
- ``lexical-ex-clf-trf`` (**the trf preset**), ``dense-tuned-ex-clf-trf``, ``dense-tuned-ex-clf-bi``:
                   the same with a classifier that also reads the mention's sentence embedding
                   (``medtext:linker_clf_trf``: all-MiniLM-L6-v2, ``medtext:linker_clf_bi``: the
                   fine-tuned bi-encoder; built by ``medtext train linker-clf --encoder ...``, see
                   ``CLASSIFIERS``);
- ``lexical-ex-clf-ft``, ``dense-base-ex-clf-ft``: with the classifier that fine-tunes
                   all-MiniLM-L6-v2 itself (``medtext:linker_clf_ft``, ``medtext train linker-clf
                   --finetune``; same train and dev mentions); ``lexical-ex-clf-ens``,
                   ``dense-base-ex-clf-ens``: that classifier and the n-gram one, geometric mean (the
                   ``trf`` preset's); ``lexical-ex-clf-ftn``, ``lexical-ex-clf-ensn``: the same with
                   a fine-tuned classifier that also learnt the index's ICF names
                   (``medtext:linker_clf_ftn``, ``--finetune --names``);
- ``lexical-exs``, ``dense-base-exs``: ``lexical-ex`` /
                   ``dense-base-ex`` with the SNOMED CT-coded spans (every label but FUNCTION) of
                   the team's train notes and, since 2026-12-04, the procedure spans of its case
                   reports as examples too (``examples = ["medtext:icf", "medtext:snomed",
                   "medtext:cases"]``; the SNOMED CT dev and test notes are never seen; results in
                   the JSON from runs before 2026-12-04 are without the case reports) and the
                   presets' NIL thresholds for SNOMED CT labels and example TF-IDF weight
                   (``PRESET_LINKING``); ``lexical-exs-clf`` (**the default, fast and patient
                   presets** since 2026-12-01) and ``lexical-exs-clf-ens`` (the trf preset until
                   2026-12-02) add their classifiers as above;
- ``dense-snomed-exs``, ``dense-snomed-exs-clf-ens`` (**the trf preset**): ``dense-base-exs``
                   with FUNCTION linked lexically (``TRF_LINKING``: ``dense_weights =
                   {"FUNCTION": 0.0, "PROCEDURE": 0.7}``, PROCEDURE's since 2026-12-06),
                   all-MiniLM-L6-v2 candidates for the SNOMED CT labels (``dense_weight`` 0.8 since
                   2026-12-02, 0.6 before). Their ensembles
                   (``-exs-clf-ens``) divide by the classes' training frequencies
                   (``classifier_prior`` 1.0, the trf preset's, since 2026-12-02 *latest*) and, since
                   2026-12-06, weigh the fine-tuned member 0.65 and the n-gram one 0.35
                   (``TRF_ENSEMBLE_WEIGHTS``, the trf preset's ``ensemble_weights``); no other
                   configuration does. Since 2026-12-05 every ``TRF_LINKING`` configuration adds the
                   examples' popularity prior to the SNOMED CT labels' scores (``prior_weight``
                   0.0075 x log(1 + examples coded with the concept)).
- ``dense-tuned-snomed-exs``, ``dense-tuned-snomed-exs-clf-ens``: the same with the fine-tuned
                   bi-encoder's candidates (``medtext train linker``, e.g. ``--no-cross --system
                   snomed``: the default index embedded with medtext:linker_bi) instead of
                   all-MiniLM-L6-v2's.
- ``dense-snomed-var-exs``, ``dense-snomed-var-exs-clf-ens``: the trf preset's with the query's variant
                   (no laterality or severity words, plurals singular) searched densely too
                   (``dense_variant=True``; tried 2026-12-04, not adopted).
- ``lexical-abx-exs``, ``lexical-abx-exs-clf``, ``dense-snomed-abx-exs``, ``dense-snomed-abx-exs-clf-ens``:
                   ``lexical-exs(-clf)`` and the trf preset's with capitalised short forms spelt out
                   inside longer mentions (``expand_abbreviations=True``; tried 2026-12-05, not adopted).

Configurations not run keep their earlier results in the JSON file.
Prints a table and writes benchmarks/results/linking.json (acc@1/5/25 over covered and all
mentions, top-1 macro-F1 for ICF, mentions/s, linker load seconds, peak RSS).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = "medtext:icf"  # what the presets use: the team's ICF train + dev notes
# configuration suffix -> (mention classifier, how to build it when it is not there)
CLASSIFIERS = {
    "clf": ("medtext:linker_clf", ""),
    "clf-trf": ("medtext:linker_clf_trf", "--encoder all-MiniLM-L6-v2"),
    "clf-bi": ("medtext:linker_clf_bi", "--encoder medtext:linker_bi --out $MEDTEXT_HOME/models/linker_clf_bi"),
    "clf-ft": ("medtext:linker_clf_ft", "--finetune"),
    "clf-ens": (["medtext:linker_clf_ft", "medtext:linker_clf"], "--finetune"),
    "clf-ftn": ("medtext:linker_clf_ftn", "--finetune --names --out $MEDTEXT_HOME/models/linker_clf_ftn"),
    "clf-ensn": (["medtext:linker_clf_ftn", "medtext:linker_clf"], "--finetune --names --out "
                 "$MEDTEXT_HOME/models/linker_clf_ftn"),
}
# the presets' nil_thresholds (chosen on the SNOMED CT dev notes; ANATOMY and FUNCTION keep nil_threshold 0.5),
# example_tfidf_weight (FUNCTION only) and substitution_penalty (not FUNCTION; since 2026-12-02)
PRESET_LINKING = {"nil_thresholds": {"PROBLEM": 0.75, "TEST": 0.75, "TREATMENT": 0.75, "PROCEDURE": 0.75, "DRUG": 0.85,
                                     "ANATOMY": 0.6},
                  "example_tfidf_weight": {"FUNCTION": 0.5},
                  "substitution_penalty": {"PROBLEM": 0.3, "TEST": 0.3, "TREATMENT": 0.3, "PROCEDURE": 0.3,
                                           "DRUG": 0.3, "ANATOMY": 0.3},
                  # words machine-translated literally from Spanish, a second form (2026-12-06, experiment 23)
                  "calques": True,
                  # narrower procedures (the team's procedure_narrower.tsv) for PROCEDURE mentions
                  # (2026-12-06, experiments 30 and 31)
                  "narrower": ["PROCEDURE"]}
# the trf preset's classifier_prior (logit adjustment; chosen on a two-fold split of the ICF train
# notes; the other presets keep 0)
TRF_PRIOR = 1.0
# the trf preset's ensemble_weights: the fine-tuned member's log-probabilities weigh 0.65, the n-gram one's 0.35
# (2026-12-06, experiment 28: chosen on two folds of the ICF train notes; equal weights until then)
TRF_ENSEMBLE_WEIGHTS = [0.65, 0.35]
# what the trf preset adds: all-MiniLM-L6-v2 candidates for the SNOMED CT labels at weight 0.8 (PROCEDURE 0.7 since
# 2026-12-06, experiment 33: chosen on snomed-exact-dev), FUNCTION lexical, and the examples' popularity prior for
# the SNOMED CT labels
TRF_LINKING = {"dense_weight": 0.8, "dense_weights": {"FUNCTION": 0.0, "PROCEDURE": 0.7},
               # the popularity prior (2026-12-05, experiment 11: chosen on the team's dev case reports and notes)
               "prior_weight": {label: 0.0075 for label in ("PROBLEM", "TEST", "TREATMENT", "PROCEDURE", "DRUG",
                                                            "ANATOMY")}}
ANCHORS = {"ClinLinker MedProcNER": {"@1": 0.663, "@5": 0.828, "@25": 0.898}, "ICF macro-F1 (reference)": 0.84}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--configs", default="lexical,dense-base,dense-tuned,rerank,lexical-ex,dense-base-ex,"
                                        "dense-tuned-ex,lexical-ex-clf,dense-tuned-ex-clf")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "linking.json")
    p.add_argument("--sets", default=None,
                   help="Comma-separated evaluation sets to run (default: all), e.g. snomed-notes-dev,snomed-cases-dev")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="Resamples of the documents for 95%% intervals (0: none)")
    args = p.parse_args()

    from medtext.corpora.linking_data import (CASES_DIR, CASES_EXACT_DIR, ICF_DIR, SNOMED_DIR, load_examples,
                                              read_medprocner, read_medtext_linking)
    from medtext.evaluate import evaluate_linking
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex, TerminologyError, embed_index
    from medtext.terminologies.linking import Linker
    from medtext.terminologies.mention_classifier import classifier_path, load_classifier

    tuned_dir = default_index_dir()
    base_dir = tuned_dir.with_name("default-minilm")
    configs = args.configs.split(",")
    if any(c.startswith(("dense-base", "dense-snomed")) for c in configs):
        meta = base_dir / "metadata.json"
        copy = json.loads(meta.read_text()) if meta.exists() else {}
        built = json.loads((tuned_dir / "metadata.json").read_text()).get("built_at")
        # re-embed when the copy is missing, embedded with another model, or made from an older build
        if (copy.get("embedding") or {}).get("model") != "sentence-transformers/all-MiniLM-L6-v2" \
                or copy.get("built_at") != built:
            print(f"embedding a copy of the default index with all-MiniLM-L6-v2 into {base_dir} ...", file=sys.stderr)
            shutil.rmtree(base_dir, ignore_errors=True)
            shutil.copytree(tuned_dir, base_dir, ignore=shutil.ignore_patterns("embeddings.f16.npy"))
            embed_index(base_dir, "all-MiniLM-L6-v2")
    icf_ex, both_ex = load_examples(EXAMPLES), load_examples([EXAMPLES, "medtext:snomed", "medtext:cases"])
    settings = {
        "lexical": (tuned_dir, dict(bi_encoder=None)),
        "dense-base": (base_dir, dict(bi_encoder="index")),
        "dense-tuned": (tuned_dir, dict(bi_encoder="medtext:linker_bi")),
        "rerank": (tuned_dir, dict(bi_encoder="medtext:linker_bi", cross_encoder="medtext:linker_cross")),
        "lexical-ex": (tuned_dir, dict(bi_encoder=None, examples=icf_ex)),
        "dense-base-ex": (base_dir, dict(bi_encoder="index", examples=icf_ex)),
        "dense-tuned-ex": (tuned_dir, dict(bi_encoder="medtext:linker_bi", examples=icf_ex)),
        "lexical-exs": (tuned_dir, dict(bi_encoder=None, examples=both_ex, **PRESET_LINKING)),
        "dense-base-exs": (base_dir, dict(bi_encoder="index", examples=both_ex, **PRESET_LINKING)),
        "dense-snomed-exs": (base_dir, dict(bi_encoder="index", examples=both_ex, **PRESET_LINKING, **TRF_LINKING)),
        "dense-tuned-snomed-exs": (tuned_dir, dict(bi_encoder="medtext:linker_bi", examples=both_ex,
                                                   **PRESET_LINKING, **TRF_LINKING)),
        "dense-snomed-var-exs": (base_dir, dict(bi_encoder="index", examples=both_ex, dense_variant=True,
                                                **PRESET_LINKING, **TRF_LINKING)),
        "lexical-abx-exs": (tuned_dir, dict(bi_encoder=None, examples=both_ex, expand_abbreviations=True,
                                            **PRESET_LINKING)),
        "dense-snomed-abx-exs": (base_dir, dict(bi_encoder="index", examples=both_ex, expand_abbreviations=True,
                                                **PRESET_LINKING, **TRF_LINKING)),
    }
    specs = {}  # config -> classifier spec
    for name in ("lexical-ex", "dense-base-ex", "dense-tuned-ex", "lexical-exs", "dense-snomed-exs",
                 "dense-tuned-snomed-exs", "dense-snomed-var-exs", "lexical-abx-exs", "dense-snomed-abx-exs"):
        for suffix, (spec, build) in CLASSIFIERS.items():
            if f"{name}-{suffix}" not in configs:
                continue
            # the trf preset's ensemble: weighed members, divided by the classes' frequencies
            trf_ens = name.endswith("-exs") and suffix == "clf-ens"
            try:
                clf = load_classifier(spec, weights=TRF_ENSEMBLE_WEIGHTS if trf_ens else None)
            except TerminologyError as e:
                sys.exit(f"{e}\nbuild it with: medtext train linker-clf {build}")
            for one, member in zip([spec] if isinstance(spec, str) else spec, getattr(clf, "members", [clf])):
                if member.meta.get("examples_source", EXAMPLES) != EXAMPLES:
                    sys.exit(f"{classifier_path(one)} was trained on {member.meta['examples_source']}, "
                             f"not {EXAMPLES}: the ICF test split must stay unseen")
            specs[f"{name}-{suffix}"] = spec
            # the trf preset's ensemble divides by the classes' frequencies (since 2026-12-02 *latest*)
            prior = TRF_PRIOR if trf_ens else 0.0
            settings[f"{name}-{suffix}"] = (settings[name][0], dict(settings[name][1], classifier=clf,
                                                                    classifier_weight=0.5, classifier_prior=prior))
    sets = {"medprocner-dev": (read_medprocner(args.data / "medprocner" / "dev_linking_snomedct.jsonl"), "snomed"),
            "icf-test": (read_medtext_linking(ICF_DIR, "test"), None),
            "icf-heldout": (read_medtext_linking(ICF_DIR, "heldout"), None),
            "snomed-notes-dev": (read_medtext_linking(SNOMED_DIR, "dev"), "snomed"),
            "snomed-notes-test": (read_medtext_linking(SNOMED_DIR, "test"), "snomed"),
            # the team's 80 dev case reports (machine-translated English; the examples read the train ones)
            "snomed-cases-dev": (read_medtext_linking(CASES_DIR, "dev"), "snomed"),
            # 80 more by coders who read no team file, each procedure coded to the GPS concept that
            # is exactly it, else NIL (MedProcNER's convention; since 2026-12-06)
            "snomed-exact-dev": (read_medtext_linking(CASES_EXACT_DIR, "dev"), "snomed")}
    if args.sets:
        unknown = set(args.sets.split(",")) - set(sets)
        if unknown:
            sys.exit(f"unknown sets {sorted(unknown)}; choose from {sorted(sets)}")
        sets = {k: v for k, v in sets.items() if k in args.sets.split(",")}
    results = {"anchors": ANCHORS, "configs": {}}
    if args.out.exists():  # keep the configurations not run this time
        results["configs"] = json.loads(args.out.read_text()).get("configs", {})
    for name in configs:
        index_dir, kw = settings[name]
        t = time.perf_counter()
        linker = Linker(ConceptIndex.load(index_dir), top=25, **kw)
        load_s = time.perf_counter() - t
        results["configs"][name] = {"load_seconds": round(load_s, 2), "sets": {}}
        if kw.get("classifier") is not None:
            spec = specs[name]
            path = str(classifier_path(spec)) if isinstance(spec, str) else [str(classifier_path(x)) for x in spec]
            results["configs"][name]["classifier"] = {"path": path, **{
                k: kw["classifier"].meta.get(k) for k in ("examples_source", "examples", "classes", "features",
                                                          "encoder", "encoder_weight")},
                "classifier_prior": kw.get("classifier_prior", 0.0)}
        for set_name, (mentions, system) in sets.items():
            linker.cache.clear()
            r = evaluate_linking(linker, mentions, system=system, bootstrap=args.bootstrap)
            results["configs"][name]["sets"][set_name] = r
            ci = r.get("ci95", {})

            def interval(key):
                return f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]" if key in ci else ""
            print(f"{name:<18} {set_name:<16} cov {r['coverage']:.3f}  covered @1/@5/@25 "
                  f"{r['acc_covered']['@1']:.3f}{interval('acc_covered@1')}/{r['acc_covered']['@5']:.3f}/"
                  f"{r['acc_covered']['@25']:.3f}  macro-F1 {r['top1']['macro_f1']:.3f}{interval('top1_macro_f1')}  "
                  f"decided {r['nil']['decided_accuracy']:.3f}{interval('decided_accuracy')}  "
                  f"{r['mentions_per_s']:>7} mentions/s  NIL threshold "
                  f"{r['nil_calibration']['best_threshold']:.2f} best", flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print()
    print(f"{'config':<18} {'set':<16} {'@1':>6} {'@5':>6} {'@25':>6} {'all@1':>6} {'F1mac':>6} {'cat F1':>6} {'decid':>6} {'ment/s':>8}")
    for name, c in results["configs"].items():
        for set_name, r in c["sets"].items():
            a = r["acc_covered"]
            print(f"{name:<18} {set_name:<16} {a['@1']:>6.3f} {a['@5']:>6.3f} {a['@25']:>6.3f} "
                  f"{r['acc_all']['@1']:>6.3f} {r['top1']['macro_f1']:>6.3f} {r['top1_category']['macro_f1']:>6.3f} "
                  f"{r['nil'].get('decided_accuracy', float('nan')):>6.3f} {r['mentions_per_s']:>8}")
    print(f"anchors: ClinLinker MedProcNER covered-style acc@1/5/25 0.663/0.828/0.898; ICF macro-F1 0.84; "
          f"peak RSS {results['peak_rss_mb']} MB")
    if args.bootstrap:
        print(f"95% intervals of this run ({args.bootstrap} resamples of the documents): covered @1, macro-F1, decided")
        for name in configs:
            for set_name, r in results["configs"][name]["sets"].items():
                ci = r.get("ci95", {})
                print(f"{name:<18} {set_name:<16} " + "  ".join(
                    f"{r_key} {lo:.3f}-{hi:.3f}" for r_key, (lo, hi) in
                    ((k, ci[k]) for k in ("acc_covered@1", "top1_macro_f1", "decided_accuracy") if k in ci)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
