"""Scale benchmark: medtext presets vs medspaCy's rule pipeline vs spaCy tokenisation alone.

    python benchmarks/throughput.py [--n 1000] [--chars 1500 2500] [--medspacy-python /path/to/venv/bin/python]

Generates N notes with ``medtext.corpora.note_gen`` (kinds and sizes like real discharge
summaries, progress, consult, therapy and radiology notes), then runs each configuration in a
fresh subprocess over the same notes and reports docs/s, MB/s, entities/s, peak RSS (the
process and its workers), cold start (interpreter start to the first processed note) and, for
the default preset, ``n_process`` 1 vs 2. medspaCy needs spaCy < 3.8, so it runs in its own
venv (``--medspacy-python``; e.g. ``python3.11 -m venv /tmp/vms && /tmp/vms/bin/pip install
medspacy``): PyRuSH sentences + TargetMatcher with the same terms as medtext's matcher (the
default index's names for the NER labels) + ConText with medspaCy's default rules. The floor
is ``spacy.blank("en")`` tokenisation. Prints a table and writes
``benchmarks/results/throughput.json``. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = time.perf_counter()


def _rss_mb() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024, 1)  # Linux: KiB


def worker_medtext(notes: list[tuple[str, str]], preset: str, disable: list[str], n_process: int,
                   batch_size: int) -> dict:
    """Wall time over all notes, and the steady rate from the first result on (worker processes
    load their pipeline before their first result: that start-up is excluded there)."""
    import medtext
    from medtext.pipeline import iter_results
    from medtext.readers import iter_documents

    nlp = medtext.load(preset)
    for name in disable:
        if name in nlp.pipe_names:
            nlp.disable_pipe(name)
    first = next(iter(medtext.process([notes[0]], nlp=nlp)))
    cold = time.perf_counter() - T0
    kw = {"nlp": nlp} if n_process == 1 else {"preset": preset, "n_process": n_process}
    if n_process > 1 and disable:
        raise SystemExit("disable is for one process")
    t = time.perf_counter()
    n_ents = n = 0
    t_first = None
    for res in iter_results(iter_documents(notes), batch_size=batch_size, chunk_size=batch_size, **kw):
        n_ents += len(res.record["entities"])
        n += 1
        if t_first is None:
            t_first, n_first = time.perf_counter(), n
    end = time.perf_counter()
    return {"cold_start_s": round(cold, 2), "seconds": round(end - t, 2), "entities": n_ents,
            "steady_docs_per_s": round((n - n_first) / (end - t_first), 1) if end > t_first else None,
            "pipeline": [p for p in nlp.pipe_names], "first_entities": len(first["entities"])}


def worker_blank(notes: list[tuple[str, str]], batch_size: int) -> dict:
    import spacy

    nlp = spacy.blank("en")
    nlp(notes[0][1])
    cold = time.perf_counter() - T0
    t = time.perf_counter()
    n = sum(len(d) for d in nlp.pipe((t for _, t in notes), batch_size=batch_size))
    return {"cold_start_s": round(cold, 2), "seconds": round(time.perf_counter() - t, 2), "entities": 0,
            "tokens": n, "pipeline": []}


MEDSPACY_SCRIPT = r'''
import json, sys, time, resource
T0 = time.perf_counter()
import medspacy
from medspacy.target_matcher import TargetRule
notes = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
terms = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_target_matcher", "medspacy_context"])
matcher = nlp.get_pipe("medspacy_target_matcher")
matcher.add([TargetRule(t["term"], t["label"]) for t in terms])
nlp(notes[0][1])
cold = time.perf_counter() - T0
t = time.perf_counter()
n_ents = n_neg = 0
for doc in nlp.pipe((x[1] for x in notes), batch_size=int(sys.argv[3])):
    n_ents += len(doc.ents)
    n_neg += sum(1 for e in doc.ents if e._.is_negated)
secs = time.perf_counter() - t
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
import spacy
print(json.dumps({"cold_start_s": round(cold, 2), "seconds": round(secs, 2), "entities": n_ents, "negated": n_neg,
                  "rules": len(terms), "peak_rss_mb": round(rss / 1024, 1), "medspacy": medspacy.__version__,
                  "spacy": spacy.__version__, "pipeline": nlp.pipe_names}))
'''


def matcher_terms() -> list[dict]:
    """The default index's names for the NER labels (what medtext's terminology matcher uses)."""
    from medtext.components.ner import NEVER_MATCH, label_for
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex

    index = ConceptIndex.load(default_index_dir())
    kinds = {(s, c): k for s, c, k in zip(*(index.tables["concepts"].column(x).to_pylist()
                                             for x in ("system", "code", "kind")))}
    syn = index.tables["synonyms"]
    seen, out = set(), []
    for s, c, term, typ in zip(*(syn.column(x).to_pylist() for x in ("system", "code", "term", "type"))):
        label = label_for(s, c, kinds.get((s, c)) or "", term)
        key = term.lower()
        if label and key not in seen and key not in NEVER_MATCH and typ in ("preferred", "synonym", "abbreviation") \
                and len(term) > 2:
            seen.add(key)
            out.append({"term": term, "label": label})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="notes to generate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chars", type=int, nargs=2, metavar=("MIN", "MAX"), default=None,
                   help="keep only generated notes of MIN-MAX characters (e.g. 1500 2500 for the "
                        "2 KB scale target); notes are generated until N of them fit")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--medspacy-python", default=None, help="python of a venv with medspacy installed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--notes", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--preset", default="default", help=argparse.SUPPRESS)
    p.add_argument("--disable", default="", help=argparse.SUPPRESS)
    p.add_argument("--n-process", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        notes = [tuple(json.loads(x)) for x in args.notes.read_text(encoding="utf-8").splitlines()]
        if args.worker == "blank":
            res = worker_blank(notes, args.batch_size)
        else:
            res = worker_medtext(notes, args.preset, [d for d in args.disable.split(",") if d],
                                 args.n_process, args.batch_size)
        res["peak_rss_mb"] = _rss_mb()
        print(json.dumps(res))
        return

    from medtext.corpora.note_gen import generate_notes

    if args.chars:
        lo, hi = args.chars
        notes, pool = [], 0
        while len(notes) < args.n and pool < 50 * args.n:
            pool += 4 * args.n
            notes = [x for x in generate_notes(pool, seed=args.seed) if lo <= len(x[1]) <= hi][:args.n]
        if len(notes) < args.n:
            raise SystemExit(f"only {len(notes)} generated notes have {lo}-{hi} characters")
    else:
        notes = generate_notes(args.n, seed=args.seed)
    mb = sum(len(t.encode("utf-8")) for _, t in notes) / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="medtext_scale_"))
    notes_file = tmp / "notes.jsonl"
    notes_file.write_text("".join(json.dumps(list(n)) + "\n" for n in notes), encoding="utf-8")
    runs = [("spaCy blank('en') tokenisation (floor)", ["--worker", "blank"]),
            ("medtext default without linker and errors", ["--worker", "medtext", "--disable",
                                                           "medtext_linker,medtext_errors"]),
            ("medtext default", ["--worker", "medtext"]),
            ("medtext default, --n-process 2", ["--worker", "medtext", "--n-process", "2"])]
    rows = []
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name, extra in runs:
        cmd = [sys.executable, __file__, "--notes", str(notes_file), "--batch-size", str(args.batch_size), *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        rows.append({"name": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    if args.medspacy_python:
        terms = matcher_terms()
        terms_file = tmp / "terms.jsonl"
        terms_file.write_text("".join(json.dumps(t) + "\n" for t in terms), encoding="utf-8")
        script = tmp / "medspacy_run.py"
        script.write_text(MEDSPACY_SCRIPT, encoding="utf-8")
        out = subprocess.run([args.medspacy_python, str(script), str(notes_file), str(terms_file), str(args.batch_size)],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"medspaCy failed:\n{out.stderr[-3000:]}")
        rows.insert(1, {"name": "medspaCy rules (PyRuSH + TargetMatcher + ConText)",
                        **json.loads(out.stdout.strip().splitlines()[-1])})
    for r in rows:
        r["docs_per_s"] = round(len(notes) / r["seconds"], 1)
        r["mb_per_s"] = round(mb / r["seconds"], 3)
        r["entities_per_s"] = round(r["entities"] / r["seconds"], 1)
    by = {r["name"]: r for r in rows}
    ratios = {}
    if "medspaCy rules (PyRuSH + TargetMatcher + ConText)" in by:
        ms = by["medspaCy rules (PyRuSH + TargetMatcher + ConText)"]["docs_per_s"]
        ratios["default_without_linker_vs_medspacy"] = round(
            by["medtext default without linker and errors"]["docs_per_s"] / ms, 2)
    ratios["n_process_2_vs_1_wall"] = round(by["medtext default, --n-process 2"]["docs_per_s"] /
                                            by["medtext default"]["docs_per_s"], 2)
    ratios["n_process_2_vs_1_steady"] = round(by["medtext default, --n-process 2"]["steady_docs_per_s"] /
                                              by["medtext default"]["steady_docs_per_s"], 2)
    result = {"benchmark": "throughput", "notes": len(notes), "mb": round(mb, 3),
              "mean_note_chars": round(sum(len(t) for _, t in notes) / len(notes)),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "rows": rows, "ratios": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(notes)} notes, {mb:.2f} MB (mean {result['mean_note_chars']} chars); {os.cpu_count()} CPUs")
    print(f"{'configuration':<52} {'docs/s':>8} {'steady':>7} {'MB/s':>7} {'ents/s':>9} {'RSS MB':>8} {'cold s':>7}")
    for r in rows:
        steady = f"{r['steady_docs_per_s']:>7.1f}" if r.get("steady_docs_per_s") else f"{'':>7}"
        print(f"{r['name']:<52} {r['docs_per_s']:>8.1f} {steady} {r['mb_per_s']:>7.3f} {r['entities_per_s']:>9.1f} "
              f"{r['peak_rss_mb']:>8.0f} {r['cold_start_s']:>7.1f}")
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
