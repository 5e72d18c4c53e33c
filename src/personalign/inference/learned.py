"""A learned preference inferencer: one PersonaEncoder embedding per history item instead of 90 LLM questions.

`PreferenceInferencer` (the AlignX paper, §5 and Appendix A.3) asks an LLM one question per preference dimension for
every comment: 90 generations per comment, 180 per pair. `LearnedPreferenceInferencer` embeds each item once with a
`PersonaEncoder` (the same single-item text the encoder's excerpt tables use, `personas.render_history`) and reads
the item's direction from a small classifier with three outputs per dimension (positive / negative / neutral),
trained with cross-entropy on the per-item gold vectors that every AlignX comment and pair carries. Items are then
aggregated into the persona's direction exactly as the LLM inferencer does (`PreferenceSpace.aggregate` with
`upper` / `lower`), so `infer_items`, `infer` and `profile_text` are drop-in replacements and PBA's inference-time
preference text can come from either.

Most (item, dimension) cells are neutral (on AlignX and on the synthetic data, over 98%): training offers class
weighting (`class_weighting`) and `calibrate` picks the item decision threshold (`item_threshold`, the probability
mass on the two poles above which an item takes a pole) together with the aggregation thresholds that maximise
macro-F1 on validation personas (`preference_inference.calibrate_thresholds`).

Pure parts (rows to (text, labels) examples, labels and vectors, class weights, probabilities to vectors) are plain
functions; the model parts are a `PreferenceHead` (`torch.nn.Module`) and the inferencer that wires it to an encoder.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..personas.persona import PairItem, Persona, UGCItem
from ..personas.prompts import render_history
from ..personas.space import NEUTRAL, PreferenceSpace
from .llm import ANSWER_VALUES, calibrate_thresholds, direction_report

if TYPE_CHECKING:
    from ..encoder import PersonaEncoder

CLASS_VALUES: tuple[float, ...] = tuple(ANSWER_VALUES[option] for option in sorted(ANSWER_VALUES))
"""Direction value of each class, in output order: class k is the annotation prompt's answer option k + 1
(positive, negative, neutral)."""
POSITIVE_CLASS, NEGATIVE_CLASS, NEUTRAL_CLASS = range(len(CLASS_VALUES))
CLASS_WEIGHTINGS = ("none", "balanced", "sqrt")
CONFIG_NAME = "learned_inference_config.json"
WEIGHTS_NAME = "learned_inference_head.safetensors"
ENCODER_FOLDER = "encoder"
FORMAT_VERSION = 1
DEFAULT_ITEM_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_VALUE_TO_CLASS = {value: index for index, value in enumerate(CLASS_VALUES)}


# ------------------------------------------------------------------------------------------------------ pure parts
def item_text(item: UGCItem | PairItem) -> str:
    """The text of one history item as the persona encoder sees it: `personas.render_history` of a persona holding
    only that item (the rendering of `encoder.alignx_excerpts`)."""
    if isinstance(item, PairItem):
        return render_history(Persona(ugc=[], pairs=[item], demographics=""))
    if isinstance(item, UGCItem):
        return render_history(Persona(ugc=[item], pairs=[], demographics=""))
    raise TypeError(f"expected a UGCItem or a PairItem, got {type(item).__name__}.")


def vectors_to_labels(vectors: Sequence[Sequence[float]], space: PreferenceSpace | None = None) -> np.ndarray:
    """Direction vectors as class indices (`CLASS_VALUES` order), shape `(n, num_dimensions)`, dtype int64.

    Raises:
        `ValueError`: If a vector has the wrong length or a value outside 0 / 0.5 / 1 (naming the vector and index).
    """
    space = space or PreferenceSpace.alignx()
    labels = np.empty((len(vectors), len(space)), dtype=np.int64)
    for row, vector in enumerate(vectors):
        labels[row] = [_VALUE_TO_CLASS[value] for value in space.validate(vector, where=f"vector {row}")]
    return labels


def labels_to_vectors(labels: np.ndarray) -> list[list[float]]:
    """Class indices `(n, num_dimensions)` back to direction vectors."""
    values = np.asarray(CLASS_VALUES)[np.asarray(labels)]
    return values.tolist()


def probabilities_to_vectors(probabilities: np.ndarray, item_threshold: float = 0.5) -> list[list[float]]:
    """Item direction vectors from class probabilities `(n, num_dimensions, 3)` (`CLASS_VALUES` order).

    A cell takes a pole when the probability mass on the two poles reaches `item_threshold`, and then the more
    probable pole (positive on an exact tie); otherwise it is neutral. Lower thresholds predict more preferences.
    """
    if not 0.0 < item_threshold <= 1.0:
        raise ValueError(f"item_threshold must be in (0, 1], got {item_threshold}.")
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3 or probabilities.shape[-1] != len(CLASS_VALUES):
        raise ValueError(f"expected probabilities of shape (items, dimensions, 3), got {probabilities.shape}.")
    positive, negative = probabilities[..., POSITIVE_CLASS], probabilities[..., NEGATIVE_CLASS]
    labels = np.where(
        positive + negative >= item_threshold,
        np.where(positive >= negative, POSITIVE_CLASS, NEGATIVE_CLASS),
        NEUTRAL_CLASS,
    )
    return labels_to_vectors(labels)


def class_weights(labels: np.ndarray, mode: str = "sqrt") -> np.ndarray:
    """Cross-entropy weights of the three classes from the training labels.

    Args:
        labels (`np.ndarray`): Class indices of every training cell.
        mode (`str`, *optional*, defaults to `"sqrt"`): `"none"` (all 1), `"balanced"` (inverse class frequency,
            `n / (3 * count)`) or `"sqrt"` (its square root: a milder correction). Absent classes get weight 0.

    Returns:
        `np.ndarray` of shape `(3,)`, float32.
    """
    if mode not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {mode!r}.")
    counts = np.bincount(np.asarray(labels).ravel(), minlength=len(CLASS_VALUES)).astype(np.float64)
    if mode == "none":
        return np.ones(len(CLASS_VALUES), dtype=np.float32)
    with np.errstate(divide="ignore"):
        balanced = np.where(counts > 0, counts.sum() / (len(CLASS_VALUES) * counts), 0.0)
    return (np.sqrt(balanced) if mode == "sqrt" else balanced).astype(np.float32)


@dataclass
class ItemExamples:
    """Training examples: one rendered item text and its gold labels per annotated history item.

    Args:
        texts (`list[str]`): `item_text` of each item.
        labels (`np.ndarray`): Class indices, shape `(len(texts), num_dimensions)`.
        num_rows (`int`): Rows read.
        num_skipped (`int`): Items without a direction vector (skipped).
        num_duplicates (`int`): Items whose text and vector repeat an earlier one (rows of one persona share its
            history; each item counts once).
        embeddings (`np.ndarray`, *optional*): The frozen encoder's embeddings of `texts`
            (`LearnedPreferenceInferencer.embed`), reused by every `fit` on these examples.
    """

    texts: list[str]
    labels: np.ndarray
    num_rows: int = 0
    num_skipped: int = 0
    num_duplicates: int = 0
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)


def persona_items(persona: Persona) -> list[UGCItem | PairItem]:
    """A persona's history items in the order the inferencers read them: comments, then pairs."""
    return [*persona.ugc, *persona.pairs]


