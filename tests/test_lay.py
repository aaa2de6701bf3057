"""medtext_lay: abbreviations, jargon and lay terms, lay text built from recorded edits; lay metrics
and the team's lay gold sets."""

from __future__ import annotations

import json

import pytest

from medtext.corpora.lay_data import read_abbreviations, read_rewrites
from medtext.errors import InputError
from medtext.evaluate_lay import flesch_kincaid_grade, sari


@pytest.fixture(scope="module")
def lay_nlp(medtext_home):
    import medtext

    nlp = medtext.load()
    nlp.add_pipe("medtext_lay")
    return nlp


NOTE = ("HPI: 67 year old man with h/o HTN and DM2 presenting with shortness of breath.\n"
        "Started furosemide 40 mg IV BID. No myocardial infarction. He has atrial fibrillation.\n")


def test_lay_text_from_edits(lay_nlp):
    doc = lay_nlp(NOTE)
    assert doc.text == NOTE  # the source is never rewritten
    abbrs = {s.text: s._.expansion for s in doc.spans["abbreviations"] if s.label_ == "ABBR"}
    assert abbrs["HTN"] == "hypertension" and abbrs["BID"]
    lay = doc._.lay_text
    assert "high blood pressure" in lay and "twice a day" in lay and "into a vein" in lay
    assert "heart attack" in lay and "No heart attack" in lay  # negation kept
    assert "40 mg" in lay  # units stay
    # every edit points into the source and replaying them gives the lay text
    from medtext.components.lay import apply_edits

    assert apply_edits(doc.text, doc._.lay_edits) == lay
    for e in doc._.lay_edits:
        assert e["op"] in ("replace", "elaborate", "delete", "insert") and 0 <= e["start"] <= e["end"] <= len(NOTE)
    mi = next(e for e in doc.ents if e.text == "myocardial infarction")
    assert mi._.is_jargon and mi._.lay["term"].lower() == "heart attack" and mi._.lay["definition"]
    assert all(t._.is_jargon for t in mi)
    rec = doc._.record
    assert rec["lay_text"] == lay
    assert any(e["lay"] and e["lay"]["term"] for e in rec["entities"])


def test_no_jargon_is_unchanged_and_unknown_abbreviations_are_flagged(lay_nlp):
    plain = "She walked to the shop and back today.\n"
    doc = lay_nlp(plain)
    assert doc._.lay_text == plain and doc._.lay_edits == []
    doc = lay_nlp("Plan discussed with the XQZ team.")
    unknown = [s for s in doc.spans["abbreviations"] if s.label_ == "UNKNOWN"]
    assert [s.text for s in unknown] == ["XQZ"] and unknown[0]._.expansion is None
    assert "XQZ" in doc._.lay_text  # left as is


def test_all_caps_and_long_sentences(lay_nlp):
    doc = lay_nlp("PT WITH HTN AND SOB. WILL START LASIX 40 MG PO DAILY.")
    assert not [s for s in doc.spans["abbreviations"] if s.label_ == "UNKNOWN"]
    assert "by mouth" in doc._.lay_text.lower()
    long = "The patient has hypertension and " + " and ".join(["shortness of breath"] * 300) + "."
    assert lay_nlp(long)._.lay_text.startswith("The patient has high blood pressure")


def test_sense_choice_uses_context(lay_nlp):
    lay = lay_nlp.get_pipe("medtext_lay")
    scored = lay.choose_sense("BID", "furosemide 40 mg BID")
    assert scored == sorted(scored, key=lambda x: -x[1])
    assert lay.choose_sense("XQZ", "anything") == []


def test_metrics():
    src = "Pt c/o SOB and bilateral lower extremity edema."
    gold = "The patient has shortness of breath and swelling in both legs."
    assert sari(src, gold, [gold]) > sari(src, src, [gold])
    assert sari(src, src, [gold]) < 40
    assert flesch_kincaid_grade("The cat sat. The dog ran.") < flesch_kincaid_grade(
        "Bilateral lower extremity edema with hepatosplenomegaly and electrocardiographic abnormalities.")
    assert flesch_kincaid_grade("") is None


def test_gold_sets_load_and_validate(tmp_path):
    ab = read_abbreviations()
    assert len(ab) >= 300 and {c.split for c in ab} == {"dev", "test"}
    rw = read_rewrites()
    assert len(rw) >= 50
    bad = tmp_path / "a.jsonl"
    bad.write_text(json.dumps({"id": "x", "text": "Pt has MS.", "start": 0, "end": 2, "abbr": "MS",
                               "sense": "multiple sclerosis", "split": "dev"}) + "\n")
    with pytest.raises(InputError, match=r"a.jsonl:1: text\[0:2\] is 'Pt', not 'MS'"):
        read_abbreviations(bad)
    bad.write_text(json.dumps({"id": "x", "text": "Pt has MS.", "start": 7, "end": 9, "abbr": "MS",
                               "sense": "made up", "split": "dev"}) + "\n")
    with pytest.raises(InputError, match="is not a Vanderbilt sense"):
        read_abbreviations(bad, senses={"ms": {"multiple sclerosis"}})


