"""Drug names for ``medtext_ner.drug_lexicon``: about 100k generic and brand names, offline.

The names come from the ``drug-named-entity-recognition`` package on PyPI (Fast Data Science,
MIT licence; built from the DrugBank open vocabulary with MeSH, MedlinePlus, PubChem, NHS and
Wikipedia names). Only its data file is read, never its code: the file is a bz2 pickle of
plain dicts and strings, read here by an unpickler that refuses every class, so it cannot run
anything. ``medtext_ner.drug_lexicon`` leaves out names of fewer than 5 characters (too
ambiguous as bare strings); the CNN's name flags (:mod:`components.lexicon_features`) read the
3-4 character ones as a list of their own.

Matching is on lower-cased text, whole tokens only, longest name first, up to 8 tokens.
"""

from __future__ import annotations

import bz2
import importlib.util
import pickle
import re
from functools import lru_cache
from pathlib import Path

from spacy.tokens import Doc, Span

PACKAGE = "drug_named_entity_recognition"
DATA_FILE = "drug_ner_dictionary.pkl.bz2"
MIN_CHARS = 5
MAX_TOKENS = 8
_FIRST_PIECE = re.compile(r"[^0-9a-z]")


class _PlainUnpickler(pickle.Unpickler):
    """Dicts, lists, strings and numbers only: any class or function is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{DATA_FILE} may hold plain data only, not {module}.{name}")


def data_path() -> Path:
    """The package's data file, found without importing the package."""
    from medtext.errors import ConfigError

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("medtext_ner.drug_lexicon needs the drug-named-entity-recognition package: "
                          "pip install drug-named-entity-recognition (or set drug_lexicon = false)")
    path = Path(next(iter(spec.submodule_search_locations))) / DATA_FILE
    if not path.is_file():
        raise ConfigError(f"medtext_ner.drug_lexicon: {path} is missing; reinstall drug-named-entity-recognition")
    return path


@lru_cache(maxsize=2)
def _all_names(path: Path) -> tuple[str, ...]:
    from medtext.errors import ConfigError

    try:
        with bz2.open(path) as f:
            data = _PlainUnpickler(f).load()
        names = data["drug_variant_to_canonical"]
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError) as e:
        raise ConfigError(f"medtext_ner.drug_lexicon: cannot read {path}: {e}") from e
    return tuple(str(k).strip().lower() for k in names)


@lru_cache(maxsize=4)
def drug_names(path: Path | None = None, min_chars: int = MIN_CHARS, max_chars: int | None = None) -> frozenset[str]:
    """Lower-cased drug names of ``min_chars`` (default :data:`MIN_CHARS`) to ``max_chars`` characters."""
    from .ner import NEVER_MATCH

    return frozenset(n for n in _all_names(path or data_path())
                     if len(n) >= min_chars and (max_chars is None or len(n) <= max_chars)
                     and n not in NEVER_MATCH)


@lru_cache(maxsize=4)
def first_words(names: frozenset[str]) -> frozenset[str]:
    """How a name's first token can look: its first word, or what comes before its first
    character that is not a letter or digit ("5" of "5-fluorouracil"). Tokens that are neither
    are skipped at the cost of one set lookup: most of a document. A name whose first token
    the tokenizer cuts otherwise ("glucose-6-phosphate dehydrogenase") is then missed, 7 of
    4,587 hits on the BC5CDR and NCBI-disease dev sets."""
    out = set()
    for name in names:
        out.add(name.split(" ", 1)[0])
        out.add(_FIRST_PIECE.split(name, 1)[0])
    out.discard("")
    return frozenset(out)


def name_matches(doc: Doc, names: frozenset[str], min_chars: int = MIN_CHARS):
    """(start, end) token offsets where a name of ``names`` is written (any case, whole tokens),
    the longest from each start token; matches may overlap."""
    text = doc.text
    starts = first_words(names)
    n = len(doc)
    for i, tok in enumerate(doc):
        if tok.lower_ not in starts:
            continue
        start = tok.idx
        for j in range(min(n, i + MAX_TOKENS) - 1, i - 1, -1):
            end = doc[j].idx + len(doc[j].text)
            if end - start >= min_chars and text[start:end].lower() in names:
                yield i, j + 1
                break


def match_drugs(doc: Doc, names: frozenset[str]) -> list[Span]:
    """``DRUG`` spans where a name is written (any case), longest first; they may overlap."""
    return [Span(doc, i, j, label="DRUG") for i, j in name_matches(doc, names)]
