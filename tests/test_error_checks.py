"""Consistency checks of medtext_errors: each rule with cases that must fire and cases that must
stay silent, over small knowledge tables written here (and a few over the packaged tables)."""

from __future__ import annotations

import pytest

from medtext.components.error_checks import CHECKS, Knowledge, KnowledgeError, check_text

DRUGS = """# test drugs
drug\tsynonyms\tclasses\tunit\tmin_dose\tmax_dose\troutes\tschedule
metoprolol\tlopressor\tbeta-blocker\tmg\t12.5\t200\tpo|iv\t
amoxicillin\tamoxil\tpenicillin|beta-lactam|antibacterial\tmg\t250\t1000\tpo\t
ampicillin\t\tpenicillin|beta-lactam|antibacterial\tmg\t250\t2000\tiv|im|po\t
cefazolin\tancef\tcephalosporin|beta-lactam|antibacterial\tmg\t500\t2000\tiv|im\t
ceftriaxone\trocephin\tcephalosporin|beta-lactam|antibacterial\tmg\t250\t2000\tiv|im\t
vancomycin\tvanco\tglycopeptide|antibacterial\tmg\t125\t2500\tiv|po\t
azithromycin\tzithromax\tmacrolide|antibacterial\tmg\t250\t500\tpo|iv\t
insulin glargine\tlantus\tinsulin\tunits\t2\t100\tsc\t
methotrexate\t\tdmard\tmg\t2.5\t25\tpo|sc|im|iv\tweekly
levothyroxine\tsynthroid\tthyroid\tmcg\t12.5\t300\tpo|iv\t
ibuprofen\tmotrin\tnsaid|analgesic\tmg\t200\t800\tpo|iv\t
"""
CLASSES = """class\tsynonyms
penicillin\tpenicillins|pcn
beta-lactam\tbeta-lactams
cephalosporin\tcephalosporins
glycopeptide\tglycopeptides
macrolide\tmacrolides
antibacterial\tantibiotics
beta-blocker\tbeta blockers
insulin\tinsulins
dmard\tdmards
thyroid\tthyroid hormones
nsaid\tnsaids
analgesic\tanalgesics
"""
ORGANISMS = """organism\tsynonyms\tkind\tinactive\tfirst_line
mrsa\tmethicillin-resistant staphylococcus aureus\tgram-positive\tpenicillin|cephalosporin\tvancomycin
mycoplasma pneumoniae\tmycoplasma\tatypical\tbeta-lactam|glycopeptide\tazithromycin
"""
LABS = """test\tsynonyms\tunit\tlow\thigh\thigh_terms\tlow_terms
potassium\tk|k+\tmmol/l\t3.5\t5.1\thyperkalemia\thypokalemia
hemoglobin\thgb|hb\tg/dl\t12\t17.5\tpolycythemia\tanemia
white blood cell count\twbc|leukocyte count\t10^3/ul\t4\t11\tleukocytosis\tleukopenia
"""


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    d = tmp_path_factory.mktemp("kb")
    for name, body in (("drugs", DRUGS), ("drug_classes", CLASSES), ("organisms", ORGANISMS), ("labs", LABS)):
        (d / f"{name}.tsv").write_text(body)
    return Knowledge.load(d)


def fired(text, check, kb):
    return [f for f in check_text(text, [check], kb=kb)]


@pytest.mark.parametrize("text,expect_fix", [
    ("Started metoprolol 500 mg PO twice daily.", "Started metoprolol 50 mg PO twice daily."),
    ("Metoprolol 2.5 g orally.", None),
    ("Levothyroxine 1000 mcg daily.", "Levothyroxine 100 mcg daily."),
    ("Amoxicillin 5000 mg three times daily.", "Amoxicillin 500 mg three times daily."),
    ("Insulin glargine 400 units at night.", "Insulin glargine 40 units at night."),
])
def test_dose_range_fires(kb, text, expect_fix):
    out = fired(text, "dose_range", kb)
    assert len(out) == 1, out
    f = out[0]
    assert f["type"] == "pharmacotherapy" and f["detector"] == "checks:dose_range"
    assert (f["start"], f["end"]) == (0, len(text))
    if expect_fix:
        assert f["correction"] == expect_fix


@pytest.mark.parametrize("text", [
    "Started metoprolol 25 mg PO twice daily.",
    "Metoprolol 0.1 g orally.",  # 100 mg after unit conversion
    "Amoxicillin 1-2 g per dose was discussed.",  # a range: left alone
    "Metoprolol was increased; potassium 500.",  # a number without a unit
    "Levothyroxine 0.1 mg daily.",  # 100 mcg
    "Ampicillin 2 g IV every 6 hours.",
])
def test_dose_range_silent(kb, text):
    assert fired(text, "dose_range", kb) == []


