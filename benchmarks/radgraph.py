"""RadGraph-style extraction on the team's test reports: the radiology preset end to end, and the
relation classifier alone on gold entities.

    python benchmarks/radgraph.py [--split test] [--gold corpora/radgraph | RADGRAPH.json]
                                  [--preset radiology | radiology_trf]

Needs the models of ``medtext train relations`` (``--arch trf`` for ``radiology_trf``). Prints a
table and writes benchmarks/results/radgraph.json (radgraph_trf.json for radiology_trf): strict
entity and relation micro-F1 (per label / type), RadGraph F1 (RG_E, RG_ER, full), reports/s and
relations/s (single process, 2 CPUs here).
Anchors (other data: MIMIC-CXR and CheXpert test sets of RadGraph): relation micro-F1 0.82 / 0.73
for the RadGraph benchmark model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = {"RadGraph benchmark relation micro-F1, MIMIC-CXR test": 0.82,
           "RadGraph benchmark relation micro-F1, CheXpert test": 0.73}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gold", type=Path, default=ROOT / "corpora" / "radgraph")
    p.add_argument("--split", default="test")
    p.add_argument("--preset", default="radiology", choices=("radiology", "radiology_trf"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.out is None:
        name = "radgraph_trf.json" if args.preset == "radiology_trf" else "radgraph.json"
        args.out = ROOT / "benchmarks" / "results" / name

    import medtext
    from medtext.corpora.radgraph_data import gold_items
    from medtext.evaluate_radgraph import predict_radgraph, score_radgraph
    from medtext.train_relations import report_docs, score_docs

    gold_json, reports, items = gold_items(args.gold, args.split)
    nlp = medtext.load(args.preset)
    pred_json, seconds = predict_radgraph(nlp, items)
    end_to_end = score_radgraph(gold_json, pred_json)
    n_rel = sum(len(e["relations"]) for d in pred_json.values() for e in d["entities"].values())
    # the relation classifier alone, given the gold entities
    rel = nlp.get_pipe("medtext_relations")
    pairs = report_docs(nlp, reports)
    docs = []
    for _, gold in pairs:
        d = gold.copy()
        d._.relations = None
        docs.append(d)
    gold_entities = score_docs(pairs, list(rel.pipe(docs)))["relations"]
    results = {"preset": args.preset, "gold": str(args.gold), "split": args.split, "reports": len(items),
               "anchors": ANCHORS,
               "end_to_end": end_to_end, "relations_given_gold_entities": gold_entities,
               "reports_per_s": round(len(items) / seconds, 1), "relations_per_s": round(n_rel / seconds, 1),
               "model": nlp.meta.get("medtext_models", {}).get("medtext_relations")}
    e, r, rg = end_to_end["entities"], end_to_end["relations"], end_to_end["radgraph_f1"]
    print(f"{len(items)} reports ({args.split}); {results['reports_per_s']} reports/s, "
          f"{results['relations_per_s']} relations/s")
    print(f"{'':<34} {'P':>6} {'R':>6} {'F1':>6}")
    print(f"{'entities (end to end)':<34} {e['precision']:>6.3f} {e['recall']:>6.3f} {e['f1']:>6.3f}")
    for lab, s in e["by_label"].items():
        print(f"{'  ' + lab:<34} {s['precision']:>6.3f} {s['recall']:>6.3f} {s['f1']:>6.3f}")
    print(f"{'relations (end to end)':<34} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f}")
    for t, s in r["by_type"].items():
        print(f"{'  ' + t:<34} {s['precision']:>6.3f} {s['recall']:>6.3f} {s['f1']:>6.3f}")
    g = gold_entities
    print(f"{'relations given gold entities':<34} {g['precision']:>6.3f} {g['recall']:>6.3f} {g['f1']:>6.3f}")
    print(f"RadGraph F1: RG_E {rg['RG_E']:.3f}  RG_ER {rg['RG_ER']:.3f}  full {rg['full']:.3f}")
    print("anchors (RadGraph's own test sets, other data): relation micro-F1 0.82 MIMIC-CXR / 0.73 CheXpert")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
