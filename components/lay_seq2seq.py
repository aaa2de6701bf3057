"""Seq2seq backend of ``medtext_lay``: a patient-readable rewrite of each clinical sentence.

:class:`Seq2SeqRewriter` sends each sentence, prefixed with ``prefix`` (default
:data:`DEFAULT_PREFIX`, ``"simplify: "``), to an encoder-decoder model (any ``transformers``
model name or local path, e.g. a T5 / Flan-T5 checkpoint; meant for users with a GPU) and
returns the decoded rewrite. ``medtext_lay`` keeps its rule-based version of a sentence the
rewriter fails on.

Config (keyword arguments of :class:`Seq2SeqRewriter`):

- ``model``: a model name or a local directory (loaded with ``AutoTokenizer`` /
  ``AutoModelForSeq2SeqLM``, safetensors weights only, no remote code). Loading is lazy (first
  :meth:`Seq2SeqRewriter.rewrite` with a non-blank sentence) and happens once per process per
  ``(model, device)``.
- ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (float16 on CUDA, float32 elsewhere).
- ``batch_size``: sentences per ``generate`` call.
- ``prefix``: text put before every sentence (the task prefix of T5-style models; ``""`` for
  none).
- ``max_new_tokens``, ``num_beams``: passed to ``generate`` (greedy / beam search, no sampling).
- ``timeout_s``: per batch; passed to ``generate`` as ``max_time``, and a batch whose wall time
  exceeds it fails (its sentences get no rewrite).
- ``max_input_tokens``: longer inputs are cut (a warning says how many).
- ``generate_fn``: ``callable(batch: list[str]) -> list[str]`` (inputs already prefixed)
  replacing the local model (tests, hosted APIs); no model is loaded then. Any exception it
  raises (including ``TimeoutError``) fails that batch only.

Usage::

    rw = Seq2SeqRewriter("path/to/flan-t5", device="cuda", batch_size=16)
    outputs, warnings = rw.rewrite(["Pt c/o SOB on exertion.", "BP 150/90."])
    # outputs: one str (the rewrite) or None (no usable rewrite) per sentence

A sentence gets ``None`` when it is blank (the model is not called), when its batch failed
(exception, timeout, wrong number of outputs) or when the output is obviously broken (empty,
or longer than ``3 * len(sentence) + 20`` characters: the model rambled or looped). Internal
whitespace of a sentence (line breaks of the note) is collapsed to single spaces before it is
sent.

Failures: bad config raises :class:`Seq2SeqConfigError` (a ``ValueError``) at construction, or
at the first ``rewrite`` when the model cannot be loaded (e.g. only pickled ``.bin`` weights).
A local model's runtime failure (``RuntimeError``, e.g. CUDA out of memory) fails that batch
with a warning; ``ValueError`` / ``TypeError`` from ``generate`` signal a misconfiguration or a
programming error and propagate.

Warnings are short strings without sentence text (``medtext_lay`` prefixes them with
``"medtext_lay: "`` and puts them in ``doc._.warnings``). Sentence text is logged at DEBUG
level only.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

from medtext.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "simplify: "

#: an output longer than ``_MAX_GROWTH * len(sentence) + _MAX_SLACK`` characters is discarded
_MAX_GROWTH = 3
_MAX_SLACK = 20



class Seq2SeqConfigError(ConfigError, ValueError):
    """Bad configuration of the seq2seq rewriter (a ``ValueError`` and a medtext ConfigError)."""


def _now() -> float:
    """Wall clock of the timeout checks (a function so tests can replace it)."""
    return time.monotonic()


# --------------------------------------------------------------------------- model loading


def _load_backend(model: str, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) for ``(model, device)``, loaded once per process."""
    from .hf_models import load_generation_model

    return load_generation_model(model, device, kind="seq2seq", what="seq2seq rewriter", error=Seq2SeqConfigError,
                                 left_padding=False)


def clear_cache() -> None:
    """Forget the loaded models (frees their memory once nothing else holds them)."""
    from .hf_models import clear_cache as clear

    clear("seq2seq")


# --------------------------------------------------------------------------- rewriter


def usable(output: Any, sentence: str) -> str | None:
    """``output`` stripped, or None when it is obviously broken (not a string, empty, or longer
    than ``3 * len(sentence) + 20`` characters, ``sentence`` stripped)."""
    if not isinstance(output, str):
        return None
    out = output.strip()
    if not out or len(out) > _MAX_GROWTH * len(sentence.strip()) + _MAX_SLACK:
        return None
    return out


