"""Loading of the optional Hugging Face generation models (error detection's causal LM, the lay
rewriter's seq2seq model): once per process per (kind, model, device), safetensors weights only,
no remote code, float16 on CUDA. Imports torch/transformers only when a model is loaded."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def load_generation_model(model: str, device: str, *, kind: str, what: str,
                          error: type[Exception], left_padding: bool = False) -> tuple[Any, Any]:
    """(tokenizer, model) of ``kind`` ``"causal"`` or ``"seq2seq"``; failures raise ``error``
    with a message that starts with ``what`` and says what to fix."""
    key = (kind, str(model), str(device))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        import torch
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        auto, described = ((AutoModelForCausalLM, "a causal LM") if kind == "causal"
                           else (AutoModelForSeq2SeqLM, "an encoder-decoder (seq2seq) model"))
        log.info("loading %s %s on %s", what, model, device)
        try:
            tok = AutoTokenizer.from_pretrained(str(model), trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise error(f"{what}: cannot load the tokenizer of model {model!r} (a model name or a local "
                        f"directory; offline, it must be cached or local): {first_line(e)}") from e
        if left_padding:
            tok.padding_side = "left"
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise error(f"{what}: the tokenizer of model {model!r} has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        try:
            lm = auto.from_pretrained(str(model), torch_dtype=dtype, use_safetensors=True, trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise error(f"{what}: cannot load model {model!r} as {described} with safetensors weights "
                        f"(pickled .bin weights are not loaded): {first_line(e)}") from e
        lm.to(device)
        lm.eval()
        _CACHE[key] = (tok, lm)
        return tok, lm


def clear_cache(kind: str | None = None) -> None:
    """Forget loaded models (of one kind, or all)."""
    with _LOCK:
        for key in [k for k in _CACHE if kind is None or k[0] == kind]:
            del _CACHE[key]
