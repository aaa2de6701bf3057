"""Entity linking engine: mention -> ranked concepts of a terminology index, or NIL.

Three stages, each optional after the first:

1. **Routing.** An entity label names the systems and kinds it may link to (``ROUTES``:
   PROBLEM -> SNOMED CT disorders/findings, FUNCTION -> ICF categories, ...). Mentions of an
   unrouted label are not linked.
2. **Candidates.** Lexical (exact + rapidfuzz over synonyms and abbreviations, see
   :mod:`.retrieval`) and, when a bi-encoder is configured, dense (cosine between the
   mention's embedding and every synonym embedding of the index: exact blockwise search over
   the routed rows, or a faiss HNSW graph when a route has more than ``ann_min_rows`` rows,
   see :mod:`.ann`; one encoder call per batch of mentions). Every candidate of either channel
   gets both scores (its best synonym's cosine and its best synonym's string score) and a
   fused score ``dense_weight * cosine + (1 - dense_weight) * lexical``. ``dense_weights`` gives
   a label its own weight; a label whose weight is 0 is linked lexically (no encoder call, no
   dense candidates: the ``trf`` preset keeps FUNCTION mentions, which its classifiers re-rank,
   lexical). ``dense_variant`` also encodes the query's variant (no laterality or severity
   words, plurals singular; as the lexical channel) and takes 0.95 x its cosine where larger
   (off: tried for the ``trf`` preset, no gain on the team's dev notes and case reports).
   ``expand_abbreviations`` (labels, or true: the SNOMED CT labels) adds the mention with its
   capitalised short forms spelt out ("TC of hip" -> "Computerized axial tomography of hip",
   :meth:`Linker.expansion`) as a second form, searched lexically and densely at 0.95 x its
   scores (off: tried 2026-12-05; the lexical presets gained on the team's dev case reports and
   notes, the ``trf`` preset did not, see docs/linking.md). ``calques`` (labels, or true: the
   SNOMED CT labels; on in every preset since 2026-12-06) does the same with the words that a
   machine translation from Spanish renders literally replaced by the standard term ("arterial
   tension" -> "blood pressure", "cardiac catheterism" -> "cardiac catheterization";
   :func:`load_calques`, :meth:`Linker.decalqued`), after any abbreviations are spelt out.
   ``narrower`` (labels, or true: the SNOMED CT labels; PROCEDURE in every preset since
   2026-12-06) lets those labels' mentions read the index's narrower procedure names (source
   ``medtext-narrow``: "transjugular liver biopsy" under Biopsy of liver); for the other labels
   the linker ranks exactly as over an index without them (a lexical retriever of its own, and
   the rows left out of the dense search).
   String scores of the labels in ``substitution_penalty`` (default: the SNOMED CT labels) are
   lowered when a word of the mention stands where the name has another (``SUBSTITUTION_PENALTIES``).
3. **Re-ranking.** A cross-encoder (sentence-transformers ``CrossEncoder``, trained by
   ``medtext train linker``) scores (mention, candidate term) pairs for the top
   ``rerank_top`` candidates; the score becomes ``rerank_weight * probability + (1 -
   rerank_weight) * fused score`` (1.0: the cross-encoder alone decides, as in ClinLinker; a
   weaker cross-encoder is safer mixed with the retrieval score).

**Examples.** Annotated mentions (``examples``: (text, system, code) rows, e.g. the team's ICF
dev notes) act as extra names of their concepts: each is scored against the mention like a
synonym (cosine with the bi-encoder, string similarity, fused the same way) and a concept's
score is the better of its synonyms' and its examples' (few-shot linking of shorthand such as
"sup>sit via log roll, min A" that no terminology lists).

**Classifier.** A :class:`~.mention_classifier.MentionClassifier` trained on annotated mentions
(``medtext train linker-clf``; the presets use the one trained on the team's ICF train and dev
notes), a :class:`~.finetuned_classifier.FinetunedClassifier` (``--finetune``) or a
:class:`~.mention_classifier.ClassifierEnsemble` of them (the ``trf`` preset's) re-ranks the candidates of the mentions whose route holds its classes: each score becomes
``classifier_weight * p(concept | mention) + (1 - classifier_weight) * score``, and the
classifier's most probable concepts join the candidates (scored on their synonyms as well).
``classifier_prior`` (tau; the ``trf`` preset uses 1.0) first divides the probabilities by the classes'
training frequencies to the power tau and renormalises them (logit adjustment: a category seen
twice in training is not outvoted by a frequent neighbour for that reason alone; on a two-fold
split of the ICF train notes, the fine-tuned × n-gram pair's macro-F1 0.634 at tau 0 and 0.648
at 1, see docs/linking.md). It
re-ranks only: whether a mention is NIL is decided on the better of the best score before
the mix and the best after it.

The top concept is kept when its score reaches ``nil_threshold`` (or the threshold
``nil_thresholds`` gives the mention's label); otherwise the mention is NIL (no ``kb_id``; the
ranked candidates are still returned for review). Results are cached by
normalised mention + label (+ context when the cross-encoder reads context).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy

from .index import ConceptIndex, TerminologyError, normalize
from .retrieval import VARIANT_WEIGHT, CharNgramTfidf, LexicalRetriever, WordAligner, fuzzy_matrix, fuzzy_score

log = logging.getLogger(__name__)

# label -> ["system" | "system:kind", ...]
ROUTES: dict[str, list[str]] = {
    "PROBLEM": ["snomed:disorder", "snomed:finding", "snomed:morphologic abnormality"],
    "TEST": ["snomed:procedure", "snomed:observable entity"],
    "TREATMENT": ["snomed:procedure", "snomed:regime/therapy", "snomed:physical object"],
    "PROCEDURE": ["snomed:procedure", "snomed:regime/therapy"],
    "DRUG": ["snomed:substance", "snomed:product", "snomed:medicinal product",
             "snomed:clinical drug", "snomed:medicinal product form"],
    "ANATOMY": ["snomed:body structure"],
    # ICF categories (not chapters or blocks) of activities/participation and body functions
    "FUNCTION": ["icf:activity and participation", "icf:body function"],
}
MAX_MENTION_CHARS = 256  # longer mentions are cut (a span that long is not a concept name)
CONTEXT_CHARS = 300
MIN_FUZZY_CHARS = 3
# Each mention's candidates are ranked in a pool of at least this many concepts before the list is cut
# to ``top``: which concepts the example and classifier channels add, and where lexical-only pruning
# cuts, depend on the pool's size, so with this floor the top concept, its score and the NIL decision
# are the same for any ``top`` up to it (the presets' 5 and the benchmark's 25).
MIN_POOL = 25
# abbreviations in longer mentions (``expand_abbreviations``): words of up to this many characters
SHORT_FORM_CHARS = 6
# words that machine translation from Spanish renders literally (``calques``): spanish,
# literal_english, standard_english; written by the team, see docs/linking.md, experiment (23)
CALQUES_FILE = Path(__file__).parent / "data" / "translation_calques.tsv"
CALQUE_COLUMNS = ("spanish", "literal_english", "standard_english")
# the default index's source of specific procedures named under their nearest GPS concept
# (``narrower``; terminologies/data/procedure_narrower.tsv, docs/linking.md, experiments (30), (31))
NARROWER_SOURCE = "medtext-narrow"
_WORD = re.compile(r"[a-z0-9]+")
_ANY_WORD = re.compile(r"[A-Za-z0-9]+")
_CAPS_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Z0-9]+(?![A-Za-z0-9])")
# weight of the character n-gram TF-IDF cosine added to an example's string similarity; chosen
# on the ICF dev split with the train examples (lexical macro-F1 0.522 -> 0.629 at 0.5; 0.25:
# 0.597, 0.7: 0.619, 1.0: 0.593). On the SNOMED CT dev notes it adds nothing (lexical acc@1 0.718
# with it, 0.716 without) and fragments such as "coagulation" pull long procedure names to the
# wrong example, so the presets give it to FUNCTION only (``example_tfidf_weight``)
EXAMPLE_TFIDF_WEIGHT = 0.5
# the string scores' penalty for a swapped word (:func:`.retrieval.substituted`: "left total hip
# arthroplasty" is not "left total knee arthroplasty"), per entity label, for names and examples
# alike. The SNOMED CT labels: chosen on the SNOMED CT dev notes and MedProcNER dev (lexical
# linker, 2026-12-02: decided accuracy 0.829 -> 0.841, covered acc@1 0.599 -> 0.620). Not
# FUNCTION: the ICF examples are shorthand whose values and levels of help differ within a
# category ("amb 40 ft FWW CGA", "amb 100 ft FWW mod I"), and ICF dev macro-F1 fell (0.702 ->
# 0.695 with the penalty on examples, 0.702 on names alone)
SUBSTITUTION_PENALTIES = {label: 0.3 for label in ("PROBLEM", "TEST", "TREATMENT", "PROCEDURE", "DRUG", "ANATOMY")}


def _not_weight(v, high: float | None = None) -> bool:
    """True unless ``v`` is a number (not a bool) from 0 to ``high``."""
    return isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (high is not None and v > high)


def _check_label_weights(value, key: str, high: float | None, path) -> None:
    """A per-label setting (``example_tfidf_weight``, ``substitution_penalty``): a weight, or a map
    from entity label to one; else an error naming ``key``."""
    if any(_not_weight(v, high) for v in (value.values() if isinstance(value, dict) else [value])):
        raise TerminologyError(f"{key} is a weight {f'in 0..{high:g}' if high is not None else '>= 0'}, "
                               f"or a map from entity label to one (got {value!r})", path)


def _query(text: str) -> str:
    """The part of a mention's text the linker searches: its first ``MAX_MENTION_CHARS``, stripped."""
    return text[:MAX_MENTION_CHARS].strip()


