"""``medtext_errors``: find medical errors in notes (MEDEC's task) with composable detectors.

Writes ``doc._.errors``: a list of findings ``{"start", "end", "type", "message",
"correction", "score", "detector"}`` where ``start``/``end`` are the character offsets of the
sentence holding the error, ``type`` is a MEDEC error type (diagnosis, management, treatment,
pharmacotherapy, causalOrganism) or ``consistency``, ``correction`` the corrected sentence when
the detector can produce one, ``detector`` which detector fired (``checks:dose_range``,
``classifier``, ``generative``). Findings are sorted by position; sentences outside the body
(layout mask) are not reported.

Detectors (each optional, all composable):

- ``checks``: the consistency rules of :mod:`medtext.components.error_checks` (dose, route,
  schedule, allergy, organism vs antibiotic, lab value vs interpretation, laterality, affirmed
  vs negated; and, opt-in, Do-Not-Use abbreviations), names listed in ``checks`` (``null`` =
  all but ``do_not_use``)
  over the knowledge tables of ``knowledge`` (``null`` = packaged; a folder with the same four
  TSV files to use your own);
- ``classifier``: a trained cross-encoder (:mod:`medtext.components.error_classifier`; e.g.
  ``"medtext:errors_cross"`` after ``medtext train errors``), with ``classifier_threshold``
  (``null`` = the threshold saved with the model);
- ``generative``: any causal LM name or path through transformers
  (:mod:`medtext.components.error_generative`), with ``generative_prompt`` (``null`` = the
  built-in template), ``generative_max_new_tokens``, ``generative_retries`` and
  ``generative_timeout_s``. Malformed output or timeouts add a warning to ``doc._.warnings``
  and the pipeline continues.

``device`` and ``batch_size`` apply to both models. ``min_score`` drops weaker findings.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch

log = logging.getLogger(__name__)


class ErrorDetector:
    version = "1.0.0"

    def __init__(self, nlp: Language, name: str, *, checks: list[str] | None, knowledge: str | None,
                 classifier: str | None, classifier_threshold: float | None, generative: str | None,
                 generative_prompt: str | None, generative_max_new_tokens: int, generative_retries: int,
                 generative_timeout_s: float, device: str, batch_size: int, min_score: float):
        from medtext.errors import ConfigError

        from .error_checks import CHECKS, DEFAULT_CHECKS, Knowledge, KnowledgeError

        if not Doc.has_extension("errors"):
            Doc.set_extension("errors", default=None)
        if not Doc.has_extension("warnings"):
            Doc.set_extension("warnings", default=None)
        self.name = name
        if checks is not None:
            unknown = [c for c in checks if c not in CHECKS]
            if unknown:
                raise ConfigError(f"{name}.checks: unknown checks {unknown}; known: {', '.join(CHECKS)}")
        self.checks = list(checks) if checks is not None else list(DEFAULT_CHECKS)
        try:
            self.kb = Knowledge.load(knowledge) if self.checks else None
        except KnowledgeError as e:
            raise ConfigError(f"{name}.knowledge: {e}") from None
        if batch_size < 1:
            raise ConfigError(f"{name}.batch_size must be at least 1")
        self.batch_size = batch_size
        self.min_score = min_score
        self.detectors = []
        if classifier:
            from .error_classifier import ErrorClassifier

            self.detectors.append(ErrorClassifier(classifier, device=device, batch_size=max(batch_size, 32),
                                                  threshold=classifier_threshold))
        if generative:
            from .error_generative import GenerativeDetector

            self.detectors.append(GenerativeDetector(
                generative, device=device, batch_size=batch_size, prompt_template=generative_prompt,
                max_new_tokens=generative_max_new_tokens, retries=generative_retries,
                timeout_s=generative_timeout_s))
        self.model_id = ",".join(filter(None, [classifier, generative])) or None

    def _checks(self, doc: Doc) -> list[dict]:
        from medtext.records.build import section_lookup

        from .error_checks import Note, run_checks
        from .error_classifier import sentence_spans

        text = doc.text
        spans = sentence_spans(doc)
        import bisect

        heads = sorted((s.start_char, s.end_char) for s in doc.spans.get("sections", [])) if doc.spans else []
        head_starts = [a for a, _ in heads]

        def section_start(char: int) -> int | None:
            i = bisect.bisect_right(head_starts, char) - 1
            return heads[i][0] if i >= 0 and char < heads[i][1] else None

        note = Note(text, spans, self.kb, sections=section_lookup(doc), section_start=section_start,
                    entities=list(doc.ents))
        return run_checks(note, self.checks)

    def _finish(self, doc: Doc, findings: list[dict]) -> Doc:
        from .layout import outside_body

        outside = outside_body(doc)
        keep = [f for f in findings if (f.get("score") is None or f["score"] >= self.min_score)
                and outside(f["start"], f["end"]) is None]
        keep.sort(key=lambda f: (f["start"], -(f.get("score") or 0)))
        doc._.errors = keep
        return doc

    def _process(self, docs: list[Doc]) -> list[Doc]:
        found = [self._checks(d) if self.checks else [] for d in docs]
        for det in self.detectors:
            for acc, more in zip(found, det.find(docs)):
                acc.extend(more)
        return [self._finish(d, f) for d, f in zip(docs, found)]

    def __call__(self, doc: Doc) -> Doc:
        return self._process([doc])[0]

    def pipe(self, stream: Iterable[Doc], *, batch_size: int | None = None) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size or self.batch_size):
            yield from self._process(list(batch))


@Language.factory(
    "medtext_errors",
    default_config={"checks": None, "knowledge": None, "classifier": None, "classifier_threshold": None,
                    "generative": None, "generative_prompt": None, "generative_max_new_tokens": 256,
                    "generative_retries": 2, "generative_timeout_s": 120.0, "device": "cpu",
                    "batch_size": 16, "min_score": 0.0},
)
def make_errors(nlp: Language, name: str, checks: list[str] | None, knowledge: str | None,
                classifier: str | None, classifier_threshold: float | None, generative: str | None,
                generative_prompt: str | None, generative_max_new_tokens: int, generative_retries: int,
                generative_timeout_s: float, device: str, batch_size: int, min_score: float) -> ErrorDetector:
    return ErrorDetector(nlp, name, checks=checks, knowledge=knowledge, classifier=classifier,
                         classifier_threshold=classifier_threshold, generative=generative,
                         generative_prompt=generative_prompt, generative_max_new_tokens=generative_max_new_tokens,
                         generative_retries=generative_retries, generative_timeout_s=generative_timeout_s,
                         device=device, batch_size=batch_size, min_score=min_score)
