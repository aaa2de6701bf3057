"""Generative backend of ``medtext_errors``: MEDEC-style medical error detection with a causal LM.

MEDEC asks three things of a clinical note: (A) does it contain a medical error, (B) in which
sentence, (C) what is the corrected sentence. Error types are :data:`ERROR_TYPES`
(``diagnosis``, ``management``, ``treatment``, ``pharmacotherapy``, ``causalOrganism``).

:class:`GenerativeDetector` numbers the sentences of each note (``"0 text\\n1 text..."``), fills
the prompt template, asks a causal language model (any ``transformers`` model name or local
path; meant for users with a GPU) for ONE JSON object
``{"error": bool, "sentence_id": int, "type": str | null, "correction": str | null}`` and
parses the reply strictly with :func:`parse_reply`. Replies that do not parse are retried
(greedy on the first try, sampled with ``temperature`` on retries). A note whose replies never
parse gets no findings and a line in ``doc._.warnings``; bad model output never raises.

Config (keyword arguments of :class:`GenerativeDetector`; ``medtext_errors`` passes them on):

- ``model``: a model name or a local directory (loaded with ``AutoTokenizer`` /
  ``AutoModelForCausalLM``, safetensors weights only, no remote code). Loading is lazy (first
  :meth:`GenerativeDetector.find`) and happens once per process per ``(model, device)``.
- ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (float16 on CUDA, float32 elsewhere).
- ``batch_size``: prompts per ``generate`` call (left padding).
- ``prompt_template``: a ``str.format`` template with ``{sentences}`` (required) and
  ``{types}`` (optional); literal braces are doubled. Default :data:`DEFAULT_PROMPT`. When the
  tokenizer has a chat template the prompt is sent as a single user message.
- ``max_new_tokens``, ``temperature`` (of retries; 0 = greedy retries too).
- ``retries``: extra attempts for prompts whose reply failed to parse (total ``retries + 1``).
- ``timeout_s``: per ``generate`` call (``max_time``); a call taking longer than this (wall
  time) counts as failed.
- ``max_sentences``: notes with more sentences are cut (a warning says so).
- ``generate_fn``: ``callable(prompts: list[str], attempt: int) -> list[str]`` replacing the
  local model (tests, hosted APIs); no model is loaded then. Exceptions it raises (including
  ``TimeoutError``) fail that batch attempt only.

Usage::

    det = GenerativeDetector("path/to/model", device="cuda", batch_size=8)
    findings = det.find([doc1, doc2])   # one list of finding dicts per doc

A finding is ``{"start", "end", "type", "message", "correction", "score": None,
"detector": "generative"}`` with the character offsets of the flagged sentence (surrounding
whitespace excluded).

Failures: bad config raises :class:`GenerativeConfigError` (a ``ValueError``) at construction,
or at the first ``find`` when the model cannot be loaded. A local model's runtime failure
(``RuntimeError``, e.g. CUDA out of memory) fails that batch attempt like an unparsable reply;
``ValueError`` / ``TypeError`` from ``generate`` signal a misconfiguration and propagate.

Note text is logged at DEBUG level only; warnings and exception messages never contain it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Sequence

from spacy.tokens import Doc, Span

from medtext.errors import ConfigError

log = logging.getLogger(__name__)

ERROR_TYPES = ("diagnosis", "management", "treatment", "pharmacotherapy", "causalOrganism")

DEFAULT_PROMPT = (
    "You are an experienced physician reviewing a clinical note for medical errors.\n"
    "The note is given below as numbered sentences, one per line: the sentence number, a space, "
    "then the sentence.\n"
    "A note contains either no medical error or exactly one sentence with a medical error of one "
    "of these types: {types}.\n"
    "Decide whether the note contains an error. If it does, give the number of the sentence with "
    "the error, the error type and the corrected sentence.\n"
    "\n"
    "Note:\n"
    "{sentences}\n"
    "\n"
    "Answer with ONLY one JSON object and nothing else, in exactly this form:\n"
    '{{"error": true or false, "sentence_id": the sentence number (-1 when there is no error), '
    '"type": one of {types} (null when there is no error), '
    '"correction": the corrected sentence (null when there is no error)}}\n'
)

_TYPE_KEYS = {t.lower(): t for t in ERROR_TYPES}



class GenerationError(Exception):
    """A model reply could not be parsed or validated (the message is a short reason, no text)."""


class GenerativeConfigError(ConfigError, ValueError):
    """Bad configuration of the generative backend (a ``ValueError`` and a medtext ConfigError)."""


# --------------------------------------------------------------------------- parsing


def _json_objects(reply: str):
    """Yield the top-level balanced ``{...}`` substrings of ``reply``, in order (string-aware)."""
    i, n = 0, len(reply)
    while i < n:
        start = reply.find("{", i)
        if start < 0:
            return
        depth, in_str, esc = 0, False, False
        end = -1
        for k in range(start, n):
            c = reply[k]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    end = k
                    break
        if end < 0:
            return
        yield reply[start:end + 1]
        i = end + 1


def _normalise_type(value: Any) -> str:
    if not isinstance(value, str):
        raise GenerationError("'type' must be a string when 'error' is true")
    key = "".join(value.split()).replace("_", "").replace("-", "").lower()
    if key not in _TYPE_KEYS:
        raise GenerationError("unknown error type")
    return _TYPE_KEYS[key]


def parse_reply(reply: str, n_sentences: int) -> dict:
    """Parse and validate a model reply strictly.

    The first top-level balanced JSON object of ``reply`` is used (prose and code fences around
    it are ignored); if it is not valid JSON, later top-level objects are tried. Returns
    ``{"error": bool, "sentence_id": int, "type": str | None, "correction": str | None}``
    (``sentence_id`` -1 and the rest None when there is no error). Raises
    :class:`GenerationError` with a short reason (never the reply text) otherwise.
    """
    if not isinstance(reply, str):
        raise GenerationError("reply is not a string")
    obj: Any = None
    first_error: str | None = None
    found = False
    for candidate in _json_objects(reply):
        found = True
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError as e:
            if first_error is None:
                first_error = f"invalid JSON ({e.msg} at char {e.pos})"
            continue
        break
    else:
        if not found:
            raise GenerationError("no complete JSON object in reply")
        raise GenerationError(first_error or "invalid JSON")
    if not isinstance(obj, dict):
        raise GenerationError("JSON reply is not an object")
    if "error" not in obj:
        raise GenerationError("missing key 'error'")
    error = obj["error"]
    if not isinstance(error, bool):
        raise GenerationError("'error' must be true or false")
    sid = obj.get("sentence_id")
    if not error:
        if sid is not None and (isinstance(sid, bool) or not isinstance(sid, int) or sid != -1):
            raise GenerationError("'sentence_id' must be -1 or null when 'error' is false")
        return {"error": False, "sentence_id": -1, "type": None, "correction": None}
    if isinstance(sid, bool) or not isinstance(sid, int):
        raise GenerationError("'sentence_id' must be an integer when 'error' is true")
    if not 0 <= sid < n_sentences:
        raise GenerationError(f"'sentence_id' {sid} out of range 0..{n_sentences - 1}")
    etype = _normalise_type(obj.get("type"))
    correction = obj.get("correction")
    if correction is not None and not isinstance(correction, str):
        raise GenerationError("'correction' must be a string or null")
    if correction is not None and not correction.strip():
        correction = None
    return {"error": True, "sentence_id": sid, "type": etype, "correction": correction}


# --------------------------------------------------------------------------- model loading


def _load_backend(model: str, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) for ``(model, device)``, loaded once per process."""
    from .hf_models import load_generation_model

    return load_generation_model(model, device, kind="causal", what="generative backend", error=GenerativeConfigError,
                                 left_padding=True)


