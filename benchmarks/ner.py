"""NER accuracy: strict and lenient P/R/F1 of presets on NCBI-disease dev, BC5CDR dev and the
team's dev notes; plus assertion accuracy (team cases and the blind held-out set).

    python benchmarks/ner.py [--presets default fast trf] [--data ../shared/data] [--name NAME]

Prints a table and writes benchmarks/results/ner.json (presets not run keep their earlier
results; ``--name`` files a single preset's run under another name, e.g. to compare two
models of one preset). Anchors (published): scispaCy
en_ner_bc5cdr_md about 0.84 F1 on BC5CDR; PubMedBERT-class models 0.87-0.89 on NCBI-disease.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["default", "fast"])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ner.json")
    p.add_argument("--name", help="file the (single) preset's results under this name")
    args = p.parse_args()
    if args.name and len(args.presets) != 1:
        p.error("--name goes with a single preset")

    import medtext
    from medtext.corpora.context_cases import read_cases
    from medtext.corpora.ner_data import read_annotated, read_corpus
    from medtext.errors import ConfigError
    from medtext.evaluate import evaluate_context, evaluate_spans

    sets = {
        "ncbi_dev": (read_corpus(args.data / "ncbi_disease" / "dev.jsonl", "ncbi"), ["PROBLEM"]),
        "bc5cdr_dev": (read_corpus(args.data / "bc5cdr" / "dev.jsonl", "bc5cdr"), ["PROBLEM", "DRUG"]),
        "team_dev": ([e for e in read_annotated() if e.split == "dev"], None),
    }
    result = {"benchmark": "ner", "date": time.strftime("%Y-%m-%d"), "presets": {}}
    if args.out.exists():  # keep the presets not run this time
        old = json.loads(args.out.read_text())
        result["presets"] = old.get("presets", {})
        if "context" in old:
            result["context"] = old["context"]
    for preset in args.presets:
        try:
            nlp = medtext.load(preset)
        except ConfigError as e:
            print(f"skip {preset}: {e}")
            continue
        res = result["presets"][args.name or preset] = {"date": time.strftime("%Y-%m-%d"),
                                                        "models": nlp.meta.get("medtext_models", {})}
        for name, (examples, labels) in sets.items():
            t = time.perf_counter()
            docs = nlp.pipe((e.text for e in examples), batch_size=32)
            pairs = [(e.spans, [(x.start_char, x.end_char, x.label_) for x in d.ents])
                     for e, d in zip(examples, docs)]
            r = evaluate_spans(pairs, labels)
            r["seconds"] = round(time.perf_counter() - t, 2)
            r["docs_per_s"] = round(len(examples) / max(r["seconds"], 1e-9), 1)
            res[name] = r
        if preset == "default":
            result["context"] = {
                "team_cases": evaluate_context(nlp, read_cases()),
                "heldout": evaluate_context(nlp, read_cases([ROOT / "corpora" / "context_heldout"])),
                "heldout2_blind": evaluate_context(nlp, read_cases([ROOT / "corpora" / "context_heldout2"]))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'preset':<9} {'data':<11} {'label':<10} {'strict P':>8} {'R':>6} {'F1':>6}  {'lenient F1':>10}")
    for preset, res in result["presets"].items():
        for name, r in res.items():
            if not isinstance(r, dict) or "strict" not in r:
                continue
            for lab, v in r["strict"].items():
                print(f"{preset:<9} {name:<11} {lab:<10} {v['precision']:>8.3f} {v['recall']:>6.3f} "
                      f"{v['f1']:>6.3f}  {r['lenient'][lab]['f1']:>10.3f}")
    for name, r in result.get("context", {}).items():
        print(f"context {name}: {r['cases']} cases, all flags right {r['all_flags_correct']:.1%}; F1 " +
              ", ".join(f"{f} {v['f1']:.2f}" for f, v in r["per_flag"].items()))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