def item_examples(
    rows: Iterable[Mapping[str, Any]], space: PreferenceSpace | None = None, where: str = "rows"
) -> ItemExamples:
    """(text, gold labels) examples from AlignX rows: every comment and pair that carries a direction vector.

    Args:
        rows (iterable of `dict` or `Dataset`): AlignX rows (release column names or snake_case).
        space (`PreferenceSpace`, *optional*): The preference space (AlignX's by default); vectors are validated
            against it.
        where (`str`, *optional*, defaults to `"rows"`): Names the source in error messages.

    Raises:
        `ValueError`: On a malformed row (naming the row, column and item), or when no item carries a vector.
    """
    space = space or PreferenceSpace.alignx()
    texts: list[str] = []
    vectors: list[list[float]] = []
    seen: set[tuple[str, tuple[float, ...]]] = set()
    num_rows = num_skipped = num_duplicates = 0
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{where}, row {index}: expected an AlignX row (a mapping), got {type(row).__name__}.")
        persona = Persona.from_alignx_row(row, space=space, where=f"{where}, row {index}")
        num_rows += 1
        for item in persona_items(persona):
            if item.direction is None:
                num_skipped += 1
                continue
            text, vector = item_text(item), tuple(item.direction)
            if (text, vector) in seen:
                num_duplicates += 1
                continue
            seen.add((text, vector))
            texts.append(text)
            vectors.append(list(vector))
    if not texts:
        raise ValueError(
            f"{where}: no history item with a 'Preference Direction' vector in {num_rows} row(s) "
            f"({num_skipped} item(s) without one); the learned inferencer trains on per-item gold vectors."
        )
    return ItemExamples(texts, vectors_to_labels(vectors, space), num_rows, num_skipped, num_duplicates)


