"""medtext: clinical NLP on spaCy.

    >>> import medtext
    >>> nlp = medtext.load()                     # the "default" preset
    >>> doc = nlp("HPI: 70 yo F with cough.")
    >>> medtext.to_record(doc)["sections"][0]["label"]
    'hpi'

Importing ``medtext`` is light: spaCy and the pipeline load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load", "process", "to_record", "to_frame", "__version__"]


def __getattr__(name: str):
    if name in ("load", "process", "to_record", "make_doc"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "to_frame":
        from .frames import to_frame

        return to_frame
    raise AttributeError(f"module 'medtext' has no attribute {name!r}")
