"""``medtext_linker``: link entities to SNOMED CT, ICF (or any system of a terminology index).

For each entity of ``doc.ents`` whose label has a route (``routes``; default
:data:`medtext.terminologies.linking.ROUTES`: PROBLEM -> SNOMED CT disorders/findings,
FUNCTION -> ICF activities and body functions, ...), the linker ranks concepts of the index
(lexical + optional bi-encoder candidates, fused, optionally re-ranked by a cross-encoder; see
:mod:`medtext.terminologies.linking`) and sets:

- ``ent._.concepts``: ranked candidates ``[{"system", "code", "display", "score"}]``;
- ``ent.kb_id_``: ``"system:code"`` of the top concept when its score reaches
  ``nil_threshold``, or the threshold ``nil_thresholds`` gives the entity's label (empty when NIL);
- ``ent._.linked``: True when linked, False for NIL.

Models are config: ``bi_encoder`` (``null`` = lexical only; ``"index"`` = the model the index
was embedded with; or a sentence-transformers name/path, which must match the index; its cosine
weighs ``dense_weight`` in the fused score, or what ``dense_weights`` gives the entity's label, 0
for lexical linking of that label) and
``cross_encoder`` (a CrossEncoder name or path, e.g. ``medtext:linker_cross`` after ``medtext
train linker``). ``examples`` adds annotated mentions as extra names of their concepts
(``"medtext:icf"``: the team's ICF train and dev notes; ``"medtext:snomed"``: the SNOMED
CT-coded spans (every label but FUNCTION) of the team's train clinical notes; ``"medtext:cases"``:
the procedure spans of its case reports in machine-translated English; or a JSONL path, see
:func:`medtext.corpora.linking_data.load_examples`; a list of them is their union), each scored
by string similarity plus ``example_tfidf_weight`` times a character n-gram TF-IDF cosine (a
number for every label, or a map from label to weight; the presets give it to FUNCTION only).
``substitution_penalty`` lowers a string score when a word of the mention stands where the name
or example has another ("left total hip arthroplasty" against "left total knee arthroplasty"):
a number for every label or a map from label to penalty (``null``, the default: 0.3 for the
SNOMED CT labels, none for FUNCTION, see
:data:`medtext.terminologies.linking.SUBSTITUTION_PENALTIES`). ``classifier`` re-ranks with a mention
classifier trained on annotated mentions (``"medtext:linker_clf"``: ``medtext train
linker-clf``, else the copy shipped in the package, trained on the team's ICF train and dev
notes; ``"medtext:linker_clf_ft"``: ``medtext train linker-clf --finetune``; or a model folder;
a list of them is one ensemble, the geometric mean of their probabilities, each member's
log-probabilities weighed by ``ensemble_weights``, one per classifier, default equal; the ``trf``
preset's ``[0.65, 0.35]``, docs/linking.md, experiment (28)), weighted by ``classifier_weight``;
``classifier_prior`` (0: off; the ``trf`` preset 1.0) divides its probabilities by the classes' training
frequencies to that power first, so rare categories are not outvoted for being rare.
``expand_abbreviations`` (``false`` in every preset; ``true``: the SNOMED CT labels, or a list of
labels) also searches the mention with its capitalised short forms spelt out ("pelvic RM of
control" -> "pelvic Magnetic resonance imaging of control"; see docs/linking.md, experiment (7): it
helped the lexical presets on the team's dev notes and case reports, not the ``trf`` preset).
``calques`` (``true`` in every preset: the SNOMED CT labels; or a list of labels) also searches the
mention with the words a machine translation from Spanish renders literally replaced by the
standard term ("measurement of arterial tension" -> "measurement of blood pressure"; the team's
table, ``terminologies/data/translation_calques.tsv``; docs/linking.md, experiment (23)).
``narrower`` (``["PROCEDURE"]`` in every preset; ``true``: the SNOMED CT labels; default none) lets
those labels' mentions read the default index's specific procedures named under the GPS concept that
is the same procedure without the detail they add ("transjugular liver biopsy" under Biopsy of liver;
the team's ``terminologies/data/procedure_narrower.tsv``; docs/linking.md, experiments (30), (31)).
``prior_weight`` adds weight x log(1 + the number of ``examples`` coded with the concept) to each
candidate's score, so among near-equal candidates the concepts annotators choose often go first
(a number for every label or a map from label to weight; 0, the default: none; the ``trf`` preset
0.0075 for the SNOMED CT labels, see docs/linking.md, experiment (11); a score can then pass 1).
``nlp.pipe`` links all entities of a batch of documents in one call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import minibatch

log = logging.getLogger(__name__)


class EntityLinker:
    version = "1.0.0"

    def __init__(self, nlp: Language, name: str, *, index: str | None, bi_encoder: str | None,
                 cross_encoder: str | None, routes: dict | None, candidates: int, top: int,
                 rerank_top: int, dense_weight: float, nil_threshold: float, rerank_weight: float,
                 use_context: bool, device: str, batch_size: int, cache_size: int, ann: str,
                 examples: str | list[str] | None = None, classifier: str | list[str] | None = None,
                 classifier_weight: float = 0.5, nil_thresholds: dict[str, float] | None = None,
                 example_tfidf_weight: float | dict[str, float] = 0.5,
                 dense_weights: dict[str, float] | None = None,
                 substitution_penalty: float | dict[str, float] | None = None,
                 classifier_prior: float = 0.0, expand_abbreviations: bool | list[str] = False,
                 prior_weight: float | dict[str, float] = 0.0, calques: bool | list[str] = False,
                 ensemble_weights: list[float] | None = None, narrower: bool | list[str] = False):
        from medtext.errors import ConfigError, InputError
        from medtext.terminologies.default import default_index_dir
        from medtext.terminologies.index import ConceptIndex, TerminologyError
        from medtext.terminologies.linking import Linker

        for ext, default in (("concepts", None), ("linked", None)):
            if not Span.has_extension(ext):
                Span.set_extension(ext, default=default)
        for key, w in (("dense_weight", dense_weight), ("rerank_weight", rerank_weight),
                       ("classifier_weight", classifier_weight)):
            if not 0.0 <= w <= 1.0:
                raise ConfigError(f"{name}.{key} must be within 0..1, not {w}")
        if top < 1 or candidates < 1:
            raise ConfigError(f"{name}.top and {name}.candidates must be at least 1")
        if routes is not None:
            bad = [k for k, v in routes.items() if not isinstance(v, list) or not all(isinstance(x, str) for x in v)]
            if bad:
                raise ConfigError(f"{name}.routes: each label maps to a list of \"system\" or "
                                  f"\"system:kind\" strings (bad: {bad})")
        self.name = name
        path = Path(index) if index else default_index_dir()
        from medtext.corpora.linking_data import load_examples
        from medtext.terminologies.mention_classifier import load_classifier

        def option(key: str, spec: str | None, load, error: type[Exception]):
            """``load(spec)`` (None when unset), its error named after the setting."""
            try:
                return load(spec) if spec else None
            except error as e:
                raise ConfigError(f"{name}.{key}: {e}") from e

        rows = option("examples", examples, load_examples, InputError)
        if ensemble_weights is not None and not (isinstance(classifier, (list, tuple)) and len(classifier) >= 2):
            raise ConfigError(f"{name}.ensemble_weights weighs the classifiers of a list of 2 or more "
                              f"(classifier is {classifier!r})")
        clf = option("classifier", classifier, lambda s: load_classifier(s, weights=ensemble_weights),
                     TerminologyError)
        try:
            self.linker = Linker(ConceptIndex.load(path), bi_encoder=bi_encoder, cross_encoder=cross_encoder,
                                 routes=routes, candidates=candidates, top=top, rerank_top=rerank_top,
                                 dense_weight=dense_weight, nil_threshold=nil_threshold,
                                 rerank_weight=rerank_weight, use_context=use_context,
                                 device=None if device == "cpu" else device,
                                 batch_size=batch_size, cache_size=cache_size, ann=ann, examples=rows,
                                 classifier=clf, classifier_weight=classifier_weight,
                                 nil_thresholds=nil_thresholds, example_tfidf_weight=example_tfidf_weight,
                                 dense_weights=dense_weights, substitution_penalty=substitution_penalty,
                                 classifier_prior=classifier_prior,
                                 expand_abbreviations=expand_abbreviations, prior_weight=prior_weight,
                                 calques=calques, narrower=narrower)
        except TerminologyError as e:
            raise ConfigError(f"{name}: {e}") from e
        self.index_path = str(path)
        self.batch_size = batch_size
        d = self.linker.describe()
        self.model_id = (f"linker:{d['index']}@{path}" + (f"+bi={d['bi_encoder']}" if d["bi_encoder"] else "")
                         + (f"+cross={d['cross_encoder']}" if d["cross_encoder"] else "")
                         + (f"+examples={examples if isinstance(examples, str) else '&'.join(examples)}"
                            if examples else "")
                         + (f"+classifier={classifier if isinstance(classifier, str) else '&'.join(classifier)}"
                            if classifier else "")
                         + (f"+ensemble_weights={'&'.join(f'{w:g}' for w in ensemble_weights)}"
                            if ensemble_weights else ""))

    def __call__(self, doc: Doc) -> Doc:
        self._link_docs([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size):
            self._link_docs(docs)
            yield from docs

    def _link_docs(self, docs: list[Doc]) -> None:
        from medtext.terminologies.linking import Mention

        mentions, where = [], []
        ents = [doc.ents for doc in docs]  # doc.ents builds a new tuple on every access
        for d, doc in enumerate(docs):
            for e, ent in enumerate(ents[d]):
                if ent.label_ not in self.linker.routes:
                    continue
                ctx = ""
                if self.linker.use_context and doc.has_annotation("SENT_START"):
                    ctx = ent.sent.text
                mentions.append(Mention(ent.text, ent.label_, ctx))
                where.append((d, e))
        if not mentions:
            return
        results = self.linker.link(mentions)
        kb: dict[int, dict[int, str]] = {}
        for (d, e), r in zip(where, results):
            ent = ents[d][e]
            ent._.concepts = [c.as_dict() for c in r.candidates]
            ent._.linked = not r.nil
            if r.best is not None:
                kb.setdefault(d, {})[e] = f"{r.best.system}:{r.best.code}"
        for d, ids in kb.items():
            doc = docs[d]
            doc.ents = [Span(doc, ent.start, ent.end, label=ent.label, kb_id=ids[e]) if e in ids else ent
                        for e, ent in enumerate(ents[d])]


@Language.factory(
    "medtext_linker",
    default_config={"index": None, "bi_encoder": None, "cross_encoder": None, "routes": None,
                    "candidates": 64, "top": 5, "rerank_top": 16, "dense_weight": 0.6,
                    "nil_threshold": 0.5, "rerank_weight": 0.3, "use_context": False, "device": "cpu",
                    "batch_size": 64,
                    "cache_size": 100000, "ann": "auto", "examples": None, "classifier": None,
                    "classifier_weight": 0.5, "nil_thresholds": None, "example_tfidf_weight": 0.5,
                    "dense_weights": None, "substitution_penalty": None, "classifier_prior": 0.0,
                    "expand_abbreviations": False, "prior_weight": 0.0, "calques": False,
                    "ensemble_weights": None, "narrower": False},
)
def make_linker(nlp: Language, name: str, index: str | None, bi_encoder: str | None,
                cross_encoder: str | None, routes: dict | None, candidates: int, top: int,
                rerank_top: int, dense_weight: float, nil_threshold: float, rerank_weight: float,
                use_context: bool, device: str, batch_size: int, cache_size: int,
                ann: str, examples: str | list[str] | None, classifier: str | list[str] | None,
                classifier_weight: float, nil_thresholds: dict[str, float] | None,
                example_tfidf_weight: float | dict[str, float],
                dense_weights: dict[str, float] | None,
                substitution_penalty: float | dict[str, float] | None,
                classifier_prior: float, expand_abbreviations: bool | list[str],
                prior_weight: float | dict[str, float], calques: bool | list[str],
                ensemble_weights: list[float] | None, narrower: bool | list[str]) -> EntityLinker:
    return EntityLinker(nlp, name, index=index, bi_encoder=bi_encoder, cross_encoder=cross_encoder,
                        routes=routes, candidates=candidates, top=top, rerank_top=rerank_top,
                        dense_weight=dense_weight, nil_threshold=nil_threshold,
                        rerank_weight=rerank_weight, use_context=use_context,
                        device=device, batch_size=batch_size, cache_size=cache_size, ann=ann,
                        examples=examples, classifier=classifier, classifier_weight=classifier_weight,
                        nil_thresholds=nil_thresholds, example_tfidf_weight=example_tfidf_weight,
                        dense_weights=dense_weights, substitution_penalty=substitution_penalty,
                        classifier_prior=classifier_prior, expand_abbreviations=expand_abbreviations,
                        prior_weight=prior_weight, calques=calques, ensemble_weights=ensemble_weights,
                        narrower=narrower)


def linker_from_preset(preset: str, **overrides):
    """The :class:`~medtext.terminologies.linking.Linker` that ``preset``'s ``medtext_linker``
    builds (a preset name, a ``.cfg`` path or a saved pipeline folder), without loading the rest
    of the pipeline; ``overrides`` replace config values (e.g. ``top=25``, ``index=PATH``).
    Raises :class:`medtext.errors.ConfigError` when the preset has no ``medtext_linker``."""
    from spacy.util import load_config

    from medtext.errors import ConfigError
    from medtext.pipeline import _preset_config

    config, name = _preset_config(str(preset))
    if config is None:  # a saved pipeline folder
        config = load_config(Path(name) / "config.cfg")
    blocks = [(key, dict(block)) for key, block in config.get("components", {}).items()
              if dict(block).get("factory") == "medtext_linker"]
    if not blocks:
        raise ConfigError(f"preset {preset!r} has no medtext_linker component")
    key, block = blocks[0]
    block.pop("factory")
    defaults = Language.get_factory_meta("medtext_linker").default_config
    unknown = sorted(set(block) - set(defaults))
    if unknown:
        raise ConfigError(f"preset {preset!r}: unknown setting(s) of {key}: {', '.join(unknown)}")
    return EntityLinker(None, key, **{**defaults, **block, **overrides}).linker
