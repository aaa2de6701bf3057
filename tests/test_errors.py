"""medtext_errors (component, presets, records), MEDEC reading and scoring, the trained
classifier (tiny, trained here) and the synthetic error injector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtext.corpora.medec import (RunAnswer, align_sentences, parse_sentences, read_medec, read_run,
                                   text_groups, write_run)
from medtext.errors import ConfigError, InputError
from medtext.evaluate_errors import answer_from_findings, rouge1_f, score_medec

MEDEC = Path(__file__).resolve().parents[2] / "shared" / "data" / "medec" / "ms_validation.jsonl"

CSV_HEAD = ("Text ID,Text,Sentences,Error Flag,Error Type,Error Sentence ID,Error Sentence,"
            "Corrected Sentence,Corrected Text\n")


def _csv(tmp_path, rows: str) -> Path:
    p = tmp_path / "medec.csv"
    p.write_text(CSV_HEAD + rows)
    return p


ROWS = ('t-1,"Fever and cough. Culture grows S. pneumoniae. Started amoxicillin.","0 Fever and cough.\n'
        '1 Culture grows S. pneumoniae.\n2 Started amoxicillin.",1,causalOrganism,1,'
        'Culture grows S. pneumoniae.,Culture grows Mycoplasma pneumoniae.,x\n'
        't-2,"Knee pain. Ibuprofen given.","0 Knee pain.\n1 Ibuprofen given.",0,,-1,,,\n')


def test_read_medec_csv_and_run_roundtrip(tmp_path):
    texts = read_medec(_csv(tmp_path, ROWS))
    assert [t.text_id for t in texts] == ["t-1", "t-2"]
    t1 = texts[0]
    assert t1.flag == 1 and t1.sentence_id == 1 and t1.error_type == "causalOrganism"
    assert t1.text[slice(*t1.spans[1])] == "Culture grows S. pneumoniae."
    assert texts[1].flag == 0 and texts[1].sentence_id == -1 and texts[1].corrected_sentence is None
    run = {"t-1": RunAnswer(1, 1, "Culture grows Mycoplasma pneumoniae."), "t-2": RunAnswer(0, -1, None)}
    write_run(tmp_path / "run.txt", run)
    assert (tmp_path / "run.txt").read_text().splitlines() == [
        "t-1 1 1 Culture grows Mycoplasma pneumoniae.", "t-2 0 -1 NA"]
    assert read_run(tmp_path / "run.txt") == run
    r = score_medec(texts, run)
    assert r["flag_accuracy"] == r["sentence_accuracy"] == 1.0
    assert r["corrections"]["rouge1_composite"] == pytest.approx(1.0)


def test_score_medec_counts_missing_and_partial(tmp_path):
    texts = read_medec(_csv(tmp_path, ROWS))
    # right flag, wrong sentence, partial correction; t-2 missing
    r = score_medec(texts, {"t-1": RunAnswer(1, 2, "Culture grows Streptococcus pneumoniae.")})
    assert r["flag_accuracy"] == 0.5 and r["sentence_accuracy"] == 0.0 and r["answered"] == 1
    assert rouge1_f("Culture grows Streptococcus pneumoniae.", "Culture grows Mycoplasma pneumoniae.") == pytest.approx(0.75)
    assert r["corrections"]["rouge1_composite"] == pytest.approx(0.75 / 2)
    # a false alarm: flag wrong, correction scored 0, no error text sentence id -1 expected
    r = score_medec(texts, {"t-1": RunAnswer(0, -1, None), "t-2": RunAnswer(1, 0, "Knee ache.")})
    assert r["flag_accuracy"] == 0.0 and r["flag_precision"] == 0.0
    assert r["by_type"]["none"]["flag_accuracy"] == 0.0


def test_read_medec_bad_rows_name_file_and_row(tmp_path):
    with pytest.raises(InputError, match=r"medec.csv:2: not a MEDEC row: unknown error type 'spelling'"):
        read_medec(_csv(tmp_path, 't-1,"A.","0 A.",1,spelling,0,A.,B.,x\n'))
    with pytest.raises(InputError, match=r"medec.csv:2: .*error sentence id 4 is not one of the 1 sentences"):
        read_medec(_csv(tmp_path, 't-1,"A.","0 A.",1,diagnosis,4,A.,B.,x\n'))
    (tmp_path / "x.csv").write_text("id,text\n1,a\n")
    with pytest.raises(InputError, match="missing columns"):
        read_medec(tmp_path / "x.csv")
    (tmp_path / "run.txt").write_text("t-1 yes 3 foo\n")
    with pytest.raises(InputError, match=r"run.txt:1: expected"):
        read_run(tmp_path / "run.txt")


def test_sentences_parsing_and_alignment():
    assert parse_sentences("0 Her pulse is\n1 106/min and\ncontinued.\n2 Done.") == [
        "Her pulse is", "106/min and continued.", "Done."]
    text = "Her pulse is 106/min and  continued.  Done."
    assert align_sentences(text, ["Her pulse is", "106/min and continued.", "Done.", "Absent."]) == [
        (0, 12), (13, 36), (38, 43), None]


@pytest.mark.skipif(not MEDEC.is_file(), reason="../shared/data/medec not present")
def test_medec_ms_validation_groups():
    texts = read_medec(MEDEC)
    assert len(texts) == 574 and sum(t.flag for t in texts) == 319
    groups = text_groups(texts)
    # an erroneous text and its correct version share a group
    by_id = {t.text_id: g for t, g in zip(texts, groups)}
    assert by_id["ms-val-0"] == by_id["ms-val-1"]
    assert len(set(groups)) == 326


def test_answer_from_findings_maps_to_medec_sentence(tmp_path):
    t = read_medec(_csv(tmp_path, ROWS))[0]
    s, e = t.spans[2]
    a = answer_from_findings(t, [{"start": s, "end": e, "score": 0.4, "correction": None},
                                 {"start": t.spans[1][0], "end": t.spans[1][1], "score": 0.9, "correction": "X."}])
    assert a == RunAnswer(1, 1, "X.")
    assert answer_from_findings(t, [{"start": s, "end": e, "score": 0.4, "correction": None}], threshold=0.5) == RunAnswer(0, -1, None)
    assert answer_from_findings(t, [{"start": s, "end": e, "score": None, "correction": None}],
                                copy_sentence=True) == RunAnswer(1, 2, "Started amoxicillin.")


# --- the component -------------------------------------------------------------------------------

def test_component_on_blank_pipeline_and_config_errors():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("medtext_errors", config={"checks": ["dose_range", "schedule"]})
    doc = nlp("Plan: methotrexate 15 mg PO daily. Metoprolol 25 mg PO BID.")
    assert [f["detector"] for f in doc._.errors] == ["checks:schedule"]
    assert doc.text[doc._.errors[0]["start"]:doc._.errors[0]["end"]] == "Plan: methotrexate 15 mg PO daily."
    assert nlp("")._.errors == []
    with pytest.raises(ConfigError, match="unknown checks"):
        spacy.blank("en").add_pipe("medtext_errors", config={"checks": ["spelling"]})
    with pytest.raises(ConfigError, match="knowledge table not found"):
        spacy.blank("en").add_pipe("medtext_errors", config={"knowledge": "/nonexistent"})


DISCHARGE = """HISTORY OF PRESENT ILLNESS:
Mr. Y is a 67-year-old man admitted with left knee pain and swelling after a fall. He denies chest pain.
Left knee X-ray showed a tibial plateau fracture.

