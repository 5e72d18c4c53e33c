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
macro-F1 on validation personas (`personalign.inference.calibration.calibrate_item_thresholds`).

Pure parts (rows to (text, labels) examples, class weights) are plain functions; the classifier is a
`personalign.models.preference_head.PreferenceHead`, and the inferencer wires it to an encoder. A saved inferencer is a folder: the
head in `preference_head/` (the `HubModule` convention: `config.json` + `model.safetensors`), the encoder in
`encoder/` (or a reference to it), and `learned_inference_config.json` (space, thresholds, training settings).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.constants import CONFIG_NAME as HEAD_CONFIG_NAME
from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE as HEAD_WEIGHTS_NAME
from safetensors import SafetensorError
from tqdm.auto import tqdm

from ..encoder import PersonaEncoder
from ..errors import InputError
from ..io import atomic_output
from ..models.hub_mixin import local_folder
from ..models.preference_head import PreferenceHead
from ..personas.persona import PairItem, Persona, UGCItem
from ..personas.prompts import render_history
from ..personas.space import PreferenceSpace
from ..row_names import RowNames
from .base import BasePreferenceInferencer, persona_items
from .calibration import (
    CLASS_VALUES,
    DEFAULT_ITEM_THRESHOLDS,
    DEFAULT_UPPER_GRID,
    aggregate_directions,
    calibrate_item_thresholds,
    check_item_threshold,
    gold_directions,
    probabilities_to_vectors,
    vectors_to_labels,
)

CLASS_WEIGHTINGS = ("none", "balanced", "sqrt")
CONFIG_NAME = "learned_inference_config.json"
HEAD_FOLDER = "preference_head"
ENCODER_FOLDER = "encoder"
FORMAT_VERSION = 2
"""Version of the folder layout `save_pretrained` writes. 2: the head in `preference_head/` (`HubModule`); 1 (no
longer read): the head flat in `learned_inference_head.safetensors`, its shape in the config."""


# ------------------------------------------------------------------------------------------------------ pure parts
def item_text(item: UGCItem | PairItem) -> str:
    """The text of one history item as the persona encoder sees it: `personas.render_history` of a persona holding
    only that item (the rendering of `encoder.alignx_excerpts`)."""
    if isinstance(item, PairItem):
        return render_history(Persona(ugc=[], pairs=[item], demographics=""))
    if isinstance(item, UGCItem):
        return render_history(Persona(ugc=[item], pairs=[], demographics=""))
    raise TypeError(f"expected a UGCItem or a PairItem, got {type(item).__name__}.")


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
        raise InputError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {mode!r}.")
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