def test_route(kb):
    assert fired("Insulin glargine 10 units PO at night.", "route", kb)[0]["message"].startswith("insulin-glargine is not given PO")
    assert fired("Ceftriaxone 1 g by mouth daily.", "route", kb)
    assert fired("Insulin glargine 10 units subcutaneously at night.", "route", kb) == []
    assert fired("Vancomycin 125 mg PO four times daily for C. difficile.", "route", kb) == []
    assert fired("Metoprolol 25 mg.", "route", kb) == []  # no route stated


def test_schedule(kb):
    out = fired("Methotrexate 15 mg PO daily for rheumatoid arthritis.", "schedule", kb)
    assert out and out[0]["correction"] == "Methotrexate 15 mg PO weekly for rheumatoid arthritis."
    assert fired("Methotrexate 15 mg PO weekly (every Monday), folic acid daily.", "schedule", kb) == []
    assert fired("Metoprolol 25 mg daily.", "schedule", kb) == []


@pytest.mark.parametrize("text,fix", [
    ("Lisinopril 10 mg QD.", "Lisinopril 10 mg daily."),
    ("Aspirin 81 mg q.o.d.", "Aspirin 81 mg every other day."),
    ("Insulin 10 U with meals.", "Insulin 10 units with meals."),
    ("Warfarin 5.0 mg tonight.", "Warfarin 5 mg tonight."),
    ("Colchicine .5 mg twice daily.", "Colchicine 0.5 mg twice daily."),
    ("MSO4 2 mg IV for pain.", None),
])
def test_do_not_use(kb, text, fix):
    out = fired(text, "do_not_use", kb)
    assert len(out) == 1 and out[0]["correction"] == fix


@pytest.mark.parametrize("text", ["Patient is on 10 units of insulin daily.", "Follow up in 2.5 weeks.",
                                  "Quadriceps strength 4/5.", "Hemoglobin 10.0 g/dL."])
def test_do_not_use_silent(kb, text):
    assert fired(text, "do_not_use", kb) == []


def test_allergy_same_drug_class_and_derived(kb):
    same = fired("Allergies: amoxicillin (hives). Plan: start amoxicillin 500 mg PO.", "allergy", kb)
    assert len(same) == 1 and "allergy to it" in same[0]["message"] and same[0]["start"] > 0
    cls = fired("Allergic to penicillin. Started ampicillin 1 g IV.", "allergy", kb)
    assert len(cls) == 1 and "penicillin allergy" in cls[0]["message"]
    derived = fired("Allergy: amoxicillin. Start ampicillin 1 g IV.", "allergy", kb)
    assert len(derived) == 1 and "same class" in derived[0]["message"]


@pytest.mark.parametrize("text", [
    "Allergies: NKDA. Start amoxicillin 500 mg PO.",
    "Allergic to penicillin. Started azithromycin 500 mg.",
    "Allergic to penicillin, so avoid amoxicillin.",
    "Start amoxicillin 500 mg PO.",  # no allergy listed
    "Allergies: penicillin (rash with amoxicillin as a child).",
])
def test_allergy_silent(kb, text):
    assert fired(text, "allergy", kb) == []


def test_organism_antibiotic(kb):
    out = fired("Blood cultures grew MRSA. Started cefazolin 2 g IV every 8 hours.", "organism_antibiotic", kb)
    assert len(out) == 1
    assert out[0]["correction"] == "Started vancomycin 2 g IV every 8 hours."
    assert fired("Blood cultures grew MRSA. Started vancomycin 1 g IV.", "organism_antibiotic", kb) == []
    # something active given alongside
    assert fired("MRSA bacteremia: vancomycin and cefazolin started.", "organism_antibiotic", kb) == []
    # organism negated
    assert fired("Nasal swab negative for MRSA. Started cefazolin 2 g IV.", "organism_antibiotic", kb) == []
    assert fired("Mycoplasma pneumoniae on PCR; started ceftriaxone 1 g IV.", "organism_antibiotic", kb)
    # something active named between the organism and the drug
    assert fired("Stop linezolid; if MRSA coverage still needed, vancomycin. Dose cefazolin for CRRT.",
                 "organism_antibiotic", kb) == []


@pytest.mark.parametrize("text,fix", [
    ("Potassium 6.1 mmol/L, low.", "Potassium 6.1 mmol/L, high."),
    ("Hypokalemia with a potassium of 5.9.", "Hyperkalemia with a potassium of 5.9."),
    ("Hemoglobin 7.1 g/dL, normal.", "Hemoglobin 7.1 g/dL, low."),
    ("Leukocyte count 2,100/mm3, elevated.", "Leukocyte count 2,100/mm3, low."),
    ("Elevated WBC of 2.0.", None),
])
def test_lab_interpretation_fires(kb, text, fix):
    out = fired(text, "lab_interpretation", kb)
    assert len(out) == 1, out
    assert out[0]["type"] == "diagnosis"
    if fix:
        assert out[0]["correction"].lower() == fix.lower()


