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
    # brackets, a short form closed by ":", one capital letter; not a lower-case letter or a digit
    doc = nlp("Aspirin (acetylsalicylic acid [ASA]) and diethylnitrosamine (DEN: 10 mg/kg) or "
              "testosterone (T, 5 mg/kg) but not group b (b) or dose 5 (5).")
    pairs = [(lf.text, sf.text) for lf, sf in abbreviation_definitions(doc)]
    assert pairs == [("acetylsalicylic acid", "ASA"), ("diethylnitrosamine", "DEN"), ("testosterone", "T")]


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


def test_one_letter_short_form_and_long_form_inside_a_longer_entity():
    nlp = _pipeline([{"label": "DRUG", "pattern": "testosterone"},
                     {"label": "PROBLEM", "pattern": "acute myocardial infarction"}])
    doc = nlp("Rats received testosterone (T, 5 mg/kg). T alone had no effect; group t did. "
              "Two had acute myocardial infarction (MI). MI was fatal.")
    ents = _ents(doc)
    assert ents.count(("T", "DRUG")) == 2 and ("t", "DRUG") not in ents
    # "MI" spells "myocardial infarction"; the entity reaching the parenthesis also holds "acute"
    assert ents.count(("MI", "PROBLEM")) == 2


def test_short_form_of_a_long_form_with_no_entity_is_no_entity():
    nlp = _pipeline([{"label": "PROBLEM", "pattern": "HT"}, {"label": "PROBLEM", "pattern": "BMD"},
                     {"label": "DRUG", "pattern": "choline"}, {"label": "TEST", "pattern": "ChAT"},
                     {"label": "PROBLEM", "pattern": "ED"}])
    doc = nlp("Hormone therapy (HT) is used. HT raised the risk of ED. Bone mineral density (BMD) fell; "
              "BMD was low. Its choline acetyltransferase (ChAT) and ChAT activity.")
    ents = _ents(doc)
    assert ("HT", "PROBLEM") not in ents and ("BMD", "PROBLEM") not in ents
    assert ("ED", "PROBLEM") in ents  # not defined in the text: untouched
    # an entity on part of the long form ("choline") leaves the short form alone
    assert ents.count(("ChAT", "TEST")) == 2
    # defined once with an entity and once without: the entity's label wins
    nlp = _pipeline([{"label": "PROBLEM", "pattern": "HT"}, {"label": "PROBLEM", "pattern": "hypertension"}])
    ents = _ents(nlp("Hormone therapy (HT) and hypertension (HT). HT was frequent."))
    assert ents.count(("HT", "PROBLEM")) == 3


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


def test_clinical_tokenizer_splits():
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
    assert toks("S/P B.I.D. Hr. hr. 2 hrs. HR. NO.") == [
        "S/P", "B.I.D.", "Hr.", "hr.", "2", "hrs.", "HR", ".", "NO", "."]
    # chemical notation: isotope labels, stereo descriptors, charges, receptor subtypes, "+"
    assert toks("[3H]spiperone and L-[3H]nicotine") == ["[", "3H]", "spiperone", "and", "L-[3H]", "nicotine"]
    assert toks("(-)-baclofen or (+/-)-SM 21") == [
        "(", "-", ")", "-", "baclofen", "or", "(", "+", "/-", ")", "-", "SM", "21"]
    assert toks("Na(+) and Ca(2+) via GABA(A)") == [
        "Na", "(", "+", ")", "and", "Ca", "(", "2", "+", ")", "via", "GABA", "(", "A", ")"]
    assert toks("saline+DMSO, 2+ edema, K+") == ["saline", "+", "DMSO", ",", "2", "+", "edema", ",", "K+"]
    assert toks("-Lisinopril 10 mg, -2.5") == ["-", "Lisinopril", "10", "mg", ",", "-2.5"]