class Seq2SeqRewriter:
    """Sentence-level lay rewriting with a seq2seq model (see the module docstring)."""

    name = "seq2seq"

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 8,
                 prefix: str = DEFAULT_PREFIX, max_new_tokens: int = 128, num_beams: int = 1,
                 timeout_s: float = 60.0, max_input_tokens: int = 512,
                 generate_fn: Callable[[list[str]], list[str]] | None = None):
        def bad(msg: str) -> Seq2SeqConfigError:
            return Seq2SeqConfigError(f"seq2seq rewriter: {msg}")

        if generate_fn is None and (not isinstance(model, str) or not model.strip()):
            raise bad("'model' (a model name or a local directory) is required")
        if generate_fn is not None and not callable(generate_fn):
            raise bad("generate_fn must be callable")
        if not isinstance(device, str) or not device:
            raise bad(f"device must be a string such as 'cpu' or 'cuda', not {device!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise bad(f"batch_size must be an integer >= 1, not {batch_size!r}")
        if not isinstance(prefix, str):
            raise bad(f"prefix must be a string, not {type(prefix).__name__}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise bad(f"max_new_tokens must be an integer >= 1, not {max_new_tokens!r}")
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise bad(f"num_beams must be an integer >= 1, not {num_beams!r}")
        if (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                or not timeout_s > 0 or timeout_s == float("inf")):
            raise bad(f"timeout_s must be a number > 0, not {timeout_s!r}")
        if (isinstance(max_input_tokens, bool) or not isinstance(max_input_tokens, int)
                or max_input_tokens < 1):
            raise bad(f"max_input_tokens must be an integer >= 1, not {max_input_tokens!r}")
        self.model = str(model) if model else ""
        self.device = device
        self.batch_size = batch_size
        self.prefix = prefix
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.timeout_s = float(timeout_s)
        self.max_input_tokens = max_input_tokens
        self.generate_fn = generate_fn

    # ---------------------------------------------------------------- generation

    def _generate(self, batch: list[str], warnings: list[str]) -> list[Any] | None:
        """Outputs for one batch of prefixed inputs, or None (with a warning) when it failed."""
        n = len(batch)
        t0 = _now()
        # generate_fn (an API, user code): any exception fails this batch only. The local model:
        # runtime failures (out of memory, device errors) do too, but ValueError / TypeError
        # from transformers or torch mean a misconfiguration and propagate.
        catch: tuple[type[BaseException], ...] = (
            (Exception,) if self.generate_fn is not None else (RuntimeError, MemoryError))
        try:
            if self.generate_fn is not None:
                outputs = self.generate_fn(list(batch))
            else:
                outputs = self._generate_local(batch, warnings)
        except TimeoutError:
            log.warning("seq2seq rewriter: batch of %d timed out", n)
            warnings.append(f"seq2seq rewriter: a batch of {n} sentences timed out; "
                            "they were not rewritten")
            return None
        except catch as e:  # a failing backend must not stop the pipeline
            log.warning("seq2seq rewriter: batch of %d failed with %s", n, type(e).__name__)
            log.debug("seq2seq rewriter error detail: %s", e)
            warnings.append(f"seq2seq rewriter: a batch of {n} sentences failed "
                            f"({type(e).__name__}); they were not rewritten")
            return None
        elapsed = _now() - t0
        if elapsed > self.timeout_s:
            log.warning("seq2seq rewriter: batch of %d took %.1f s > timeout_s=%.1f", n, elapsed,
                        self.timeout_s)
            warnings.append(f"seq2seq rewriter: a batch of {n} sentences took {elapsed:.1f} s "
                            f"(timeout_s={self.timeout_s:g}); they were not rewritten")
            return None
        if isinstance(outputs, tuple):
            outputs = list(outputs)
        if not isinstance(outputs, list) or len(outputs) != n:
            got = len(outputs) if isinstance(outputs, list) else f"a {type(outputs).__name__}, not a list of"
            log.warning("seq2seq rewriter: backend returned %s outputs for %d inputs", got, n)
            warnings.append(f"seq2seq rewriter: the backend returned {got} outputs for a batch "
                            f"of {n} sentences; they were not rewritten")
            return None
        return outputs

    def _generate_local(self, batch: list[str], warnings: list[str]) -> list[str]:
        import torch

        tok, lm = _load_backend(self.model, self.device)
        full = tok(batch, add_special_tokens=True)["input_ids"]
        cut = sum(len(ids) > self.max_input_tokens for ids in full)
        if cut:
            log.warning("seq2seq rewriter: %d input(s) cut to max_input_tokens=%d", cut,
                        self.max_input_tokens)
            warnings.append(f"seq2seq rewriter: {cut} sentence(s) longer than "
                            f"max_input_tokens={self.max_input_tokens} were cut before rewriting")
        enc = tok(batch, return_tensors="pt", padding=True, truncation=True,
                  max_length=self.max_input_tokens)
        inputs = {k: enc[k].to(lm.device) for k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            out = lm.generate(**inputs, max_new_tokens=self.max_new_tokens,
                              num_beams=self.num_beams, do_sample=False, max_time=self.timeout_s)
        return [t.strip() for t in tok.batch_decode(out, skip_special_tokens=True)]

    # ---------------------------------------------------------------- API

    def rewrite(self, sentences: Sequence[str]) -> tuple[list[str | None], list[str]]:
        """One rewrite per input sentence (None when it failed: empty output, a timeout, an
        exception, or output that is obviously broken: empty/whitespace, or longer than 3x the
        input + 20 characters), and a list of warning strings (no sentence text in them)."""
        sentences = list(sentences)
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise TypeError(f"seq2seq rewriter: sentence {i} is a {type(s).__name__}, not a str")
        results: list[str | None] = [None] * len(sentences)
        warnings: list[str] = []
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        if not todo:
            return results, warnings
        if self.generate_fn is None:
            _load_backend(self.model, self.device)  # config errors (bad name/path) raise here
        broken = 0
        for b in range(0, len(todo), self.batch_size):
            chunk = todo[b:b + self.batch_size]
            batch = [self.prefix + " ".join(sentences[i].split()) for i in chunk]
            outputs = self._generate(batch, warnings)
            if outputs is None:
                continue
            for i, raw in zip(chunk, outputs):
                log.debug("seq2seq rewrite of sentence %d: %r -> %r", i, sentences[i], raw)
                out = usable(raw, sentences[i])
                if out is None:
                    broken += 1
                results[i] = out
        if broken:
            log.warning("seq2seq rewriter: %d unusable output(s) (empty or too long) discarded",
                        broken)
            warnings.append(f"seq2seq rewriter: {broken} output(s) were empty or too long and "
                            "were discarded")
        return results, warnings
