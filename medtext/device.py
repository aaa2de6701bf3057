"""``--device cpu|cuda|cuda:N``: check the request and make spaCy/thinc use it."""

from __future__ import annotations

import re

from .errors import ConfigError

_DEVICE = re.compile(r"^(cpu|cuda(?::(\d+))?)$")


def parse_device(device: str) -> int:
    """-1 for CPU, else the CUDA device index. Raises :class:`ConfigError` for a bad string."""
    m = _DEVICE.match(device.strip().lower())
    if not m:
        raise ConfigError(f"bad device {device!r}: use cpu, cuda or cuda:N")
    return -1 if m.group(1) == "cpu" else int(m.group(2) or 0)


def use_device(device: str) -> int:
    """Select ``device`` for spaCy/thinc (and so for torch-backed components)."""
    gpu = parse_device(device)
    if gpu < 0:
        return gpu
    try:
        import torch
    except ImportError as e:
        raise ConfigError(f"--device {device} needs PyTorch with CUDA: pip install "
                          "'medtext[trf]' on a machine with an NVIDIA GPU") from e
    if not torch.cuda.is_available() or gpu >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: no such CUDA device on this machine "
                          f"({torch.cuda.device_count()} visible); use --device cpu")
    import spacy

    spacy.require_gpu(gpu)
    return gpu
