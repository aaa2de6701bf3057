"""Seq2seq lay rewriter (``medtext.components.lay_seq2seq``).

Batching, mapping and failure handling are tested with a scripted ``generate_fn``; the
transformers plumbing (safetensors-only load, cache, truncation, batched ``generate``) with a
tiny randomly initialised T5 built in a tmp dir (nothing is downloaded).
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from medtext.components import lay_seq2seq as ls
from medtext.components.lay_seq2seq import DEFAULT_PREFIX, Seq2SeqRewriter

SENTENCES = ["Pt c/o SOB on exertion.", "BP 150/90 on admission.", "Hx of MI in 2019.",
             "Started on ASA 81 mg daily.", "F/u with cardiology in 2 weeks."]


class Scripted:
    """generate_fn double: outputs from ``script(input)``; records the batches it was sent."""

    def __init__(self, script=lambda s: s.removeprefix(DEFAULT_PREFIX).upper()):
        self.script = script
        self.calls: list[list[str]] = []

    def __call__(self, batch):
        self.calls.append(list(batch))
        return [self.script(s) for s in batch]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 0}, {"batch_size": -3}, {"batch_size": 2.0}, {"timeout_s": 0},
    {"timeout_s": -1.0}, {"timeout_s": float("nan")}, {"max_new_tokens": 0},
    {"num_beams": 0}, {"max_input_tokens": 0}, {"prefix": None}, {"generate_fn": "not callable"},
])
def test_bad_config_raises_value_error(kwargs):
    with pytest.raises(ValueError, match="seq2seq rewriter"):
        Seq2SeqRewriter("some/model", **kwargs)


def test_model_required_without_generate_fn():
    with pytest.raises(ValueError, match="'model'"):
        Seq2SeqRewriter("")
    assert Seq2SeqRewriter("", generate_fn=Scripted()).rewrite(["x"])[0] == ["X"]


def test_import_does_not_need_torch():
    # spaCy (thinc) imports torch when it is installed, so block it instead: the module must
    # import, and a generate_fn rewriter work, with torch and transformers unavailable.
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "import medtext.components.lay_seq2seq as m; "
            "r = m.Seq2SeqRewriter('x', generate_fn=lambda b: ['ok'] * len(b)); "
            "print(r.rewrite(['Fever.', ''])[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['ok', None]"


# --------------------------------------------------------------------------- with generate_fn


def test_outputs_mapped_to_inputs_with_prefix():
    gen = Scripted()
    outputs, warnings = Seq2SeqRewriter("unused", generate_fn=gen).rewrite(SENTENCES[:3])
    assert outputs == [s.upper() for s in SENTENCES[:3]]
    assert warnings == []
    assert gen.calls == [[DEFAULT_PREFIX + s for s in SENTENCES[:3]]]


def test_custom_prefix_whitespace_and_strip():
    gen = Scripted(lambda s: f"  <{s}>\n")
    outputs, _ = Seq2SeqRewriter("unused", prefix="", generate_fn=gen).rewrite(["  Pt\n  stable.  "])
    assert gen.calls == [["Pt stable."]] and outputs == ["<Pt stable.>"]


def test_blank_sentences_not_sent():
    gen = Scripted()
    sents = ["", "Fever.", "   \n ", "Cough."]
    outputs, warnings = Seq2SeqRewriter("unused", generate_fn=gen).rewrite(sents)
    assert outputs == [None, "FEVER.", None, "COUGH."] and warnings == []
    assert gen.calls == [[DEFAULT_PREFIX + "Fever.", DEFAULT_PREFIX + "Cough."]]
    gen.calls.clear()
    assert Seq2SeqRewriter("unused", generate_fn=gen).rewrite(["", " "]) == ([None, None], [])
    assert Seq2SeqRewriter("unused", generate_fn=gen).rewrite([]) == ([], [])
    assert gen.calls == []


def test_all_blank_does_not_load_model(tmp_path):
    assert Seq2SeqRewriter(str(tmp_path / "nope")).rewrite(["", "\n"]) == ([None, None], [])


def test_non_string_sentence_raises_type_error():
    with pytest.raises(TypeError, match="sentence 1"):
        Seq2SeqRewriter("unused", generate_fn=Scripted()).rewrite(["Fever.", None])


def test_batching():
    gen = Scripted()
    outputs, _ = Seq2SeqRewriter("unused", batch_size=2, generate_fn=gen).rewrite(SENTENCES)
    assert [len(c) for c in gen.calls] == [2, 2, 1]
    assert [s for c in gen.calls for s in c] == [DEFAULT_PREFIX + s for s in SENTENCES]
    assert outputs == [s.upper() for s in SENTENCES]


def test_exception_fails_only_its_batch(caplog):
    calls = []

    def gen(batch):
        calls.append(batch)
        if len(calls) == 2:
            raise RuntimeError(batch[0])  # message holds sentence text: must not be reported
        return ["ok"] * len(batch)

    with caplog.at_level(logging.WARNING, logger=ls.__name__):
        outputs, warnings = Seq2SeqRewriter("unused", batch_size=2, generate_fn=gen).rewrite(SENTENCES)
    assert outputs == ["ok", "ok", None, None, "ok"]
    assert warnings == ["seq2seq rewriter: a batch of 2 sentences failed (RuntimeError); "
                        "they were not rewritten"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    for s in SENTENCES:
        assert s not in logged and s not in " ".join(warnings)


def test_timeout_error_from_generate_fn():
    def gen(batch):
        raise TimeoutError("API did not answer")

    outputs, warnings = Seq2SeqRewriter("unused", generate_fn=gen).rewrite(["Fever.", "Cough."])
    assert outputs == [None, None]
    assert warnings == ["seq2seq rewriter: a batch of 2 sentences timed out; they were not rewritten"]


def test_slow_batch_counts_as_timed_out(monkeypatch):
    clock = iter([0.0, 5.0, 10.0, 10.5])
    monkeypatch.setattr(ls, "_now", lambda: next(clock))
    rw = Seq2SeqRewriter("unused", batch_size=1, timeout_s=2.0, generate_fn=Scripted())
    outputs, warnings = rw.rewrite(["Fever.", "Cough."])
    assert outputs == [None, "COUGH."]
    (warning,) = warnings
    assert "took 5.0 s" in warning and "timeout_s=2" in warning


@pytest.mark.parametrize("reply", [[], ["a"], ["a", "b", "c"], None, "ab"])
def test_wrong_number_of_outputs(reply):
    outputs, warnings = Seq2SeqRewriter("unused", generate_fn=lambda b: reply).rewrite(["Fever.", "Cough."])
    assert outputs == [None, None]
    (warning,) = warnings
    assert "outputs for a batch of 2 sentences" in warning


def test_broken_outputs_discarded():
    sent = "Pt is afebrile."  # 15 characters: at most 3 * 15 + 20 = 65 characters back
    replies = {"a": "", "b": "  \n ", "c": "x" * 66, "d": "y" * 65, "e": None, "f": "  fine  "}
    gen = Scripted(lambda s: replies[s.removeprefix(DEFAULT_PREFIX)[0]])
    outputs, warnings = Seq2SeqRewriter("unused", generate_fn=gen).rewrite(
        [k + sent[1:] for k in replies])
    assert outputs == [None, None, None, "y" * 65, None, "fine"]
    assert warnings == ["seq2seq rewriter: 4 output(s) were empty or too long and were discarded"]


# --------------------------------------------------------------------------- tiny real model


def _build_tiny_t5(path, *, safe: bool = True):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    corpus = [DEFAULT_PREFIX + s for s in SENTENCES] + [
        "The patient was short of breath when walking.", "Blood pressure was high.",
        "Heart attack in 2019.", "Aspirin every day.", "See the heart doctor in two weeks."]
    tk = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>",
                                               eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(path)
    pad_id, eos_id = tok.pad_token_id, tok.eos_token_id
    assert (pad_id, eos_id) == (0, 1)
    cfg = transformers.T5Config(vocab_size=len(tok), d_model=32, d_ff=64, num_layers=2,
                                num_decoder_layers=2, num_heads=2, d_kv=16,
                                decoder_start_token_id=pad_id, pad_token_id=pad_id,
                                eos_token_id=eos_id)
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(cfg).save_pretrained(path, safe_serialization=safe)
    return path


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory):
    path = _build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))
    yield path
    ls.clear_cache()


@pytest.fixture
def loaded(tiny_t5):
    """(path, tokenizer, model) with the model freshly loaded into the cache."""
    ls.clear_cache()
    tok, lm = ls._load_backend(str(tiny_t5), "cpu")
    return str(tiny_t5), tok, lm


def _spy_generate(monkeypatch, lm):
    calls = []
    real = lm.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(lm, "generate", spy)
    return calls


def test_tiny_t5_rewrite(loaded, monkeypatch):
    path, tok, lm = loaded
    assert not lm.training and lm.config.is_encoder_decoder
    calls = _spy_generate(monkeypatch, lm)
    sents = SENTENCES[:3] + ["  "]
    outputs, warnings = Seq2SeqRewriter(path, batch_size=2, max_new_tokens=8).rewrite(sents)
    assert len(outputs) == len(sents) and outputs[3] is None
    assert all(o is None or (isinstance(o, str) and o == o.strip() and o) for o in outputs)
    assert isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)
    assert [c["input_ids"].shape[0] for c in calls] == [2, 1]
    for c in calls:
        assert set(c) == {"input_ids", "attention_mask", "max_new_tokens", "num_beams",
                          "do_sample", "max_time"}
        assert c["max_new_tokens"] == 8 and c["max_time"] == 60.0 and c["num_beams"] == 1
    # the inputs are the prefixed sentences (with the eos the tokenizer appends)
    expected = tok(DEFAULT_PREFIX + SENTENCES[0])["input_ids"]
    assert expected[-1] == tok.eos_token_id and tok.unk_token_id not in expected
    assert calls[0]["input_ids"][0].tolist()[:len(expected)] == expected


def test_tiny_t5_loaded_once(tiny_t5, monkeypatch):
    import transformers

    ls.clear_cache()
    loads = []
    real = transformers.AutoModelForSeq2SeqLM.from_pretrained

    def counting(*args, **kwargs):
        loads.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForSeq2SeqLM, "from_pretrained", counting)
    rw = Seq2SeqRewriter(str(tiny_t5), max_new_tokens=4)
    rw.rewrite(["Fever."])
    Seq2SeqRewriter(str(tiny_t5), max_new_tokens=4).rewrite(["Cough.", "Aspirin daily."])
    assert len(loads) == 1
    assert loads[0]["use_safetensors"] is True and loads[0]["trust_remote_code"] is False
    assert str(loads[0]["torch_dtype"]) == "torch.float32"


def test_tiny_t5_beams_and_truncation(loaded, monkeypatch):
    path, _, lm = loaded
    calls = _spy_generate(monkeypatch, lm)
    long = " ".join(["Pt c/o SOB on exertion."] * 5)
    outputs, warnings = Seq2SeqRewriter(path, max_new_tokens=4, num_beams=2, timeout_s=30,
                                        max_input_tokens=6).rewrite([long, "Fever."])
    assert len(outputs) == 2
    (call,) = calls
    assert call["input_ids"].shape[1] == 6 and call["num_beams"] == 2 and call["max_time"] == 30
    assert "1 sentence(s) longer than max_input_tokens=6 were cut" in " ".join(warnings)


def test_tiny_t5_runtime_error_warns_value_error_raises(loaded, monkeypatch):
    path, _, lm = loaded
    rw = Seq2SeqRewriter(path, max_new_tokens=2)

    def oom(**kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(lm, "generate", oom)
    assert rw.rewrite(["Fever.", "Cough."]) == (
        [None, None], ["seq2seq rewriter: a batch of 2 sentences failed (RuntimeError); "
                       "they were not rewritten"])

    def misconfigured(**kwargs):
        raise ValueError("bad generate argument")

    monkeypatch.setattr(lm, "generate", misconfigured)
    with pytest.raises(ValueError, match="bad generate argument"):
        rw.rewrite(["Fever."])


def test_missing_model_path_raises(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="cannot load"):
        Seq2SeqRewriter(str(tmp_path / "nope")).rewrite(["Fever."])


def test_pickle_only_weights_are_refused(tmp_path):
    path = _build_tiny_t5(tmp_path / "pickled", safe=False)
    assert (path / "pytorch_model.bin").exists() and not list(path.glob("*.safetensors"))
    with pytest.raises(ValueError, match="safetensors") as e:
        Seq2SeqRewriter(str(path)).rewrite(["Fever."])
    assert isinstance(e.value, ls.Seq2SeqConfigError)


def test_causal_lm_is_refused(tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    _build_tiny_t5(tmp_path)  # tokenizer; replaced weights below
    for f in tmp_path.glob("*.safetensors"):
        f.unlink()
    cfg = transformers.GPT2Config(vocab_size=16, n_embd=16, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(ValueError, match="encoder-decoder"):
        Seq2SeqRewriter(str(tmp_path)).rewrite(["Fever."])