def test_plain_words_splits_and_document_senses(lay_nlp):
    from medtext.components.lay import apply_edits

    text = ("The patient was commenced on warfarin prior to discharge; she tolerated it without "
            "problems and was advised to continue.\nSeen by the MD today. AF noted on ECG, "
            "consistent with atrial fibrillation.\n")
    doc = lay_nlp(text)
    lay = doc._.lay_text
    assert apply_edits(text, doc._.lay_edits) == lay
    by_source = {}
    for e in doc._.lay_edits:
        by_source.setdefault(e["source"], []).append((text[e["start"]:e["end"]], e["text"]))
    assert ("commenced", "started") in by_source["plain word"] and ("prior to", "before") in by_source["plain word"]
    assert "; she" not in lay and ". She coped with it" in lay  # split at the semicolon, next word capitalised
    md = next(s for s in doc.spans["abbreviations"] if s.text == "MD")
    assert md._.expansion.lower() != "md"  # a sense that restates the abbreviation is no sense
    af = next(s for s in doc.spans["abbreviations"] if s.text == "AF")
    assert af._.expansion == "atrial fibrillation"  # written out in the same note
    # a list keeps its ", and"; only a long sentence before a new clause is split there
    doc = lay_nlp("Weakness of the left arm, sensory loss, and balance deficits noted on examination today "
                  "by the team during the morning ward round with the consultant and registrar present.\n")
    assert not any(e["source"] == "split" for e in doc._.lay_edits)


def test_malformed_lay_table_is_a_clear_error(tmp_path):
    from medtext.components.lay import read_pairs
    from medtext.errors import ConfigError

    f = tmp_path / "plain_words.tsv"
    f.write_text("# comment\napproximately\tabout\nbroken line without tab\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plain_words.tsv:3"):
        read_pairs(f)
    f.write_text("# comment\nApproximately\tabout\n", encoding="utf-8")
    assert read_pairs(f) == {"approximately": "about"}


def test_word_frequency_jargon_and_retrieved_lay_terms(lay_nlp, tmp_path):
    pytest.importorskip("wordfreq")
    from medtext.components.lay import apply_edits

    text = "She walked to the shop. Known hemochromatosis, followed in clinic.\n"
    doc = lay_nlp(text)
    rare = {t.text for t in doc if t._.is_jargon}
    assert "hemochromatosis" in rare and not rare & {"walked", "shop", "clinic"}
    ent = next(e for e in doc.ents if e.text == "hemochromatosis")
    assert ent._.is_jargon  # a rare word makes jargon even without a lay term
    # retrieval over the lay vocabulary (a tiny random bi-encoder: plumbing, not quality)
    from tests.test_linker import _tiny_models

    bi, _ = _tiny_models(tmp_path)
    lay = lay_nlp.get_pipe("medtext_lay")
    lay.lay_model, lay.lay_threshold, lay._lay_matrix = bi, -1.0, None
    try:
        doc = lay_nlp(text)
    finally:
        lay.lay_model, lay.lay_threshold, lay._lay_matrix = None, 0.7, None
    ent = next(e for e in doc.ents if e.text == "hemochromatosis")
    if not lay._has_lay(ent):
        assert ent._.lay["source"] == "retrieval" and ent._.lay["term"] and ent._.lay["concept"]
        assert any(e["source"] == "retrieved lay term" and e["start"] == ent.end_char for e in doc._.lay_edits)
    assert apply_edits(text, doc._.lay_edits) == doc._.lay_text


def test_sense_model_batches_contexts_and_agrees_with_single_calls(lay_nlp, tmp_path):
    pytest.importorskip("sentence_transformers")
    from tests.test_linker import _tiny_models

    bi, _ = _tiny_models(tmp_path, seed=2)
    lay = lay_nlp.get_pipe("medtext_lay")
    text = "Seen for MS relapse, MRI brain today.\nMurmur noted; known MS on echo, valve area small.\nPT today.\n"
    lay.sense_model = bi
    try:
        doc = lay_nlp(text)
        assert lay._context_vectors == {}  # per-note batch cache emptied
        for s in doc.spans["abbreviations"]:
            if s.label_ != "ABBR" or len(s._.senses) < 2:
                continue
            a = max(0, s.start_char - 6 * lay.context_words)
            b = s.end_char + 6 * lay.context_words
            marked = text[a:s.start_char] + "[" + s.text + "]" + text[s.end_char:b]
            single = lay.choose_sense(s.text, text[a:b], marked, text.lower())  # encodes alone
            assert single[0][0] == s._.expansion
            assert abs(round(single[0][1], 3) - s._.senses[0][1]) < 1e-2
    finally:
        lay.sense_model = None


def test_split_before_a_clause_keeps_the_next_word_lower_case(lay_nlp):
    text = ("She checks her sugars three times a week at home before meals and before bed, and she has "
            "had no readings below seventy since the dose of her tablets was changed last month.\n")
    doc = lay_nlp(text)
    assert ". And she has had no readings" in doc._.lay_text
