"""``medtext_sentences``: sentence splitting that survives clinical text.

Rules, applied to tokens (no statistical model):

- a section header (from ``medtext_sections``, when it runs first) is a sentence of its own;
- a blank line ends a sentence; a list item ("1.", "2)", "-", "*", bullet) starts one;
- a line break ends a sentence when the line before ends with ``.``, ``:``, ``!`` or ``?``, or when
  the next line starts with a capital or a digit and the line before does not end mid-phrase
  (comma, "and", "of", "with", a title such as "Dr.");
- ``.``, ``!`` and ``?`` end a sentence before a capitalised word, a digit or a quote; titles
  ("Dr.", "Mr.") never do; dosing abbreviations ("b.i.d.", "p.r.n.") do before a capital.
"""

from __future__ import annotations

import re

import numpy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from .tokenizer import SENTENCE_FINAL_ABBREVIATIONS

_FINAL = {".", "!", "?", "...", "…"}
_LIST_MARKER = re.compile(r"^(?:\d{1,2}[.)]|[a-z][.)]|[-*\u2022\u25cf\u25aa>])$")
_CONTINUES = frozenset("""and or of with to the a an by for in on at from as but nor than
    without within into per via including due secondary dr. mr. mrs. ms. prof. vs.""".split())
_TITLES = frozenset({"dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "no.", "vs.", "e.g.", "i.e."})
_OPENERS = ('"', "'", "(", "[", "\u201c")


class ClinicalSentencizer:
    """Marks ``token.is_sent_start`` for every token; see the module docstring."""

    version = "1.0.0"

    def __init__(self, name: str, use_sections: bool = True):
        self.name = name
        self.use_sections = use_sections

    def __call__(self, doc: Doc) -> Doc:
        n = len(doc)
        if n == 0:
            return doc
        starts = [False] * n
        starts[0] = True
        toks = list(doc)

        def next_content(i: int) -> int:
            while i < n and toks[i].is_space:
                i += 1
            return i

        for i, tok in enumerate(toks):
            if tok.is_space:
                if "\n" not in tok.text and "\r" not in tok.text and "\f" not in tok.text:
                    continue
                j = next_content(i + 1)
                if j >= n:
                    continue
                prev = i - 1
                while prev >= 0 and toks[prev].is_space:
                    if "\n" in toks[prev].text:
                        break
                    prev -= 1
                blank = tok.text.count("\n") >= 2 or "\f" in tok.text or (
                    prev >= 0 and toks[prev].is_space) or any(
                    "\n" in toks[k].text for k in range(i + 1, j))
                if blank or prev < 0 or self._line_break_ends(toks[prev], toks[j]):
                    starts[j] = True
            elif tok.text in _FINAL or (tok.lower_ in SENTENCE_FINAL_ABBREVIATIONS):
                j = next_content(i + 1)
                if j < n and self._opens_sentence(toks[j]):
                    if tok.text in _FINAL and i > 0 and toks[i - 1].lower_ in _TITLES:
                        continue
                    if tok.text == "." and i > 0 and self._is_list_number(toks, i - 1):
                        continue
                    starts[j] = True
            if (_LIST_MARKER.match(tok.text) or self._is_list_number(toks, i)) and (
                    i == 0 or "\n" in toks[i - 1].text_with_ws):
                starts[i] = True
        if self.use_sections and "section_headers" in doc.spans:
            for h in doc.spans["section_headers"]:
                starts[h.start] = True
                j = next_content(h.end)
                if j < n:
                    starts[j] = True
                for k in range(h.start + 1, min(h.end, n)):
                    starts[k] = False
        # a sentence never starts on whitespace: move the start to the next content token
        for i in range(1, n):
            if starts[i] and toks[i].is_space:
                starts[i] = False
                j = next_content(i + 1)
                if j < n:
                    starts[j] = True
        # one array write: setting token.is_sent_start one by one re-checks the whole doc
        # each time (quadratic on long notes)
        flags = numpy.where(numpy.array(starts, dtype=bool), 1, -1).astype("int64")
        doc.from_array([SENT_START], flags.reshape(-1, 1).astype("uint64"))
        return doc

    @staticmethod
    def _is_list_number(toks, k: int) -> bool:
        """Is token ``k`` a short number opening its line ("1" of "1. Aspirin")?"""
        if not (toks[k].is_digit and len(toks[k].text) <= 2):
            return False
        return k == 0 or "\n" in toks[k - 1].text_with_ws or toks[k - 1].text in _FINAL

    @staticmethod
    def _opens_sentence(tok) -> bool:
        t = tok.text
        return t[:1].isupper() or t[:1].isdigit() or t.startswith(_OPENERS) or bool(
            _LIST_MARKER.match(t))

    @classmethod
    def _line_break_ends(cls, last, first) -> bool:
        """Does a single line break between token ``last`` and token ``first`` end a sentence?"""
        if last.text in _FINAL or last.text == ":" or last.text.endswith(":"):
            return True
        if _LIST_MARKER.match(first.text):
            return True
        if last.text in {",", ";", "-", "(", "/", "&"} or last.lower_ in _CONTINUES:
            return False
        return cls._opens_sentence(first)


@Language.factory("medtext_sentences", default_config={"use_sections": True})
def make_sentences(nlp: Language, name: str, use_sections: bool) -> ClinicalSentencizer:
    return ClinicalSentencizer(name, use_sections)