def as_personas(
    data: Iterable[Persona | Mapping[str, Any]], space: PreferenceSpace | None = None, where: str = "rows"
) -> list[Persona]:
    """Personas from `Persona` objects or AlignX rows (validated, errors naming the row)."""
    space = space or PreferenceSpace.alignx()
    personas = []
    for index, entry in enumerate(data):
        if isinstance(entry, Persona):
            personas.append(entry)
        elif isinstance(entry, Mapping):
            personas.append(Persona.from_alignx_row(entry, space=space, where=f"{where}, row {index}"))
        else:
            raise ValueError(f"{where}, row {index}: expected a Persona or an AlignX row, got {type(entry).__name__}.")
    return personas


def gold_directions(personas: Sequence[Persona], space: PreferenceSpace | None = None) -> list[list[float]]:
    """Each persona's gold direction: its annotated items' vectors aggregated with AlignX's rule (the release's
    0.6 / 0.4), or its `direction` when no item is annotated (`Persona.preference_vector`)."""
    space = space or PreferenceSpace.alignx()
    return [persona.preference_vector(space) for persona in personas]


def aggregate_directions(
    persona_probabilities: Sequence[np.ndarray],
    space: PreferenceSpace | None = None,
    item_threshold: float = 0.5,
    upper: float = 0.6,
    lower: float = 0.4,
) -> list[list[float]]:
    """Persona directions from their items' class probabilities: `probabilities_to_vectors` per item, then
    `PreferenceSpace.aggregate` (all neutral for a persona without items).

    Args:
        persona_probabilities (list of `np.ndarray`): Per persona, `(num_items, num_dimensions, 3)` probabilities.
        space (`PreferenceSpace`, *optional*): AlignX's by default.
        item_threshold, upper, lower: The item decision threshold and the aggregation thresholds.
    """
    space = space or PreferenceSpace.alignx()
    directions = []
    for probabilities in persona_probabilities:
        vectors = probabilities_to_vectors(probabilities, item_threshold)
        directions.append(space.aggregate(vectors, upper=upper, lower=lower) if vectors else space.neutral())
    return directions


def calibrate_item_thresholds(
    persona_probabilities: Sequence[np.ndarray],
    gold: Sequence[Sequence[float]],
    space: PreferenceSpace | None = None,
    item_thresholds: Sequence[float] = DEFAULT_ITEM_THRESHOLDS,
    grid: Sequence[float] = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0),
) -> dict[str, Any]:
    """Choose the item threshold and the aggregation thresholds (upper, lower = 1 - upper) that maximise macro-F1
    against gold directions: for each item threshold, `preference_inference.calibrate_thresholds` scans `grid`.
    Ties keep the smallest upper threshold, then the item threshold closest to 0.5.

    Returns:
        `dict`: `item_threshold`, `upper`, `lower`, `macro_f1`, and `scores` (`{item_threshold: {upper: F1}}`).
    """
    space = space or PreferenceSpace.alignx()
    if len(persona_probabilities) != len(gold):
        raise ValueError(f"{len(persona_probabilities)} personas' probabilities for {len(gold)} gold vectors.")
    if not gold:
        raise ValueError("calibration needs at least one persona.")
    results = {}
    for threshold in item_thresholds:
        item_vectors = [probabilities_to_vectors(p, threshold) for p in persona_probabilities]
        results[threshold] = calibrate_thresholds(item_vectors, gold, space, grid)
    best = max(item_thresholds, key=lambda t: (results[t]["macro_f1"], -results[t]["upper"], -abs(t - 0.5)))
    return {
        "item_threshold": best,
        "upper": results[best]["upper"],
        "lower": results[best]["lower"],
        "macro_f1": results[best]["macro_f1"],
        "scores": {t: results[t]["scores"] for t in item_thresholds},
    }