@pytest.mark.parametrize("text", [
    "Potassium 3.1 mmol/L, low.",
    "Hypokalemia with a potassium of 3.0.",
    "Hemoglobin 13.5 g/dL, normal.",
    "Hemoglobin 120 g/L, normal.",  # converted
    "Glucose 250, elevated.",  # not in the test tables
    "Potassium 3.4, hypokalemia resolved after repletion, now 4.2.",
    "WBC 15.2 and creatinine low.",  # "low" describes something else
    "Hypokalemia: potassium 40 mEq PO given.",  # an amount given, not a level
])
def test_lab_interpretation_silent(kb, text):
    assert fired(text, "lab_interpretation", kb) == []


def test_every_check_has_a_test():
    from pathlib import Path

    here = Path(__file__).read_text() + (Path(__file__).parent / "test_errors.py").read_text()
    assert all(f'"{name}"' in here or f"checks:{name}" in here for name in CHECKS)


def test_malformed_tables_name_file_and_line(tmp_path):
    for name, body in (("drugs", DRUGS), ("drug_classes", CLASSES), ("organisms", ORGANISMS), ("labs", LABS)):
        (tmp_path / f"{name}.tsv").write_text(body)
    (tmp_path / "labs.tsv").write_text(LABS + "sodium\tna\tmmol/l\t145\t135\t\t\n")
    with pytest.raises(KnowledgeError, match=r"labs.tsv:5: low must be below high"):
        Knowledge.load(tmp_path)
    (tmp_path / "labs.tsv").write_text(LABS)
    (tmp_path / "drugs.tsv").write_text(DRUGS + "foo\t\tnot-a-class\tmg\t1\t2\tpo\t\n")
    with pytest.raises(KnowledgeError, match=r"drugs.tsv:14: classes \['not-a-class'\]"):
        Knowledge.load(tmp_path)
    (tmp_path / "drugs.tsv").write_text(DRUGS + "foo\tbar\n")
    with pytest.raises(KnowledgeError, match=r"drugs.tsv:14: expected 8 tab-separated fields, got 2"):
        Knowledge.load(tmp_path)
    (tmp_path / "drugs.tsv").write_text("drug\tname\n")
    with pytest.raises(KnowledgeError, match=r"drugs.tsv:1: header must be"):
        Knowledge.load(tmp_path)


def test_packaged_tables_load_and_catch_classics():
    kb = Knowledge.load()
    assert len(kb.drugs) >= 100 and len(kb.organisms) >= 30 and len(kb.labs) >= 25
    assert check_text("Metoprolol tartrate 500 mg PO BID.", ["dose_range"])
    assert check_text("Methotrexate 10 mg PO daily.", ["schedule"])
    assert check_text("MRSA grew from the wound culture. Started on cefazolin.", ["organism_antibiotic"])
    assert check_text("Potassium 6.4 mmol/L (low).", ["lab_interpretation"])
    assert check_text("Allergies: penicillin. Plan: amoxicillin 500 mg PO TID.", ["allergy"])


def test_no_sentences_and_list_items(kb):
    assert check_text("", kb=kb) == []
    assert check_text("   \n\n  ", kb=kb) == []
    listed = "Medications:\n- metoprolol 25 mg PO BID\n- amoxicillin 5000 mg PO TID\n- ibuprofen 400 mg PO\n"
    out = check_text(listed, kb=kb)
    assert [f["detector"] for f in out] == ["checks:dose_range"]
    assert listed[out[0]["start"]:out[0]["end"]] == "- amoxicillin 5000 mg PO TID"


def test_laterality(kb):
    assert fired("He underwent right knee arthroscopy. Left knee swelling noted on day 2.", "laterality", kb)
    # a report that describes each side under its own heading
    report = ("FINDINGS:\nRight kidney: 11.8 cm in length. Moderate hydronephrosis.\n"
              "Left kidney: 11.2 cm in length. Mild hydronephrosis.\n")
    assert fired(report, "laterality", kb) == []
    # ... but a mention outside the headings still counts
    assert fired("Right foot pain 3/10.\nRight foot: wound vac intact.\nLeft foot: callus.\nNWB left foot.",
                 "laterality", kb)
    # one heading is not both: the other side is still a mix-up
    assert fired("Right knee: effusion. Plan left knee arthroscopy.", "laterality", kb)