ALLERGIES:
Penicillin (hives).

LABS:
Potassium 6.3 mmol/L, low. Hemoglobin 13.1 g/dL.

HOSPITAL COURSE:
He underwent right knee arthroscopy. Chest pain was reported on day 2, troponin negative.

DISCHARGE MEDICATIONS:
1. Amoxicillin 500 mg PO TID.
2. Methotrexate 10 mg PO daily.
3. Metoprolol 25 mg PO BID.
"""


def test_default_preset_finds_errors_in_a_note(nlp):
    assert "medtext_errors" in nlp.pipe_names
    doc = nlp(DISCHARGE)
    got = {f["detector"]: doc.text[f["start"]:f["end"]] for f in doc._.errors}
    assert got["checks:allergy"] == "1. Amoxicillin 500 mg PO TID." or got["checks:allergy"].endswith("Amoxicillin 500 mg PO TID.")
    assert "Methotrexate 10 mg PO daily" in got["checks:schedule"]
    assert got["checks:lab_interpretation"].startswith("Potassium 6.3 mmol/L, low")
    assert "right knee arthroscopy" in got["checks:laterality"]
    assert "checks:dose_range" not in got  # every dose is plausible
    rec = doc._.record
    assert {e["detector"] for e in rec["errors"]} == set(got)
    fix = next(f for f in doc._.errors if f["detector"] == "checks:lab_interpretation")["correction"]
    assert fix.startswith("Potassium 6.3 mmol/L, high")


def test_assertion_conflict_needs_the_same_section(nlp):
    doc = nlp("HPI:\nShe denies chest pain. She reports chest pain radiating to the left arm.\n\n"
              "ROS:\nNo fever.\n\nPLAN:\nFever workup if fever develops.")
    found = [f for f in doc._.errors if f["detector"] == "checks:assertion_conflict"]
    assert len(found) == 1 and "chest pain" in found[0]["message"]
    clean = nlp("HPI:\nChest pain since this morning.\n\nROS:\nNo chest pain at rest now.")
    assert not [f for f in clean._.errors if f["detector"] == "checks:assertion_conflict"]


def test_assertion_conflict_needs_the_same_head_word(nlp):
    """Two mentions linked to one concept are not a conflict when they name different things
    ("epilepsy" affirmed, "no electrographic seizures": the sample consult where the lexical
    linker gave both the code of seizure until 2026-12-02; it now links "epilepsy" to Epilepsy,
    so the shared code is set here)."""
    from spacy.tokens import Span

    doc = nlp.make_doc("EEG:\nFindings consistent with epilepsy. No electrographic seizures recorded.\n")
    for name, proc in nlp.pipeline:
        if name == "medtext_errors":
            break
        doc = proc(doc)
    assert {e.text for e in doc.ents} >= {"epilepsy", "electrographic seizures"}
    doc.ents = [Span(doc, e.start, e.end, label=e.label_, kb_id="snomed:91175000")
                if e.text in ("epilepsy", "electrographic seizures") else e for e in doc.ents]
    assert {e.text: e._.assertion for e in doc.ents if e.kb_id_ == "snomed:91175000"} == \
        {"epilepsy": "present", "electrographic seizures": "negated"}
    doc = nlp.get_pipe("medtext_errors")(doc)
    assert not [f for f in doc._.errors if f["detector"] == "checks:assertion_conflict"]
    # the same head word under one code still is a conflict
    doc = nlp("EEG:\nFindings consistent with epileptic seizures. No seizures recorded.\n")
    assert {e.kb_id_ for e in doc.ents if "seizures" in e.text} == {"snomed:91175000"}
    assert [f for f in doc._.errors if f["detector"] == "checks:assertion_conflict"]


def test_assertion_conflict_spares_narrower_negations_and_other_sites(nlp):
    """Not conflicts: a negation narrower than the affirmed mention ("no severe hypoglycemia"
    beside "hypoglycemia"; "no spontaneous nystagmus" beside "torsional nystagmus"), and the
    same finding at two body sites ("CT cervical spine: no fracture" / "X-ray of the hip:
    femoral neck fracture"). A plain negation against the same finding at the same site still
    is one."""
    def conflicts(text):
        return [f["message"] for f in nlp(text)._.errors if f["detector"] == "checks:assertion_conflict"]

    assert not conflicts("HPI:\nTwo nights of hypoglycemia with sweating, treated with glucose tablets. "
                         "No severe hypoglycemia.")
    assert not conflicts("EXAM:\nDix-Hallpike: upbeating torsional nystagmus after 5 sec. "
                         "Oculomotor: no spontaneous nystagmus.")
    assert not conflicts("IMAGING:\nX-ray of the hip and pelvis: displaced femoral neck fracture.\n"
                         "CT cervical spine: no fracture.")
    assert not conflicts("FINDINGS:\nThere is a 1.8 cm hypodense nodule in the thyroid lobe. "
                         "Lungs are clear without nodules.")
    # the same site, or a negation no narrower than the affirmed finding: still a conflict
    assert conflicts("FINDINGS:\nLungs: scattered wheezing. Lungs: no wheezing.")
    assert conflicts("HPI:\nShe denies fever. She reports high fever since Monday.")
    # consent risks are hypothetical, not affirmed findings
    doc = nlp("PROCEDURE:\nConsent: risks explained including pneumothorax and bleeding. "
              "Post-procedure ultrasound: no pneumothorax.")
    assert next(e for e in doc.ents if e.text == "pneumothorax")._.assertion == "hypothetical"
    assert not [f for f in doc._.errors if f["detector"] == "checks:assertion_conflict"]


def test_bad_inputs_do_not_break_the_component(nlp):
    for text in ["", "   ", "- item one\n- item two\n- 5 mg\n", "Potassium 5.", "Metoprolol 25.", "x" * 5000]:
        doc = nlp(text)
        assert isinstance(doc._.errors, list)


# --- synthetic errors -------------------------------------------------------------------------------

def test_injected_errors_are_found_by_the_matching_check():
    from medtext.components.error_checks import Knowledge, check_text
    from medtext.corpora.error_inject import inject

    text = ("Medications: metoprolol 25 mg PO BID. Methotrexate 15 mg PO weekly.\n"
            "Labs: potassium 3.1 mmol/L, low.\nBlood cultures grew MRSA. Started vancomycin 1 g IV.\n")
    made = {n.kind: n for n in inject("t", text, kb=Knowledge.load())}
    assert {"dose_slip", "weekly", "lab_flip", "antibiotic", "allergy"} <= set(made)
    expect = {"dose_slip": "dose_range", "weekly": "schedule", "lab_flip": "lab_interpretation",
              "antibiotic": "organism_antibiotic", "allergy": "allergy"}
    for kind, check in expect.items():
        n = made[kind]
        assert n.sentences[n.sentence_id] == n.error_sentence != n.corrected_sentence
        found = check_text(n.text, [check])
        assert any(n.spans[n.sentence_id][0] <= f["start"] < n.spans[n.sentence_id][1] for f in found), (kind, found)
        assert check_text(text, [check]) == []  # the original note is clean


# --- trained classifier (tiny) ------------------------------------------------------------------------

@pytest.mark.skipif(not MEDEC.is_file(), reason="../shared/data/medec not present")
def test_tiny_classifier_trains_saves_and_runs_in_the_component(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("datasets")
    import spacy

    from medtext.components.error_classifier import ErrorClassifier, train_classifier

    texts = read_medec(MEDEC)[:12]
    stats = train_classifier([(t.sentences, t.sentence_id) for t in texts], base="all-MiniLM-L6-v2",
                             out=tmp_path / "clf", epochs=1, negatives=1, max_length=64, threshold=0.3)
    assert stats["pairs"] > 12 and (tmp_path / "clf" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "clf" / "medtext_training.json").read_text())["threshold"] == 0.3
    clf = ErrorClassifier(str(tmp_path / "clf"), max_length=64)
    assert clf.threshold == 0.3
    scores = clf.score_notes([texts[0].sentences])
    assert len(scores[0]) == len(texts[0].sentences) and all(0.0 <= s <= 1.0 for s in scores[0])
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("medtext_errors", config={"checks": [], "classifier": str(tmp_path / "clf"),
                                           "classifier_threshold": 0.0})
    doc = nlp(texts[0].text)
    assert len(doc._.errors) == 1 and doc._.errors[0]["detector"] == "classifier"
    assert doc._.errors[0]["type"] in ("diagnosis", "management", "treatment", "pharmacotherapy", "causalOrganism")


# --- BERTScore / BLEURT plumbing with tiny random models --------------------------------------------

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch

    d = tmp_path_factory.mktemp("tiny_bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "culture", "grows", "mycoplasma", "streptococcus",
             "pneumoniae", "the", "patient", "has", "a", "infection", "."]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = transformers.BertTokenizerFast(str(d / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(d)
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=64, num_labels=1)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(cfg).save_pretrained(d, safe_serialization=True)
    return str(d)


def test_bertscore_and_bleurt_plumbing(tiny_bert, tmp_path):
    from medtext.evaluate_errors import bertscore_f1, bleurt_scores

    same = bertscore_f1(["Culture grows Mycoplasma pneumoniae."], ["Culture grows Mycoplasma pneumoniae."], tiny_bert)
    assert same == [pytest.approx(1.0, abs=1e-5)]
    diff = bertscore_f1(["The patient has a infection."], ["Culture grows Mycoplasma pneumoniae."], tiny_bert,
                        baseline=0.5)
    assert 0.0 <= diff[0] < 1.0
    b = bleurt_scores(["Culture grows Streptococcus pneumoniae.", "x"], ["Culture grows Mycoplasma pneumoniae.", "y"],
                      tiny_bert)
    assert len(b) == 2 and all(0.0 <= v <= 1.0 for v in b)
    texts = read_medec(_csv(tmp_path, ROWS))
    r = score_medec(texts, {"t-1": RunAnswer(1, 1, "Culture grows Mycoplasma pneumoniae."), "t-2": RunAnswer(0, -1, None)},
                    bertscore=tiny_bert, bleurt=tiny_bert)
    c = r["corrections"]
    assert c["aggregate_of"] == ["bertscore", "bleurt", "rouge1"]
    assert c["bertscore_composite"] == pytest.approx(1.0, abs=1e-5) and c["rouge1_composite"] == pytest.approx(1.0)
    assert c["aggregate_composite"] == pytest.approx((1 + (2 + c["bleurt_pairs_mean"]) / 3) / 2, abs=1e-5)


def test_evaluate_errors_cli_scores_a_run_file(tmp_path):
    from typer.testing import CliRunner

    from medtext.cli import app

    gold = _csv(tmp_path, ROWS)
    (tmp_path / "run.txt").write_text("t-1 1 1 Culture grows Mycoplasma pneumoniae.\nt-2 1 0 Knee ache.\n")
    res = CliRunner().invoke(app, ["evaluate", "errors", str(gold), "-p", str(tmp_path / "run.txt"),
                                   "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "error flag accuracy      0.500" in res.output and "error sentence accuracy  0.500" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["by_type"]["causalOrganism"]["sentence_accuracy"] == 1.0
    bad = CliRunner().invoke(app, ["evaluate", "errors", str(gold), "--format", "brat"])
    assert bad.exit_code == 2 and "--format must be medec" in bad.output
