"""``medtext.clinical_tokenizer.v1``: spaCy's English tokenizer plus clinical shorthand.

Keeps dosing abbreviations ("b.i.d.", "p.r.n.", "q.h.s.") and slash shorthand ("s/p", "h/o",
"r/o", "w/o") as single tokens, so sentence splitting and matching see them whole (word
abbreviations with one period, "hr." or "dx.", in lower case and capitalised only: "HR." and
"NO." at the end of a sentence are a short form and a full stop). Splits a closing parenthesis
from a hyphenated word after it ("(PPA)-induced" -> "PPA", ")", "-induced") and a suspended
hyphen from its word ("pilocarpine-, kainic acid- and NMDA-induced"). Chemical notation that
would hide a name inside a token is split too: isotope labels ("[3H]spiperone",
"[125I]MIBG"), stereo descriptors ("(-)-baclofen", "(+/-)-SM 21"), charges and receptor
subtypes after a word ("Na(+)", "Ca(2+)", "GABA(A)") and "+" between names ("saline+DMSO").
A hyphen glued to the start of a word comes off it, so a list item "-Lisinopril 10 mg" is the
marker "-" and the drug.
"""

from __future__ import annotations

from spacy.attrs import NORM, ORTH
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex, registry

#: abbreviations that contain periods; the value is the expansion used as the token's norm
DOTTED_ABBREVIATIONS: dict[str, str] = {
    "b.i.d.": "twice a day", "t.i.d.": "three times a day", "q.i.d.": "four times a day",
    "q.d.": "every day", "q.o.d.": "every other day", "p.r.n.": "as needed",
    "p.o.": "by mouth", "q.h.s.": "at bedtime", "h.s.": "at bedtime", "a.c.": "before meals",
    "p.c.": "after meals", "i.v.": "intravenous", "i.m.": "intramuscular", "s.c.": "subcutaneous",
    "s.l.": "sublingual", "a.m.": "morning", "p.m.": "afternoon", "e.g.": "for example",
    "i.e.": "that is", "approx.": "approximately", "y.o.": "years old", "pt.": "patient",
    "pts.": "patients", "hx.": "history", "dx.": "diagnosis", "tx.": "treatment",
    "rx.": "prescription", "sx.": "symptoms", "fx.": "fracture", "vs.": "versus",
    "wk.": "week", "wks.": "weeks", "mo.": "month", "mos.": "months", "yr.": "year",
    "yrs.": "years", "min.": "minute", "mins.": "minutes", "hr.": "hour", "hrs.": "hours",
    "resp.": "respiratory", "cont.": "continue", "neg.": "negative", "pos.": "positive",
    "no.": "number", "st.": "saint", "prof.": "professor", "dept.": "department",
}

#: dosing abbreviations that may end a sentence ("Take 25 mg b.i.d. Continue aspirin.")
SENTENCE_FINAL_ABBREVIATIONS = frozenset({
    "b.i.d.", "t.i.d.", "q.i.d.", "q.d.", "q.o.d.", "p.r.n.", "p.o.", "q.h.s.", "h.s.", "a.c.",
    "p.c.", "i.v.", "i.m.", "s.c.", "s.l.", "a.m.", "p.m.", "etc.", "hrs.", "mins.", "wks.",
    "yrs.", "mos.",
})

SLASH_SHORTHAND: dict[str, str] = {
    "s/p": "status post", "h/o": "history of", "r/o": "rule out", "w/": "with",
    "w/o": "without", "c/o": "complains of", "n/v": "nausea and vomiting", "a/p":
    "assessment and plan", "b/l": "bilateral", "f/u": "follow up", "d/c": "discontinue",
    "y/o": "years old", "n/v/d": "nausea, vomiting and diarrhea", "c/w": "consistent with",
    "p/w": "presents with", "x/r": "x-ray",
}


#: infixes added to spaCy's English ones
INFIXES = (
    r"\)(?=-[A-Za-z])",                          # "(PPA)-induced": ")" | "-induced"
    r"(?<=[+-]\))-(?=[A-Za-z])",                  # "(-)-baclofen": the hyphen after a stereo descriptor
    r"(?<=[A-Z]\])(?=[A-Za-z])",                  # "[3H]spiperone", "[125I]MIBG": label | name
    r"(?<=[A-Za-z])\((?=\d?[+-](?:\)|$))",         # "Na(+)", "Ca(2+)"
    r"(?<=[A-Za-z])\((?=[A-Z0-9]{1,3}(?:\)|$))",    # "GABA(A)", "5-HT(2C)"
    r"(?<=[A-Za-z])\+(?=[A-Za-z]{2})",            # "saline+DMSO"
)


def add_clinical_special_cases(tokenizer) -> None:
    for table in (DOTTED_ABBREVIATIONS, SLASH_SHORTHAND):
        for short, norm in table.items():
            variants = {short, short.capitalize()}
            if short.count(".") != 1:  # "B.I.D.", "S/P"; not "HR." (heart rate) or "NO." (nitric oxide)
                variants.add(short.upper())
            for variant in variants:
                tokenizer.add_special_case(variant, [{ORTH: variant, NORM: norm}])


@registry.tokenizers("medtext.clinical_tokenizer.v1")
def create_clinical_tokenizer():
    def create(nlp):
        tokenizer = registry.tokenizers.get("spacy.Tokenizer.v1")()(nlp)
        add_clinical_special_cases(tokenizer)
        tokenizer.infix_finditer = compile_infix_regex([*nlp.Defaults.infixes, *INFIXES]).finditer
        # "(+)-cibenzoline": the parentheses go as prefixes, then the hyphen before the name;
        # "-Lisinopril" (a list item without a space): "-" | "Lisinopril"
        tokenizer.prefix_search = compile_prefix_regex([*nlp.Defaults.prefixes, r"-(?=[A-Za-z])"]).search
        tokenizer.suffix_search = compile_suffix_regex(
            [*nlp.Defaults.suffixes, r"(?<=[a-z]{3})-$"]).search
        return tokenizer

    return create
