"""What medtext's own trainable components (``medtext_layout``, ``medtext_relations``) share."""

from __future__ import annotations

from typing import Any, Iterable

from spacy.pipeline import TrainablePipe
from spacy.training import Example


class MedtextTrainablePipe(TrainablePipe):
    """``update`` for a component whose model maps per-document inputs (``_inputs``) to one
    score matrix per document, and whose ``get_loss(examples, scored)`` returns the loss and
    the gradients of those matrices (``_scored`` pairs the scores with what the loss needs)."""

    def _inputs(self, examples: list[Example]) -> list[Any]:
        raise NotImplementedError

    def _scored(self, inputs: list[Any], scores: list[Any]) -> list[Any]:
        return scores

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd=None,
               losses: dict[str, float] | None = None) -> dict[str, float]:
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        inputs = self._inputs(examples)
        scores, backprop = self.model.begin_update(inputs)
        loss, grads = self.get_loss(examples, self._scored(inputs, scores))
        backprop(grads)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses
