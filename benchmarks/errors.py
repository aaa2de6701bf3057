"""Error detection (medtext_errors): consistency checks on the team's notes and MEDEC-MS, per detector.

    python benchmarks/errors.py [--preset default]

1. **False alarms** of each consistency check on the team's own notes (sample notes, annotated
   notes, RadGraph reports: written without errors), per 100 notes, with every finding listed
   in the JSON for review.
2. **Recall on injected errors** (:mod:`medtext.corpora.error_inject`): share of injected errors
   whose sentence gets a finding from the check made for that kind, and from any detector.
3. **MEDEC-MS validation** through the preset's consistency checks (the trained classifier is
   trained on MEDEC: its figures are cross-validated, by ``benchmarks/errors_cv.py``):
   flag accuracy, sentence accuracy, per error type; docs/s. Baseline: "always an error, in the
   last sentence". Anchors (MEDEC paper): Claude 3.5 Sonnet flag accuracy 0.702, doctors 0.796.

Writes benchmarks/results/errors.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_CHECK = {"dose_slip": "dose_range", "lab_flip": "lab_interpretation", "laterality": "laterality",
                  "antibiotic": "organism_antibiotic", "allergy": "allergy", "weekly": "schedule"}
ANCHORS = {"Claude 3.5 Sonnet flag accuracy (MEDEC-MS test)": 0.702, "doctors flag accuracy (MEDEC-MS test)": 0.796}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--medec", type=Path, default=ROOT.parent / "shared" / "data" / "medec" / "ms_validation.jsonl")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "errors.json")
    args = p.parse_args()

    import medtext
    from medtext.components.error_checks import CHECKS
    from medtext.corpora.error_inject import injected_notes, team_notes
    from medtext.corpora.medec import RunAnswer, read_medec
    from medtext.evaluate_errors import predict_medec, score_medec

    # every check, do_not_use (opt-in) included, so each is measured
    nlp = medtext.load(args.preset, medtext_errors={"checks": list(CHECKS)})
    # 1. false alarms on the team's notes
    notes = team_notes()
    t = time.perf_counter()
    docs = list(nlp.pipe(text for _, text in notes))
    seconds = time.perf_counter() - t
    per_check = Counter()
    listed = []
    for (nid, _), doc in zip(notes, docs):
        for f in doc._.errors:
            per_check[f["detector"]] += 1
            listed.append({"note": nid, "detector": f["detector"], "sentence": doc.text[f["start"]:f["end"]][:200],
                           "message": f["message"]})
    notes_with = len({x["note"] for x in listed})
    false_alarms = {c: round(100 * per_check.get(f"checks:{c}", 0) / len(notes), 2) for c in CHECKS}
    # 2. recall on injected errors
    injected = injected_notes()
    inj_docs = list(nlp.pipe(n.text for n in injected))
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for n, doc in zip(injected, inj_docs):
        s, e = n.spans[n.sentence_id]
        hits = [f for f in doc._.errors if f["start"] < e and s < f["end"]]
        by_kind[n.kind]["injected"] += 1
        by_kind[n.kind]["found_by_its_check"] += any(f["detector"] == f"checks:{EXPECTED_CHECK[n.kind]}" for f in hits)
        by_kind[n.kind]["found_by_any"] += bool(hits)
        fixed = [f for f in hits if f.get("correction")]
        by_kind[n.kind]["correction_exact"] += any(" ".join(f["correction"].split()) == " ".join(n.corrected_sentence.split())
                                                   for f in fixed)
    # 3. MEDEC-MS validation
    medec = {}
    if args.medec.is_file():
        gold = read_medec(args.medec)
        run, sec = predict_medec(nlp, gold)
        medec["checks"] = {**score_medec(gold, run), "texts_per_s": round(len(gold) / sec, 1)}
        medec["always_error_last_sentence"] = score_medec(
            gold, {g.text_id: RunAnswer(1, len(g.sentences) - 1, g.sentences[-1]) for g in gold})
        medec["checks"]["texts_flagged"] = sum(a.flag for a in run.values())

    print(f"team notes: {len(notes)} ({seconds:.1f} s with the {args.preset} preset); "
          f"{notes_with} notes with a finding")
    print(f"{'check':<20} {'false alarms / 100 notes':>24}")
    for c, v in false_alarms.items():
        print(f"{c:<20} {v:>24.2f}")
    print(f"{'all checks':<20} {100 * sum(per_check.values()) / len(notes):>24.2f}")
    print(f"\ninjected errors: {len(injected)}")
    print(f"{'kind':<12} {'n':>4} {'its check':>10} {'any':>6} {'exact fix':>10}")
    for k, c in sorted(by_kind.items()):
        n = c["injected"]
        print(f"{k:<12} {n:>4} {c['found_by_its_check'] / n:>10.3f} {c['found_by_any'] / n:>6.3f} "
              f"{c['correction_exact'] / n:>10.3f}")
    if medec:
        print(f"\nMEDEC-MS validation ({len(gold)} texts)")
        print(f"{'detector':<28} {'flag acc':>8} {'sent acc':>8} {'flag P':>7} {'flag R':>7}")
        for name, r in medec.items():
            print(f"{name:<28} {r['flag_accuracy']:>8.3f} {r['sentence_accuracy']:>8.3f} "
                  f"{r['flag_precision']:>7.3f} {r['flag_recall']:>7.3f}")
        for name, v in ANCHORS.items():
            print(f"anchor: {name}: {v}")
    result = {"preset": args.preset, "team_notes": len(notes), "notes_with_a_finding": notes_with,
              "team_notes_per_s": round(len(notes) / seconds, 1),
              "false_alarms_per_100_notes": false_alarms,
              "all_checks_per_100_notes": round(100 * sum(per_check.values()) / len(notes), 2),
              "findings_on_team_notes": listed,
              "injected": {k: dict(c) for k, c in sorted(by_kind.items())}, "medec": medec, "anchors": ANCHORS}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
