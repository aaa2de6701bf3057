"""A mention classifier that fine-tunes a sentence encoder: the linker's supervised channel with
the transformer stack.

:class:`~.mention_classifier.MentionClassifier` learns a softmax regression over fixed features
(n-grams, optionally a frozen sentence embedding). :class:`FinetunedClassifier` instead trains
the encoder itself with a linear layer over its output: the mention's L2-normalised mean-pooled
embedding, times a fixed ``scale``, into one logit per concept, all weights updated by
cross-entropy (AdamW, linear warm-up then decay; the layer learns ten times faster than the
encoder). Words the examples use in other ways, and shorthand no n-gram covers, move where the
labels say, which a frozen embedding cannot do.

It has the interface the linker uses from any mention classifier (``classes``, ``meta``,
``encoder``, ``check_encoder``, ``predict_proba``), so ``classifier = "medtext:linker_clf_ft"``
in ``medtext_linker`` mixes its probabilities into the candidates' scores exactly like the
n-gram classifier's.

**Seeds.** ``seeds`` > 1 fine-tunes that many members from the same base with successive seeds
and averages their logits (the geometric mean of their probabilities): less dependence on one
seed, at that many times the training time and encoder calls. In the linker with the n-gram
classifier (ICF macro-F1; dev with models trained on the train split, test and held-out with
models trained on train + dev): one member, seeds 0 / 1 / 2, dev 0.849 / 0.833 / 0.849, test
0.826 / 0.806, held-out 0.580 / 0.569; two members, seeds 0+1 / 0+2 / 1+2, dev 0.849 / 0.852 /
0.852, test (0+1) 0.812, held-out 0.582. The spread shrinks, the mean hardly moves, so the
presets' classifier keeps one member.

**Files.** A model folder holds ``meta.json`` (format, classes, base model, scale, seeds, training
figures), ``encoder/`` (the fine-tuned sentence-transformers model, safetensors) and
``head.safetensors`` (float32 weight [classes, dim] and bias); further members are in
``member1/``, ``member2/``, ... with the same two entries. Nothing is unpickled.

**Augmentation.** ``augment`` p > 0 rewrites each mention, with probability p in each epoch, by
:func:`augment_mention`: digits, side, level of assistance and pronouns changed, none of which
decides an ICF category ("amb 40 ft FWW CGA" and "amb 100 ft FWW mod I" are both d4500), so the
classifier sees more ways of writing one category at the same number of steps. Tried with
p = 0.5 on the ICF train split, it lowered dev macro-F1 in the linker with the n-gram classifier
from 0.855 to 0.842, so the default is 0.

**Head from the names.** ``class_names`` (``medtext train linker-clf --finetune --head-init
names``) starts each category's row of the linear layer from its names in the index (the
normalised mean of the base encoder's embeddings of its preferred term and synonyms, bias 0), so
training starts from a zero-shot name matcher instead of PyTorch's random draw. Measured on the
ICF dev split (train-split models, the ``trf`` preset's recipe, fine-tuned x n-gram, tau 1):
macro-F1 0.855 -> 0.864, acc@1 0.884 both; on two folds of the train notes 0.648 -> 0.689, so it
is the command's default; the ``trf`` preset's ICF test macro-F1 went 0.835 -> 0.8396 and its
held-out 0.587 -> 0.614 (docs/linking.md, "The head from the category names").

Training needs the ``trf`` extra (torch, sentence-transformers); on 2 CPUs all-MiniLM-L6-v2
takes about 2 minutes per epoch over 7,000 short mentions.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from pathlib import Path
from typing import Callable

import numpy

from .mention_classifier import FINETUNED_FORMAT as FORMAT

MAX_CHARS = 256

# What augment_mention changes: none of it decides the category of a functional-status mention.
_SIDES = {"L": "R", "R": "L", "left": "right", "right": "left", "Left": "Right", "Right": "Left",
          "LLE": "RLE", "RLE": "LLE", "LUE": "RUE", "RUE": "LUE", "lt": "rt", "rt": "lt"}
_PRONOUNS = {"he": "she", "she": "he", "He": "She", "She": "He", "his": "her", "her": "his",
             "His": "Her", "Her": "His", "him": "her", "husband": "wife", "wife": "husband"}
ASSIST_LEVELS = ("SBA", "CGA", "min A", "mod A", "max A", "total A", "mod I", "indep", "set-up",
                 "supervision")
_AUGMENT_WORDS = sorted(set(_SIDES) | set(_PRONOUNS) | set(ASSIST_LEVELS), key=lambda w: (-len(w), w))
_AUGMENT_RE = re.compile(r"\d+|\b(?:" + "|".join(map(re.escape, _AUGMENT_WORDS)) + r")\b")


def augment_mention(text: str, rng: random.Random) -> str:
    """``text`` with every digit replaced by a random one (a number keeps its length and does not
    gain a leading zero), the side swapped (L/R, left/right, LLE/RLE, LUE/RUE, lt/rt), each level
    of assistance (:data:`ASSIST_LEVELS`) replaced by a random one and he/she, his/her,
    husband/wife swapped; other text unchanged."""

    def swap(m) -> str:
        w = m.group(0)
        if w[0].isdigit():
            return "".join(str(rng.randint(1 if i == 0 and len(w) > 1 else 0, 9)) for i in range(len(w)))
        if w in ASSIST_LEVELS:
            return rng.choice(ASSIST_LEVELS)
        return _SIDES.get(w) or _PRONOUNS[w]

    return _AUGMENT_RE.sub(swap, text)


class FinetunedClassifier:
    """See the module docstring. ``classes``: ``(system, code)`` pairs, one per output."""

    def __init__(self, classes: list[tuple[str, str]], model, weight: numpy.ndarray, bias: numpy.ndarray,
                 meta: dict | None = None, others: list[tuple] | None = None):
        self.classes = classes
        # (encoder, weight, bias) per member: the first is ``model`` / ``weight`` / ``bias``,
        # ``others`` those trained with the further seeds (``seeds`` > 1)
        self.members = [(model, weight.astype(numpy.float32), bias.astype(numpy.float32))] + [
            (m, w.astype(numpy.float32), b.astype(numpy.float32)) for m, w, b in (others or [])]
        self.meta = meta or {}
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.device: str | None = None

    @property
    def weight(self) -> numpy.ndarray:
        """The first member's head weight [classes, dim]."""
        return self.members[0][1]

    @property
    def encoder(self) -> None:
        """No external encoder: the classifier embeds the mentions with its own fine-tuned one
        (the linker passes no vectors)."""
        return None

    def check_encoder(self, device: str | None = None) -> None:
        """Move the model to ``device`` (the linker's), so the first batch does not pay for it."""
        if device and device != self.device:
            for model, _, _ in self.members:
                model.to(device)
        self.device = device

    def predict_proba(self, texts: list[str], embeddings: numpy.ndarray | None = None,
                      *, batch_size: int = 128) -> numpy.ndarray:
        """Class probabilities, float32 [texts, classes]. ``embeddings`` is ignored (the
        fine-tuned encoder's own vectors are the features)."""
        if not texts:
            return numpy.zeros((0, len(self.classes)), dtype=numpy.float32)
        z = numpy.zeros((len(texts), len(self.classes)), dtype=numpy.float32)
        for model, weight, bias in self.members:  # mean logits = geometric mean of the members' softmaxes
            v = model.encode([t[:MAX_CHARS] for t in texts], batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False).astype(numpy.float32)
            z += (v * float(self.meta["scale"])) @ weight.T + bias
        z /= len(self.members)
        z -= z.max(axis=1, keepdims=True)
        numpy.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    # --- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, examples: list[tuple[str, str, str]], *, base: str = "all-MiniLM-L6-v2", epochs: int = 4,
              learn_rate: float = 1e-4, batch_size: int = 32, scale: float = 20.0, max_length: int = 48,
              seed: int = 0, seeds: int = 1, augment: float = 0.0, device: str | None = None,
              class_names: dict[tuple[str, str], list[str]] | None = None,
              progress: Callable[[int, int, float], None] | None = None) -> "FinetunedClassifier":
        """Fine-tune ``base`` (a sentence-transformers name or path; ``all-MiniLM-L6-v2`` is the
        packaged copy) with a linear layer on ``(text, system, code)`` examples. ``seeds`` > 1
        fine-tunes that many members, with seeds ``seed``, ``seed + 1``, ...; the classifier's
        probabilities are their geometric mean (another seed moved a single member's ICF test
        macro-F1 by two points). ``augment``: the probability that a mention is rewritten by
        :func:`augment_mention` in an epoch (0: never). ``class_names``: ``(system, code)`` -> the
        category's names (:func:`medtext.corpora.linking_data.index_class_names`); when given, each
        named class's row of the linear layer starts as the normalised mean of the base encoder's
        embeddings of its names, bias 0 (see **Head from the names**), others as PyTorch draws them.
        ``progress(step, steps, loss)`` is called after each batch."""
        from .embeddings import resolve_model

        rows = [(t[:MAX_CHARS].strip(), (s, c)) for t, s, c in examples if t and t.strip()]
        classes = sorted({y for _, y in rows})
        if len(classes) < 2:
            raise ValueError(f"a mention classifier needs examples of at least 2 codes, not {len(classes)}")
        if epochs < 1 or batch_size < 1 or learn_rate <= 0 or seeds < 1:
            raise ValueError("epochs, batch_size and seeds must be at least 1 and learn_rate positive")
        if not 0.0 <= augment <= 1.0:
            raise ValueError(f"augment is a probability, between 0 and 1, not {augment}")
        ci = {c: i for i, c in enumerate(classes)}
        head_names = None if class_names is None else [list(class_names.get(c) or ()) for c in classes]
        path, base_id = resolve_model(base)
        steps = epochs * math.ceil(len(rows) / batch_size)
        t0 = time.perf_counter()
        members, losses = [], []
        for k in range(seeds):
            member_progress = None if progress is None else \
                (lambda step, loss, done=k * steps: progress(done + step, seeds * steps, loss))
            model, weight, bias, loss = _fit_member(rows, ci, path, epochs=epochs, steps=steps, learn_rate=learn_rate,
                                                    batch_size=batch_size, scale=scale, max_length=max_length,
                                                    seed=seed + k, augment=augment, device=device,
                                                    head_names=head_names, progress=member_progress)
            members.append((model, weight, bias))
            losses.append(loss)
        seconds = time.perf_counter() - t0
        clf = cls(classes, *members[0], {
            "format": FORMAT, "base": base_id, "scale": scale, "max_length": max_length,
            "examples": len(rows), "classes": len(classes),
            "class_counts": numpy.bincount([ci[c] for _, c in rows], minlength=len(classes)).tolist(),
            "epochs": epochs, "learn_rate": learn_rate,
            "batch_size": batch_size, "seed": seed, "seeds": seeds, "augment": augment,
            "head_init": "random" if head_names is None else "names",
            "named_classes": None if head_names is None else sum(bool(n) for n in head_names),
            "train_loss": round(sum(losses) / len(losses), 4),  # mean over the last epoch (and the members)
            "train_seconds": round(seconds, 1)}, others=members[1:])
        clf.device = device
        probs = clf.predict_proba([t for t, _ in rows])
        clf.meta["train_accuracy"] = round(float((probs.argmax(axis=1) == numpy.array(
            [ci[c] for _, c in rows])).mean()), 4)
        return clf

    # --- files ------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write ``meta.json``, ``encoder/`` and ``head.safetensors`` into the folder ``path``,
        swapped in whole."""
        from safetensors.numpy import save_file

        from medtext.atomic import save_dir_atomically

        def write(folder: str) -> None:
            d = Path(folder)
            d.mkdir(parents=True, exist_ok=True)
            for k, (model, weight, bias) in enumerate(self.members):  # the first in the folder itself
                m = d / _member_dir(k)
                m.mkdir(parents=True, exist_ok=True)
                model.save(str(m / "encoder"), create_model_card=False, safe_serialization=True)
                save_file({"weight": weight, "bias": bias}, str(m / "head.safetensors"))
            meta = dict(self.meta, format=FORMAT, seeds=len(self.members),
                        classes_list=[list(c) for c in self.classes])
            (d / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

        save_dir_atomically(write, path)
        return Path(path)

    @classmethod
    def load(cls, path: Path, *, device: str | None = None) -> "FinetunedClassifier":
        from .index import TerminologyError

        path = Path(path)
        try:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise TerminologyError("this mention classifier fine-tunes a sentence encoder and needs the "
                                   "transformer stack: pip install 'medtext[trf]' (or `make install-trf`)",
                                   path) from e
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            classes = [tuple(c) for c in meta.pop("classes_list")]
            seeds = meta.get("seeds", 1)
            if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
                raise ValueError(f"seeds {seeds!r} is not a number of members")
            heads = []
            for k in range(seeds):
                head = load_file(str(path / _member_dir(k) / "head.safetensors"))
                weight, bias = head["weight"], head["bias"]
                if weight.ndim != 2 or weight.shape[0] != len(classes) or bias.shape != (len(classes),):
                    raise ValueError(f"a head of shape {weight.shape} does not fit {len(classes)} classes")
                heads.append((weight, bias))
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
            raise TerminologyError(f"not a fine-tuned medtext mention classifier ({e}): rebuild it with "
                                   "`medtext train linker-clf --finetune`", path) from e
        members = []
        for k, (weight, bias) in enumerate(heads):
            model = SentenceTransformer(str(path / _member_dir(k) / "encoder"), device=device or "cpu")
            model.max_seq_length = int(meta.get("max_length", 48))
            dim = model.get_embedding_dimension()
            if dim != weight.shape[1]:
                raise TerminologyError(f"the classifier's encoder gives {dim}-d vectors but its head reads "
                                       f"{weight.shape[1]}-d ones: rebuild it", path)
            members.append((model, weight, bias))
        clf = cls(classes, *members[0], meta, others=members[1:])
        clf.device = device
        return clf


def _member_dir(k: int) -> str:
    """Member ``k``'s sub-folder of a model folder (the first member's files are at its top)."""
    return f"member{k}" if k else "."


def _fit_member(rows: list[tuple[str, tuple[str, str]]], ci: dict, path: str, *, epochs: int, steps: int,
                learn_rate: float, batch_size: int, scale: float, max_length: int, seed: int, augment: float,
                device: str | None, progress: Callable[[int, float], None] | None,
                head_names: list[list[str]] | None = None) -> tuple:
    """Fine-tune one member from the base model at ``path`` for ``steps`` batches (``epochs``
    passes): (encoder, weight, bias, mean loss of the last epoch); ``progress(step, loss)``.
    ``head_names``: per class, the names its head row starts from (none: PyTorch's draw)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    arng = random.Random(seed + 7919)  # the rewrites' own stream: augment 0 leaves the order as before
    model = SentenceTransformer(path, device=device or "cpu")
    model.max_seq_length = max_length
    dim = model.get_embedding_dimension()
    head = torch.nn.Linear(dim, len(ci)).to(model.device)
    if head_names is not None:  # each named class starts as a name matcher: logit = scale x cosine
        with torch.no_grad():
            head.bias.zero_()
            for k, names in enumerate(head_names):
                if names:
                    v = model.encode(names, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False).mean(axis=0)
                    head.weight[k] = torch.from_numpy(v / (numpy.linalg.norm(v) or 1.0)).to(head.weight)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW([{"params": list(model.parameters()), "lr": learn_rate},
                             {"params": list(head.parameters()), "lr": learn_rate * 10}], weight_decay=0.01)
    warm = max(1, int(0.06 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm)))
    step, loss_sum, n_batches = 0, 0.0, 0
    model.train()
    for _ in range(epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        loss_sum, n_batches = 0.0, 0
        for i in range(0, len(order), batch_size):
            batch = [rows[j] for j in order[i:i + batch_size]]
            texts = [augment_mention(t, arng) if augment and arng.random() < augment else t for t, _ in batch]
            features = model.preprocess(texts) if hasattr(model, "preprocess") else model.tokenize(texts)
            features = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            v = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
            y = torch.tensor([ci[c] for _, c in batch], device=model.device)
            loss = torch.nn.functional.cross_entropy(head(v * scale), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            loss_sum += float(loss.item())
            n_batches += 1
            if progress is not None:
                progress(step, float(loss.item()))
    model.eval()
    return (model, head.weight.detach().cpu().numpy(), head.bias.detach().cpu().numpy(),
            loss_sum / max(1, n_batches))
