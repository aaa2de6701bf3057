from __future__ import annotations

import subprocess
import sys

import pytest

NOTE = """CHIEF COMPLAINT: Shortness of breath.

History of Present Illness:
67 yo M with h/o CHF, s/p CABG 2015, presents with
worsening dyspnea. Seen by Dr. Patel in clinic. He denies chest pain.
Medications:
1. Metoprolol 25 mg p.o. b.i.d.
2. Furosemide 40 mg IV q12h
Allergies: NKDA.
PHYSICAL EXAM
Lungs: crackles at bases.
A/P: CHF exacerbation. Diurese.
"""


def test_sections_labels_and_extents(nlp):
    doc = nlp(NOTE)
    secs = [(s.label_, s.text.split("\n")[0]) for s in doc.spans["sections"]]
    assert [label for label, _ in secs] == ["chief_complaint", "hpi", "medications", "allergies",
                                            "physical_exam", "assessment_plan"]
    hpi = doc.spans["sections"][1]
    assert hpi.text.startswith("History of Present Illness:") and hpi.text.endswith("denies chest pain.")
    headers = [h.text for h in doc.spans["section_headers"]]
    assert headers[:2] == ["CHIEF COMPLAINT:", "History of Present Illness:"]
    ent = doc.char_span(NOTE.index("Metoprolol"), NOTE.index("Metoprolol") + 10)
    assert ent._.section == "medications"


@pytest.mark.parametrize("text,label", [
    ("FINDINGS:\nNo focal consolidation.", "findings"),
    ("IMPRESSION\n1. No acute process.", "impression"),
    ("Impression: normal.", "impression"),
    ("PMH: HTN, DM2", "pmh"),
    ("Social Hx: never smoker", "social_history"),
    ("FH: mother had breast cancer", "family_history"),
    ("ROS: negative", "ros"),
    ("Labs: Na 138", "labs"),
    ("Assessment and Plan: admit", "assessment_plan"),
    ("Recommendations: follow-up CT", "recommendations"),
    ("S: feels better", "subjective"),
    ("INDICATION: cough", "indication"),
    ("  2) Discharge Medications: aspirin", "medications"),
])
def test_header_variants(nlp, text, label):
    doc = nlp(text)
    assert [s.label_ for s in doc.spans["sections"]] == [label]


@pytest.mark.parametrize("text", [
    "Findings were discussed with the patient.",   # sentence opening with a header word
    "The plan is to discharge tomorrow.",
    "s he reports pain",                            # one-letter header needs a colon
])
def test_not_headers(nlp, text):
    doc = nlp(text)
    assert [s.label_ for s in doc.spans["sections"] if s.label_ != "other"] == []


def test_unknown_capital_header_and_config_patterns():
    import medtext

    nlp = medtext.load(medtext_sections={"patterns": {"hpi": ["story so far"]}})
    doc = nlp("STORY SO FAR: fell at home.\nWOUND CARE: daily dressing.")
    assert [s.label_ for s in doc.spans["sections"]] == ["hpi", "other"]
    nlp2 = medtext.load(medtext_sections={"detect_unknown": False})
    doc2 = nlp2("WOUND CARE: daily.")
    assert [s.label_ for s in doc2.spans["sections"]] == []


def test_bad_section_pattern_config():
    import medtext
    from medtext.errors import ConfigError

    with pytest.raises(ConfigError, match="list of header phrases"):
        medtext.load(medtext_sections={"patterns": {"hpi": "story"}})


def test_sentences(nlp):
    sents = [s.text.strip() for s in nlp(NOTE).sents]
    assert "67 yo M with h/o CHF, s/p CABG 2015, presents with\nworsening dyspnea." in sents
    assert "Seen by Dr. Patel in clinic." in sents          # "Dr." does not end a sentence
    assert "1. Metoprolol 25 mg p.o. b.i.d." in sents       # list items, dotted abbreviations
    assert "2. Furosemide 40 mg IV q12h" in sents
    assert "PHYSICAL EXAM" in sents                          # header without a period
    assert "CHF exacerbation." in sents and "Diurese." in sents


@pytest.mark.parametrize("text,expected", [
    ("No fever, chills or rigors. Temp 38.5 C.", ["No fever, chills or rigors.", "Temp 38.5 C."]),
    ("Take 25 mg b.i.d. Continue aspirin.", ["Take 25 mg b.i.d.", "Continue aspirin."]),
    ("Pt seen w/ wife.\n- walker at home\n- stairs x4", ["Pt seen w/ wife.", "- walker at home", "- stairs x4"]),
    ("1. Effusion. 2. Atelectasis.", ["1. Effusion.", "2. Atelectasis."]),
    ("Alert and oriented\nLungs clear", ["Alert and oriented", "Lungs clear"]),
    ("Pain in the left\nknee and hip", ["Pain in the left\nknee and hip"]),
    ("Seen by\nDr. Lee today.", ["Seen by\nDr. Lee today."]),
    ("First para\n\nsecond para", ["First para", "second para"]),
])
def test_sentence_cases(nlp, text, expected):
    assert [s.text.strip() for s in nlp(text).sents] == expected


def test_tokenizer_keeps_clinical_shorthand(nlp):
    assert [t.text for t in nlp("s/p TKA, h/o MI, 5 mg q.h.s. p.r.n.")] == [
        "s/p", "TKA", ",", "h/o", "MI", ",", "5", "mg", "q.h.s.", "p.r.n."]


def test_factory_in_fresh_interpreter():
    # spaCy itself imports torch when it is installed (thinc); our rule components must not add it
    code = ("import sys, spacy; nlp = spacy.blank('en'); before = 'torch' in sys.modules; "
            "nlp.add_pipe('medtext_sections'); "
            "nlp.add_pipe('medtext_sentences'); d = nlp('FINDINGS: clear.\\nIMPRESSION: normal.'); "
            "print([s.label_ for s in d.spans['sections']], before == ('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['findings', 'impression'] True"
