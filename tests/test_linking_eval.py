"""Linking evaluation harness: MedProcNER reader, coverage, acc@k, routing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medtext.cli import app
from medtext.corpora.linking_data import read_medprocner
from medtext.evaluate import evaluate_linking
from medtext.terminologies.default import default_index_dir
from medtext.terminologies.index import ConceptIndex
from medtext.terminologies.linking import Linker


def _fake_linker(concepts: list[tuple[str, str]], link):
    """A stand-in for a Linker in evaluate_linking: an index holding ``concepts`` ((system, code)
    pairs) and ``link`` (mentions -> LinkResults)."""
    import pyarrow as pa

    table = pa.table({"system": [s for s, _ in concepts], "code": [c for _, c in concepts]})
    return type("FakeLinker", (), {"index": type("Ix", (), {"tables": {"concepts": table}}),
                                   "link": staticmethod(link), "describe": staticmethod(dict)})()


def _rows(tmp_path: Path) -> Path:
    rows = [
        {"filename": "d1", "label": "PROCEDIMIENTO", "start": 0, "end": 5, "text": "ecocardiografía",
         "text_en_machine_translated": "echocardiography", "snomed_ct": "40701008"},
        {"filename": "d1", "label": "PROCEDIMIENTO", "start": 9, "end": 12, "text": "x",
         "text_en_machine_translated": "colonoscopy", "snomed_ct": "73761001"},
        {"filename": "d2", "label": "PROCEDIMIENTO", "start": 0, "end": 3, "text": "y",
         "text_en_machine_translated": "something obscure", "snomed_ct": "999999999"},
        {"filename": "d2", "label": "PROCEDIMIENTO", "start": 5, "end": 8, "text": "z",
         "text_en_machine_translated": "whatever", "snomed_ct": "NO_CODE"},
    ]
    f = tmp_path / "link.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f


def test_reader_and_scores(tmp_path, medtext_home):
    mentions = read_medprocner(_rows(tmp_path))
    assert [m.codes for m in mentions][-1] == [] and mentions[0].label == "PROCEDURE"
    r = evaluate_linking(Linker(ConceptIndex.load(default_index_dir()), bi_encoder=None, top=25), mentions,
                         system="snomed")
    assert r["mentions"] == 3 and r["covered"] == 2  # NO_CODE skipped; 999999999 not in the index
    assert r["acc_covered"]["@1"] == 1.0 and r["acc_all"]["@1"] == round(2 / 3, 4)


def test_bootstrap_resamples_documents_not_mentions():
    """Two notes alike (one right, one wrong mention each): resampling notes cannot move the
    figures, resampling mentions would."""
    from medtext.corpora.linking_data import LinkingMention
    from medtext.terminologies.linking import Candidate, LinkResult

    def link(mentions):
        code = {"walks": "d450", "runs": "d465"}
        return [LinkResult([Candidate("icf", code[m.text], m.text, "", 0.9)], nil=False) for m in mentions]

    linker = _fake_linker([("icf", "d450"), ("icf", "d455"), ("icf", "d465")], link)
    ms = [LinkingMention(f"{note}:{start}", text, [gold], "FUNCTION")
          for note in ("a", "b") for start, text, gold in ((0, "walks", "d450"), (9, "runs", "d455"))]
    r = evaluate_linking(linker, ms, bootstrap=200)
    ci = r["ci95"]
    assert r["acc_covered"]["@1"] == 0.5 and ci["documents"] == 2 and ci["resamples"] == 200
    assert ci["acc_covered@1"] == [0.5, 0.5] and ci["decided_accuracy"] == [0.5, 0.5]
    assert ci["top1_macro_f1"] == [r["top1"]["macro_f1"]] * 2
    one_each = [LinkingMention(f"{m.id.replace(':', '')}:0", m.text, m.codes, m.label) for m in ms]
    lo, hi = evaluate_linking(linker, one_each, bootstrap=200)["ci95"]["acc_covered@1"]
    assert lo < 0.5 < hi  # a note per mention: the figure moves with the resample
    assert "ci95" not in evaluate_linking(linker, ms)


def test_cli(tmp_path, medtext_home):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "linking", str(_rows(tmp_path)), "--json", str(out),
                                   "--bootstrap", "100"])
    assert res.exit_code == 0 and "coverage 66.7%" in res.output, res.output
    assert "95% intervals (100 resamples of 2 documents)" in res.output, res.output
    assert json.loads(out.read_text())["acc_covered"]["@1"] == 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"filename": "x"}\n')
    res = CliRunner().invoke(app, ["evaluate", "linking", str(bad)])
    assert res.exit_code == 2 and "not a MedProcNER linking row" in res.output


def test_gold_files_missing_or_not_text_are_clear_errors(tmp_path):
    """A missing path or a file that is not UTF-8 text is an error naming the file, for either
    format, not a traceback."""
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00\x01binary")
    for path, fmt, says in ((tmp_path / "nowhere.jsonl", "medprocner", "not found"),
                            (tmp_path / "no_folder", "medtext", "not found"),
                            (binary, "medprocner", "not UTF-8 text"), (binary, "medtext", "not UTF-8 text")):
        res = CliRunner().invoke(app, ["evaluate", "linking", str(path), "--format", fmt])
        assert res.exit_code == 2 and says in res.output and path.name in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)


def test_icf_gold_set_is_valid():
    from medtext.corpora.linking_data import ICF_DIR, check_linked_notes, read_medtext_linking

    report = check_linked_notes(sorted(ICF_DIR.glob("*.jsonl")))
    assert report["problems"] == []
    assert report["mentions"] >= 1000 and set(report["by_split"]) == {"train", "dev", "test", "heldout"}
    assert report["by_split"]["test"] >= 200 and report["by_split"]["heldout"] >= 1000
    # examples and classifiers never read the test or held-out notes
    from medtext.corpora.linking_data import load_examples

    examples = load_examples("medtext:icf")
    assert len(examples) == sum(len(m.codes) for m in read_medtext_linking(ICF_DIR, ("train", "dev")))
    assert len(examples) < sum(len(m.codes) for m in read_medtext_linking(ICF_DIR))
    assert {"b2", "b7", "d4", "d5", "d6"} <= set(report["by_chapter"])
    test = read_medtext_linking(ICF_DIR, "test")
    assert test and all(m.label == "FUNCTION" for m in test)
    m = test[0]
    assert m.context[m.start:m.end] == m.text


def test_snomed_gold_set_is_valid(medtext_home, tmp_path):
    """The team's SNOMED CT-coded notes: the NER corpus's own notes and spans, every code a
    concept of the default index of a kind the span's label is routed to; the examples read the
    train notes only."""
    from medtext.corpora.linking_data import (SNOMED_DIR, check_linked_notes, load_examples, read_linked_notes,
                                              read_medtext_linking)
    from medtext.corpora.ner_data import read_annotated
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex

    index = ConceptIndex.load(default_index_dir())
    report = check_linked_notes(sorted(SNOMED_DIR.glob("*.jsonl")), index=index)
    assert report["problems"] == []
    assert set(report["by_split"]) == {"train", "dev", "test"}
    assert report["by_split"]["dev"] >= 600 and report["by_split"]["test"] >= 600
    ner = {n.id: n for n in read_annotated()}
    notes = read_linked_notes(sorted(SNOMED_DIR.glob("*.jsonl")))
    assert len({n.id for n in notes}) == len(notes)  # a note is in one split only
    for note in notes:
        src = ner[note.id]
        # dev: the NER corpus's dev notes; test and train: its train notes
        assert note.text == src.text and src.split == ("dev" if note.split == "dev" else "train")
        spans = {(a, b, lab) for a, b, lab, _ in note.spans}
        keep = {"PROBLEM", "TEST", "TREATMENT", "PROCEDURE", "DRUG", "ANATOMY"}  # every label but FUNCTION
        assert spans == {s for s in src.spans if s[2] in keep}, note.id
    train = [m for m in read_medtext_linking(SNOMED_DIR, "train")]
    assert load_examples("medtext:snomed") == [(m.text, "snomed", c) for m in train for c in m.codes]
    # `medtext train linker` reads the train split too (then the train case reports), never dev or test
    from medtext.train_linker import team_mentions
    team = [t for t in team_mentions() if t[2] == "snomed"]
    notes_team = [(m.text, m.label, "snomed", m.codes[0]) for m in train if len(m.codes) == 1]
    assert team[:len(notes_team)] == notes_team
    assert {lab for _, lab, _, _ in team} == {"PROBLEM", "TEST", "TREATMENT", "PROCEDURE", "DRUG", "ANATOMY"}
    both = load_examples(["medtext:icf", "medtext:snomed"])
    assert len(both) == len(load_examples("medtext:icf")) + len(load_examples("medtext:snomed"))
    # a code of the wrong kind for its label, an unknown one, and SNOMED codes without an index
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "split": "dev", "text": "[appendectomy](PROBLEM|80146002), "
                               "[chest pain](PROBLEM|29857009), [zzz](PROBLEM|1)"}) + "\n")
    problems = check_linked_notes([bad], index=index)["problems"]
    assert len(problems) == 2 and "not routed" in problems[0] and "not in the index" in problems[1]
    assert "pass the index" in check_linked_notes([bad])["problems"][0]


def test_case_reports_are_valid(medtext_home):
    """The team's procedure-coded case reports (machine-translated English): PROCEDURE spans
    only, every code a procedure or regime/therapy of the default index; ``medtext:cases`` reads
    the train split whole and never the dev one."""
    from medtext.corpora.linking_data import (CASES_DIR, SNOMED_DIR, check_linked_notes, load_examples,
                                              read_linked_notes)
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex

    index = ConceptIndex.load(default_index_dir())
    files = sorted(CASES_DIR.glob("*.jsonl"))
    report = check_linked_notes(files, index=index)
    assert report["problems"] == []
    assert set(report["by_split"]) == {"train", "dev"} and min(report["by_split"].values()) >= 1400
    assert set(report["by_chapter"]) == {"snomed:PROCEDURE"}
    notes = read_linked_notes(files)
    assert len(notes) == 160 and len({n.id for n in notes}) == 160
    assert not {n.id for n in notes} & {n.id for n in read_linked_notes(sorted(SNOMED_DIR.glob("*.jsonl")))}
    kinds = {index.concept("snomed", c)["kind"] for n in notes for _, _, _, codes in n.spans for c in codes}
    assert kinds <= {"procedure", "regime/therapy"}
    train = [n for n in notes if n.split == "train"]
    coded = [(n.text[a:b], "snomed", c) for n in train for a, b, _, codes in n.spans for c in codes]
    assert load_examples("medtext:cases") == coded  # one row per code: composite spans give two
    assert len(train) == 80 and {n.split for n in notes} - {"train"} == {"dev"}
    # `medtext train linker` reads the train reports' single-code spans, never the dev ones
    from medtext.corpora.linking_data import read_medtext_linking
    from medtext.train_linker import team_mentions

    team = team_mentions()
    single = [(m.text, m.label, "snomed", m.codes[0]) for m in read_medtext_linking(CASES_DIR, "train")
              if len(m.codes) == 1]
    assert len(single) > 1000 and team[-len(single):] == single
    from medtext.corpora.linking_data import ICF_DIR

    # ICF train + dev, SNOMED CT train notes, train case reports: nothing else (no dev report)
    others = [m for folder, splits in ((ICF_DIR, ("train", "dev")), (SNOMED_DIR, "train"))
              for m in read_medtext_linking(folder, splits) if len(m.codes) == 1]
    assert len(team) == len(others) + len(single)
    assert team_mentions(systems={"snomed"}) == [t for t in team if t[2] == "snomed"]
    assert {t[2] for t in team_mentions(systems={"icf"})} == {"icf"}


def test_exact_coded_case_reports_are_valid(medtext_home):
    """The exact-coded dev case reports (``corpora/cases_exact``): dev only, PROCEDURE spans coded
    to procedures or regimes of the default index or NIL, ids of their own, and read by no example
    set or training run."""
    from medtext.corpora.linking_data import (CASES_DIR, CASES_EXACT_DIR, SNOMED_DIR, TEAM_EXAMPLES,
                                              check_linked_notes, read_linked_notes)
    from medtext.terminologies.default import default_index_dir
    from medtext.terminologies.index import ConceptIndex

    files = sorted(CASES_EXACT_DIR.glob("*.jsonl"))
    report = check_linked_notes(files, index=ConceptIndex.load(default_index_dir()))
    assert report["problems"] == []
    assert report["notes"] == 80 and report["by_split"] == {"dev": report["mentions"]} and report["mentions"] > 1300
    assert set(report["by_chapter"]) == {"snomed:PROCEDURE"} and 500 < report["mentions"] - report["nil"] < 800
    ids = {n.id for n in read_linked_notes(files)}
    assert len(ids) == 80
    for other in (CASES_DIR, SNOMED_DIR):
        assert not ids & {n.id for n in read_linked_notes(sorted(other.glob("*.jsonl")))}
    assert all(folder != CASES_EXACT_DIR for folder, _ in TEAM_EXAMPLES.values())


def test_link_markup_errors(tmp_path):
    import pytest

    from medtext.corpora.linking_data import parse_link_markup, read_linked_notes
    from medtext.errors import InputError

    text, spans = parse_link_markup("Pt [amb 50 ft](FUNCTION|d4500) and [writes](FUNCTION|NIL), [sit>stand](FUNCTION|d4104+d415).")
    assert text == "Pt amb 50 ft and writes, sit>stand."
    assert [s[3] for s in spans] == [["d4500"], [], ["d4104", "d415"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "split": "dev", "text": "[amb](FUNCTION d450)"}\n')
    with pytest.raises(InputError, match="markup left"):
        read_linked_notes([bad])


def test_cli_medtext_format(tmp_path, medtext_home):
    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "n1", "split": "test", "text":
                                 "Needs help [putting on socks](FUNCTION|d5402). [Walking](FUNCTION|d450) ok. "
                                 "[Plays bridge](FUNCTION|NIL)."}) + "\n")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--split", "test",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["mentions"] == 2 and r["acc_covered"]["@1"] == 1.0 and r["nil"]["gold_nil"] == 1
    assert "macro-F1" in res.output


def test_cli_examples_option(tmp_path, medtext_home):
    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "n1", "split": "test", "text":
                                 "Bed mobility: [sup>sit via log roll, min A](FUNCTION|d4100)."}) + "\n")
    ex = tmp_path / "ex.jsonl"
    ex.write_text(json.dumps({"text": "sup>sit via log roll to R, min A", "system": "icf", "code": "d4100"}) + "\n")
    got = {}
    for extra in ([], ["--examples", str(ex)]):
        out = tmp_path / "r.json"
        res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--json", str(out),
                                       *extra])
        assert res.exit_code == 0, res.output
        got[bool(extra)] = json.loads(out.read_text())
    # lexically d4100 ranks first but scores under the NIL threshold; the example makes it sure
    assert got[False]["top1"]["accuracy"] == 0.0 and got[True]["top1"]["accuracy"] == 1.0
    assert got[True]["examples"] == [str(ex)] and got[True]["linker"]["examples"] == 1
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--examples", "medtext:nope"])
    assert res.exit_code != 0 and "unknown example set" in res.output


def test_cli_classifier_option(tmp_path, medtext_home):
    """`--classifier` adds a mention classifier (twice: an ensemble); a missing one is a clear error."""
    from medtext.terminologies.mention_classifier import MentionClassifier

    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "n1", "split": "test", "text":
                                 "Gait: [amb 80 ft FWW, SBA](FUNCTION|d4500). [LB dressing w/ sock aid](FUNCTION|d5402)."})
                     + "\n")
    train = [("amb 40 ft FWW CGA", "icf", "d4500"), ("ambulated 100 ft w/ RW, SBA", "icf", "d4500"),
             ("LB dressing min A for socks", "icf", "d5402"), ("dressing LE with sock aid mod A", "icf", "d5402")]
    a = MentionClassifier.train(train, min_df=1, steps=100, seed=0).save(tmp_path / "a")
    b = MentionClassifier.train(train, min_df=1, steps=100, seed=1).save(tmp_path / "b")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--json", str(out),
                                   "--classifier", str(a), "--classifier", str(b)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["classifier"] == [str(a), str(b)] and r["linker"]["classifier"] == f"{a} + {b}"
    assert r["top1"]["accuracy"] == 1.0 and "+ classifier" in res.output
    assert r["linker"]["ensemble_weights"] == [0.5, 0.5] and "members weighed 0.5 / 0.5" in res.output
    # --ensemble-weight, one per --classifier, as the trf preset's ensemble_weights
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--json", str(out),
                                   "--classifier", str(a), "--classifier", str(b),
                                   "--ensemble-weight", "0.65", "--ensemble-weight", "0.35"])
    assert res.exit_code == 0 and json.loads(out.read_text())["linker"]["ensemble_weights"] == [0.65, 0.35], res.output
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext",
                                   "--classifier", str(a), "--classifier", str(b), "--ensemble-weight", "1"])
    assert res.exit_code == 2 and "one per classifier (2)" in res.output, res.output
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--ensemble-weight", "1"])
    assert res.exit_code == 2 and "give two or more --classifier" in res.output, res.output
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext",
                                   "--classifier", str(tmp_path / "none")])
    assert res.exit_code != 0 and "no mention classifier here" in res.output



def test_cli_narrower_for(tmp_path, medtext_home):
    """`--narrower-for PROCEDURE` lets PROCEDURE mentions read the narrower procedure names, as the
    presets do; without it they are not read; with --preset it is refused."""
    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "n1", "split": "test", "text":
                                 "Post-op day 2 after [median sternotomy](PROCEDURE|177765008)."}) + "\n")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--json", str(out),
                                   "--narrower-for", "PROCEDURE"])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["linker"]["narrower"] == ["PROCEDURE"] and "narrower procedures read for PROCEDURE" in res.output
    assert r["acc_covered"]["@1"] == 1.0
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--json", str(out)])
    r = json.loads(out.read_text())
    assert res.exit_code == 0 and r["linker"]["narrower"] == [] and r["acc_covered"]["@1"] == 0.0, res.output
    assert "narrower procedures" not in res.output
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--preset", "default",
                                   "--narrower-for", "PROCEDURE"])
    assert res.exit_code == 2 and "--narrower-for" in res.output, res.output



def test_mistakes_name_each_wrong_decision():
    """evaluate_linking(mistakes=[...]) lists the wrongly decided mentions: linked to another code,
    left NIL with a gold code in the index, linked where nothing should be."""
    from medtext.corpora.linking_data import LinkingMention
    from medtext.terminologies.linking import Candidate, LinkResult

    def link(mentions):
        out = []
        for m in mentions:
            cands = [Candidate("icf", "d450", "Walking", "", 0.9), Candidate("icf", "d455", "Moving around", "", 0.4)]
            out.append(LinkResult(cands, nil=m.text == "shuffles", score=0.3 if m.text == "shuffles" else 0.9))
        return out

    ms = [LinkingMention("a:0", "walks", ["d450"], "FUNCTION"), LinkingMention("a:9", "runs", ["d455"], "FUNCTION"),
          LinkingMention("a:20", "shuffles", ["d450"], "FUNCTION"), LinkingMention("b:0", "sings", [], "FUNCTION"),
          LinkingMention("b:9", "hops", ["d999"], "FUNCTION")]
    mistakes: list = []
    r = evaluate_linking(_fake_linker([("icf", "d450"), ("icf", "d455"), ("icf", "d465")], link), ms, mistakes=mistakes)
    assert [(m["text"], m["error"]) for m in mistakes] == [
        ("runs", "wrong code"), ("shuffles", "left NIL"), ("sings", "should be NIL"), ("hops", "should be NIL")]
    runs, shuffles = mistakes[0], mistakes[1]
    assert runs["linked"] == "d450" and runs["gold_rank"] == 2 and runs["gold"] == ["d455"] and runs["id"] == "a:9"
    assert [c["code"] for c in runs["candidates"]] == ["d450", "d455"] and runs["decision_score"] == 0.9
    assert shuffles["linked"] is None and shuffles["gold_rank"] == 1 and mistakes[3]["gold_in_index"] is False
    assert len(mistakes) == round((1 - r["nil"]["decided_accuracy"]) * len(ms))



def test_nil_calibration_by_label():
    """One threshold cannot serve labels whose scores sit on different scales; the sweep per
    label finds each its own (what nil_thresholds takes)."""
    from medtext.corpora.linking_data import LinkingMention
    from medtext.terminologies.linking import Candidate, LinkResult

    score = {"walks": 0.4, "asthma": 0.9, "zebra fever": 0.6}

    def link(mentions):
        code = {"walks": "d450", "asthma": "195967001", "zebra fever": "195967001"}
        return [LinkResult([Candidate("x", code[m.text], m.text, "", score[m.text])], nil=False,
                           score=score[m.text]) for m in mentions]

    ms = [LinkingMention("a:0", "walks", ["d450"], "FUNCTION"), LinkingMention("a:9", "asthma", ["195967001"], "PROBLEM"),
          LinkingMention("a:20", "zebra fever", [], "PROBLEM")]
    cal = evaluate_linking(_fake_linker([("icf", "d450"), ("snomed", "195967001")], link), ms)["nil_calibration"]
    assert cal["best_accuracy"] == round(2 / 3, 4)  # no single threshold gets all three
    by = cal["by_label"]
    assert by["FUNCTION"]["best_threshold"] == 0.4 and by["FUNCTION"]["best_accuracy"] == 1.0
    assert by["PROBLEM"]["best_threshold"] == 0.65 and by["PROBLEM"]["best_accuracy"] == 1.0
    assert (by["PROBLEM"]["mentions"], by["PROBLEM"]["should_be_nil"]) == (2, 1)


def test_nil_calibration_sweeps_the_score_the_linker_decides_on():
    """With a classifier mixed in, the linker decides NIL on the best score before or after the
    mix (LinkResult.score), not on the mixed top-1 score: the curve at the linker's threshold must
    be its decided accuracy."""
    from medtext.corpora.linking_data import LinkingMention
    from medtext.terminologies.linking import Candidate, LinkResult

    def link(mentions):  # top-1 mixed down to 0.3, decided on 0.8 (its score before the mix)
        return [LinkResult([Candidate("icf", "d450", "Walking", "", 0.3)], nil=False, score=0.8) for _ in mentions]

    r = evaluate_linking(_fake_linker([("icf", "d450")], link), [LinkingMention("a:0", "walks", ["d450"], "FUNCTION")])
    assert r["nil"]["decided_accuracy"] == 1.0
    cal = r["nil_calibration"]
    assert cal["curve"]["0.50"] == 1.0 and cal["curve"]["0.75"] == 1.0 and cal["curve"]["0.85"] == 0.0

def test_cli_preset_evaluates_the_pipelines_linker(tmp_path, nlp):
    """`--preset` evaluates the linker the preset's pipeline builds (not a look-alike made of
    options); `--errors` writes the wrongly decided mentions; options that set the linker are
    refused alongside it, and a preset without a linker is a clear error."""
    from medtext.components.linker import linker_from_preset

    built = nlp.get_pipe("medtext_linker").linker.describe()
    assert linker_from_preset("default").describe() == built
    cfg = tmp_path / "mine.cfg"  # a .cfg file and a saved pipeline folder give the same linker
    cfg.write_text((Path(__file__).resolve().parents[1] / "configs" / "default.cfg").read_text())
    assert linker_from_preset(str(cfg)).describe() == built
    nlp.to_disk(tmp_path / "saved")
    assert linker_from_preset(str(tmp_path / "saved")).describe() == built
    notes = tmp_path / "n.jsonl"
    notes.write_text(json.dumps({"id": "n1", "split": "test", "text":
                                 "Needs help [putting on socks](FUNCTION|d5402). [Walking](FUNCTION|d455) ok."}) + "\n")
    out, errs = tmp_path / "r.json", tmp_path / "errors.jsonl"
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--preset", "default",
                                   "--json", str(out), "--errors", str(errs)])
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["preset"] == "default" and r["linker"] == built and "preset default: lexical" in res.output
    assert "+ literal translations replaced for ANATOMY, DRUG, PROBLEM" in res.output  # calques = true
    assert r["top1"]["accuracy"] == 0.5 and "(1 wrongly decided mention)" in res.output
    [wrong] = [json.loads(line) for line in errs.read_text().splitlines()]
    assert (wrong["text"], wrong["gold"], wrong["linked"], wrong["error"]) == ("Walking", ["d455"], "d450", "wrong code")
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--preset", "default",
                                   "--classifier", "medtext:linker_clf", "--nil-threshold", "0.6"])
    assert res.exit_code == 2 and "drop --nil-threshold, --classifier" in res.output, res.output
    res = CliRunner().invoke(app, ["evaluate", "linking", str(notes), "--format", "medtext", "--preset", "radiology"])
    assert res.exit_code == 2 and "has no medtext_linker component" in res.output, res.output

def test_benchmark_measures_the_presets_linking_settings():
    """benchmarks/linking.py's `-exs` configurations use the presets' nil_thresholds,
    example_tfidf_weight and (trf) dense weights, so the figures the README quotes for the presets
    are theirs."""
    import importlib.util

    from thinc.api import Config

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_linking", root / "benchmarks" / "linking.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for preset in ("default", "fast", "patient", "trf"):
        linker = Config().from_disk(root / "configs" / f"{preset}.cfg", interpolate=False)["components"]["medtext_linker"]
        assert {k: linker[k] for k in bench.PRESET_LINKING} == bench.PRESET_LINKING, preset
        assert linker["examples"] == ["medtext:icf", "medtext:snomed", "medtext:cases"], preset
        # the trf preset's dense candidates (SNOMED CT labels) are dense-snomed-exs's; the others are lexical
        dense = {k: linker.get(k) for k in bench.TRF_LINKING}
        assert (dense == bench.TRF_LINKING and linker["bi_encoder"] == "index") \
            if preset == "trf" else linker["bi_encoder"] is None, preset
        # the trf preset's ensemble weights are the ones its -exs-clf-ens configurations use
        assert linker.get("ensemble_weights") == (bench.TRF_ENSEMBLE_WEIGHTS if preset == "trf" else None), preset
