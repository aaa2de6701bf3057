"""Throughput of a preset over the team's sample corpus (text and PDF), read + process + record.

    python benchmarks/sample_throughput.py [--preset default] [--repeat 5] [--copies 4]

Prints a table and writes benchmarks/results/sample_throughput.json. The pipeline is loaded once (its
load time is reported apart); each repeat reads every input file again, runs the pipeline and
builds the records, as `medtext run` does, but writes nothing. `--copies` repeats the corpus in
one pass so that a pass is long enough to time. Quote medians, with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--inputs", type=Path, default=ROOT / "corpora" / "samples")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sample_throughput.json")
    args = p.parse_args()

    import medtext
    from medtext.pipeline import iter_results
    from medtext.readers import iter_documents

    t = time.perf_counter()
    nlp = medtext.load(args.preset)
    load_s = time.perf_counter() - t
    files = sorted(f for f in args.inputs.iterdir() if f.is_file())
    by_kind = {"txt": [f for f in files if f.suffix != ".pdf"], "pdf": [f for f in files if f.suffix == ".pdf"]}
    rows = []
    for kind, kind_files in [("all", files), *by_kind.items()]:
        if not kind_files:
            continue
        times, n_docs, n_chars = [], 0, 0
        for _ in range(args.repeat + 1):  # the first pass warms caches and is not counted
            t = time.perf_counter()
            n_docs = n_chars = 0
            for _copy in range(args.copies):
                for res in iter_results(iter_documents(kind_files), nlp=nlp, batch_size=args.batch_size):
                    if res.record is None:
                        raise SystemExit(f"benchmark input failed: {res.failure.message}")
                    n_docs += 1
                    n_chars += res.n_chars
            times.append(time.perf_counter() - t)
        med = statistics.median(times[1:])
        rows.append({"inputs": kind, "docs": n_docs, "chars": n_chars, "median_s": round(med, 4),
                     "min_s": round(min(times[1:]), 4), "max_s": round(max(times[1:]), 4),
                     "docs_per_s": round(n_docs / med, 1), "chars_per_s": round(n_chars / med)})
    result = {"benchmark": "throughput", "preset": args.preset, "pipeline": nlp.pipe_names,
              "medtext": medtext.__version__, "load_s": round(load_s, 3), "repeat": args.repeat,
              "copies": args.copies, "batch_size": args.batch_size,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"preset {args.preset} ({', '.join(nlp.pipe_names)}); load {load_s:.2f} s; "
          f"median of {args.repeat} passes; {os.cpu_count()} CPUs")
    print(f"{'inputs':<6} {'docs':>6} {'chars':>10} {'median s':>9} {'docs/s':>8} {'chars/s':>10}")
    for r in rows:
        print(f"{r['inputs']:<6} {r['docs']:>6} {r['chars']:>10,} {r['median_s']:>9.3f} "
              f"{r['docs_per_s']:>8.1f} {r['chars_per_s']:>10,}")
    print(f"-> {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