def _label_list(value, key: str, path) -> frozenset[str]:
    """A setting that is true (the SNOMED CT labels), false (none) or a list of entity labels."""
    if isinstance(value, bool):
        value = list(SUBSTITUTION_PENALTIES) if value else []
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise TerminologyError(f"{key} is true, false or a list of entity labels (got {value!r})", path)
    return frozenset(value)


def load_calques(path: str | Path | None = None) -> dict[str, str]:
    """The calque table (default :data:`CALQUES_FILE`): literal English form (lowercase, single
    spaces) -> the standard English term. Tab-separated with the header ``spanish``,
    ``literal_english``, ``standard_english``; a malformed file is a :class:`TerminologyError`."""
    path = Path(path) if path else CALQUES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TerminologyError(f"cannot read the calque table: {e}", path) from e
    if not lines or tuple(lines[0].split("\t")) != CALQUE_COLUMNS:
        raise TerminologyError(f"the calque table's header must be {'<tab>'.join(CALQUE_COLUMNS)}", path)
    out: dict[str, str] = {}
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) != 3 or not all(cols):
            raise TerminologyError(f"line {n}: expected 3 non-empty tab-separated columns", path)
        literal = " ".join(cols[1].lower().split())
        if out.get(literal, cols[2]) != cols[2]:
            raise TerminologyError(f"line {n}: {cols[1]!r} is given two standard forms", path)
        out[literal] = cols[2]
    return out


def _label_weight(value: float | dict[str, float], label: str) -> float:
    """``label``'s value of a per-label setting: a number is every label's; a map names its labels,
    the others get 0."""
    return float(value.get(label, 0.0)) if isinstance(value, dict) else float(value)


def _by_label(mentions: list["Mention"], idx: list[int]) -> dict[str, list[int]]:
    """The mention indexes ``idx`` grouped by entity label (each group is one search)."""
    out: dict[str, list[int]] = {}
    for i in idx:
        out.setdefault(mentions[i].label, []).append(i)
    return out


def candidate_text(term: str, definition: str | None) -> str:
    """What the cross-encoder reads for a candidate concept (in training and at run time)."""
    return f"{term} ; {definition[:200]}" if definition else term


def first_definitions(index) -> dict[tuple[str, str], str]:
    """(system, code) -> the concept's first definition."""
    d = index.tables["definitions"]
    out: dict[tuple[str, str], str] = {}
    for s, c, t in zip(d.column("system").to_pylist(), d.column("code").to_pylist(), d.column("text").to_pylist()):
        out.setdefault((s, c), t)
    return out


@dataclass
class Mention:
    text: str
    label: str
    context: str = ""  # the sentence, when the cross-encoder reads context


@dataclass
class Candidate:
    system: str
    code: str
    term: str
    kind: str
    score: float
    lexical: float = 0.0
    dense: float = 0.0
    rerank: float | None = None
    matched: str = ""
    example: float = 0.0  # best fused score of the concept's annotated examples
    classifier: float | None = None  # the mention classifier's probability, when it ran

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "code": self.code, "display": self.term,
                "score": round(self.score, 4)}


@dataclass
class LinkResult:
    candidates: list[Candidate] = field(default_factory=list)
    nil: bool = True
    score: float = 0.0  # the score compared with the NIL threshold (the best before or after the classifier's mix)

    @property
    def best(self) -> Candidate | None:
        return None if self.nil or not self.candidates else self.candidates[0]


