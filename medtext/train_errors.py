"""``medtext train errors``: train the error-sentence classifier of ``medtext_errors``.

Trains the cross-encoder of :mod:`medtext.components.error_classifier` on MEDEC-MS validation
(``$MEDTEXT_DATA/medec/ms_validation.jsonl``, default ``../shared/data``) plus the synthetic
errors injected into the team's notes (:mod:`medtext.corpora.error_inject`), and saves it to
``$MEDTEXT_HOME/models/errors_cross`` (use it with ``medtext_errors.classifier =
"medtext:errors_cross"``). The saved threshold is the one that maximised MEDEC sentence
accuracy on the out-of-fold scores of ``benchmarks/errors_cv.py`` when that result exists
(else 0.5).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


def cv_threshold(path: Path = ROOT / "benchmarks" / "results" / "errors_cv.json") -> float | None:
    try:
        return float(json.loads(path.read_text())["threshold_oof_best_sentence"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_errors(*, data: Path | None = None, synthetic: bool = True, base: str = "all-MiniLM-L6-v2",
                 epochs: int = 1, threshold: float | None = None, out: Path | None = None, seed: int = 0,
                 device: str | None = None) -> dict[str, Any]:
    from medtext.components.error_classifier import train_classifier
    from medtext.corpora.medec import read_medec
    from medtext.errors import ConfigError
    from medtext.pipeline import models_dir
    from medtext.train import default_data_dir

    path = Path(data) if data else default_data_dir() / "medec" / "ms_validation.jsonl"
    if not path.is_file():
        raise ConfigError(f"MEDEC data not found at {path}: pass --data or set MEDTEXT_DATA to the folder "
                          "holding medec/ms_validation.jsonl")
    texts = read_medec(path)
    notes = [(t.sentences, t.sentence_id) for t in texts]
    n_syn = 0
    if synthetic:
        from medtext.corpora.error_inject import injected_notes

        syn = injected_notes(seed=seed)
        n_syn = len(syn)
        notes += [(n.sentences, n.sentence_id) for n in syn]
    if threshold is None:
        threshold = cv_threshold() or 0.5
    out = Path(out) if out else models_dir() / "errors_cross"
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    stats = train_classifier(notes, base=base, out=out, epochs=epochs, seed=seed, device=device,
                             threshold=threshold, extra={"medec": str(path), "medec_texts": len(texts),
                                                         "synthetic_notes": n_syn})
    stats["total_seconds"] = round(time.perf_counter() - t, 1)
    stats["path"] = str(out)
    return stats
