"""Generative error-detection backend (``medtext.components.error_generative``).

Parsing and orchestration are tested with a scripted ``generate_fn``; the transformers
plumbing (load, chat template, left-padded batched generate, retry with sampling) with a tiny
randomly initialised Llama built in a tmp dir (nothing is downloaded).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import Doc

from medtext.components import error_generative as eg
from medtext.components.error_generative import (
    DEFAULT_PROMPT,
    ERROR_TYPES,
    GenerationError,
    GenerativeDetector,
    parse_reply,
)

NOTE = ("A 45-year-old man presents with fever and cough. Chest X-ray shows a right lower lobe "
        "infiltrate. He is diagnosed with pulmonary embolism. Amoxicillin is started.")


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def reply(error=True, sid=2, etype="diagnosis", correction="He is diagnosed with pneumonia."):
    return json.dumps({"error": error, "sentence_id": sid, "type": etype, "correction": correction})


class Scripted:
    """generate_fn double: replies from ``script(prompt, attempt)``; records calls."""

    def __init__(self, script):
        self.script = script
        self.calls: list[tuple[list[str], int]] = []

    def __call__(self, prompts, attempt):
        self.calls.append((list(prompts), attempt))
        return [self.script(p, attempt) for p in prompts]


# --------------------------------------------------------------------------- parse_reply


def test_parse_valid():
    assert parse_reply(reply(), 4) == {"error": True, "sentence_id": 2, "type": "diagnosis",
                                       "correction": "He is diagnosed with pneumonia."}


def test_parse_fenced_and_prose():
    text = ("Sure! Here is my analysis of the note.\n```json\n" + reply(sid=0, etype="treatment")
            + "\n```\nLet me know if you need anything else {really}.")
    out = parse_reply(text, 4)
    assert out["sentence_id"] == 0 and out["type"] == "treatment"


def test_parse_braces_inside_strings():
    text = ('{"error": true, "sentence_id": 1, "type": "management", '
            '"correction": "Give {dose} \\"as\\" needed }}{"}')
    out = parse_reply(text, 2)
    assert out["correction"] == 'Give {dose} "as" needed }}{'


def test_parse_skips_invalid_top_level_object_but_not_nested():
    assert parse_reply("{not json} then " + reply(sid=1), 3)["sentence_id"] == 1
    # an invalid outer object is not rescued by a valid object nested inside it
    with pytest.raises(GenerationError):
        parse_reply('{"x": ' + reply(error=False, sid=-1) + ',}', 3)


@pytest.mark.parametrize("text", [
    "",
    "no json here",
    '{"error": true, "sentence_id": 1,',          # truncated
    "{'error': True, 'sentence_id': 1}",           # python, not JSON
    '{"error": true, "sentence_id": 1,}',          # trailing comma
    "[1, 2]",
])
def test_parse_invalid_json(text):
    with pytest.raises(GenerationError):
        parse_reply(text, 3)


@pytest.mark.parametrize("obj", [
    {"sentence_id": 1, "type": "diagnosis"},                                    # no 'error'
    {"error": "true", "sentence_id": 1, "type": "diagnosis"},                   # str, not bool
    {"error": 1, "sentence_id": 1, "type": "diagnosis"},
    {"error": True, "sentence_id": "1", "type": "diagnosis"},
    {"error": True, "sentence_id": 1.0, "type": "diagnosis"},
    {"error": True, "sentence_id": True, "type": "diagnosis"},
    {"error": True, "sentence_id": None, "type": "diagnosis"},
    {"error": True, "sentence_id": 1, "type": None},
    {"error": True, "sentence_id": 1, "type": 3},
    {"error": True, "sentence_id": 1, "type": "diagnosis", "correction": 5},
    {"error": False, "sentence_id": 0, "type": None},
])
def test_parse_wrong_types(obj):
    with pytest.raises(GenerationError):
        parse_reply(json.dumps(obj), 3)


@pytest.mark.parametrize("sid", [-1, 3, 10])
def test_parse_sentence_id_out_of_range(sid):
    with pytest.raises(GenerationError, match="out of range"):
        parse_reply(reply(sid=sid), 3)


def test_parse_unknown_type_message_has_no_reply_text():
    with pytest.raises(GenerationError) as e:
        parse_reply(reply(etype="secret patient words"), 3)
    assert "secret" not in str(e.value)


@pytest.mark.parametrize("sid", [-1, None])
def test_parse_no_error(sid):
    text = json.dumps({"error": False, "sentence_id": sid, "type": None, "correction": None})
    assert parse_reply(text, 3) == {"error": False, "sentence_id": -1, "type": None,
                                    "correction": None}


@pytest.mark.parametrize("raw,canonical", [
    ("Diagnosis", "diagnosis"), ("PHARMACOTHERAPY", "pharmacotherapy"),
    ("causalOrganism", "causalOrganism"), ("causal organism", "causalOrganism"),
    ("Causal_Organism", "causalOrganism"), ("causal-organism", "causalOrganism"),
    (" management ", "management"),
])
def test_parse_type_normalisation(raw, canonical):
    assert parse_reply(reply(sid=0, etype=raw), 1)["type"] == canonical


def test_parse_blank_correction_is_none():
    assert parse_reply(reply(sid=0, correction="  "), 1)["correction"] is None
    assert parse_reply(reply(sid=0, correction=None), 1)["correction"] is None


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 0}, {"retries": -1}, {"timeout_s": 0}, {"timeout_s": -1.0},
    {"prompt_template": "no field here"}, {"prompt_template": "{sentences} {unknown}"},
    {"prompt_template": '{sentences} {"error": true}'}, {"max_sentences": 0},
    {"max_new_tokens": 0}, {"temperature": -0.1},
])
def test_bad_config_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        GenerativeDetector("some/model", **kwargs)


def test_default_prompt_fields():
    det = GenerativeDetector("unused", generate_fn=lambda p, a: [])
    prompt = det.build_prompt(["First one.", "Second\n  one."])
    assert "\n0 First one.\n1 Second one.\n" in prompt
    for t in ERROR_TYPES:
        assert t in prompt
    assert '{"error": true or false' in prompt
    assert "{sentences}" in DEFAULT_PROMPT and "{types}" in DEFAULT_PROMPT


def test_import_does_not_need_torch():
    # spaCy (thinc) itself imports torch when it is installed, so block it instead: the module
    # must import (and parse_reply work) with torch and transformers unavailable.
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "import medtext.components.error_generative as m; "
            "print(m.parse_reply('{\"error\": false}', 1)['error'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


# --------------------------------------------------------------------------- with generate_fn


def test_valid_reply_gives_finding_at_sentence(nlp):
    doc = nlp(NOTE)
    gen = Scripted(lambda p, a: reply(sid=2))
    det = GenerativeDetector("unused", generate_fn=gen)
    (findings,) = det.find([doc])
    assert len(findings) == 1
    f = findings[0]
    assert doc.text[f["start"]:f["end"]] == "He is diagnosed with pulmonary embolism."
    assert f == {"start": f["start"], "end": f["end"], "type": "diagnosis",
                 "message": "generative model flags this sentence (diagnosis)",
                 "correction": "He is diagnosed with pneumonia.", "score": None,
                 "detector": "generative"}
    assert gen.calls[0][1] == 0 and len(gen.calls) == 1
    assert "\n2 He is diagnosed with pulmonary embolism.\n" in gen.calls[0][0][0]
    assert not doc._.warnings


def test_no_error_reply_gives_no_findings(nlp):
    doc = nlp(NOTE)
    det = GenerativeDetector("unused", generate_fn=Scripted(lambda p, a: reply(False, -1, None, None)))
    assert det.find([doc]) == [[]]
    assert not doc._.warnings


def test_blank_sentences_skipped_and_mapped(nlp):
    words = ["Fever", ".", "   ", "Cough", "."]
    doc = Doc(nlp.vocab, words=words, spaces=[False, True, False, False, False],
              sent_starts=[True, False, True, True, False])
    gen = Scripted(lambda p, a: reply(sid=1))
    (findings,) = GenerativeDetector("unused", generate_fn=gen).find([doc])
    assert "\n0 Fever.\n1 Cough.\n" in gen.calls[0][0][0]
    assert doc.text[findings[0]["start"]:findings[0]["end"]] == "Cough."


def test_doc_without_sentences_is_one_sentence(nlp):
    doc = nlp.make_doc("Fever and cough.  ")
    (findings,) = GenerativeDetector("unused", generate_fn=Scripted(lambda p, a: reply(sid=0))).find([doc])
    assert (findings[0]["start"], findings[0]["end"]) == (0, len("Fever and cough."))


def test_malformed_then_valid_on_retry(nlp):
    doc = nlp(NOTE)
    gen = Scripted(lambda p, a: "I think sentence 2 is wrong" if a == 0 else reply(sid=3, etype="pharmacotherapy"))
    (findings,) = GenerativeDetector("unused", generate_fn=gen).find([doc])
    assert [a for _, a in gen.calls] == [0, 1]
    assert findings[0]["type"] == "pharmacotherapy"
    assert doc.text[findings[0]["start"]:findings[0]["end"]] == "Amoxicillin is started."
    assert not doc._.warnings


def test_always_malformed_warns(nlp, caplog):
    doc = nlp(NOTE)
    gen = Scripted(lambda p, a: '{"error": true, "sentence_id": 99, "type": "diagnosis"}')
    with caplog.at_level(logging.WARNING, logger=eg.__name__):
        assert GenerativeDetector("unused", retries=2, generate_fn=gen).find([doc]) == [[]]
    assert [a for _, a in gen.calls] == [0, 1, 2]
    (warning,) = doc._.warnings
    assert warning.startswith("medtext_errors: generative backend gave no valid JSON after 3 attempts")
    assert "out of range" in warning
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "no valid JSON" in logged
    for sent in doc.sents:
        assert sent.text.strip() not in warning and sent.text.strip() not in logged


def test_existing_warnings_list_is_appended(nlp):
    doc = nlp(NOTE)
    doc._.warnings = ["earlier"]
    GenerativeDetector("unused", retries=0, generate_fn=Scripted(lambda p, a: "nope")).find([doc])
    assert doc._.warnings[0] == "earlier" and "after 1 attempts" in doc._.warnings[1]


def test_generate_fn_timeout_error_warns(nlp):
    doc = nlp(NOTE)
    attempts = []

    def gen(prompts, attempt):
        attempts.append(attempt)
        raise TimeoutError("API did not answer")

    assert GenerativeDetector("unused", retries=1, generate_fn=gen).find([doc]) == [[]]
    assert attempts == [0, 1]
    assert doc._.warnings == ["medtext_errors: generative backend gave no valid JSON after 2 "
                              "attempts (last: timed out)"]


def test_generate_fn_other_exception_and_wrong_count(nlp):
    d1, d2 = nlp(NOTE), nlp(NOTE)

    def boom(prompts, attempt):
        raise RuntimeError(prompts[0])  # message holds note text: must not reach the warning

    assert GenerativeDetector("unused", retries=0, generate_fn=boom).find([d1]) == [[]]
    assert d1._.warnings and "RuntimeError" in d1._.warnings[0] and "fever" not in d1._.warnings[0]
    assert GenerativeDetector("unused", retries=0, generate_fn=lambda p, a: []).find([d2]) == [[]]
    assert "wrong number of replies" in d2._.warnings[0]


def test_slow_generate_fn_counts_as_timed_out(nlp, monkeypatch):
    doc = nlp(NOTE)
    clock = iter([0.0, 5.0, 10.0, 10.5])
    monkeypatch.setattr(eg.time, "monotonic", lambda: next(clock))
    gen = Scripted(lambda p, a: reply(sid=0))
    det = GenerativeDetector("unused", retries=1, timeout_s=2.0, generate_fn=gen)
    (findings,) = det.find([doc])
    assert len(gen.calls) == 2 and findings and findings[0]["start"] == 0  # 1st call too slow


def test_empty_doc_does_not_call_backend(nlp):
    gen = Scripted(lambda p, a: reply(sid=0))
    det = GenerativeDetector("unused", generate_fn=gen)
    assert det.find([nlp(""), nlp("   \n\n  ")]) == [[], []]
    assert det.find([]) == []
    assert gen.calls == []


def test_max_sentences_truncation(nlp):
    doc = nlp(NOTE)
    gen = Scripted(lambda p, a: reply(sid=1, etype="management"))
    (findings,) = GenerativeDetector("unused", max_sentences=2, generate_fn=gen).find([doc])
    prompt = gen.calls[0][0][0]
    assert "\n1 Chest X-ray" in prompt and "\n2 " not in prompt
    assert doc.text[findings[0]["start"]:findings[0]["end"]].startswith("Chest X-ray")
    (warning,) = doc._.warnings
    assert "4 sentences" in warning and "first 2" in warning


def test_batching(nlp):
    docs = [nlp(NOTE), nlp("Blood cultures grew E. coli. Vancomycin was given."), nlp("Fine.")]
    gen = Scripted(lambda p, a: reply(False, -1, None, None) if "Fine." in p else reply(sid=1))
    results = GenerativeDetector("unused", batch_size=2, generate_fn=gen).find(docs)
    assert [len(c[0]) for c in gen.calls] == [2, 1]
    assert [len(r) for r in results] == [1, 1, 0]
    assert docs[1].text[results[1][0]["start"]:results[1][0]["end"]] == "Vancomycin was given."


def test_retry_batches_only_failed_prompts(nlp):
    docs = [nlp(NOTE), nlp("Other note. Second sentence."), nlp("Third note.")]
    gen = Scripted(lambda p, a: "garbage" if a == 0 and "Other note" in p else reply(sid=0))
    results = GenerativeDetector("unused", batch_size=2, generate_fn=gen).find(docs)
    assert [(len(c[0]), c[1]) for c in gen.calls] == [(2, 0), (1, 0), (1, 1)]
    assert all(len(r) == 1 for r in results)


# --------------------------------------------------------------------------- tiny real model


def _build_tiny_model(path, *, chat_template: str | None, pad: bool):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [NOTE, DEFAULT_PROMPT, reply(), reply(False, -1, None, None),
              '```json {"error": false, "sentence_id": -1, "type": null} ```'] * 3
    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    kw = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
    if pad:
        kw["pad_token"] = "<pad>"
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, **kw)
    if chat_template:
        tok.chat_template = chat_template
    tok.save_pretrained(path)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tok.convert_tokens_to_ids("<s>"), eos_token_id=tok.convert_tokens_to_ids("</s>"),
        pad_token_id=tok.convert_tokens_to_ids("<pad>"))
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    return path


CHAT = ("{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return _build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), chat_template=None, pad=True)


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    return _build_tiny_model(tmp_path_factory.mktemp("tiny_chat"), chat_template=CHAT, pad=False)


def test_tiny_model_plumbing(tiny_model, nlp, monkeypatch):
    assert list(tiny_model.glob("*.safetensors")) and not list(tiny_model.glob("*.bin"))
    tok, lm = eg._load_backend(str(tiny_model), "cpu")
    assert tok.padding_side == "left" and not lm.training
    calls = []
    real_generate = lm.generate

    def spy(**kwargs):
        calls.append({k: kwargs.get(k) for k in ("do_sample", "temperature", "max_time",
                                                   "max_new_tokens")}
                     | {"rows": kwargs["input_ids"].shape[0]})
        return real_generate(**kwargs)

    monkeypatch.setattr(lm, "generate", spy)
    docs = [nlp(NOTE), nlp("Short note. Nothing else.")]
    det = GenerativeDetector(str(tiny_model), max_new_tokens=8, retries=1, timeout_s=60)
    assert det.build_prompt(["x"]) == det.format_prompt(["x"])  # no chat template
    assert det.find(docs) == [[], []]
    assert [(c["do_sample"], c["rows"]) for c in calls] == [(False, 2), (True, 2)]
    assert calls[1]["temperature"] == 0.7
    assert all(c["max_time"] == 60 and c["max_new_tokens"] == 8 for c in calls)
    for doc in docs:
        (warning,) = doc._.warnings
        assert warning.startswith("medtext_errors: generative backend gave no valid JSON after "
                                  "2 attempts (last: ")
        assert "backend error" not in warning and "timed out" not in warning  # generate ran
    # loaded once per (model, device)
    assert eg._load_backend(str(tiny_model), "cpu")[1] is lm


def test_tiny_model_chat_template(tiny_chat_model, nlp, monkeypatch):
    det = GenerativeDetector(str(tiny_chat_model), max_new_tokens=4, retries=0)
    prompt = det.build_prompt(["Fever.", "Cough."])
    assert prompt.startswith("<|user|>") and prompt.endswith("<|end|><|assistant|>")
    assert det.format_prompt(["Fever.", "Cough."]) in prompt
    tok, _ = eg._load_backend(str(tiny_chat_model), "cpu")
    assert tok.pad_token == tok.eos_token  # pad was missing
    seen = []
    real_call = type(tok).__call__

    def spy(self, texts, *a, **kw):
        seen.extend(texts)
        return real_call(self, texts, *a, **kw)

    monkeypatch.setattr(type(tok), "__call__", spy)
    doc = nlp("Fever. Cough.")
    assert det.find([doc]) == [[]]
    assert seen == [prompt] and "after 1 attempts" in doc._.warnings[0]
    assert "backend error" not in doc._.warnings[0]


def test_missing_model_path_raises(tmp_path, nlp):
    pytest.importorskip("transformers")
    det = GenerativeDetector(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="cannot load"):
        det.find([nlp("Fever.")])


def test_pickle_only_weights_are_refused(tiny_model, tmp_path, nlp):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    lm = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    transformers.AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path)
    lm.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "pytorch_model.bin").exists()
    with pytest.raises(ValueError, match="safetensors"):
        GenerativeDetector(str(tmp_path)).find([nlp("Fever.")])


def test_tiny_model_runtime_error_warns_value_error_raises(tiny_model, nlp, monkeypatch):
    _, lm = eg._load_backend(str(tiny_model), "cpu")
    det = GenerativeDetector(str(tiny_model), max_new_tokens=2, retries=0)

    def oom(**kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(lm, "generate", oom)
    doc = nlp("Fever.")
    assert det.find([doc]) == [[]]
    assert "backend error RuntimeError" in doc._.warnings[0]

    def misconfigured(**kwargs):
        raise ValueError("bad generate argument")

    monkeypatch.setattr(lm, "generate", misconfigured)
    with pytest.raises(ValueError, match="bad generate argument"):
        det.find([nlp("Fever.")])
