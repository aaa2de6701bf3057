"""Layout filtering: per-line accuracy on a template family held out from training, on PDFs and
on their plain-text exports; the downstream effect on entities; pages/s.

    python benchmarks/layout.py [--holdout boxed|all] [--docs 360] [--epochs 12]
                                [--text-encoder all-MiniLM-L6-v2]

For each held-out family a model is trained (``medtext.train_layout.train_layout``) on the other
families only, then scored on the held-out family's letters:

- per-line precision / recall / F1 for ``body`` and macro-F1 over the labels present, for the
  PDF and for the plain-text export of the same letters;
- downstream: the default preset's entities on those PDFs with the layout filter off and on,
  and the share of them that lie on gold body lines (entities on letterheads, footers, side
  columns are wrong by definition), plus the body entities the filter loses;
- speed: pages per second for read (PDFium) + classify, single process.

The sample notes in corpora/samples (plain text; the consult letters carry letterheads, running
headers, page numbers and signatures, the other notes hardly any) are classified too; there is
no gold there, the label counts are reported for inspection.
Prints a table and writes benchmarks/results/layout.json. Reference: EDS-PDF, per-line body
P/R/F1 98.4 / 97.0 / 97.7 (its own hospital documents, not these).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = {"EDS-PDF body": {"precision": 0.984, "recall": 0.970, "f1": 0.977}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--holdout", default="all", help="a family name, or 'all' (leave each out in turn)")
    p.add_argument("--docs", type=int, default=360)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--text-encoder", default=None,
                   help="train with a frozen sentence encoder's line embeddings (the opt-in layout_trf model)")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default benchmarks/results/layout.json, layout_trf.json with --text-encoder)")
    args = p.parse_args()
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / ("layout_trf.json" if args.text_encoder else "layout.json")

    import spacy
    from spacy.training import Example

    import medtext
    from medtext.components.layout import score_layout
    from medtext.corpora.layout_gen import FAMILIES
    from medtext.lines import text_lines
    from medtext.readers.pdf import read_pdf
    from medtext.train_layout import ensure_corpus, layout_data_dir, load_examples, train_layout

    labels_path = ensure_corpus(layout_data_dir(), args.docs)
    families = list(FAMILIES) if args.holdout == "all" else [args.holdout]
    results: dict = {"anchor": ANCHOR, "docs": args.docs, "epochs": args.epochs,
                     "text_encoder": args.text_encoder, "holdout": {}}
    ner_off = medtext.load("default")  # the default preset without layout filtering or linking
    for name in ("medtext_layout", "medtext_linker"):
        if name in ner_off.pipe_names:
            ner_off.remove_pipe(name)
    samples = sorted((ROOT / "corpora" / "samples").glob("*.txt"))
    for fam in families:
        with tempfile.TemporaryDirectory() as tmp:
            rep = train_layout(docs=args.docs, holdout=fam, epochs=args.epochs, out=Path(tmp) / "m",
                               text_encoder=args.text_encoder)
            nlp = spacy.load(Path(tmp) / "m")
        res: dict = {"train_seconds": rep["train_seconds"], "train_examples": rep["train_examples"]}
        for kind in ("pdf", "txt"):
            exs = load_examples(nlp, labels_path, families=[fam], kinds=(kind,))
            docs = list(nlp.pipe([ex.predicted.copy() for ex in exs], batch_size=16))
            res[kind] = score_layout([Example(d, ex.reference) for d, ex in zip(docs, exs)])
            res[kind]["documents"] = len(exs)
        # speed: read + classify the held-out PDFs
        root = labels_path.parent
        recs = [json.loads(line) for line in labels_path.read_text().splitlines()]
        pdfs = [root / r["pdf"] for r in recs if r["family"] == fam]
        t, pages = time.perf_counter(), 0
        for path in pdfs:
            text, lines, _ = read_pdf(path, str(path))
            doc = nlp.make_doc(text)
            doc._.lines = lines
            nlp(doc)
            pages += max(ln["page"] for ln in lines)
        res["pages"] = pages
        res["pages_per_s"] = round(pages / (time.perf_counter() - t), 1)
        # downstream: entities with the filter off / on, against the gold body lines
        gold = {r["id"]: r["labels"] for r in recs if r["family"] == fam}
        counts = {"off": [0, 0], "on": [0, 0]}
        lost_body = 0
        for path in pdfs:
            text, lines, _ = read_pdf(path, str(path))
            labels = gold[path.stem]
            starts = [ln["start"] for ln in lines]

            def on_body(ent) -> bool:
                import bisect

                i = bisect.bisect_right(starts, ent.start_char) - 1
                return labels[i] == "body"

            base = ner_off.make_doc(text)
            base._.lines = lines
            filtered = nlp(base.copy())
            d_off = ner_off(base)
            d_on = filtered
            for name in ner_off.pipe_names:
                d_on = ner_off.get_pipe(name)(d_on)
            off_body = [on_body(e) for e in d_off.ents]
            on_body_flags = [on_body(e) for e in d_on.ents]
            counts["off"][0] += sum(off_body)
            counts["off"][1] += len(off_body)
            counts["on"][0] += sum(on_body_flags)
            counts["on"][1] += len(on_body_flags)
            lost_body += sum(off_body) - sum(on_body_flags)
        res["entities"] = {k: {"on_body": v[0], "total": v[1], "precision_vs_body": round(v[0] / max(v[1], 1), 4)}
                           for k, v in counts.items()}
        res["entities"]["body_entities_lost"] = lost_body
        # the team's sample notes (no gold): label counts
        counts_samples: dict[str, int] = {}
        for path in samples:
            text = path.read_text(encoding="utf-8")
            doc = nlp.make_doc(text)
            doc._.lines = text_lines(text)
            for x in nlp(doc)._.line_labels:
                if x is not None:
                    counts_samples[x] = counts_samples.get(x, 0) + 1
        res["sample_notes_labels"] = counts_samples
        results["holdout"][fam] = res
        print(f"{fam:<10} pdf body P/R/F1 {res['pdf']['layout_body_p']:.3f}/{res['pdf']['layout_body_r']:.3f}/"
              f"{res['pdf']['layout_body_f']:.3f} macro {res['pdf']['layout_macro_f']:.3f} | txt body F1 "
              f"{res['txt']['layout_body_f']:.3f} macro {res['txt']['layout_macro_f']:.3f} | entity precision "
              f"{res['entities']['off']['precision_vs_body']:.3f} -> {res['entities']['on']['precision_vs_body']:.3f} "
              f"| {res['pages_per_s']} pages/s", flush=True)
    hs = list(results["holdout"].values())
    if len(hs) > 1:
        results["mean"] = {k: round(sum(h[kind][m] for h in hs) / len(hs), 4)
                           for kind in ("pdf", "txt") for m, k in
                           ((m, f"{kind}_{m}") for m in ("layout_body_p", "layout_body_r", "layout_body_f",
                                                         "layout_macro_f"))}
        print("mean", results["mean"])
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
