"""``--device cpu|cuda|cuda:N``: check the request and make spaCy/thinc use it."""

from __future__ import annotations

import re
from contextlib import contextmanager

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


def numpy_blas_ops():
    """thinc's CPU ops with matrix products through numpy's BLAS (OpenBLAS, multi-threaded)
    instead of the BLIS build bundled with thinc: the same arithmetic up to float rounding, and
    on the 2-CPU reference machine 3.8x faster for a CNN tok2vec (10 vs 62 GFLOP/s per gemm).
    ``MEDTEXT_BLIS=1`` keeps BLIS."""
    import os

    from thinc.api import NumpyOps

    return NumpyOps(use_blis=os.environ.get("MEDTEXT_BLIS", "") not in ("", "0"))


@contextmanager
def numpy_blas_while_building(gpu_id: int = -1):
    """Thinc models built inside (e.g. by ``spacy train``) on CPU (``gpu_id`` < 0) get
    :func:`numpy_blas_ops`; the current ops are restored on leaving."""
    from thinc.api import get_current_ops, set_current_ops

    previous = get_current_ops()
    if gpu_id < 0:
        set_current_ops(numpy_blas_ops())
    try:
        yield
    finally:
        set_current_ops(previous)


def one_cpu_thread() -> None:
    """Run this process's numeric work on one thread: numpy's BLAS, OpenMP, PyTorch and the
    linker's string-similarity matrices (worker processes of ``n_process``, Spark's Python
    workers: they share the CPUs, so competing thread pools only slow each other).

    It also keeps a forked worker from hanging: a parent that has run a multi-threaded PyTorch
    operation (the ``trf`` preset's linker encodes its examples while it loads) leaves OpenMP's
    thread pool unusable in the children, and their first multi-threaded operation never returns.
    With one thread, PyTorch does not enter that pool."""
    import importlib.util

    from threadpoolctl import threadpool_limits

    from .terminologies.retrieval import set_string_threads

    threadpool_limits(1, user_api="blas")
    threadpool_limits(1, user_api="openmp")
    set_string_threads(1)
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


def use_numpy_blas(nlp) -> int:
    """Give every thinc model node of ``nlp`` that runs on BLIS CPU ops :func:`numpy_blas_ops`
    (GPU ops are left alone); returns how many nodes changed."""
    from thinc.api import Model, NumpyOps

    ops, changed = numpy_blas_ops(), 0
    if ops.use_blis:
        return 0
    for _name, proc in nlp.pipeline:
        model = getattr(proc, "model", None)
        if not isinstance(model, Model):
            continue
        for node in model.walk():
            if type(node.ops) is NumpyOps and node.ops.use_blis:
                node.ops = ops
                changed += 1
    return changed