class Linker:
    """See the module docstring. ``bi_encoder``: ``None`` (lexical only), ``"index"`` (the
    model the index's embeddings were made with) or a model name/path, which must be the one
    the index was embedded with (a different model gives meaningless cosines: error)."""

    def __init__(self, index: ConceptIndex, *, bi_encoder: str | None = "index",
                 cross_encoder: str | None = None, routes: dict[str, list[str]] | None = None,
                 candidates: int = 64, top: int = 5, rerank_top: int = 16,
                 dense_weight: float = 0.6, nil_threshold: float = 0.5, rerank_weight: float = 0.3,
                 use_context: bool = False, device: str | None = None, batch_size: int = 64,
                 cache_size: int = 100_000, ann: str = "auto", ann_min_rows: int = 100_000,
                 examples: list[tuple[str, str, str]] | None = None, classifier=None,
                 classifier_weight: float = 0.5, nil_thresholds: dict[str, float] | None = None,
                 example_tfidf_weight: float | dict[str, float] = EXAMPLE_TFIDF_WEIGHT,
                 dense_weights: dict[str, float] | None = None,
                 substitution_penalty: float | dict[str, float] | None = None,
                 classifier_prior: float = 0.0, dense_variant: bool = False,
                 expand_abbreviations: bool | list[str] = False,
                 prior_weight: float | dict[str, float] = 0.0, calques: bool | list[str] = False,
                 narrower: bool | list[str] = False):
        self.index = index
        self.routes = routes if routes is not None else ROUTES
        self.n_candidates = candidates
        self.top = top
        self.rerank_top = rerank_top
        self.dense_weight = dense_weight
        self.nil_threshold = nil_threshold
        bad = {k: v for k, v in (nil_thresholds or {}).items() if not isinstance(k, str) or _not_weight(v, 1.0)}
        if bad:
            raise TerminologyError(f"nil_thresholds maps an entity label to a threshold in 0..1 (bad: {bad})",
                                   index.path)
        self.nil_thresholds = {k: float(v) for k, v in (nil_thresholds or {}).items()}
        bad = {k: v for k, v in (dense_weights or {}).items() if not isinstance(k, str) or _not_weight(v, 1.0)}
        if bad:
            raise TerminologyError(f"dense_weights maps an entity label to a weight in 0..1 (bad: {bad})",
                                   index.path)
        self.dense_weights = {k: float(v) for k, v in (dense_weights or {}).items()}
        _check_label_weights(example_tfidf_weight, "example_tfidf_weight", None, index.path)
        # a number: every label; a map: its labels, none for the others
        self.example_tfidf_weight = example_tfidf_weight
        if substitution_penalty is None:
            substitution_penalty = dict(SUBSTITUTION_PENALTIES)
        _check_label_weights(substitution_penalty, "substitution_penalty", 1.0, index.path)
        self.substitution_penalty = substitution_penalty  # as example_tfidf_weight
        _check_label_weights(prior_weight, "prior_weight", 1.0, index.path)
        self.prior_weight = prior_weight  # as example_tfidf_weight
        self.rerank_weight = rerank_weight
        self.dense_variant = dense_variant
        self.expand_labels = _label_list(expand_abbreviations, "expand_abbreviations", index.path)
        self._short: dict[str, list[int]] | None = None  # short form -> the concepts it names
        self.calque_labels = _label_list(calques, "calques", index.path)
        # literal form -> standard term, and one pattern for all literal forms (longest first)
        self.calques = load_calques() if self.calque_labels else {}
        self._calque_re = None
        if self.calques:
            alts = [r"\s+".join(map(re.escape, k.split())) for k in sorted(self.calques, key=len, reverse=True)]
            self._calque_re = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(alts) + r")(?:e?s)?(?![A-Za-z0-9])",
                                         re.IGNORECASE)
        # the labels whose mentions read the index's narrower procedure names (source NARROWER_SOURCE,
        # the team's procedure_narrower.tsv); for the others those rows are not there
        self.narrower_labels = _label_list(narrower, "narrower", index.path)
        self.use_context = use_context
        self.device = device
        self.batch_size = batch_size
        self.cache: OrderedDict[tuple, LinkResult] = OrderedDict()
        self.cache_size = cache_size
        if ann not in ("auto", "exact", "hnsw"):
            raise TerminologyError(f"ann must be auto, exact or hnsw, not {ann!r}", index.path)
        self.ann, self.ann_min_rows = ann, ann_min_rows
        self._ann = None
        self._ann_warned = False
        self.lexical = LexicalRetriever.from_index(index)
        con = index.tables["concepts"]
        self.c_system = con.column("system").to_pylist()
        self.c_code = con.column("code").to_pylist()
        self.c_term = con.column("term").to_pylist()
        self.c_kind = con.column("kind").to_pylist()
        cid = index._rows()  # (system, code) -> concept row, the ids used here
        # synonym row -> concept id, and concept id -> its synonym rows
        self.row_concept = numpy.array([cid.get((s, c), -1) for s, c in
                                        zip(self.lexical.systems, self.lexical.codes)], dtype=numpy.int64)
        order = numpy.argsort(self.row_concept, kind="stable")
        bounds = numpy.searchsorted(self.row_concept[order], numpy.arange(len(self.c_code) + 1))
        self.concept_rows = [order[bounds[i]:bounds[i + 1]] for i in range(len(self.c_code))]
        # synonym rows of narrower procedures (read only by the labels of ``narrower``)
        syn = index.tables["synonyms"]
        self.row_narrower = numpy.array(
            [s == NARROWER_SOURCE for s in syn.column("source").to_pylist()], dtype=bool) \
            if "source" in syn.column_names else numpy.zeros(len(self.row_concept), dtype=bool)
        # what the other labels read: None when the index has no narrower rows (every label reads all)
        self._row_allowed = ~self.row_narrower if self.row_narrower.any() else None
        self._plain_rows = numpy.flatnonzero(~self.row_narrower)
        self._lexical_plain = None  # their lexical retriever, built when first needed
        self._pref_norms: dict[int, str] = {}
        self._route_concepts: dict[str, numpy.ndarray] = {}
        self._route_rows: dict[str, numpy.ndarray] = {}
        self.bi_model = None
        self.bi_name = None
        if bi_encoder:
            self._setup_dense(bi_encoder)
        self.ex_norm: list[str] = []
        self.ex_concept = numpy.zeros(0, dtype=numpy.int64)
        self.ex_vecs = None
        # per concept id: log(1 + how many examples name it), the popularity prior's term
        self.ex_log_count = numpy.zeros(len(self.c_code), dtype="float32")
        if examples:
            self._setup_examples(examples)
        self.classifier = classifier
        self.classifier_weight = classifier_weight
        if not isinstance(classifier_prior, (int, float)) or not 0.0 <= classifier_prior <= 4.0:
            raise TerminologyError(f"classifier_prior must be within 0..4, not {classifier_prior!r}", index.path)
        self.classifier_prior = float(classifier_prior)
        self.clf_adjust = None  # per class: 1 / frequency ** classifier_prior, scaled to max 1
        if classifier is not None:
            self._setup_classifier(classifier)
        self.cross = None
        self.cross_name = cross_encoder
        if cross_encoder:
            from .embeddings import load_model

            self.cross = load_model(cross_encoder, device=device, kind="cross")
            self.definitions = first_definitions(index)

    def _pool_size(self) -> int:
        """How many candidates a mention's pool ranks before the list is cut to ``top``."""
        return max(self.top, MIN_POOL, self.rerank_top if self.cross is not None else 0)

    def penalty(self, label: str) -> float:
        """The substitution penalty of ``label``'s string scores (names and examples)."""
        return _label_weight(self.substitution_penalty, label)

    def prior_w(self, label: str) -> float:
        """The weight of log(1 + example count) added to ``label``'s candidate scores (0: none)."""
        return _label_weight(self.prior_weight, label)

    def dense_w(self, label: str) -> float:
        """The weight of the cosine in ``label``'s fused score; 0: linked lexically."""
        return 0.0 if self.bi_model is None else self.dense_weights.get(label, self.dense_weight)

    def rows_read(self, label: str) -> numpy.ndarray | None:
        """Mask over synonym rows that ``label``'s mentions read (None: all of them): every row but
        the narrower procedure names, which only the labels of ``narrower`` read."""
        return None if label in self.narrower_labels else self._row_allowed

    def _lexical_for(self, label: str) -> LexicalRetriever:
        """The lexical retriever over the rows ``label`` reads (the index's own row numbers are
        ``_plain_rows[row]`` when it is not the full one)."""
        if self.rows_read(label) is None:
            return self.lexical
        if self._lexical_plain is None:
            self._lexical_plain = LexicalRetriever.from_index(self.index, rows=self._plain_rows)
        return self._lexical_plain

    def concept_rows_read(self, c: int, label: str) -> numpy.ndarray:
        """Concept ``c``'s synonym rows that ``label``'s mentions read."""
        rr = self.concept_rows[c]
        read = self.rows_read(label)
        return rr if read is None else rr[read[rr]]

    # --- setup -----------------------------------------------------------------------------
    def _setup_dense(self, bi_encoder: str) -> None:
        from .embeddings import load_model, resolve_model

        emb = self.index.meta.get("embedding")
        if self.index.embeddings is None or not emb:
            model = "all-MiniLM-L6-v2" if bi_encoder == "index" else bi_encoder
            raise TerminologyError(
                "the linker's bi_encoder needs an index with embeddings: run `medtext terminology embed "
                f"--model {model} --index {self.index.path}` (all-MiniLM-L6-v2 is packaged; `make embed-index` "
                "embeds the default index with it, about 2 min on 2 CPUs), or set bi_encoder = null for "
                "lexical linking", self.index.path)
        name = emb["model"] if bi_encoder == "index" else bi_encoder
        model_id = resolve_model(name)[1]
        if model_id != emb["model"]:
            raise TerminologyError(
                f"the index's embeddings were made with {emb['model']!r}, but the linker's bi_encoder "
                f"is {model_id!r}: cosines between two models mean nothing. Re-embed the index "
                f"(`medtext terminology embed --model {name}`) or set bi_encoder = \"index\"",
                self.index.path)
        if self.index.embeddings.shape[0] != len(self.row_concept):
            raise TerminologyError(f"the index has {self.index.embeddings.shape[0]} embeddings for "
                                   f"{len(self.row_concept)} synonyms: re-embed it", self.index.path)
        self.bi_model = load_model(name, device=self.device)
        self.bi_name = model_id
        dim = self.bi_model.get_embedding_dimension()
        if dim and dim != self.index.embeddings.shape[1]:
            raise TerminologyError(f"bi_encoder {model_id!r} gives {dim}-d vectors but the index "
                                   f"holds {self.index.embeddings.shape[1]}-d ones: re-embed it", self.index.path)

    def _setup_examples(self, examples: list[tuple[str, str, str]]) -> None:
        rows, unknown = [], []
        for text, system, code in examples:
            c = self._cid(system, code)
            n = normalize(text[:MAX_MENTION_CHARS])
            if c < 0:
                unknown.append(f"{system}:{code}")
            elif n:
                rows.append((n, c, _query(text)))
        if unknown:
            log.warning("%d linking examples name codes that are not in the index (e.g. %s): skipped",
                        len(unknown), ", ".join(sorted(set(unknown))[:3]))
        # every annotated mention counts for the prior, repeats included ("chemotherapy" coded ten times)
        self.ex_log_count = numpy.log1p(numpy.bincount(numpy.array([r[1] for r in rows], dtype=numpy.int64),
                                                       minlength=len(self.c_code))).astype("float32")
        rows = sorted(set(rows))
        self.ex_norm = [r[0] for r in rows]
        self.ex_aligner = WordAligner(self.ex_norm)  # their words, for the string score's substitutions
        self._ex_tfidf: dict = {}  # label -> CharNgramTfidf fitted on its route's examples (when used)
        self.ex_concept = numpy.array([r[1] for r in rows], dtype=numpy.int64)
        if self.bi_model is not None and rows:
            # only the examples a label with a dense weight can meet are encoded (zeros elsewhere)
            met = numpy.zeros(len(self.c_code), dtype=bool)
            for label in self.routes:
                if self.dense_w(label) > 0:
                    met |= self.route_concepts(label)
            enc = numpy.flatnonzero(met[self.ex_concept])
            self.ex_vecs = numpy.zeros((len(rows), self.index.embeddings.shape[1]), dtype="float32")
            if len(enc):
                self.ex_vecs[enc] = self.bi_model.encode([rows[j][2] for j in enc], batch_size=self.batch_size,
                                                         normalize_embeddings=True, convert_to_numpy=True,
                                                         show_progress_bar=False).astype("float32")

    def _setup_classifier(self, clf) -> None:
        clf.check_encoder(device=self.device)  # loads it now: errors surface here
        ids = numpy.array([self._cid(s, c) for s, c in clf.classes], dtype=numpy.int64)
        if (ids < 0).any():
            missing = [f"{s}:{c}" for (s, c), i in zip(clf.classes, ids) if i < 0]
            log.warning("the mention classifier names %d codes that are not in the index (e.g. %s): "
                        "they are never proposed", len(missing), ", ".join(missing[:3]))
        self.clf_concept = ids  # class -> concept id (-1: not in the index)
        if self.classifier_prior > 0:
            from .mention_classifier import class_counts

            counts = class_counts(clf)
            if counts is None:
                log.warning("classifier_prior %.2f is not applied: the mention classifier records no class "
                            "counts (retrain it with `medtext train linker-clf`)", self.classifier_prior)
            else:
                adjust = numpy.maximum(counts, 1.0) ** -self.classifier_prior  # the scale cancels out
                self.clf_adjust = (adjust / adjust.max()).astype(numpy.float32)
        self.clf_class = {int(c): k for k, c in enumerate(ids.tolist()) if c >= 0}  # concept id -> class

    def _classifier_channel(self, mentions, queries, routed, pools, spare, qv, qrow) -> dict[int, numpy.ndarray]:
        """Classify the mentions whose route holds classes of the classifier; add each one's most
        probable concepts to its pool. Returns mention -> probabilities over ``clf_concept``
        (renormalised over its route's classes; 0 outside the route)."""
        keep = self._pool_size()
        out: dict[int, numpy.ndarray] = {}
        for label, idx in _by_label(mentions, routed).items():
            allowed = self._classifier_allowed(label)
            if not allowed.any():
                continue
            texts = [queries[i] for i in idx]
            vectors = None
            if self.classifier.encoder:  # the bi-encoder's vectors when it is the same model
                vectors = qv[[qrow[i] for i in idx]] if qv is not None and self.classifier.encoder == self.bi_name \
                    and all(i in qrow for i in idx) \
                    else self.classifier.embed(texts, batch_size=self.batch_size, device=self.device)
            probs = self.classifier.predict_proba(texts, vectors)
            if self.clf_adjust is not None:
                probs = probs * self.clf_adjust
            probs[:, ~allowed] = 0.0
            probs /= numpy.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
            for row, i in enumerate(idx):
                out[i] = probs[row]
                for k in numpy.argsort(-probs[row])[:keep]:
                    c = int(self.clf_concept[k])
                    if allowed[k] and c not in pools[i]:
                        lex = spare[i].pop(c, None)
                        pools[i][c] = self._candidate(c) if lex is None else \
                            self._candidate(c, lexical=lex[0], matched=lex[1])
        return out

    def _classifier_allowed(self, label: str) -> numpy.ndarray:
        """Mask over the classifier's classes: those in ``label``'s route (and in the index)."""
        return (self.clf_concept >= 0) & self.route_concepts(label)[numpy.maximum(self.clf_concept, 0)]

    def _classifier_mix(self, pool: dict[int, Candidate], probs: numpy.ndarray) -> float:
        """Mix a mention's class probabilities into its candidates' scores; return its best score
        before the mix."""
        before = max((c.score for c in pool.values()), default=0.0)
        a = self.classifier_weight
        for c, cand in pool.items():
            k = self.clf_class.get(c)
            cand.classifier = float(probs[k]) if k is not None else 0.0
            cand.score = a * cand.classifier + (1 - a) * cand.score
        return before

    def _example_channel(self, mentions, queries, routed, pools, qv, qrow, spare) -> None:
        """Score every routed mention against the annotated examples of its route; add their
        concepts to the pool (with their lexical score when ``spare`` holds one) and keep each
        concept's best example score in ``example``."""
        for label, idx in _by_label(mentions, routed).items():
            cols = numpy.flatnonzero(self.route_concepts(label)[self.ex_concept])
            if not len(cols):
                continue
            norms = [self.ex_norm[j] for j in cols]
            qs = [normalize(queries[i]) for i in idx]
            # string similarity to an example: rapidfuzz's, plus example_tfidf_weight x the cosine of
            # character n-gram TF-IDF over the route's examples (fragments rare among them count
            # more; another system's examples do not change the weights)
            w = _label_weight(self.example_tfidf_weight, label)
            lex = fuzzy_matrix(qs, norms, aligner=self.ex_aligner, cols=cols, penalty=self.penalty(label))
            if w:
                if label not in self._ex_tfidf:
                    self._ex_tfidf[label] = CharNgramTfidf(norms)
                lex = lex + w * self._ex_tfidf[label].matrix(qs)
            lex = numpy.minimum(lex, 0.99)
            exact = numpy.array(qs, dtype=object)[:, None] == numpy.array(norms, dtype=object)[None, :]
            lex[exact] = 1.0
            fused = lex
            wd = self.dense_w(label)
            if wd > 0 and qv is not None and self.ex_vecs is not None:
                cos = qv[[qrow[i] for i in idx]] @ self.ex_vecs[cols].T
                fused = wd * cos + (1 - wd) * lex
            uniq, inv = numpy.unique(self.ex_concept[cols], return_inverse=True)
            # only as many example concepts as can end up in the returned list: any other
            # concept that scores well on its synonyms comes from the other channels
            keep = self._pool_size()
            for row, i in enumerate(idx):
                vals = fused[row] if len(qs[row]) >= MIN_FUZZY_CHARS else numpy.where(exact[row], fused[row], -1.0)
                best = numpy.full(len(uniq), -1.0, dtype=numpy.float32)
                numpy.maximum.at(best, inv, vals)  # each concept's best example
                for k in numpy.argsort(-best)[:keep]:
                    if best[k] < 0:
                        break
                    c = int(uniq[k])
                    if c not in pools[i]:
                        lex = spare[i].pop(c, None)
                        pools[i][c] = self._candidate(c) if lex is None else \
                            self._candidate(c, lexical=lex[0], matched=lex[1])
                    pools[i][c].example = max(pools[i][c].example, float(best[k]))

    def route_concepts(self, label: str) -> numpy.ndarray:
        """Boolean mask over concepts that ``label`` may link to."""
        if label not in self._route_concepts:
            allowed = self.routes.get(label, [])
            systems = {r for r in allowed if ":" not in r}
            kinds = {tuple(r.split(":", 1)) for r in allowed if ":" in r}
            self._route_concepts[label] = numpy.array(
                [s in systems or (s, k) in kinds for s, k in zip(self.c_system, self.c_kind)], dtype=bool)
            cm = self._route_concepts[label]
            if not cm.any() and (systems | {k[0] for k in kinds}) & set(self.c_system):
                log.warning("no concept of the index matches the %s route %s (an index built by an older "
                            "medtext? rebuild it: `medtext terminology build default`)", label, allowed)
            read = self.rows_read(label)
            self._route_rows[label] = numpy.flatnonzero(
                (self.row_concept >= 0) & cm[numpy.maximum(self.row_concept, 0)] & (True if read is None else read))
        return self._route_concepts[label]

    # --- abbreviations in longer mentions ----------------------------------------------------
    def _short_forms(self) -> dict[str, list[int]]:
        """Single-word synonyms of up to ``SHORT_FORM_CHARS`` characters ("ct", "lp", "TC") ->
        the concepts they name (a concept's own preferred term is no short form of it)."""
        if self._short is None:
            short: dict[str, list[int]] = {}
            for r, n in enumerate(self.lexical.norm):
                c = int(self.row_concept[r])
                if c >= 0 and not self.row_narrower[r] and 2 <= len(n) <= SHORT_FORM_CHARS and _WORD.fullmatch(n) \
                        and n != self._pref_norm(c):
                    cs = short.setdefault(n, [])
                    if c not in cs:
                        cs.append(c)
            self._short = short
        return self._short

    def expansion(self, query: str, label: str) -> str | None:
        """The mention's second form, or None where it has none: for the labels of
        ``expand_abbreviations`` its abbreviations spelt out (:meth:`spelt_out`), then, for the
        labels of ``calques``, the words a machine translation from Spanish renders literally
        replaced by the standard term (:meth:`decalqued`)."""
        out = self.spelt_out(query, label) if label in self.expand_labels else None
        if label in self.calque_labels:
            out = self.decalqued(out or query) or out
        return out

    def decalqued(self, query: str) -> str | None:
        """``query`` with each literal form of the calque table (:func:`load_calques`; a plural
        "s" / "es" too) replaced by its standard term ("arterial tension" -> "blood pressure"),
        or None if it has none."""
        if self._calque_re is None:
            return None
        out = self._calque_re.sub(lambda m: self.calques[" ".join(m.group(1).lower().split())], query)
        return out if out != query else None

    def spelt_out(self, query: str, label: str) -> str | None:
        """``query`` with its abbreviations spelt out ("TC of hip with fine cuts" -> "Computerized
        axial tomography of hip with fine cuts"), or None: a word of a mention of two or more
        words that is written in capitals (2 to ``SHORT_FORM_CHARS`` characters, 2 or more
        letters) and is a short form of one concept of the label's route (else of one concept of
        the index) becomes that concept's preferred term."""
        words = list(_CAPS_WORD.finditer(query))
        if len(_ANY_WORD.findall(query)) < 2 or not words:
            return None
        short, mask = self._short_forms(), self.route_concepts(label)
        out, last = [], 0
        for w in words:
            t = w.group(0)
            if len(t) > SHORT_FORM_CHARS or sum(ch.isalpha() for ch in t) < 2:
                continue
            cs = short.get(t.lower())
            if not cs:
                continue
            inside = [c for c in cs if mask[c]]
            pick = {self.c_term[c] for c in (inside or cs)}
            if len(pick) != 1:
                continue
            out += [query[last:w.start()], pick.pop()]
            last = w.end()
        return "".join(out + [query[last:]]) if out else None

    # --- linking ---------------------------------------------------------------------------
    def _key(self, m: Mention) -> tuple:
        ctx = ""
        if self.cross is not None and self.use_context and m.context:
            ctx = hashlib.blake2b(m.context.encode("utf-8", "replace"), digest_size=8).hexdigest()
        return (normalize(m.text[:MAX_MENTION_CHARS]), m.label, ctx, self.expansion(_query(m.text), m.label) or "")

    def link(self, mentions: Iterable[Mention]) -> list[LinkResult]:
        """Link a batch; one bi-encoder and one cross-encoder call for all its uncached mentions."""
        mentions = list(mentions)
        keys = [self._key(m) for m in mentions]
        todo: dict[tuple, Mention] = {}
        for k, m in zip(keys, mentions):
            if k not in self.cache and k not in todo:
                todo[k] = m
        if todo:
            for k, r in zip(todo, self._link_uncached(list(todo.values()))):
                self.cache[k] = r
                if len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        out = []
        for k, m in zip(keys, mentions):
            r = self.cache.get(k)
            if r is None:  # evicted within this batch (cache smaller than the batch)
                r = self._link_uncached([m])[0]
            out.append(r)
        return out

    def _link_uncached(self, mentions: list[Mention], top: int | None = None) -> list[LinkResult]:
        """``top``: list this many candidates (default the linker's ``top``; the pool, and so the
        ranking and the decision, stay the linker's)."""
        results = [LinkResult() for _ in mentions]
        queries = [_query(m.text) for m in mentions]
        routed = [i for i, m in enumerate(mentions)
                  if m.label in self.routes and normalize(queries[i]) and self.route_concepts(m.label).any()]
        if not routed:
            return results
        pools: dict[int, dict[int, Candidate]] = {i: {} for i in routed}
        keep = self._pool_size()
        # lexical channel. Each mention's lexical candidates in rank order: place[i][concept].
        # Linking lexically, a candidate scoring below the keep-th best lexical score can only
        # reach the returned list through an example, so it waits in spare[i] (no Candidate made)
        # and the example channel takes it from there.
        place: dict[int, dict[int, int]] = {}
        dense = [i for i in routed if self.dense_w(mentions[i].label) > 0]  # mentions with a dense channel
        lexical_only = set(routed) - set(dense)
        spare: dict[int, dict[int, tuple[float, str]]] = {i: {} for i in routed}
        # abbreviations spelt out: a second form of the mention, its scores x VARIANT_WEIGHT
        expanded = {i: e for i in routed if (e := self.expansion(queries[i], mentions[i].label))}
        for i in routed:
            mask = self.route_concepts(mentions[i].label)
            retriever = self._lexical_for(mentions[i].label)
            systems = {r.split(":", 1)[0] for r in self.routes[mentions[i].label]}
            found: dict[int, tuple[float, str]] = {}
            forms = [(queries[i], 1.0)] + ([(expanded[i], VARIANT_WEIGHT)] if i in expanded else [])
            for form, weight in forms:
                got: dict[int, tuple[float, str]] = {}
                for system in sorted(systems):
                    rows, scores = retriever.search_rows(form, k=self.n_candidates * 4, system=system,
                                                         penalty=self.penalty(mentions[i].label))
                    if retriever is not self.lexical:
                        rows = self._plain_rows[rows]  # the plain retriever's rows -> the index's
                    cs = self.row_concept[rows]
                    for j in numpy.flatnonzero((cs >= 0) & mask[numpy.maximum(cs, 0)]).tolist():
                        if len(got) >= self.n_candidates * 2:
                            break
                        got.setdefault(int(cs[j]), (round(weight * float(scores[j]), 4), self.lexical.terms[rows[j]]))
                if not found:
                    found = got
                    continue
                for c, (sc, matched) in got.items():  # best per concept, then by score (stable)
                    if c not in found or sc > found[c][0]:
                        found[c] = (sc, matched)
                found = dict(sorted(found.items(), key=lambda x: -x[1][0])[:self.n_candidates * 2])
            place[i] = {c: n for n, c in enumerate(found)}
            cut = 0.0
            if i in lexical_only and len(found) > keep:
                cut = sorted((sc for sc, _ in found.values()), reverse=True)[keep - 1]
            for c, (sc, matched) in found.items():
                if 0.0 < sc < cut:
                    spare[i][c] = (sc, matched)
                else:
                    pools[i][c] = self._candidate(c, lexical=sc, matched=matched)
        # dense channel: one encoder call, then a search per label (exact, or HNSW when large)
        qv, qrow = None, {i: j for j, i in enumerate(dense)}
        if dense:
            qv = self.bi_model.encode([queries[i] for i in dense], batch_size=self.batch_size,
                                      normalize_embeddings=True, convert_to_numpy=True).astype("float32")
            vv, vrow = self._variant_vectors(queries, dense, expanded)
            for label, idx in _by_label(mentions, dense).items():
                rows = self._route_rows[label]
                if not len(rows):
                    continue
                found = self._dense_top(rows, qv[[qrow[i] for i in idx]], self.n_candidates * 3)
                with_v = [i for i in idx if i in vrow]
                if with_v:  # the variant's neighbours too, its cosines times VARIANT_WEIGHT; best per row
                    extra = dict(zip(with_v, self._dense_top(rows, vv[[vrow[i] for i in with_v]],
                                                             self.n_candidates * 3)))
                    for n, i in enumerate(idx):
                        if i in extra:
                            best = dict(found[n])
                            for r, cos in extra[i]:
                                best[r] = max(best.get(r, -1.0), VARIANT_WEIGHT * cos)
                            found[n] = sorted(best.items(), key=lambda x: -x[1])
                for i, hits in zip(idx, found):
                    for r, cos in hits:
                        c = int(self.row_concept[r])
                        if c not in pools[i]:
                            if len(pools[i]) >= self.n_candidates * 3:
                                break
                            pools[i][c] = self._candidate(c, dense=cos, matched=self.lexical.terms[r])
                        else:
                            pools[i][c].dense = max(pools[i][c].dense, cos)
        if self.ex_norm:
            self._example_channel(mentions, queries, routed, pools, qv, qrow, spare)
        probs = self._classifier_channel(mentions, queries, routed, pools, spare, qv, qrow) if self.classifier is not None else {}
        if dense:  # cosine of lexical/example-only candidates: best synonym row
            for i in dense:
                missing = [c for c, cand in pools[i].items() if cand.dense == 0.0]
                if missing:
                    # the query's vector, and the variant's scaled by VARIANT_WEIGHT: one product for both
                    q = qv[qrow[i]] if i not in vrow else numpy.stack([qv[qrow[i]], VARIANT_WEIGHT * vv[vrow[i]]], 1)
                    for c in missing:
                        rr = self.concept_rows_read(c, mentions[i].label)
                        pools[i][c].dense = float(
                            (numpy.asarray(self.index.embeddings[rr], dtype="float32") @ q).max()) if len(rr) else 0.0
        # fill lexical scores of dense-only candidates, fuse, rank
        for i in routed:
            q = self.lexical.key(queries[i])
            if len(q) < MIN_FUZZY_CHARS:  # "K", "BP": exact synonym, abbreviation or example matches only
                pools[i] = {c: cand for c, cand in pools[i].items() if cand.lexical >= 1.0 or cand.example > 0}
            wd, pen = self.dense_w(mentions[i].label), self.penalty(mentions[i].label)
            factor = None  # per synonym: 1 - penalty x the query's share of swapped words
            qe = self.lexical.key(expanded[i]) if i in expanded else None
            factor_e = None
            for c, cand in pools[i].items():
                if cand.lexical == 0.0:
                    if pen and factor is None:
                        factor = 1 - pen * self.lexical.aligner.substituted(q)
                        if qe:
                            factor_e = 1 - pen * self.lexical.aligner.substituted(qe)
                    label = mentions[i].label
                    cand.lexical = self._lexical_score(q, c, factor, label)
                    if qe:
                        cand.lexical = max(cand.lexical,
                                           round(VARIANT_WEIGHT * self._lexical_score(qe, c, factor_e, label), 4))
                cand.score = wd * cand.dense + (1 - wd) * cand.lexical if wd > 0 else cand.lexical
                cand.score = max(cand.score, cand.example)
            pw = self.prior_w(mentions[i].label)
            if pw:  # popularity prior: the concepts the team's notes code often go first among near-equals
                for c, cand in pools[i].items():
                    cand.score += pw * float(self.ex_log_count[c])
        before: dict[int, float] = {}  # best score before the classifier's mix
        for i in routed:
            if i in probs:
                before[i] = self._classifier_mix(pools[i], probs[i])
            # ties: the concept whose preferred term the mention is ("dizziness": Dizziness, not
            # Vertigo, which HPO also names so), the shorter term, then the lexical rank, then the
            # order the other channels added them
            n_lex = len(place[i])
            qn = normalize(queries[i])
            ranked = sorted(enumerate(pools[i].items()), key=lambda x: (
                -x[1][1].score, self._pref_norm(x[1][0]) != qn, len(x[1][1].term),
                place[i].get(x[1][0], n_lex + x[0])))
            results[i].candidates = [cand for _, (_, cand) in ranked[:keep]]
        if self.cross is not None:
            self._rerank(mentions, queries, routed, results)
        for i in routed:
            r = results[i]
            r.candidates = r.candidates[:top or self.top]
            r.score = max(r.candidates[0].score, before.get(i, 0.0)) if r.candidates else 0.0
            r.nil = not r.candidates or r.score < self.threshold(mentions[i].label)
        return results

    def threshold(self, label: str) -> float:
        """The NIL threshold of ``label``'s mentions."""
        return self.nil_thresholds.get(label, self.nil_threshold)

    def explain(self, mentions: Iterable[Mention], k: int | None = None) -> list[dict[str, Any]]:
        """Link ``mentions`` as :meth:`link` does (uncached) and say why. For each: the decision
        (the top concept, or ``None`` for NIL), the score it was decided on and the label's NIL
        threshold, how a candidate's score is made for the label (``formula``), and the first ``k``
        candidates (default ``top``; at most the pool's size, so the ranking is the one :meth:`link`
        makes) with the parts of their scores: ``string`` (the lexical score), ``cosine`` (``None``
        without a dense channel for the label), ``example`` (the best annotated example's score;
        ``None`` without examples), ``prior`` (the popularity prior's term; ``None`` when off for the
        label), ``classifier`` (its probability; ``None`` when it did not run) and ``rerank`` (the
        cross-encoder's probability; ``None`` without one); ``also_searched``: the mention's second
        form (:meth:`expansion`, scores x 0.95), or ``None``."""
        mentions = list(mentions)
        n = min(k or self.top, self._pool_size())
        results = self._link_uncached(mentions, top=n)
        out = []
        for m, r in zip(mentions, results):
            dense = self.dense_w(m.label) > 0
            best = r.candidates[0] if r.candidates and not r.nil else None
            out.append({
                "text": m.text, "label": m.label, "routed": m.label in self.routes,
                "linked": None if best is None else {"system": best.system, "code": best.code, "display": best.term},
                "score": round(float(r.score), 4), "nil_threshold": self.threshold(m.label),
                "formula": self._formula(m.label),
                "also_searched": self.expansion(_query(m.text), m.label),
                "candidates": [{
                    "system": c.system, "code": c.code, "display": c.term, "score": round(float(c.score), 4),
                    "string": round(float(c.lexical), 4), "cosine": round(float(c.dense), 4) if dense else None,
                    "example": round(float(c.example), 4) if self.ex_norm else None,
                    "prior": round(self.prior_w(m.label) * float(self.ex_log_count[self._cid(c.system, c.code)]), 4)
                    if self.prior_w(m.label) else None,
                    "classifier": None if c.classifier is None else round(float(c.classifier), 4),
                    "rerank": None if c.rerank is None else round(float(c.rerank), 4),
                    "matched": c.matched} for c in r.candidates[:n]]})
        return out

    def _formula(self, label: str) -> str:
        """How a candidate's score is made for ``label``'s mentions, in words."""
        wd = self.dense_w(label)
        f = f"{wd:g} x cosine + {1 - wd:g} x string" if wd > 0 else "string"
        if self.ex_norm:
            f = f"best of ({f}) and example"
        if self.prior_w(label):
            f += f", + prior ({self.prior_w(label):g} x log(1 + examples of the concept))"
        if self.classifier is not None and label in self.routes and self._classifier_allowed(label).any():
            a = self.classifier_weight
            f = f"{a:g} x classifier + {1 - a:g} x ({f})"
        if self.cross is not None:
            r = self.rerank_weight
            f = f"{r:g} x rerank + {1 - r:g} x ({f}), for the first {self.rerank_top}"
        return f

    def _rerank(self, mentions, queries, routed, results) -> None:
        pairs, where = [], []
        for i in routed:
            q = queries[i]
            if self.use_context and mentions[i].context:
                q = f"{q} ; {mentions[i].context[:CONTEXT_CHARS]}"
            for j, cand in enumerate(results[i].candidates[:self.rerank_top]):
                pairs.append((q, candidate_text(cand.term, self.definitions.get((cand.system, cand.code)))))
                where.append((i, j))
        if not pairs:
            return
        scores = self.cross.predict(pairs, batch_size=self.batch_size, convert_to_numpy=True,
                                    show_progress_bar=False)
        scores = numpy.asarray(scores, dtype="float32").reshape(len(pairs), -1)[:, -1]
        if scores.min() < 0 or scores.max() > 1:  # logits -> probabilities
            scores = 1 / (1 + numpy.exp(-scores))
        for (i, j), s in zip(where, scores):
            cand = results[i].candidates[j]
            cand.rerank = float(s)
            cand.score = self.rerank_weight * float(s) + (1 - self.rerank_weight) * cand.score
        for i in routed:
            head = sorted(results[i].candidates[:self.rerank_top], key=lambda x: -x.score)
            results[i].candidates = head + results[i].candidates[self.rerank_top:]

    def _variant_vectors(self, queries: list[str], dense: list[int],
                         expanded: dict[int, str]) -> tuple[numpy.ndarray | None, dict[int, int]]:
        """The bi-encoder's vectors of the queries' second forms (``dense`` mentions only) and
        mention -> row: the abbreviations spelt out (``expanded``), else, with ``dense_variant``, the
        variant (without laterality and severity words, plurals made singular) where it differs."""
        var = {}
        for i in dense:
            if i in expanded:
                var[i] = expanded[i]
                continue
            if not self.dense_variant:
                continue
            k = self.lexical.key(queries[i])
            v = self.lexical.variant(k) if k else k
            if v and v != k:
                var[i] = v
        if not var:
            return None, {}
        vv = self.bi_model.encode(list(var.values()), batch_size=self.batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True).astype("float32")
        return vv, {i: j for j, i in enumerate(var)}

    def _dense_top(self, rows: numpy.ndarray, q: numpy.ndarray, n: int) -> list[list[tuple[int, float]]]:
        """Best ``n`` (synonym row, cosine) among ``rows`` for each query vector: exact search,
        or the HNSW graph when ``rows`` is larger than ``ann_min_rows`` and faiss is there."""
        ann = self._ann_for(len(rows))
        if ann is not None:
            allowed = None if len(rows) == ann.graph.ntotal else rows
            scores, found = ann.search(q, min(n, len(rows)), allowed)
            return [[(int(r), float(sc)) for r, sc in zip(rr, ss) if r >= 0] for rr, ss in zip(found, scores)]
        sims = self._dense_scores(rows, q)  # [len(rows), len(q)]
        out = []
        for j in range(q.shape[0]):
            col = sims[:, j]
            k = min(len(col), n)
            top = numpy.argpartition(-col, k - 1)[:k]
            out.append([(int(rows[r]), float(col[r])) for r in top[numpy.argsort(-col[top])]])
        return out

    def _ann_for(self, n_rows: int):
        if self.ann == "exact" or (self.ann == "auto" and n_rows <= self.ann_min_rows):
            return None
        if self._ann is None:
            from .ann import AnnIndex, faiss_available

            if not faiss_available():
                if self.ann == "hnsw":
                    raise TerminologyError("ann = \"hnsw\" needs faiss: pip install 'medtext[trf]'",
                                           self.index.path)
                if not self._ann_warned:
                    log.warning("dense search over %d rows is exact and slow without faiss "
                                "(pip install 'medtext[trf]' for an HNSW graph)", n_rows)
                    self._ann_warned = True
                return None
            self._ann = AnnIndex.load_or_build(self.index)
        return self._ann

    def _dense_scores(self, rows: numpy.ndarray, q: numpy.ndarray, block: int = 65536) -> numpy.ndarray:
        m = self.index.embeddings
        out = numpy.empty((len(rows), q.shape[0]), dtype="float32")
        contiguous = len(rows) and rows[-1] - rows[0] + 1 == len(rows)
        for s in range(0, len(rows), block):
            if contiguous:  # a slice of the memory map: no gather copy
                a = numpy.asarray(m[rows[0] + s:rows[0] + min(s + block, len(rows))], dtype="float32")
            else:
                a = numpy.asarray(m[rows[s:s + block]], dtype="float32")
            out[s:s + block] = a @ q.T
        return out

    def _cid(self, system: str, code: str) -> int:
        return self.index._rows().get((system, code), -1)

    def _pref_norm(self, c: int) -> str:
        """Concept ``c``'s preferred term, normalised (cached)."""
        n = self._pref_norms.get(c)
        if n is None:
            n = self._pref_norms[c] = normalize(self.c_term[c])
        return n

    def _candidate(self, c: int, *, lexical: float = 0.0, dense: float = 0.0, matched: str = "") -> Candidate:
        return Candidate(self.c_system[c], self.c_code[c], self.c_term[c], self.c_kind[c], 0.0,
                         lexical=lexical, dense=dense, matched=matched)

    def _lexical_score(self, q: str, c: int, factor: numpy.ndarray | None, label: str) -> float:
        """:func:`.retrieval.fuzzy_score` of concept ``c``'s best synonym that ``label`` reads;
        ``factor``: per synonym, 1 - penalty x the query's share of swapped words (None: no penalty)."""
        best = 0.0
        for r in self.concept_rows_read(c, label):
            n = self.lexical.norm[r]
            if n == q:
                return 1.0
            s = fuzzy_score(q, n, 0.0) * (factor[r] if factor is not None else 1.0)
            best = max(best, min(s, 0.99))
        return best

    def describe(self) -> dict[str, Any]:
        return {"index": self.index.meta.get("name"), "bi_encoder": self.bi_name,
                "cross_encoder": self.cross_name, "dense_weight": self.dense_weight,
                "dense_weights": self.dense_weights or None,
                "rerank_weight": self.rerank_weight if self.cross is not None else None,
                "dense_search": ("hnsw" if self._ann is not None else "exact") if self.bi_model is not None else None,
                "nil_threshold": self.nil_threshold, "nil_thresholds": self.nil_thresholds or None,
                "examples": len(self.ex_norm), "example_tfidf_weight": self.example_tfidf_weight,
                "substitution_penalty": self.substitution_penalty,
                "classifier": (self.classifier.meta.get("name") or "mention classifier") if self.classifier is not None else None,
                "classifier_weight": self.classifier_weight if self.classifier is not None else None,
                # an ensemble's members' weights (scaled to sum 1), else None
                "ensemble_weights": (self.classifier.meta.get("weights") if self.classifier is not None else None),
                "classifier_prior": self.classifier_prior if self.clf_adjust is not None else None,
                "dense_variant": self.dense_variant if self.bi_model is not None else None,
                "expand_abbreviations": sorted(self.expand_labels),
                "calques": sorted(self.calque_labels),
                "narrower": sorted(self.narrower_labels),
                "prior_weight": self.prior_weight}