def item_examples(
    rows: Iterable[Mapping[str, Any]],
    space: PreferenceSpace | None = None,
    where: str = "rows",
    names: RowNames | None = None,
) -> ItemExamples:
    """(text, gold labels) examples from AlignX rows: every comment and pair that carries a direction vector.

    Args:
        rows (iterable of `dict` or `Dataset`): AlignX rows (release column names or snake_case).
        space (`PreferenceSpace`, *optional*): The preference space (AlignX's by default); vectors are validated
            against it.
        where (`str`, *optional*, defaults to `"rows"`): Names the source in error messages.
        names (`RowNames`, *optional*): Names its rows in error messages (`DatasetSource.part_row_names` for a file:
            a JSON-lines row by its 1-based line); by default `RowNames.of(where)` (`"<where>, row <i> (0-based)"`).

    Raises:
        `InputError`: On a malformed row (naming the row, column and item), or when no item carries a vector.
    """
    space = space or PreferenceSpace.alignx()
    names = names or RowNames.of(where)
    texts: list[str] = []
    vectors: list[list[float]] = []
    seen: set[tuple[str, tuple[float, ...]]] = set()
    num_rows = num_skipped = num_duplicates = 0
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(f"{names(index)}: expected an AlignX row (a mapping), got {type(row).__name__}.")
        persona = Persona.from_alignx_row(row, space=space, where=names(index))
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
        raise InputError(
            f"{where}: no history item with a 'Preference Direction' vector in {num_rows} row(s) "
            f"({num_skipped} item(s) without one); the learned inferencer trains on per-item gold vectors."
        )
    return ItemExamples(texts, vectors_to_labels(vectors, space), num_rows, num_skipped, num_duplicates)


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
            raise InputError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}.")
        for name in ("num_epochs", "batch_size", "encode_batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.hidden_dim < 0:
            raise InputError(f"hidden_dim must be 0 (linear head) or positive, got {self.hidden_dim}.")
        for name in ("learning_rate", "encoder_learning_rate"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be above 0, got {getattr(self, name)}.")


class LearnedPreferenceInferencer(BasePreferenceInferencer):
    """Infers item and persona direction vectors from PersonaEncoder embeddings with a trained classifier.

    A [`BasePreferenceInferencer`], interchangeable with the LLM [`~personalign.PreferenceInferencer`]: the same
    `infer_items`, `infer`, `infer_many`, `profile_text`, `evaluate` and `calibrate`, and the same aggregation
    (`space.aggregate(..., upper, lower)`).

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

    Raises:
        `InputError`: If `lower` is not below `upper`, `item_threshold` is outside (0, 1], or `head` does not fit the
            encoder and the space.
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
        super().__init__(space, upper, lower)
        check_item_threshold(item_threshold)
        self.encoder = encoder
        if head is not None:
            self._check_head(head)
        self.head = head
        self.item_threshold = item_threshold
        self.batch_size = batch_size
        self.training_args: LearnedInferenceConfig | None = None
        self.encoder_trained = False

    def _check_head(self, head: PreferenceHead) -> None:
        dim = self.encoder.config.embedding_dim
        if head.input_dim != dim or head.num_dimensions != len(self.space):
            raise InputError(
                f"the head maps {head.input_dim}-dim embeddings to {head.num_dimensions} dimensions, but the encoder "
                f"gives {dim}-dim embeddings and the space has {len(self.space)} dimensions."
            )
        if head.num_classes != len(CLASS_VALUES):
            raise InputError(f"the head has {head.num_classes} classes per dimension; expected {len(CLASS_VALUES)}.")

    def _require_head(self) -> PreferenceHead:
        if self.head is None:
            raise InputError(
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
            `InputError`: On malformed rows (naming row, column and item) or rows without any annotated item.
        """
        args = args or LearnedInferenceConfig()
        examples = rows if isinstance(rows, ItemExamples) else item_examples(rows, self.space, where)
        if examples.labels.shape[1:] != (len(self.space),):
            raise InputError(
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
        device = next(head.parameters()).device
        embeddings = torch.as_tensor(examples.embeddings, dtype=torch.float32, device=device)
        labels = torch.from_numpy(examples.labels).to(device)
        parameters = [{"params": head.parameters(), "lr": args.learning_rate}]
        if args.train_encoder:
            parameters.append({"params": self.encoder.parameters(), "lr": args.encoder_learning_rate})
        optimizer = torch.optim.AdamW(parameters, weight_decay=args.weight_decay)
        loss_function = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(weights).to(device))
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
                    if args.train_encoder:
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
        """Class probabilities `(n, num_dimensions, 3)` from the encoder's embeddings `(n, embedding_dim)` of `n` item
        texts (`item_text`), e.g. embeddings computed once and read by several heads."""
        head = self._require_head()
        device = next(head.parameters()).device
        with torch.inference_mode():
            embeddings = torch.as_tensor(embeddings, dtype=torch.float32, device=device)
            if embeddings.ndim != 2 or embeddings.shape[1] != head.input_dim:
                raise InputError(f"expected embeddings of shape (n, {head.input_dim}), got {tuple(embeddings.shape)}.")
            return torch.softmax(head(embeddings), dim=-1).cpu().numpy()

    def infer_items(self, items: Sequence[UGCItem | PairItem]) -> list[list[float]]:
        """One direction vector per history item (comment or pair), one embedding each."""
        return probabilities_to_vectors(self.item_probabilities(items), self.item_threshold)

    def infer_many(self, personas: Sequence[Persona], show_progress_bar: bool | None = None) -> list[list[float]]:
        """`infer` for many personas, embedding all their items in one batched pass."""
        return aggregate_directions(
            self.persona_probabilities(personas, show_progress_bar),
            self.space,
            self.item_threshold,
            self.upper,
            self.lower,
        )

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

    # ------------------------------------------------------------------------------------------------- calibration
    def calibrate(
        self,
        data: Iterable[Persona | Mapping[str, Any]],
        item_thresholds: Sequence[float] = DEFAULT_ITEM_THRESHOLDS,
        grid: Sequence[float] = DEFAULT_UPPER_GRID,
        where: str = "validation rows",
    ) -> dict[str, Any]:
        """Choose `item_threshold` and the aggregation thresholds (upper, lower = 1 - upper) that maximise macro-F1
        against the gold directions of validation personas (or AlignX rows), and set them on this inferencer.

        Items are embedded once; see `calibrate_item_thresholds` for the search.

        Args:
            data (iterable of `Persona` or `dict`): Validation personas or AlignX rows.
            item_thresholds (`Sequence[float]`, *optional*, defaults to `DEFAULT_ITEM_THRESHOLDS`): Candidate item
                thresholds.
            grid (`Sequence[float]`, *optional*, defaults to `DEFAULT_UPPER_GRID`): Candidate upper thresholds.
            where (`str`, *optional*, defaults to `"validation rows"`): Names the data in error messages.

        Returns:
            `dict`: `item_threshold`, `upper`, `lower`, `macro_f1`, and `scores` (`{item_threshold: {upper: F1}}`).

        Raises:
            `InputError`: If `data` holds no persona, or a persona has no gold direction.
        """
        personas = self._calibration_personas(data, where)
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
        """Write the inferencer's folder, atomically: the head in `preference_head/` (`PreferenceHead.save_pretrained`:
        `config.json` + `model.safetensors`), the encoder in `encoder/` (a `PersonaEncoder` folder), and
        `learned_inference_config.json` (space, thresholds, training settings, where the encoder is).

        Args:
            save_directory (`str` or `os.PathLike`): The folder to write.
            encoder_name_or_path (`str`, *optional*): Refer to the encoder by this Hub id or folder instead of saving a
                copy (`from_pretrained` loads it with `PersonaEncoder.from_pretrained`). It must hold the encoder the
                head was trained on; refused when the encoder was fine-tuned with the head.
            overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.

        Returns:
            `Path`: `save_directory`.

        Raises:
            `OutputExistsError`: If the folder exists and `overwrite` is False.
            `InputError`: If there is no trained head, or a fine-tuned encoder would not be saved.
        """
        head = self._require_head()
        if encoder_name_or_path is not None and self.encoder_trained:
            raise InputError(
                "the encoder was fine-tuned with the head, so its weights exist only here: save it too "
                "(encoder_name_or_path=None)."
            )
        config = {
            "format_version": FORMAT_VERSION,
            "class_values": list(CLASS_VALUES),
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
            head.save_pretrained(folder / HEAD_FOLDER)
            (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            if encoder_name_or_path is None:
                self.encoder.save_pretrained(folder / ENCODER_FOLDER)
        return Path(save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        encoder: PersonaEncoder | None = None,
        **encoder_kwargs: Any,
    ) -> LearnedPreferenceInferencer:
        """Load an inferencer written by `save_pretrained` from a local folder (any path, relative or absolute) or a
        Hub repo (downloaded with `huggingface_hub.snapshot_download`; `personalign.models.hub_mixin.local_folder`
        decides which). Weights are read from safetensors; nothing is unpickled.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): The folder or Hub id.
            encoder (`PersonaEncoder`, *optional*): Use this encoder instead of the saved / referenced one (its
                embedding size must match the head's).
            **encoder_kwargs: Passed to `PersonaEncoder.from_pretrained` (`revision`, `token`, `device_map`, ...).

        Raises:
            `FileNotFoundError`: If the path is neither a folder nor a Hub repo, or the folder lacks the config or the
                head.
            `InputError`: If a config is malformed or does not match the weights or the encoder.
        """
        if Path(pretrained_model_name_or_path).is_file():
            raise FileNotFoundError(f"{pretrained_model_name_or_path}: not a folder written by save_pretrained.")
        try:
            folder = local_folder(pretrained_model_name_or_path)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{pretrained_model_name_or_path}: not a folder written by save_pretrained ({error})"
            ) from error
        config_path = folder / CONFIG_NAME
        for path in (config_path, folder / HEAD_FOLDER / HEAD_CONFIG_NAME, folder / HEAD_FOLDER / HEAD_WEIGHTS_NAME):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{folder}: missing {path.relative_to(folder).as_posix()}; expected a LearnedPreferenceInferencer "
                    "folder."
                )
        config = _read_json(config_path)
        missing = [key for key in ("format_version", "class_values", "space") if key not in config]
        if missing:
            raise InputError(f"{config_path}: missing {', '.join(missing)}.")
        if config["format_version"] > FORMAT_VERSION:
            raise InputError(
                f"{config_path}: format_version {config['format_version']} is newer than this library reads "
                f"({FORMAT_VERSION}); upgrade personalign."
            )
        if config["format_version"] < FORMAT_VERSION:
            raise InputError(
                f"{config_path}: format_version {config['format_version']} (the head flat in the folder) is no longer "
                f"read; this library reads {FORMAT_VERSION} (the head in {HEAD_FOLDER}/): retrain and save again."
            )
        if [float(v) for v in config["class_values"]] != list(CLASS_VALUES):
            raise InputError(f"{config_path}: class_values {config['class_values']} differ from {list(CLASS_VALUES)}.")
        space = PreferenceSpace.from_dict(config["space"], where=f"{config_path}, field 'space'")
        head = _load_head(folder)
        if encoder is None:
            reference = config.get("encoder")
            if not reference:
                raise InputError(f"{config_path}: no encoder saved or referenced; pass encoder=...")
            location = folder / reference if reference == ENCODER_FOLDER else reference
            encoder = PersonaEncoder.from_pretrained(str(location), **encoder_kwargs)
        inferencer = cls(
            encoder,
            space=space,
            head=head,
            upper=float(config.get("upper", 0.6)),
            lower=float(config.get("lower", 0.4)),
            item_threshold=float(config.get("item_threshold", 0.5)),
            batch_size=int(config.get("batch_size", 64)),
        )
        inferencer.head = head.to(encoder.device)
        inferencer.encoder_trained = bool(config.get("encoder_trained", False))
        if config.get("training_args"):
            inferencer.training_args = LearnedInferenceConfig(**config["training_args"])
        return inferencer


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or a `ValueError` naming the file."""
    try:
        value = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}).") from error
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(value).__name__}.")
    return value


def _load_head(folder: Path) -> PreferenceHead:
    """The `PreferenceHead` saved in `folder / HEAD_FOLDER`, strictly (every weight present, no extra one), with
    one-line errors naming the file."""
    head_folder = folder / HEAD_FOLDER
    config_path, weights_path = head_folder / HEAD_CONFIG_NAME, head_folder / HEAD_WEIGHTS_NAME
    missing = [key for key in ("input_dim", "num_dimensions") if key not in _read_json(config_path)]
    if missing:
        raise InputError(f"{config_path}: missing {', '.join(missing)}.")
    try:
        return PreferenceHead.from_pretrained(folder, subfolder=HEAD_FOLDER, strict=True)
    except SafetensorError as error:
        raise InputError(f"{weights_path}: not a readable safetensors file ({error}).") from error
    except RuntimeError as error:  # missing, unexpected or mis-shaped tensors (torch's load_state_dict)
        raise InputError(f"{weights_path}: the weights do not match the config's head shape ({error}).") from error