def clear_cache() -> None:
    """Forget the loaded models (frees their memory once nothing else holds them)."""
    from .hf_models import clear_cache as clear

    clear("causal")


# --------------------------------------------------------------------------- detector


def _add_warning(doc: Doc, message: str) -> None:
    if not Doc.has_extension("warnings"):
        Doc.set_extension("warnings", default=None)
    if doc._.warnings is None:
        doc._.warnings = []
    doc._.warnings.append(message)


class _Job:
    __slots__ = ("doc_index", "spans", "prompt")

    def __init__(self, doc_index: int, spans: list[Span], prompt: str):
        self.doc_index = doc_index
        self.spans = spans
        self.prompt = prompt


class GenerativeDetector:
    """MEDEC-style error detection with a causal LM (see the module docstring for the config)."""

    name = "generative"

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 4,
                 prompt_template: str | None = None, max_new_tokens: int = 256,
                 retries: int = 2, timeout_s: float = 120.0, temperature: float = 0.7,
                 max_sentences: int = 200,
                 generate_fn: Callable[[list[str], int], list[str]] | None = None):
        template = DEFAULT_PROMPT if prompt_template is None else prompt_template
        if not model and generate_fn is None:
            raise GenerativeConfigError("generative backend: 'model' (a name or path) is required")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise GenerativeConfigError(f"generative backend: batch_size must be >= 1, not {batch_size}")
        if not isinstance(retries, int) or retries < 0:
            raise GenerativeConfigError(f"generative backend: retries must be >= 0, not {retries}")
        if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise GenerativeConfigError(f"generative backend: timeout_s must be > 0, not {timeout_s}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise GenerativeConfigError(
                f"generative backend: max_new_tokens must be >= 1, not {max_new_tokens}")
        if not isinstance(max_sentences, int) or max_sentences < 1:
            raise GenerativeConfigError(
                f"generative backend: max_sentences must be >= 1, not {max_sentences}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise GenerativeConfigError(
                f"generative backend: temperature must be >= 0, not {temperature}")
        if not isinstance(template, str) or "{sentences}" not in template:
            raise GenerativeConfigError(
                "generative backend: prompt_template must contain the field {sentences}")
        try:
            template.format(sentences="0 x", types="diagnosis")
        except (KeyError, IndexError, ValueError) as e:
            raise GenerativeConfigError(
                "generative backend: prompt_template is not a valid str.format template with "
                f"fields {{sentences}} and {{types}} (double literal braces): {e!r}") from None
        if generate_fn is not None and not callable(generate_fn):
            raise GenerativeConfigError("generative backend: generate_fn must be callable")
        if not Doc.has_extension("warnings"):
            Doc.set_extension("warnings", default=None)
        self.model = str(model) if model else ""
        self.device = device
        self.batch_size = batch_size
        self.prompt_template = template
        self.max_new_tokens = max_new_tokens
        self.retries = retries
        self.timeout_s = float(timeout_s)
        self.temperature = float(temperature)
        self.max_sentences = max_sentences
        self.generate_fn = generate_fn

    # ---------------------------------------------------------------- prompts

    def format_prompt(self, sentences: Sequence[str]) -> str:
        """The filled template (before any chat template): sentences numbered from 0."""
        lines = "\n".join(f"{i} {' '.join(s.split())}" for i, s in enumerate(sentences))
        return self.prompt_template.format(sentences=lines, types=", ".join(ERROR_TYPES))

    def build_prompt(self, sentences: Sequence[str]) -> str:
        """The exact text sent to the backend. With a local model whose tokenizer has a chat
        template, the filled template is wrapped as a single user message (loads the model)."""
        prompt = self.format_prompt(sentences)
        if self.generate_fn is not None:
            return prompt
        tok, _ = _load_backend(self.model, self.device)
        return self._wrap(tok, prompt)

    @staticmethod
    def _wrap(tok: Any, prompt: str) -> str:
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": prompt}],
                                           add_generation_prompt=True, tokenize=False)
        return prompt

    # ---------------------------------------------------------------- sentences

    def _sentences(self, doc: Doc) -> list[Span]:
        sents = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
        kept = [s for s in sents if s.text.strip()]
        if len(kept) > self.max_sentences:
            _add_warning(doc, f"medtext_errors: note has {len(kept)} sentences; the generative "
                              f"backend read only the first {self.max_sentences}")
            log.warning("generative backend: note with %d sentences cut to max_sentences=%d",
                        len(kept), self.max_sentences)
            kept = kept[:self.max_sentences]
        return kept

    @staticmethod
    def _finding(parsed: dict, spans: list[Span]) -> dict:
        span = spans[parsed["sentence_id"]]
        text = span.text
        start = span.start_char + (len(text) - len(text.lstrip()))
        end = span.start_char + len(text.rstrip())
        etype = parsed["type"]
        return {"start": start, "end": end, "type": etype,
                "message": f"generative model flags this sentence ({etype})",
                "correction": parsed["correction"] or None, "score": None,
                "detector": "generative"}

    # ---------------------------------------------------------------- generation

    def _generate(self, prompts: list[str], attempt: int) -> tuple[list[str] | None, str]:
        """Replies for one batch, or (None, reason) when the whole batch attempt failed."""
        t0 = time.monotonic()
        # generate_fn (an API, user code): any exception fails this batch attempt only. The local
        # model: runtime failures (out of memory, device errors) do too, but ValueError /
        # TypeError from transformers mean a misconfiguration and propagate.
        catch: tuple[type[BaseException], ...] = (
            (Exception,) if self.generate_fn is not None else (RuntimeError, MemoryError))
        try:
            if self.generate_fn is not None:
                replies = self.generate_fn(list(prompts), attempt)
            else:
                replies = self._generate_local(prompts, attempt)
        except TimeoutError:
            log.warning("generative backend: batch of %d timed out (attempt %d)", len(prompts),
                        attempt + 1)
            return None, "timed out"
        except catch as e:  # a failing backend must not stop the pipeline
            log.warning("generative backend: batch of %d failed with %s (attempt %d)",
                        len(prompts), type(e).__name__, attempt + 1)
            log.debug("generative backend error detail: %s", e)
            return None, f"backend error {type(e).__name__}"
        elapsed = time.monotonic() - t0
        if elapsed > self.timeout_s:
            log.warning("generative backend: batch of %d took %.1f s > timeout_s=%.1f (attempt %d)",
                        len(prompts), elapsed, self.timeout_s, attempt + 1)
            return None, "timed out"
        if not isinstance(replies, (list, tuple)) or len(replies) != len(prompts):
            n = len(replies) if isinstance(replies, (list, tuple)) else "no list of"
            log.warning("generative backend returned %s replies for %d prompts", n, len(prompts))
            return None, "wrong number of replies"
        return list(replies), ""

    def _generate_local(self, prompts: list[str], attempt: int) -> list[str]:
        import torch

        tok, lm = _load_backend(self.model, self.device)
        chat = bool(getattr(tok, "chat_template", None))
        texts = [self._wrap(tok, p) for p in prompts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
        enc = {k: enc[k].to(lm.device) for k in ("input_ids", "attention_mask")}
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens,
                                  "max_time": self.timeout_s, "pad_token_id": tok.pad_token_id}
        if attempt > 0 and self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = lm.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        return tok.batch_decode(new, skip_special_tokens=True)

    # ---------------------------------------------------------------- API

    def find(self, docs: list) -> list[list[dict]]:
        """One list of findings per spaCy Doc (empty when no error, or when no valid reply)."""
        docs = list(docs)
        results: list[list[dict]] = [[] for _ in docs]
        jobs: list[_Job] = []
        for i, doc in enumerate(docs):
            spans = self._sentences(doc)
            if spans:
                jobs.append(_Job(i, spans, ""))
        if not jobs:
            return results
        if self.generate_fn is None:
            _load_backend(self.model, self.device)  # config errors (bad name/path) raise here
        for job in jobs:
            job.prompt = self.format_prompt([s.text for s in job.spans])
        pending = list(range(len(jobs)))
        last_reason: dict[int, str] = {}
        for attempt in range(self.retries + 1):
            if not pending:
                break
            failed: list[int] = []
            for b in range(0, len(pending), self.batch_size):
                chunk = pending[b:b + self.batch_size]
                replies, reason = self._generate([jobs[j].prompt for j in chunk], attempt)
                for pos, j in enumerate(chunk):
                    if replies is None:
                        last_reason[j] = reason
                        failed.append(j)
                        continue
                    log.debug("generative reply (doc %d, attempt %d): %r", jobs[j].doc_index,
                              attempt + 1, replies[pos])
                    try:
                        parsed = parse_reply(replies[pos], len(jobs[j].spans))
                    except GenerationError as e:
                        last_reason[j] = str(e)
                        failed.append(j)
                        continue
                    if parsed["error"]:
                        results[jobs[j].doc_index] = [self._finding(parsed, jobs[j].spans)]
            pending = failed
        attempts = self.retries + 1
        for j in pending:
            reason = last_reason.get(j, "unknown")
            _add_warning(docs[jobs[j].doc_index],
                         f"medtext_errors: generative backend gave no valid JSON after {attempts} "
                         f"attempts (last: {reason})")
            log.warning("generative backend gave no valid JSON for doc %d of the batch after %d "
                        "attempts (last: %s)", jobs[j].doc_index, attempts, reason)
        return results