# ----------------------------------------------------------------------------------------------------- the model
@dataclass
class LearnedInferenceConfig:
    r"""Training settings of a [`LearnedPreferenceInferencer`].

    Args:
        hidden_dim (`int`, *optional*, defaults to `0`): Width of a hidden layer (GELU) before the 90 x 3 outputs;
            0 is a linear head.
        class_weighting (`str`, *optional*, defaults to `"sqrt"`): Cross-entropy class weights: `"none"`,
            `"balanced"` (inverse frequency) or `"sqrt"` (its square root).
        num_epochs (`int`, *optional*, defaults to `40`): Passes over the items.
        batch_size (`int`, *optional*, defaults to `128`): Items per optimisation step.
        learning_rate (`float`, *optional*, defaults to `3e-3`): AdamW learning rate of the head.
        weight_decay (`float`, *optional*, defaults to `1e-4`): AdamW weight decay.
        train_encoder (`bool`, *optional*, defaults to `False`): Fine-tune the encoder with the head. By default the
            encoder is frozen: every item is embedded once and only the head trains (fast).
        encoder_learning_rate (`float`, *optional*, defaults to `5e-5`): Learning rate of the encoder when
            `train_encoder` is set.
        encode_batch_size (`int`, *optional*, defaults to `64`): Texts per encoder forward pass.
        seed (`int`, *optional*, defaults to `0`): Seeds the head's initialisation and the batch order.
        show_progress_bar (`bool`, *optional*, defaults to `True`): Progress bars while embedding and training.
    """

    hidden_dim: int = field(default=0, metadata={"help": "Hidden layer width of the head (0: linear head)."})
    class_weighting: str = field(
        default="sqrt", metadata={"help": "Class weights of the cross-entropy: 'none', 'balanced' or 'sqrt'."}
    )
    num_epochs: int = field(default=40, metadata={"help": "Passes over the training items."})
    batch_size: int = field(default=128, metadata={"help": "Items per optimisation step."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of the head."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    train_encoder: bool = field(
        default=False, metadata={"help": "Fine-tune the encoder too (default: frozen, cached embeddings)."}
    )
    encoder_learning_rate: float = field(default=5e-5, metadata={"help": "Encoder learning rate (train_encoder)."})
    encode_batch_size: int = field(default=64, metadata={"help": "Texts per encoder forward pass."})
    seed: int = field(default=0, metadata={"help": "Seed of the head's initialisation and the batch order."})
    show_progress_bar: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self) -> None:
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}.")
        for name in ("num_epochs", "batch_size", "encode_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.hidden_dim < 0:
            raise ValueError(f"hidden_dim must be 0 (linear head) or positive, got {self.hidden_dim}.")
        if self.learning_rate <= 0 or self.encoder_learning_rate <= 0:
            raise ValueError("learning rates must be positive.")


class PreferenceHead(torch.nn.Module):
    """Embedding -> logits of shape `(batch, num_dimensions, 3)`: standardisation (the training embeddings' mean
    and standard deviation, kept as buffers), then a linear layer or a one-hidden-layer MLP.

    Args:
        input_dim (`int`): The encoder's embedding size.
        num_dimensions (`int`): Dimensions of the preference space.
        hidden_dim (`int`, *optional*, defaults to `0`): Hidden width; 0 for a linear head.
    """

    def __init__(self, input_dim: int, num_dimensions: int, hidden_dim: int = 0) -> None:
        super().__init__()
        self.input_dim, self.num_dimensions, self.hidden_dim = input_dim, num_dimensions, hidden_dim
        self.register_buffer("shift", torch.zeros(input_dim))
        self.register_buffer("scale", torch.ones(input_dim))
        outputs = num_dimensions * len(CLASS_VALUES)
        if hidden_dim:
            self.net = torch.nn.Sequential(
                torch.nn.Linear(input_dim, hidden_dim), torch.nn.GELU(), torch.nn.Linear(hidden_dim, outputs)
            )
        else:
            self.net = torch.nn.Linear(input_dim, outputs)

    def set_standardization(self, embeddings: torch.Tensor) -> None:
        """Standardise inputs with the mean and standard deviation of these (training) embeddings."""
        self.shift.copy_(embeddings.mean(dim=0))
        self.scale.copy_(embeddings.std(dim=0).clamp(min=1e-6) if len(embeddings) > 1 else self.scale)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        logits = self.net((embeddings - self.shift) / self.scale)
        return logits.view(embeddings.shape[0], self.num_dimensions, len(CLASS_VALUES))


class LearnedPreferenceInferencer:
    """Infers item and persona direction vectors from PersonaEncoder embeddings with a trained classifier.

    A drop-in alternative to [`~personalign.PreferenceInferencer`]: the same `infer_items`, `infer` and
    `profile_text`, and the same aggregation (`space.aggregate(..., upper, lower)`).

    ```python
    from personalign import LearnedPreferenceInferencer, PersonaEncoder

    inferencer = LearnedPreferenceInferencer(PersonaEncoder.from_pretrained("my-org/persona-encoder"))
    inferencer.fit(train_rows)                 # AlignX rows: every comment / pair with a gold vector is an example
    inferencer.calibrate(validation_rows)      # item and aggregation thresholds for the best macro-F1
    inferencer.profile_text(persona)           # "Concise communication style, Dislikes humor"
    inferencer.save_pretrained("my-inferencer")
    ```

    Args:
        encoder (`PersonaEncoder`): Embeds each item (with its tokenizer).
        space (`PreferenceSpace`, *optional*): Defaults to AlignX's 90 dimensions.
        head (`PreferenceHead`, *optional*): A trained head; `fit` builds and trains one.
        upper (`float`, *optional*, defaults to `0.6`) / lower (`float`, *optional*, defaults to `0.4`):
            Aggregation thresholds (see `calibrate`).
        item_threshold (`float`, *optional*, defaults to `0.5`): Probability mass on the two poles at which an item
            takes a pole on a dimension (see `probabilities_to_vectors`).
        batch_size (`int`, *optional*, defaults to `64`): Texts per encoder forward pass at inference.
    """

    def __init__(
        self,
        encoder: PersonaEncoder,
        space: PreferenceSpace | None = None,
        head: PreferenceHead | None = None,
        upper: float = 0.6,
        lower: float = 0.4,
        item_threshold: float = 0.5,
        batch_size: int = 64,
    ) -> None:
        self.encoder = encoder
        self.space = space or PreferenceSpace.alignx()
        if head is not None:
            self._check_head(head)
        self.head = head
        if not lower < upper:
            raise ValueError(f"lower must be below upper, got lower={lower}, upper={upper}.")
        self.upper, self.lower = upper, lower
        probabilities_to_vectors(np.zeros((0, 1, 3)), item_threshold)  # validates the threshold
        self.item_threshold = item_threshold
        self.batch_size = batch_size
        self.training_args: LearnedInferenceConfig | None = None
        self.encoder_trained = False

    def _check_head(self, head: PreferenceHead) -> None:
        dim = self.encoder.config.embedding_dim
        if head.input_dim != dim or head.num_dimensions != len(self.space):
            raise ValueError(
                f"the head maps {head.input_dim}-dim embeddings to {head.num_dimensions} dimensions, but the encoder "
                f"gives {dim}-dim embeddings and the space has {len(self.space)} dimensions."
            )

    def _require_head(self) -> PreferenceHead:
        if self.head is None:
            raise ValueError(
                "This LearnedPreferenceInferencer has no trained head: call fit(rows) or load one with "
                "LearnedPreferenceInferencer.from_pretrained(folder)."
            )
        return self.head

    # --------------------------------------------------------------------------------------------------- training
    def embed(self, examples: ItemExamples, batch_size: int = 64, show_progress_bar: bool = True) -> ItemExamples:
        """`examples` with the encoder's embeddings of their texts (float32 numpy), for `fit` to reuse: heads trained
        on the returned examples skip the encoder pass (valid while the encoder stays frozen)."""
        embeddings = self.encoder.encode(
            examples.texts, batch_size=batch_size, show_progress_bar=show_progress_bar and len(examples) > batch_size
        )
        return replace(examples, embeddings=np.asarray(embeddings, dtype=np.float32))

    def fit(
        self,
        rows: Iterable[Mapping[str, Any]] | ItemExamples,
        args: LearnedInferenceConfig | None = None,
        where: str = "training rows",
    ) -> dict[str, Any]:
        """Train the classifier on the per-item gold vectors of AlignX rows (items without a vector are skipped).

        Args:
            rows (iterable of `dict`, `Dataset` or `ItemExamples`): AlignX rows (release or snake_case column names),
                or examples already built by `item_examples` (and embedded by `embed`, to train several heads on one
                pass of the frozen encoder).
            args (`LearnedInferenceConfig`, *optional*): Training settings.
            where (`str`, *optional*): Names the rows in error messages.

        Returns:
            `dict`: `num_examples`, `num_rows`, `num_skipped`, `num_duplicates`, `class_counts`, `class_weights`,
            `epoch_losses` (mean training loss per epoch).

        Raises:
            `ValueError`: On malformed rows (naming row, column and item) or rows without any annotated item.
        """
        args = args or LearnedInferenceConfig()
        examples = rows if isinstance(rows, ItemExamples) else item_examples(rows, self.space, where)
        if examples.labels.shape[1:] != (len(self.space),):
            raise ValueError(
                f"the examples have {examples.labels.shape[1]} dimensions, the space has {len(self.space)}."
            )
        # The frozen encoder's embeddings, computed once (or given); with `train_encoder` they only standardise.
        if examples.embeddings is None:
            examples = self.embed(
                examples, batch_size=args.encode_batch_size, show_progress_bar=args.show_progress_bar
            )
        weights = class_weights(examples.labels, args.class_weighting)
        device = self.encoder.device
        # Initialisation, batch order and the encoder's dropout all draw from generators seeded here, and the
        # caller's generators are left as they were.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(args.seed)
            head = PreferenceHead(self.encoder.config.embedding_dim, len(self.space), args.hidden_dim).to(device)
            head.set_standardization(torch.as_tensor(examples.embeddings, dtype=torch.float32, device=device))
            was_training = self.encoder.training
            self.encoder.train(args.train_encoder)
            try:
                epoch_losses = self._train(head, examples, weights, args)
            finally:
                self.encoder.train(was_training)
        head.eval()
        self.head = head
        self.training_args = args
        self.encoder_trained = self.encoder_trained or args.train_encoder
        counts = np.bincount(examples.labels.ravel(), minlength=len(CLASS_VALUES))
        return {
            "num_examples": len(examples),
            "num_rows": examples.num_rows,
            "num_skipped": examples.num_skipped,
            "num_duplicates": examples.num_duplicates,
            "class_counts": dict(zip(("positive", "negative", "neutral"), counts.tolist(), strict=True)),
            "class_weights": weights.tolist(),
            "epoch_losses": epoch_losses,
        }

    def _train(
        self, head: PreferenceHead, examples: ItemExamples, weights: np.ndarray, args: LearnedInferenceConfig
    ) -> list[float]:
        """The optimisation loop of `fit`: cross-entropy over every (item, dimension) cell; returns the mean loss of
        each epoch."""
        from tqdm.auto import tqdm

        device = next(head.parameters()).device
        embeddings = torch.as_tensor(examples.embeddings, dtype=torch.float32, device=device)
        labels = torch.from_numpy(examples.labels).to(device)
        parameters = [{"params": head.parameters(), "lr": args.learning_rate}]
        if args.train_encoder:
            parameters.append({"params": self.encoder.parameters(), "lr": args.encoder_learning_rate})
        optimizer = torch.optim.AdamW(parameters, weight_decay=args.weight_decay)
        loss_function = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights).to(device))
        tokenizer = self.encoder._require_tokenizer() if args.train_encoder else None
        progress = tqdm(
            total=args.num_epochs * math.ceil(len(examples) / args.batch_size),
            desc="Training the preference head" + (" and encoder" if args.train_encoder else ""),
            unit="step",
            disable=not args.show_progress_bar,
        )
        epoch_losses = []
        try:
            for _ in range(args.num_epochs):
                order = torch.randperm(len(examples)).tolist()
                total = 0.0
                for start in range(0, len(order), args.batch_size):
                    batch = order[start : start + args.batch_size]
                    if tokenizer is not None:
                        # The encoder's own tokenization (its default prompt, max_seq_length), as encode() uses.
                        features = self.encoder.tokenize([examples.texts[i] for i in batch]).to(device)
                        inputs = self.encoder(**features).embeddings.float()
                    else:
                        inputs = embeddings[batch]
                    loss = loss_function(head(inputs).reshape(-1, len(CLASS_VALUES)), labels[batch].reshape(-1))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(batch)
                    progress.update()
                epoch_losses.append(total / len(examples))
                progress.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
        finally:
            progress.close()
        return epoch_losses

    # -------------------------------------------------------------------------------------------------- inference
    def item_probabilities(
        self, items: Sequence[UGCItem | PairItem], show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Class probabilities of each item, shape `(len(items), num_dimensions, 3)` in `CLASS_VALUES` order."""
        self._require_head()
        texts = [item_text(item) for item in items]
        if not texts:
            return np.zeros((0, len(self.space), len(CLASS_VALUES)), dtype=np.float32)
        embeddings = self.encoder.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=show_progress_bar
        )
        return self.probabilities_from_embeddings(embeddings)

    def probabilities_from_embeddings(self, embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities `(n, num_dimensions, 3)` from the encoder's embeddings of `n` item texts (`item_text`),
        e.g. embeddings computed once and read by several heads."""
        head = self._require_head()
        device = next(head.parameters()).device
        with torch.inference_mode():
            embeddings = torch.as_tensor(embeddings, dtype=torch.float32, device=device)
            if embeddings.ndim != 2 or embeddings.shape[1] != head.input_dim:
                raise ValueError(f"expected embeddings of shape (n, {head.input_dim}), got {tuple(embeddings.shape)}.")
            return torch.softmax(head(embeddings), dim=-1).cpu().numpy()

    def infer_items(self, items: Sequence[UGCItem | PairItem]) -> list[list[float]]:
        """One direction vector per history item (comment or pair), one embedding each."""
        return probabilities_to_vectors(self.item_probabilities(items), self.item_threshold)

    def infer(self, persona: Persona) -> list[float]:
        """The persona's direction: its items' vectors aggregated with AlignX's rule and this inferencer's thresholds
        (all neutral for a persona without items)."""
        items = persona_items(persona)
        if not items:
            return [NEUTRAL] * len(self.space)
        return self.space.aggregate(self.infer_items(items), upper=self.upper, lower=self.lower)

    def infer_many(self, personas: Sequence[Persona], show_progress_bar: bool | None = None) -> list[list[float]]:
        """`infer` for many personas, embedding all their items in one batched pass."""
        return aggregate_directions(
            self.persona_probabilities(personas, show_progress_bar),
            self.space,
            self.item_threshold,
            self.upper,
            self.lower,
        )

    def profile_text(self, persona: Persona) -> str:
        """PBA's preference text for the persona, from the inferred direction."""
        return self.space.to_text(self.infer(persona))

    def persona_probabilities(
        self, personas: Sequence[Persona], show_progress_bar: bool | None = None
    ) -> list[np.ndarray]:
        """Per persona, its items' class probabilities `(num_items, num_dimensions, 3)`, from one batched encoder pass
        over all their items (inputs of `aggregate_directions` / `calibrate_item_thresholds`)."""
        counts = [len(persona_items(persona)) for persona in personas]
        probabilities = self.item_probabilities(
            [item for persona in personas for item in persona_items(persona)], show_progress_bar
        )
        bounds = np.cumsum([0, *counts])
        return [probabilities[bounds[k] : bounds[k + 1]] for k in range(len(personas))]

    # ----------------------------------------------------------------------------------------- evaluation, calibration
    def evaluate(self, data: Iterable[Persona | Mapping[str, Any]], where: str = "evaluation rows") -> dict[str, Any]:
        """`direction_report` (per-category precision / recall / F1 and macro-F1, the AlignX paper's Table 12) of the
        inferred directions of personas (or AlignX rows) against their gold directions (`gold_directions`)."""
        personas = as_personas(data, self.space, where)
        return direction_report(self.infer_many(personas), gold_directions(personas, self.space))

    def calibrate(
        self,
        data: Iterable[Persona | Mapping[str, Any]],
        item_thresholds: Sequence[float] = DEFAULT_ITEM_THRESHOLDS,
        grid: Sequence[float] = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0),
        where: str = "validation rows",
    ) -> dict[str, Any]:
        """Choose `item_threshold` and the aggregation thresholds (upper, lower = 1 - upper) that maximise macro-F1
        against the gold directions of validation personas (or AlignX rows), and set them on this inferencer.

        Items are embedded once; see `calibrate_item_thresholds` for the search.

        Returns:
            `dict`: `item_threshold`, `upper`, `lower`, `macro_f1`, and `scores` (`{item_threshold: {upper: F1}}`).
        """
        personas = as_personas(data, self.space, where)
        if not personas:
            raise ValueError(f"{where}: calibration needs at least one persona.")
        result = calibrate_item_thresholds(
            self.persona_probabilities(personas),
            gold_directions(personas, self.space),
            self.space,
            item_thresholds,
            grid,
        )
        self.item_threshold, self.upper, self.lower = result["item_threshold"], result["upper"], result["lower"]
        return result

    # -------------------------------------------------------------------------------------------------- save / load
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        encoder_name_or_path: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the head (`learned_inference_head.safetensors`), a JSON config (space, thresholds, head shape,
        training settings) and the encoder (`encoder/`, a `PersonaEncoder` folder), atomically.

        Args:
            save_directory (`str` or `os.PathLike`): The folder to write.
            encoder_name_or_path (`str`, *optional*): Refer to the encoder by this Hub id or folder instead of saving a
                copy (`from_pretrained` loads it with `PersonaEncoder.from_pretrained`). It must hold the encoder the
                head was trained on; refused when the encoder was fine-tuned with the head.
            overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.

        Raises:
            `OutputExistsError`: If the folder exists and `overwrite` is False.
            `ValueError`: If there is no trained head, or a fine-tuned encoder would not be saved.
        """
        from safetensors.torch import save_file

        from ..io import atomic_output

        head = self._require_head()
        if encoder_name_or_path is not None and self.encoder_trained:
            raise ValueError(
                "the encoder was fine-tuned with the head, so its weights exist only here: save it too "
                "(encoder_name_or_path=None)."
            )
        config = {
            "format_version": FORMAT_VERSION,
            "class_values": list(CLASS_VALUES),
            "input_dim": head.input_dim,
            "num_dimensions": head.num_dimensions,
            "hidden_dim": head.hidden_dim,
            "upper": self.upper,
            "lower": self.lower,
            "item_threshold": self.item_threshold,
            "batch_size": self.batch_size,
            "encoder": encoder_name_or_path or ENCODER_FOLDER,
            "encoder_trained": self.encoder_trained,
            "training_args": asdict(self.training_args) if self.training_args else None,
            "space": self.space.to_dict(),
        }
        with atomic_output(save_directory, overwrite=overwrite) as folder:
            folder.mkdir(parents=True)
            state = {name: tensor.detach().cpu().contiguous() for name, tensor in head.state_dict().items()}
            save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
            (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            if encoder_name_or_path is None:
                self.encoder.save_pretrained(folder / ENCODER_FOLDER)
        return Path(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_path: str | os.PathLike,
        encoder: PersonaEncoder | None = None,
        **encoder_kwargs: Any,
    ) -> LearnedPreferenceInferencer:
        """Load an inferencer written by `save_pretrained` (a local folder, or a Hub repo id downloaded with
        `huggingface_hub.snapshot_download`). Weights are read from safetensors; nothing is unpickled.

        Args:
            pretrained_path (`str` or `os.PathLike`): The folder or Hub id.
            encoder (`PersonaEncoder`, *optional*): Use this encoder instead of the saved / referenced one (its
                embedding size must match the head's).
            **encoder_kwargs: Passed to `PersonaEncoder.from_pretrained` (`revision`, `token`, `device_map`, ...).

        Raises:
            `FileNotFoundError`: If the folder lacks the config or the weights.
            `ValueError`: If the config is malformed or does not match the weights or the encoder.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from ..encoder import PersonaEncoder

        folder = Path(pretrained_path)
        if not folder.is_dir():
            if folder.exists() or str(pretrained_path).startswith((".", "/", "~")):
                raise FileNotFoundError(f"{pretrained_path}: not a folder written by save_pretrained.")
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(pretrained_path)))
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{folder}: missing {path.name}; expected a LearnedPreferenceInferencer folder."
                )
        try:
            config = json.loads(config_path.read_text("utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_path}: not valid JSON ({error}).") from error
        missing = [
            key
            for key in ("format_version", "class_values", "input_dim", "num_dimensions", "hidden_dim", "space")
            if key not in config
        ]
        if missing:
            raise ValueError(f"{config_path}: missing {', '.join(missing)}.")
        if config["format_version"] > FORMAT_VERSION:
            raise ValueError(
                f"{config_path}: format_version {config['format_version']} is newer than this library reads "
                f"({FORMAT_VERSION}); upgrade personalign."
            )
        if [float(v) for v in config["class_values"]] != list(CLASS_VALUES):
            raise ValueError(f"{config_path}: class_values {config['class_values']} differ from {list(CLASS_VALUES)}.")
        space = PreferenceSpace.from_dict(config["space"])
        head = PreferenceHead(int(config["input_dim"]), int(config["num_dimensions"]), int(config["hidden_dim"]))
        try:
            state = load_file(str(weights_path))
        except SafetensorError as error:
            raise ValueError(f"{weights_path}: not a readable safetensors file ({error}).") from error
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{weights_path}: the weights do not match the config's head shape ({error}).") from error
        head.eval()
        if encoder is None:
            reference = config.get("encoder")
            if not reference:
                raise ValueError(f"{config_path}: no encoder saved or referenced; pass encoder=...")
            location = folder / reference if reference == ENCODER_FOLDER else reference
            encoder = PersonaEncoder.from_pretrained(str(location), **encoder_kwargs)
        inferencer = cls(
            encoder,
            space=space,
            upper=float(config.get("upper", 0.6)),
            lower=float(config.get("lower", 0.4)),
            item_threshold=float(config.get("item_threshold", 0.5)),
            batch_size=int(config.get("batch_size", 64)),
        )
        inferencer._check_head(head)
        inferencer.head = head.to(encoder.device)
        inferencer.encoder_trained = bool(config.get("encoder_trained", False))
        if config.get("training_args"):
            inferencer.training_args = LearnedInferenceConfig(**config["training_args"])
        return inferencer
