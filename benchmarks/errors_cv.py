"""Grouped k-fold cross-validation of the trained error classifier on MEDEC-MS validation.

    python benchmarks/errors_cv.py [--folds 5] [--epochs 1] [--synthetic]

MEDEC pairs most erroneous texts with their correct version: texts sharing more than half of
their sentences form one group and stay in one fold (``medtext.corpora.medec.text_groups``).
For each fold a cross-encoder (all-MiniLM-L6-v2 start, ``[i of n] sentence`` + note, 128
tokens) is trained on the other folds (plus, with ``--synthetic``, the errors injected into the
team's notes) and scores every sentence of the held-out texts. Out-of-fold answers are scored
with MEDEC's metrics: flag accuracy and sentence accuracy (at threshold 0.5, and at the best
thresholds that maximise flag accuracy and sentence accuracy on the out-of-fold scores; the
latter is what ``medtext train errors`` saves), per error type, how often the error sentence
scores highest in erroneous texts, and the flag AUC. ``--rescore`` recomputes the summary
from the saved out-of-fold scores. Baselines on the same texts: "always error" and "always error in the last
sentence". Anchors (MEDEC paper, MS test): Claude 3.5 Sonnet flag accuracy 0.702, doctors
0.796; LLM sentence accuracy about 0.66.

Writes benchmarks/results/errors_cv.json (with per-text out-of-fold scores, which
``medtext train errors`` reads to pick its threshold).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = {"Claude 3.5 Sonnet flag accuracy (MEDEC-MS test)": 0.702,
           "doctors flag accuracy (MEDEC-MS test)": 0.796,
           "LLMs sentence accuracy (MEDEC, about)": 0.66}


def fold_of(groups: list[int], k: int, seed: int = 0) -> list[int]:
    """Fold per text: groups shuffled, then dealt round-robin."""
    import random

    ids = sorted(set(groups))
    random.Random(seed).shuffle(ids)
    where = {g: i % k for i, g in enumerate(ids)}
    return [where[g] for g in groups]


def answers_at(texts, scores, threshold: float):
    from medtext.corpora.medec import RunAnswer

    run = {}
    for t, sc in zip(texts, scores):
        best = max(range(len(sc)), key=sc.__getitem__) if sc else -1
        flag = int(best >= 0 and sc[best] >= threshold)
        run[t.text_id] = RunAnswer(flag, best if flag else -1, t.sentences[best] if flag else None)
    return run


def best_threshold(texts, scores, metric: str = "flag_accuracy") -> float:
    from medtext.evaluate_errors import score_medec

    grid = [i / 100 for i in range(5, 96)]
    return max(grid, key=lambda th: (score_medec(texts, answers_at(texts, scores, th))[metric], -abs(th - 0.5)))


def localisation(texts, scores) -> float:
    """Share of erroneous texts whose best-scored sentence is the erroneous one."""
    err = [(t, s) for t, s in zip(texts, scores) if t.flag]
    return sum(max(range(len(s)), key=s.__getitem__) == t.sentence_id for t, s in err) / len(err)


def flag_auc(texts, scores) -> float:
    """Probability that an erroneous text's best sentence score beats a correct text's."""
    pos = [max(s) for t, s in zip(texts, scores) if t.flag]
    neg = [max(s) for t, s in zip(texts, scores) if not t.flag]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "medec" / "ms_validation.jsonl")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--base", default="all-MiniLM-L6-v2")
    p.add_argument("--synthetic", action="store_true", help="add the errors injected into the team's notes")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "errors_cv.json")
    p.add_argument("--rescore", action="store_true", help="recompute the summary from the out-of-fold scores "
                                                         "already in --out (no training)")
    args = p.parse_args()

    from medtext.corpora.medec import read_medec, text_groups

    texts = read_medec(args.data)
    folds = fold_of(text_groups(texts), args.folds)
    synthetic = []
    if args.rescore:
        old = json.loads(args.out.read_text())
        scores = [old["oof_scores"][t.text_id] for t in texts]
        timing, args.folds, args.epochs, args.base = old["timing"], old["folds"], old["epochs"], old["base"]
        synthetic = [None] * old["synthetic_notes"]
    elif args.synthetic:
        from medtext.corpora.error_inject import injected_notes

        synthetic = [(n.sentences, n.sentence_id) for n in injected_notes()]
    if not args.rescore:
        scores, timing = cross_validate(texts, folds, synthetic, args)
    summarise(texts, scores, timing, synthetic, args)


def cross_validate(texts, folds, synthetic, args):
    from medtext.components.error_classifier import ErrorClassifier, train_classifier

    scores: list[list[float] | None] = [None] * len(texts)
    timing = []
    for k in range(args.folds):
        train = [(t.sentences, t.sentence_id) for t, f in zip(texts, folds) if f != k] + synthetic
        test = [i for i, f in enumerate(folds) if f == k]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            stats = train_classifier(train, base=args.base, out=Path(tmp) / "model", epochs=args.epochs, seed=k)
            t1 = time.perf_counter()
            clf = ErrorClassifier(str(Path(tmp) / "model"), threshold=0.5)
            fold_scores = clf.score_notes([texts[i].sentences for i in test])
            t2 = time.perf_counter()
        for i, sc in zip(test, fold_scores):
            scores[i] = sc
        n_sent = sum(len(texts[i].sentences) for i in test)
        timing.append({"fold": k, "train_texts": len(train), "pairs": stats["pairs"],
                       "train_s": round(t1 - t0, 1), "test_texts": len(test),
                       "sentences_per_s": round(n_sent / (t2 - t1), 1)})
        print(f"fold {k}: trained on {len(train)} notes ({stats['pairs']} pairs) in {t1 - t0:.0f} s; "
              f"scored {n_sent} sentences at {n_sent / (t2 - t1):.0f}/s", flush=True)
    return scores, timing


def summarise(texts, scores, timing, synthetic, args) -> None:
    from medtext.corpora.medec import RunAnswer
    from medtext.evaluate_errors import score_medec

    th = best_threshold(texts, scores)
    th_sent = best_threshold(texts, scores, "sentence_accuracy")
    at_half = score_medec(texts, answers_at(texts, scores, 0.5))
    at_best = score_medec(texts, answers_at(texts, scores, th))
    always = score_medec(texts, {t.text_id: RunAnswer(1, len(t.sentences) - 1, t.sentences[-1]) for t in texts})
    at_sent = score_medec(texts, answers_at(texts, scores, th_sent))
    rows = [("always error, last sentence", always), ("classifier, threshold 0.50", at_half),
            (f"classifier, threshold {th:.2f} (best flag acc)", at_best),
            (f"classifier, threshold {th_sent:.2f} (best sent acc)", at_sent)]
    loc = localisation(texts, scores)
    last = sum(t.sentence_id == len(t.sentences) - 1 for t in texts if t.flag) / sum(t.flag for t in texts)
    auc = flag_auc(texts, scores)
    print(f"\n{len(texts)} texts ({sum(t.flag for t in texts)} with an error), {args.folds} grouped folds")
    print(f"{'system':<44} {'flag acc':>8} {'sent acc':>8} {'flag F1':>8} {'R1 comp':>8}")
    for name, r in rows:
        print(f"{name:<44} {r['flag_accuracy']:>8.3f} {r['sentence_accuracy']:>8.3f} {r['flag_f1']:>8.3f} "
              f"{r['corrections']['rouge1_composite']:>8.3f}")
    print("(R1 comp: the flagged sentence copied as its own correction)")
    print(f"erroneous texts whose error sentence scores highest: {loc:.3f} (last sentence: {last:.3f}); "
          f"flag AUC of the best sentence score: {auc:.3f}")
    print("\nper error type (classifier at OOF-best threshold): flag acc / sentence acc")
    for t, v in at_best["by_type"].items():
        print(f"  {t:<16} {v['texts']:>4} texts  {v['flag_accuracy']:.3f} / {v['sentence_accuracy']:.3f}")
    for name, v in ANCHORS.items():
        print(f"anchor: {name}: {v}")
    result = {"data": str(args.data), "texts": len(texts), "folds": args.folds, "epochs": args.epochs,
              "base": args.base, "synthetic_notes": len(synthetic), "threshold_oof_best": th,
              "threshold_oof_best_sentence": th_sent, "localisation_accuracy": loc,
              "localisation_last_sentence": last, "flag_auc": auc,
              "baseline_always_last": always, "classifier_at_0_5": at_half, "classifier_at_oof_best": at_best,
              "classifier_at_oof_best_sentence": at_sent,
              "timing": timing, "anchors": ANCHORS,
              "oof_scores": {t.text_id: s for t, s in zip(texts, scores)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
