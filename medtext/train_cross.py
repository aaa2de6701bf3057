"""One binary cross-encoder fine-tuning step shared by ``medtext train linker`` (re-ranker) and
``medtext train errors`` (sentence classifier)."""

from __future__ import annotations

import time
from pathlib import Path


def fit_cross_encoder(rows: dict[str, list], *, base: str, out: Path, epochs: int, batch_size: int, lr: float,
                      seed: int, device: str | None, max_length: int | None = None,
                      progress: bool = True) -> float:
    """Train a one-output CrossEncoder from ``base`` on ``rows`` (two text columns then
    ``label`` in 0..1) with binary cross-entropy, save it to ``out`` atomically (safetensors) and
    return the training seconds."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (CrossEncoder, CrossEncoderTrainer,
                                                     CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from medtext.atomic import save_dir_atomically
    from medtext.terminologies.embeddings import resolve_model

    kwargs = {"max_length": max_length} if max_length else {}
    model = CrossEncoder(resolve_model(base)[0], num_labels=1, device=device or "cpu", **kwargs)
    args = CrossEncoderTrainingArguments(
        output_dir=str(out.with_name(out.name + ".run")), num_train_epochs=epochs,
        per_device_train_batch_size=batch_size, learning_rate=lr, warmup_ratio=0.1, seed=seed,
        save_strategy="no", logging_steps=100, report_to=[], use_cpu=(device or "cpu") == "cpu",
        dataloader_num_workers=0, disable_tqdm=not progress)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows),
                                  loss=BinaryCrossEntropyLoss(model))
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    save_dir_atomically(model.save_pretrained, out)
    return seconds
