"""Document-level consistency in medtext_ner (defined abbreviations, repeated mentions) and the
clinical tokenizer's splits it relies on."""

from __future__ import annotations

import spacy

from medtext.components.propagation import abbreviation_definitions, long_form_start


def _ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_long_form_start_schwartz_hearst():
    text = "symptoms in the irritable bowel syndrome"
    assert text[long_form_start("IBS", text):] == "irritable bowel syndrome"
    text = "a short epsilon-aminocaproic acid"
    assert text[long_form_start("EACA", text):] == "epsilon-aminocaproic acid"
    text = "with 5-hydroxyindoleacetic acid"
    assert text[long_form_start("5-HIAA", text):] == "5-hydroxyindoleacetic acid"
    assert long_form_start("XYZ", "heart failure") is None
    # the first letter must start a word: "c" inside "chef" and "hf" do not spell "CHF" from a word start
    assert long_form_start("QT", "the heart") is None


def test_abbreviation_definitions():
    nlp = spacy.blank("en")
    doc = nlp("Rats received streptozotocin (STZ) or saline (n = 5; p < 0.05). Chronic heart failure "
              "(CHF) patients (see above) took 2 mg (IV).")
    pairs = [(lf.text, sf.text) for lf, sf in abbreviation_definitions(doc)]
    assert pairs == [("streptozotocin", "STZ"), ("Chronic heart failure", "CHF")]


def _pipeline(patterns, propagate=True):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")  # stands in for a statistical NER
    ruler.add_patterns(patterns)
    nlp.add_pipe("medtext_ner", config={"use_matcher": False, "propagate": propagate})
    return nlp


def test_defined_abbreviation_takes_the_long_form_label_everywhere():
    nlp = _pipeline([{"label": "PROBLEM", "pattern": "irritable bowel syndrome"},
                     {"label": "DRUG", "pattern": [{"LOWER": "streptozotocin"}]}])
    doc = nlp("Patients with irritable bowel syndrome (IBS) were studied. In IBS, pain is common. "
              "Streptozotocin (STZ) was given; STZ caused diabetes, unlike ibs.")
    ents = _ents(doc)
    assert ents.count(("IBS", "PROBLEM")) == 2  # the definition and the later use
    assert ents.count(("STZ", "DRUG")) == 2
    assert ("ibs", "PROBLEM") not in ents  # short forms match only as written
    off = _pipeline([{"label": "PROBLEM", "pattern": "irritable bowel syndrome"}], propagate=False)
    assert _ents(off("Patients with irritable bowel syndrome (IBS). In IBS, pain.")) == [
        ("irritable bowel syndrome", "PROBLEM")]


def test_an_entity_equal_to_a_defined_short_form_takes_its_label():
    nlp = _pipeline([{"label": "DRUG", "pattern": "dexmedetomidine"}, {"label": "TEST", "pattern": "DMED"}])
    doc = nlp("The agonist dexmedetomidine (DMED) was given. DMED lowered the heart rate.")
    assert _ents(doc) == [("dexmedetomidine", "DRUG"), ("DMED", "DRUG"), ("DMED", "DRUG")]


def test_repeated_mentions_take_the_label_unless_short_or_ambiguous():
    nlp = _pipeline([{"label": "DRUG", "pattern": "Cisplatin"},
                     {"label": "PROBLEM", "pattern": "nephrotoxicity"},
                     {"label": "PROBLEM", "pattern": [{"ORTH": "pain"}, {"ORTH": "!"}]},
                     {"label": "DRUG", "pattern": "Lithium"},
                     {"label": "TEST", "pattern": "LITHIUM"}])
    doc = nlp("Cisplatin causes nephrotoxicity. After cisplatin, Nephrotoxicity rose; pain ! then pain. "
              "Lithium and LITHIUM and lithium.")
    ents = _ents(doc)
    assert ("cisplatin", "DRUG") in ents and ("Nephrotoxicity", "PROBLEM") in ents  # any case
    assert ("pain", "PROBLEM") not in ents  # "pain !" repeats only as itself
    assert ("lithium", "DRUG") not in ents and ("lithium", "TEST") not in ents  # two labels: no repeat


def test_propagation_respects_section_headers_and_existing_entities():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PROBLEM", "pattern": "pneumonia"},
                        {"label": "PROBLEM", "pattern": "aspiration pneumonia"}])
    nlp.add_pipe("medtext_ner", config={"use_matcher": False, "propagate": True})
    doc = nlp.make_doc("Pneumonia\nHe had pneumonia and aspiration pneumonia.")
    doc.spans["section_headers"] = [doc[0:1]]
    for name, proc in nlp.pipeline:
        doc = proc(doc)
    assert _ents(doc) == [("pneumonia", "PROBLEM"), ("aspiration pneumonia", "PROBLEM")]


def test_clinical_tokenizer_splits_parenthesis_hyphen_and_suspended_hyphens():
    from medtext.train import load_tokenizer_only

    nlp = load_tokenizer_only()

    def toks(text):
        return [t.text for t in nlp(text)]

    assert toks("ethambutol (EMB)-induced neuropathy") == [
        "ethambutol", "(", "EMB", ")", "-induced", "neuropathy"]
    assert toks("pilocarpine-, kainic acid- and NMDA") == [
        "pilocarpine", "-", ",", "kainic", "acid", "-", "and", "NMDA"]
    # what stays as it was: shorthand, dotted abbreviations, hyphenated words, upper-case short forms
    assert toks("s/p CABG, HTN. b.i.d. x-ray (see above)") == [
        "s/p", "CABG", ",", "HTN", ".", "b.i.d.", "x", "-", "ray", "(", "see", "above", ")"]
