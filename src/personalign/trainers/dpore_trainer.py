"""DPORETrainer: TRL's DPOTrainer plus the DPORE persona-representation regularizer (the DPORE paper, §3.3).

Tokenization, the fused-LM-head forward, the reference log-probs and DPO's metrics stay TRL's. This module adds:

- `embed_personas`: persona embeddings computed once by a `PersonaEncoder` (batched, cached by fingerprint);
- `PersonaEmbeddingCollator`: the embedding columns reach the batch, and never the model;
- `RepresentationHooks`: forward hooks that read the policy's last hidden states (and the fused LM head's per-token
  log-probs) from the forwards TRL's loss already runs, so DPORE costs no extra pass;
- `dpore_margin_losses`: the DPORE paper's L_total per row, from sequence log-probs and the representation term;
- `DPORETrainer`: the above wired into `DPOTrainer`, with the projection head held by the trainer (the policy stays a
  plain causal LM, parameter for parameter the reference's twin), trained by the same optimizer, saved in
  `projection_head/` beside every checkpoint and restored on resume and with `load_best_model_at_end`.
"""

from __future__ import annotations

import contextlib
import logging
import textwrap
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from accelerate.utils import DistributedType
from datasets import Dataset, IterableDataset
from datasets.fingerprint import Hasher
from torch import nn
from torch.utils.hooks import RemovableHandle
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import DPOTrainer
from trl.trainer.utils import hash_module

from ..errors import InputError
from ..methods import PROJECTION_HEAD_FOLDER
from ..models.projection_head import PersonaProjectionHead
from ..papers import DPORE_CITATION
from .dpore_config import DPOREConfig, margin_conflicts
from .kept_rows import DPO_DROP_REASON, data_label, report_kept_rows

logger = logging.getLogger(__name__)

ITERABLE_EMBEDDING_SCAN = 1024
"""How many rows of an `IterableDataset` are read, at most, to find the persona embedding size."""
# Batch keys the collator adds; popped before anything reaches the model.
CHOSEN_KEY, REJECTED_KEY, MASK_KEY = "persona_embedding_chosen", "persona_embedding_rejected", "persona_mask"
BATCH_KEYS = (CHOSEN_KEY, REJECTED_KEY, MASK_KEY)


# ----------------------------------------------------------------------------------------------- pure functions
def pool_response_states(hidden: torch.Tensor, completion_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool hidden states over each row's response tokens (`completion_mask == 1`).

    Args:
        hidden (`torch.Tensor`): `(N, T, H)` hidden states.
        completion_mask (`torch.Tensor`): `(N, T)`, 1 on response tokens.
        mode (`str`): `"mean"` averages the response tokens, `"last"` takes the final one.

    Returns:
        `torch.Tensor`: `(N, H)`, y(m, response) of the DPORE paper.

    Raises:
        `InputError`: If `mode` is neither.
    """
    mask = completion_mask.to(hidden.dtype).unsqueeze(-1)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    if mode == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (completion_mask.long() * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise InputError(f"re_pooling must be 'mean' or 'last', got {mode!r}.")


def representation_similarities(
    pooled_chosen: torch.Tensor,
    pooled_rejected: torch.Tensor,
    target_chosen: torch.Tensor,
    target_rejected: torch.Tensor,
    similarity: str = "cosine",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(sim(y(m, chosen), h(G_chosen)), sim(y(m, rejected), h(G_rejected)))` per row (the DPORE paper's L_reg terms).

    Args:
        pooled_chosen, pooled_rejected (`torch.Tensor`): `(B, H)` pooled policy representations.
        target_chosen, target_rejected (`torch.Tensor`): `(B, H)` projected persona embeddings h(G).
        similarity (`str`, *optional*, defaults to `"cosine"`): `"cosine"` or `"dot"`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: Two `(B,)` similarities.

    Raises:
        `InputError`: If `similarity` is neither.
    """
    if similarity == "cosine":
        return (
            F.cosine_similarity(pooled_chosen, target_chosen, dim=-1),
            F.cosine_similarity(pooled_rejected, target_rejected, dim=-1),
        )
    if similarity == "dot":
        return (pooled_chosen * target_chosen).sum(dim=-1), (pooled_rejected * target_rejected).sum(dim=-1)
    raise InputError(f"similarity must be 'cosine' or 'dot', got {similarity!r}.")


def dpore_margin_losses(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    re_difference: torch.Tensor,
    beta: float,
    re_lambda: float,
) -> torch.Tensor:
    r"""The DPORE paper's L_total per row (§3.3), as a loss to minimise:

        -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)) + lambda * d)

    The DPO term appears once, inside the sigmoid; at `lambda * d = 0` this is DPO's sigmoid loss exactly (the same
    operations in the same order as TRL's).

    Args:
        chosen_logps, rejected_logps (`torch.Tensor`): `(B,)` policy log-probs of each response (summed over its
            tokens, nats).
        ref_chosen_logps, ref_rejected_logps (`torch.Tensor`): `(B,)` the same under the reference model.
        re_difference (`torch.Tensor`): `(B,)` d = sim_chosen - sim_rejected (0 for rows without a persona).
        beta (`float`): DPO's beta.
        re_lambda (`float`): lambda, the regularizer's weight.

    Returns:
        `torch.Tensor`: `(B,)` per-row losses.
    """
    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios) + re_lambda * re_difference)


# --------------------------------------------------------------------------------------------------- collation
@dataclass
class PersonaEmbeddingCollator:
    """Wraps a preference collator: takes the persona embedding columns (and the general-row marker) out of each
    example, collates the rest with `collator`, and adds `persona_embedding_chosen` / `persona_embedding_rejected`
    `(B, D)` and `persona_mask` `(B,)` (1 where the row has embeddings and is not marked general; the others are zeros
    with mask 0, so the regularizer never touches them)."""

    collator: Callable[[list[dict[str, Any]]], dict[str, Any]]
    single_column: str
    chosen_column: str
    rejected_column: str
    embedding_dim: int
    general_column: str | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        columns = (self.single_column, self.chosen_column, self.rejected_column, self.general_column)
        chosen, rejected, mask = [], [], []
        for example in examples:
            single = example.get(self.single_column)
            pick_c = example.get(self.chosen_column)
            pick_r = example.get(self.rejected_column)
            pick_c = single if pick_c is None else pick_c
            pick_r = single if pick_r is None else pick_r
            general = self.general_column is not None and bool(example.get(self.general_column))
            present = pick_c is not None and pick_r is not None and not general
            zeros = [0.0] * self.embedding_dim
            chosen.append(pick_c if present else zeros)
            rejected.append(pick_r if present else zeros)
            mask.append(1.0 if present else 0.0)
        batch = self.collator([{k: v for k, v in example.items() if k not in columns} for example in examples])
        batch[CHOSEN_KEY] = torch.tensor(chosen, dtype=torch.float32)
        batch[REJECTED_KEY] = torch.tensor(rejected, dtype=torch.float32)
        batch[MASK_KEY] = torch.tensor(mask, dtype=torch.float32)
        return batch


# --------------------------------------------------------------------------------------------------- embedding
ENCODER_EMBEDDING_SETTINGS = (
    "pooling",
    "normalize",
    "max_seq_length",
    "prompts",
    "default_prompt_name",
    "include_prompt",
)


def _message_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(f"{message['role']}: {message['content']}" for message in value)


def embed_personas(dataset: Dataset, encoder: Any, args: DPOREConfig, dataset_name: str = "train") -> Dataset:
    """Add persona embeddings to a raw preference dataset with `encoder`, once: `persona_embedding` from
    `args.persona_text_column` when the dataset has it (empty texts get none), else the DPORE paper's G(m, p) and
    G(m, r) from prompt + chosen and prompt + rejected. Rows marked general (`args.general_row_column` true: general
    preference data mixed in, §4.1) get none. Cached by the dataset's and the encoder's fingerprints.

    Args:
        dataset (`datasets.Dataset`): Raw preference rows (`prompt`, `chosen`, `rejected`, standard or conversational).
        encoder (`PersonaEncoder`): Anything with `encode(texts, batch_size=...)` returning `(N, D)` vectors.
        args (`DPOREConfig`): Names the columns and the encoding batch size.
        dataset_name (`str`, *optional*, defaults to `"train"`): Shown in the progress bar.

    Returns:
        `datasets.Dataset`: `dataset` with `persona_embedding` (or `persona_embedding_chosen` and
        `persona_embedding_rejected`) added; rows whose text is empty, and general rows, hold `None`.
    """
    text_column = args.persona_text_column
    per_row = text_column in dataset.column_names
    general_column = args.general_row_column if args.general_row_column in dataset.column_names else None

    def embed(texts: list[str | None]) -> list[list[float] | None]:
        keep = [i for i, text in enumerate(texts) if text]
        vectors = encoder.encode([texts[i] for i in keep], batch_size=args.persona_encoder_batch_size)
        out: list[list[float] | None] = [None] * len(texts)
        for i, vector in zip(keep, vectors, strict=True):
            out[i] = vector.tolist()
        return out

    def add_embeddings(batch: Mapping[str, list]) -> dict[str, list]:
        # The batch's size from any column: rows may hold `persona_text` alone (no prompt) when embedded on their own.
        general = batch[general_column] if general_column else [False] * len(next(iter(batch.values())))

        def personal(texts: list[str | None]) -> list[str | None]:
            return [None if is_general else text for text, is_general in zip(texts, general, strict=True)]

        if per_row:
            return {args.persona_embedding_column: embed(personal(batch[text_column]))}
        prompts = [_message_text(p) for p in batch["prompt"]]
        return {
            args.persona_embedding_chosen_column: embed(
                personal([p + "\n" + _message_text(c) for p, c in zip(prompts, batch["chosen"], strict=True)])
            ),
            args.persona_embedding_rejected_column: embed(
                personal([p + "\n" + _message_text(r) for p, r in zip(prompts, batch["rejected"], strict=True)])
            ),
        }

    # The weights alone do not fix the embeddings: a prompt, the pooling or the token limit change them too.
    settings = {key: getattr(getattr(encoder, "config", None), key, None) for key in ENCODER_EMBEDDING_SETTINGS}
    fingerprint = Hasher.hash(
        ["dpore-embed-v1", dataset._fingerprint, hash_module(encoder), settings, per_row, text_column, general_column]
    )
    return dataset.map(
        add_embeddings,
        batched=True,
        batch_size=max(args.persona_encoder_batch_size * 8, 256),
        new_fingerprint=fingerprint,
        desc=f"Embedding personas of the {dataset_name} dataset",
    )


# ------------------------------------------------------------------------------------------------------- hooks
@dataclass
class CapturedForwards:
    """What `RepresentationHooks` records while armed (one loss computation).

    Attributes:
        hidden (`torch.Tensor`, *optional*): The backbone's `last_hidden_state` `(2B, T, H)` from its first call.
        hidden_grad_enabled (`bool`): Whether gradients were on during that first call (the policy forward of a
            training step runs with them; TRL's reference forwards run under `torch.no_grad()`).
        log_probs (`list[torch.Tensor]`): Per-token `log_probs` `(2B, T - 1)` of each fused-LM-head call of the policy
            model, in call order.
        reference_log_probs (`list[torch.Tensor]`): The same for a separate reference model.
    """

    hidden: torch.Tensor | None = None
    hidden_grad_enabled: bool = False
    log_probs: list[torch.Tensor] = field(default_factory=list)
    reference_log_probs: list[torch.Tensor] = field(default_factory=list)


class RepresentationHooks:
    """The forward hooks DPORE reads from, with their handles: one on the policy's backbone (its last hidden states),
    and for the margin placement one on the policy's causal LM and one on a separate reference model (the fused LM
    head's per-token log-probs). They record only while `capturing()` is open, and a model carries at most one set:
    installing on a model that another `RepresentationHooks` is installed on removes that set first.
    """

    _owners: ClassVar[weakref.WeakKeyDictionary[nn.Module, RepresentationHooks]] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.handles: list[RemovableHandle] = []
        self.capture: CapturedForwards | None = None
        self._backbone: weakref.ref[nn.Module] | None = None

    @property
    def installed(self) -> bool:
        """Whether this set of hooks is on a model now."""
        return bool(self.handles)

    def install(
        self, backbone: nn.Module, causal_lm: nn.Module | None = None, reference: nn.Module | None = None
    ) -> None:
        """Register the hooks (no-op when already installed).

        Args:
            backbone (`nn.Module`): The policy's backbone (`model.base_model`), whose output has `last_hidden_state`.
            causal_lm (`nn.Module`, *optional*): The policy's causal LM, patched with TRL's fused LM head.
            reference (`nn.Module`, *optional*): A separate reference model, patched the same way.
        """
        if self.installed:
            return
        previous = self._owners.get(backbone)
        if previous is not None:
            previous.remove()
        self.handles.append(backbone.register_forward_hook(self._on_backbone))
        if causal_lm is not None:
            self.handles.append(causal_lm.register_forward_hook(self._on_causal_lm))
        if reference is not None:
            self.handles.append(reference.register_forward_hook(self._on_reference))
        self._owners[backbone] = self
        self._backbone = weakref.ref(backbone)

    def remove(self) -> None:
        """Remove the hooks (no-op when none are installed)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []
        backbone = self._backbone() if self._backbone is not None else None
        if backbone is not None and self._owners.get(backbone) is self:
            del self._owners[backbone]
        self._backbone = None

    @contextlib.contextmanager
    def capturing(self) -> Iterator[CapturedForwards]:
        """Record the forwards run inside the block; yields the record, filled as they run."""
        self.capture = CapturedForwards()
        try:
            yield self.capture
        finally:
            self.capture = None

    # Hooks return None: they read the outputs and never replace them.
    def _on_backbone(self, module: nn.Module, args: Any, output: Any) -> None:
        capture = self.capture
        if capture is not None and capture.hidden is None:
            capture.hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
            capture.hidden_grad_enabled = torch.is_grad_enabled()

    def _on_causal_lm(self, module: nn.Module, args: Any, output: Any) -> None:
        # TRL's `return_outputs=True` path runs one more forward without the fused head: it has no `log_probs`.
        if self.capture is not None and getattr(output, "log_probs", None) is not None:
            self.capture.log_probs.append(output.log_probs)

    def _on_reference(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.capture is not None and getattr(output, "log_probs", None) is not None:
            self.capture.reference_log_probs.append(output.log_probs)


def trl_changed(internal: str, found: str) -> RuntimeError:
    """The error DPORE raises when a TRL internal it relies on (listed in `DPORETrainer`'s docstring) has changed.

    Args:
        internal (`str`): What DPORE assumed, naming TRL's code.
        found (`str`): What it found instead.

    Returns:
        `RuntimeError`: To raise.
    """
    return RuntimeError(
        f"DPORETrainer relies on a TRL internal that has changed: {internal}; found {found}. "
        "personalign supports trl>=1.16,<1.17; install that, or report this with your TRL version."
    )


class HeadGradientReset(TrainerCallback):
    """Clears the projection head's gradients after every optimizer step, as the `Trainer` clears the model's
    (`model.zero_grad()`), since the head is not part of the model.

    Args:
        head (`nn.Module`): The projection head.
    """

    def __init__(self, head: nn.Module) -> None:
        self.head = head

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.head.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------------------------------- trainer
class DPORETrainer(DPOTrainer):
    r"""DPO with persona-representation regularization (DPORE), a drop-in [`~trl.DPOTrainer`].

    The constructor is `DPOTrainer`'s plus `persona_encoder=` and `data_sources=` (`{"train": ..., "eval": ...}`:
    names the data, e.g. by file, in the report of rows TRL drops for `max_length`; a dataset of which none is left
    is refused, see `personalign.trainers.kept_rows`). Persona embeddings come from columns of the dataset
    (`persona_embedding`, or `persona_embedding_chosen` and `persona_embedding_rejected`) or are computed once from
    the data by the given [`PersonaEncoder`]; rows without one are trained with plain DPO. A projection head h_phi
    (`projection_head`) maps embeddings into the policy's hidden space. The trainer holds it, not the policy: the
    policy keeps exactly the parameters of its reference (so `sync_ref_model` and any code pairing policy and
    reference parameters by name work), and the head joins the optimizer through `create_optimizer`, the gradient
    clipping and, across processes, the gradient averaging. It takes the dtype of the policy's trainable parameters
    (a model loaded in bfloat16 gets a bfloat16 head; float32 weights under `bf16=True` mixed precision keep a float32
    head, which autocast runs in bfloat16). With d = sim(y_chosen, h(G_c)) - sim(y_rejected, h(G_r)) per row:

    - `re_placement="margin"` (the DPORE paper's L_total, §3.3): the loss is computed once, by DPORE, from the
      sequence log-probs of TRL's forwards and d: `loss_weights[0] * mean(-log sigmoid(beta * delta + lambda * d))`
      (`dpore_margin_losses`); TRL's own loss value is not used. Needs TRL's loss to be the sigmoid term alone.
    - `re_placement="additive"`: TRL's loss (any `loss_type` or weighted mix of them, WPO, LD, any f-divergence)
      minus `lambda * mean(d)`: the DPORE paper's L_reg as a term of its own.
    - `re_placement="auto"` (the default): margin where it applies, else additive; the choice is logged once and
      written into `args.re_placement` (so the saved arguments and the model card show it).

    At `re_lambda=0` there is no head and no hook: it is `DPOTrainer` exactly. The forward hooks that read the
    policy's hidden states (and log-probs) are installed by `train`, `evaluate` and `compute_loss` for their duration
    only (`representation_hooks`), and a model never carries two sets.

    ```python
    from personalign import DPOREConfig, DPORETrainer, PersonaEncoder

    trainer = DPORETrainer(
        model="meta-llama/Meta-Llama-3-8B-Instruct",
        args=DPOREConfig(output_dir="dpore", re_lambda=5.0),
        train_dataset=dataset,                     # prompt / chosen / rejected (+ persona_text or embeddings)
        persona_encoder=PersonaEncoder.from_pretrained("my-org/persona-encoder"),
    )
    trainer.train()
    ```

    **TRL internals relied on** (trl 1.16; each is pinned by a test in `tests/test_dpore.py` that names it when it
    breaks, and the loss raises `trl_changed(...)` at run time where it can tell):

    1. `DPOTrainer._prepare_dataset(dataset, processing_class, args, dataset_name)`: overridden to embed personas
       before tokenization; it skips datasets that already hold `prompt_ids`.
    2. `DPOTrainer._set_signature_columns_if_needed()` and transformers' `Trainer._signature_columns`: extended so
       the embedding columns survive `remove_unused_columns`.
    3. The forward order inside `DPOTrainer._compute_loss` (reached through the public `compute_loss`): the policy
       forward is the first call of the model's backbone and of its fused LM head, with gradients on in training;
       under PEFT without `ref_model` (and without precomputed reference log-probs) the reference forward is the
       second fused call of the same model; a separate `ref_model` runs its fused forward once.
    4. TRL's fused LM head (`trl.trainer.utils.add_fused_lm_head`, called by `DPOTrainer.__init__`): the policy's
       causal LM returns `log_probs` `(2B, T - 1)` (right-aligned, 0 off the completion) and runs the backbone as
       `model.base_model`, whose output has `last_hidden_state` `(2B, T, H)`.
    5. The batch: `[chosen; rejected]` stacked rows with `input_ids` and `completion_mask`, and with
       `precompute_ref_log_probs=True` the columns `ref_chosen_logps` / `ref_rejected_logps`.
    6. TRL's loss for `loss_type=["sigmoid"]` is `loss_weights[0] * mean(-log sigmoid(beta * delta))` and nothing
       else (no MoE router term: refused), so the margin placement can replace it.
    7. `DPOTrainer.ref_model`: `None` under PEFT (the reference is the adapter-disabled policy) and with precomputed
       reference log-probs.
    8. `_tag_names`, `_name`, `_paper`: the class attributes TRL's `create_model_card` reads.
    9. `trl.trainer.utils.hash_module` and datasets' `Dataset._fingerprint`: the embedding cache's fingerprint.
    10. transformers' `Trainer._save_checkpoint` saving through `save_model(output_dir, _internal_call=True)` (the
        head is saved beside every checkpoint there).
    11. transformers' `Trainer._clip_grad_norm(model)` and `Trainer._get_grad_norm(model, grad_norm)`: overridden so
        the clipping and the logged `grad_norm` cover the head with the policy, as one global norm.
    12. transformers' `Trainer._load_best_model()`: extended so `load_best_model_at_end=True` restores the head from
        the best checkpoint with the policy.

    Metrics (`re/sim_chosen`, `re/sim_rejected`, `re/term`, `re/persona_rows`) are logged through the public `log`.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "dpo", "dpore", "personalign"]
    _name = "DPORE"
    _paper: ClassVar[dict[str, Any]] = {
        "title": "Context-Aware Alignment: Adapting Large Language Models to Individual Historical Data",
        "id": None,
        "citation": textwrap.dedent(DPORE_CITATION),
    }

    def __init__(
        self,
        model: Any,
        ref_model: Any = None,
        args: DPOREConfig | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Any = None,
        callbacks: Any = None,
        optimizers: tuple[Any, Any] = (None, None),
        quantization_config: Any = None,
        peft_config: Any = None,
        persona_encoder: Any = None,
        data_sources: dict[str, str] | None = None,
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = DPOREConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-DPORE")
        if not isinstance(args, DPOREConfig):
            raise TypeError(f"DPORETrainer needs a DPOREConfig, got {type(args).__name__}.")
        refuse_unsupported(args)
        self.persona_encoder = persona_encoder
        self.data_sources = dict(data_sources or {})
        self.hooks = RepresentationHooks()
        self.representation_metrics: dict[str, defaultdict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        super().__init__(
            model,
            ref_model=ref_model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )
        if self.padding_free:
            # TRL 1.16 turns padding_free off (with a warning), so this is reached only by a TRL that honours it.
            raise InputError(
                "DPORETrainer does not support padding_free=True: the regularizer pools each response's hidden states "
                "from the padded [chosen; rejected] batch. Set padding_free=False."
            )
        resolve_re_placement(args, router_coefficient(args, self._causal_lm().config.get_text_config()))
        self.embedding_dim = self._embedding_dim()
        self.data_collator = PersonaEmbeddingCollator(
            self.data_collator,
            args.persona_embedding_column,
            args.persona_embedding_chosen_column,
            args.persona_embedding_rejected_column,
            self.embedding_dim,
            args.general_row_column,
        )
        self.projection_head: PersonaProjectionHead | None = None
        if args.re_lambda > 0:
            self.projection_head = self._build_head()
            self.add_callback(HeadGradientReset(self.projection_head))

    # ------------------------------------------------------------------------------------------ data preparation
    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        """`DPOTrainer._prepare_dataset` (TRL internal 1), after embedding the personas of a raw dataset once when a
        `persona_encoder` was given and the dataset has no embedding column yet."""
        columns = getattr(dataset, "column_names", None) or []
        embedded = {args.persona_embedding_column, args.persona_embedding_chosen_column} & set(columns)
        if self.persona_encoder is not None and "prompt_ids" not in columns and not embedded:
            if not isinstance(dataset, Dataset):
                raise InputError("a persona_encoder embeds map-style Datasets only; precompute the column instead.")
            dataset = embed_personas(dataset, self.persona_encoder, args, dataset_name)
        prepared = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        source = data_label(self.data_sources, dataset_name)
        report_kept_rows(dataset, prepared, args.max_length, source, DPO_DROP_REASON)
        return prepared

    def _set_signature_columns_if_needed(self) -> None:
        """TRL's signature columns plus the three embedding columns and the general-row marker, so
        `remove_unused_columns` keeps them (TRL internal 2)."""
        super()._set_signature_columns_if_needed()
        extra = [
            self.args.persona_embedding_column,
            self.args.persona_embedding_chosen_column,
            self.args.persona_embedding_rejected_column,
            self.args.general_row_column,
        ]
        self._signature_columns = [*self._signature_columns, *[c for c in extra if c not in self._signature_columns]]

    def _embedding_dim(self) -> int:
        """D: `re_embedding_dim`, else the encoder's, else the first embedding found in the data; 1 when DPORE is
        off and there is none."""
        if self.args.re_embedding_dim:
            return self.args.re_embedding_dim
        if self.persona_encoder is not None:
            return int(self.persona_encoder.config.embedding_dim)
        columns = (
            self.args.persona_embedding_column,
            self.args.persona_embedding_chosen_column,
            self.args.persona_embedding_rejected_column,
        )
        datasets = [self.train_dataset]
        if isinstance(self.eval_dataset, dict):
            datasets += list(self.eval_dataset.values())
        elif self.eval_dataset is not None:
            datasets.append(self.eval_dataset)
        for dataset in datasets:
            for column in columns:
                if isinstance(dataset, Dataset) and column in dataset.column_names:
                    # Streamed in batches: a million-row column is never materialised to find one vector.
                    for batch in dataset.select_columns([column]).iter(batch_size=1024):
                        for value in batch[column]:
                            if value is not None:
                                return len(value)
                if isinstance(dataset, IterableDataset):
                    size = first_embedding_size(dataset, column)
                    if size is not None:
                        return size
        if self.args.re_lambda > 0:
            raise InputError(
                f"DPORE needs persona embeddings: add a {columns[0]!r} column (or {columns[1]!r} and {columns[2]!r}), "
                "pass persona_encoder=, or set re_embedding_dim for data whose rows all lack them (an IterableDataset "
                f"is searched in its first {ITERABLE_EMBEDDING_SCAN} rows)."
            )
        return 1

    # ---------------------------------------------------------------------------------------------------- head
    def _causal_lm(self) -> nn.Module:
        """The policy as a transformers causal LM (under PEFT, the model inside the adapter wrapper)."""
        model = self.accelerator.unwrap_model(self.model)
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def _build_head(self) -> PersonaProjectionHead:
        """Create h_phi on the policy's device, in the dtype of the policy's trainable parameters (`head_dtype`)."""
        hidden_size = self._causal_lm().config.get_text_config().hidden_size
        with torch.random.fork_rng(devices=[]):
            # Seeded on its own, so adding the head does not shift any other random draw of the run.
            torch.manual_seed(self.args.seed)
            head = PersonaProjectionHead(self.embedding_dim, hidden_size, self.args.re_projection_hidden_size)
        policy = self.accelerator.unwrap_model(self.model)
        return head.to(next(policy.parameters()).device, head_dtype(policy))

    def load_projection_head(self, folder: str | Path) -> None:
        """Load the projection head's weights from a checkpoint folder's `projection_head/` (in place: the optimizer
        keeps its parameters).

        Args:
            folder (`str` or `Path`): A checkpoint (or output) folder DPORE saved.

        Raises:
            `FileNotFoundError`: If the folder has no `projection_head/`.
        """
        if self.projection_head is None:
            return
        saved = PersonaProjectionHead.from_pretrained(folder, subfolder=PROJECTION_HEAD_FOLDER)
        self.projection_head.load_state_dict(saved.state_dict())

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """`Trainer.create_optimizer`, plus the projection head's parameters as two groups of their own (weights
        with `weight_decay`, biases without, by `get_decay_parameter_names`; the learning rate and its schedule are
        the policy's). They are added to an optimizer passed through `optimizers=` too, unless it already holds
        them."""
        optimizer = super().create_optimizer(model)
        head = self.projection_head
        if head is None:
            return optimizer
        held = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
        if any(id(parameter) in held for parameter in head.parameters()):
            return optimizer
        decay = set(self.get_decay_parameter_names(head))
        named = [(name, parameter) for name, parameter in head.named_parameters() if parameter.requires_grad]
        for params, weight_decay in (
            ([p for n, p in named if n in decay], self.args.weight_decay),
            ([p for n, p in named if n not in decay], 0.0),
        ):
            if params:
                optimizer.add_param_group({"params": params, "weight_decay": weight_decay})
        return optimizer

    def _clips_head_with_policy(self) -> bool:
        """Whether the accelerator's `clip_grad_norm_` takes the parameters it is given (not under DeepSpeed or FSDP,
        which clip their own engine's or module's parameters)."""
        return self.projection_head is not None and self.accelerator.distributed_type not in (
            DistributedType.DEEPSPEED,
            DistributedType.FSDP,
        )

    def _clip_grad_norm(self, model: nn.Module) -> Any:
        """`Trainer._clip_grad_norm` (TRL internal 11) over the policy's and the head's gradients as one norm. Under
        FSDP the policy is clipped by FSDP and the head on its own norm; DeepSpeed clips what its engine holds."""
        if not self._clips_head_with_policy() or self._has_mixed_mesh_grads(model):
            norm = super()._clip_grad_norm(model)
            if self.projection_head is not None and self.accelerator.distributed_type == DistributedType.FSDP:
                nn.utils.clip_grad_norm_(self.projection_head.parameters(), self.args.max_grad_norm)
            return norm
        parameters = [*model.parameters(), *self.projection_head.parameters()]
        return self.accelerator.clip_grad_norm_(parameters, self.args.max_grad_norm)

    def _get_grad_norm(self, model: nn.Module, grad_norm: Any = None) -> Any:
        """`Trainer._get_grad_norm` (TRL internal 11): without clipping (`max_grad_norm=0`) the logged norm covers the
        head too."""
        if grad_norm is None and self._clips_head_with_policy() and not self._has_mixed_mesh_grads(model):
            parameters = [*model.parameters(), *self.projection_head.parameters()]
            grad_norm = self.accelerator.clip_grad_norm_(parameters, float("inf"))
        return super()._get_grad_norm(model, grad_norm=grad_norm)

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """`DPOTrainer.training_step`; across processes (DDP, FSDP), the head's gradients are then averaged over them
        at each synchronising step, as DDP averages the policy's (DeepSpeed's optimizer reduces them itself)."""
        loss = super().training_step(*args, **kwargs)
        head = self.projection_head
        if (
            head is not None
            and self.accelerator.num_processes > 1
            and self.accelerator.sync_gradients
            and self.accelerator.distributed_type != DistributedType.DEEPSPEED
        ):
            self._average_head_gradients(head)
        return loss

    def _average_head_gradients(self, head: nn.Module) -> None:
        """Average the head's gradients over the processes in one collective (every process joins it, also one
        whose batches had no persona row and so no head gradient: it contributes zeros; where no process has one,
        the gradients stay `None`, as in one process)."""
        parameters = list(head.parameters())
        present = any(parameter.grad is not None for parameter in parameters)
        flat = torch.cat(
            [
                (parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)).reshape(-1)
                for parameter in parameters
            ]
            + [torch.ones(1, device=parameters[0].device, dtype=parameters[0].dtype) * present]
        )
        flat = self.accelerator.reduce(flat, reduction="sum")
        if flat[-1].item() == 0:
            return
        flat = flat[:-1] / self.accelerator.num_processes
        offset = 0
        for parameter in parameters:
            size = parameter.numel()
            parameter.grad = flat[offset : offset + size].view_as(parameter).clone()
            offset += size

    def _load_best_model(self) -> None:
        """`Trainer._load_best_model` (TRL internal 12), then the head from the same best checkpoint."""
        super()._load_best_model()
        self.load_projection_head(self.state.best_model_checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """`Trainer.save_model`, plus the projection head in `projection_head/` (`config.json` + `model.safetensors`,
        loadable with `PersonaProjectionHead.from_pretrained(folder, subfolder="projection_head")`)."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.projection_head is not None and self.args.should_save:
            self.projection_head.save_pretrained(Path(output_dir or self.args.output_dir) / PROJECTION_HEAD_FOLDER)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.train`, with DPORE's hooks installed for its duration (and removed when it ends, however it
        ends); when resuming, the projection head is restored from the checkpoint's `projection_head/` first.

        Raises:
            `InputError`: If `resume_from_checkpoint=True` and `output_dir` holds no checkpoint.
            `FileNotFoundError`: If the checkpoint has no `projection_head/`.
        """
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise InputError(f"No valid checkpoint found in output directory ({self.args.output_dir})")
        if resume_from_checkpoint:
            self.load_projection_head(resume_from_checkpoint)
        with self.representation_hooks():
            return super().train(resume_from_checkpoint, *args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """`DPOTrainer.evaluate`, with DPORE's hooks installed for its duration."""
        with self.representation_hooks():
            return super().evaluate(*args, **kwargs)

    # --------------------------------------------------------------------------------------------------- hooks
    @contextlib.contextmanager
    def representation_hooks(self) -> Iterator[None]:
        """Install the forward hooks this configuration needs for the duration of the block, unless they already
        are (then the block changes nothing). None at `re_lambda=0`; the backbone's for `"additive"`; for `"margin"`
        also the policy's causal LM's, and the reference model's when there is a separate one and its log-probs are
        not precomputed."""
        if self.projection_head is None:
            yield
            return
        installed_here = not self.hooks.installed
        causal_lm = self._causal_lm()
        margin = self.args.re_placement == "margin"
        reference = None
        if margin and not self.args.precompute_ref_log_probs and self.ref_model is not None:
            reference = self.accelerator.unwrap_model(self.ref_model)
        self.hooks.install(causal_lm.base_model, causal_lm if margin else None, reference)
        try:
            yield
        finally:
            if installed_here:
                self.hooks.remove()

    # ---------------------------------------------------------------------------------------------------- loss
    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
        """`DPOTrainer.compute_ref_log_probs` without the persona keys (they must not reach the model)."""
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k not in BATCH_KEYS})

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """DPO's loss with the representation regularizer (see the class docstring for the two placements).

        TRL's `compute_loss` runs the forwards (and DPO's metrics) while the hooks record the policy's hidden states
        and log-probs; DPORE then computes its loss from those once.

        Returns:
            `torch.Tensor` or `tuple`: The loss, and TRL's outputs when `return_outputs`.

        Raises:
            `RuntimeError`: If TRL's forwards no longer look as listed in the class docstring (`trl_changed`).
        """
        persona = {key: inputs[key] for key in BATCH_KEYS if key in inputs}
        inputs = {key: value for key, value in inputs.items() if key not in BATCH_KEYS}
        if self.projection_head is None or not persona:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with self.representation_hooks(), self.hooks.capturing() as capture:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        dpo_loss, outputs = result if return_outputs else (result, None)
        loss = self._dpore_loss(dpo_loss, capture, inputs, persona)
        return (loss, outputs) if return_outputs else loss

    def _dpore_loss(
        self,
        dpo_loss: torch.Tensor,
        capture: CapturedForwards,
        inputs: Mapping[str, Any],
        persona: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """The loss of one batch from TRL's loss and what the hooks captured; records the `re/*` metrics."""
        completion_mask = inputs["completion_mask"]
        seq_len = completion_mask.shape[1]
        hidden = self._policy_hidden(capture, completion_mask)[:, -seq_len:].float()  # PEFT may prepend tokens
        pooled_chosen, pooled_rejected = pool_response_states(hidden, completion_mask, self.args.re_pooling).chunk(2)
        head = self.projection_head
        head_dtype = next(head.parameters()).dtype
        sim_chosen, sim_rejected = representation_similarities(
            pooled_chosen,
            pooled_rejected,
            head(persona[CHOSEN_KEY].to(hidden.device, head_dtype)).float(),
            head(persona[REJECTED_KEY].to(hidden.device, head_dtype)).float(),
            self.args.re_similarity,
        )
        mask = persona[MASK_KEY].to(hidden.device)
        difference = (sim_chosen - sim_rejected) * mask
        lam = self.args.re_lambda
        if self.args.re_placement == "additive":
            loss = dpo_loss - lam * difference.sum() / mask.sum().clamp(min=1.0)
        else:
            chosen, rejected, ref_chosen, ref_rejected = self._sequence_log_probs(capture, inputs)
            weight = self.args.loss_weights[0] if self.args.loss_weights else 1.0
            losses = dpore_margin_losses(chosen, rejected, ref_chosen, ref_rejected, difference, self.args.beta, lam)
            loss = losses.mean() * weight

        metrics = self.representation_metrics["train" if self.model.training else "eval"]
        gather = self.accelerator.gather
        rows = gather(mask.sum()).sum().clamp(min=1.0)
        metrics["re/sim_chosen"].append((gather((sim_chosen * mask).detach().sum()).sum() / rows).item())
        metrics["re/sim_rejected"].append((gather((sim_rejected * mask).detach().sum()).sum() / rows).item())
        metrics["re/term"].append((lam * gather(difference.detach().sum()).sum() / rows).item())
        metrics["re/persona_rows"].append(gather(mask).mean().item())
        return loss

    def _policy_hidden(self, capture: CapturedForwards, completion_mask: torch.Tensor) -> torch.Tensor:
        """The policy's last hidden states, checked against internals 3 and 4 of the class docstring."""
        if capture.hidden is None:
            raise trl_changed(
                "DPOTrainer's loss runs the policy's backbone (`model.base_model`, called by TRL's fused LM head)",
                "no backbone call during compute_loss",
            )
        if self.model.training and not capture.hidden_grad_enabled:
            raise trl_changed(
                "the policy forward is the first backbone call inside DPOTrainer._compute_loss",
                "a first backbone call without gradients (a reference forward?)",
            )
        rows, length = completion_mask.shape
        if capture.hidden.dim() != 3 or capture.hidden.shape[0] != rows or capture.hidden.shape[1] < length:
            raise trl_changed(
                f"the backbone's last_hidden_state is (2B, T, H) = ({rows}, >={length}, H) for the [chosen; rejected] "
                "batch",
                f"shape {tuple(capture.hidden.shape)}",
            )
        return capture.hidden

    def _sequence_log_probs(
        self, capture: CapturedForwards, inputs: Mapping[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(chosen, rejected, ref_chosen, ref_rejected)` `(B,)` sequence log-probs, summed over each completion as
        TRL sums them, from the fused LM head's outputs (internals 3-5 and 7 of the class docstring)."""
        shift_mask = inputs["completion_mask"][:, 1:]
        length = shift_mask.shape[1]
        reference_in_policy = not self.args.precompute_ref_log_probs and self.ref_model is None
        expected_calls = 2 if reference_in_policy else 1
        if len(capture.log_probs) != expected_calls:
            raise trl_changed(
                f"DPOTrainer._compute_loss runs {expected_calls} fused-LM-head forward(s) of the policy model (the "
                "policy" + (", then the adapter-disabled reference" if reference_in_policy else "") + ")",
                f"{len(capture.log_probs)}",
            )

        def summed(per_token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if per_token.dim() != 2 or per_token.shape[1] < length:
                raise trl_changed(
                    f"the fused LM head's log_probs are (2B, T - 1) with T - 1 = {length}",
                    f"shape {tuple(per_token.shape)}",
                )
            return (per_token[:, -length:] * shift_mask).sum(dim=1).chunk(2)

        chosen, rejected = summed(capture.log_probs[0])
        if self.args.precompute_ref_log_probs:
            missing = {"ref_chosen_logps", "ref_rejected_logps"} - set(inputs)
            if missing:
                raise trl_changed(
                    "with precompute_ref_log_probs=True the batch holds ref_chosen_logps / ref_rejected_logps",
                    f"no {', '.join(sorted(missing))}",
                )
            return chosen, rejected, inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        if reference_in_policy:
            return (chosen, rejected, *summed(capture.log_probs[1]))
        if len(capture.reference_log_probs) != 1:
            raise trl_changed(
                "DPOTrainer._compute_loss runs the separate ref_model's fused forward once",
                f"{len(capture.reference_log_probs)} reference call(s)",
            )
        return (chosen, rejected, *summed(capture.reference_log_probs[0]))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """`DPOTrainer.log`, plus DPORE's metrics averaged since the last log (`eval_`-prefixed in evaluation)."""
        mode = "train" if self.model.training else "eval"
        metrics = self.representation_metrics[mode]
        prefix = "eval_" if mode == "eval" else ""
        logs.update({f"{prefix}{key}": sum(values) / len(values) for key, values in metrics.items() if values})
        metrics.clear()
        super().log(logs, start_time)

    # ----------------------------------------------------------------------------------------------- model card
    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """TRL's model card, plus a DPORE section recording lambda, the placement, the pooling and the encoder."""
        super().create_model_card(*args, **kwargs)
        path = Path(self.args.output_dir) / "README.md"
        if not self.is_world_process_zero() or not path.is_file():
            return
        encoder = "none (precomputed embedding columns)"
        if self.persona_encoder is not None:
            encoder = (
                f"`{getattr(self.persona_encoder.config, '_name_or_path', '') or type(self.persona_encoder).__name__}`"
            )
        section = (
            "\n## DPORE settings\n\n"
            "Trained with DPO plus the persona-representation regularizer of *Context-Aware Alignment: Adapting Large "
            "Language Models to Individual Historical Data* (DPORE), via "
            "[personalign](https://github.com/personalign/personalign).\n\n"
            f"| setting | value |\n|---|---|\n| lambda (`re_lambda`) | {self.args.re_lambda} |\n"
            f"| placement | {self.args.re_placement} |\n| pooling | {self.args.re_pooling} |\n"
            f"| projection head | {self.args.re_projection_hidden_size or 'linear'} |\n| persona encoder | {encoder} |\n"
            f"| beta | {self.args.beta} |\n"
        )
        path.write_text(path.read_text(encoding="utf-8") + section, encoding="utf-8")


def refuse_unsupported(args: DPOREConfig) -> None:
    """Refuse, with the reason, the configurations DPORE cannot honour (before any model is loaded).

    Raises:
        `InputError`: For the Liger kernel, and for `re_placement="margin"` chosen explicitly with `re_lambda > 0`
            together with a setting that makes TRL's loss more than DPO's sigmoid term (which the margin placement
            replaces; `margin_conflicts`).
    """
    if args.use_liger_kernel:
        raise InputError(
            "DPORETrainer does not support use_liger_kernel=True: Liger's fused loss path replaces the forward that "
            "DPORE reads the policy's hidden states from. Set use_liger_kernel=False."
        )
    if args.re_lambda > 0 and args.re_placement == "margin" and not getattr(args, "re_placement_auto", False):
        problems = margin_conflicts(args)
        if problems:
            raise InputError(
                "re_placement='margin' puts the regularizer inside DPO's sigmoid log-likelihood and computes the whole "
                f"loss as the DPORE paper's L_total, which {', '.join(problems)} changes; use re_placement='additive' "
                "(or 'auto', the default) with these settings."
            )


def router_coefficient(args: DPOREConfig, text_config: Any) -> float:
    """The MoE load-balancing coefficient TRL adds to its loss, by `DPOConfig.router_aux_loss_coef`'s documented
    rule: the argument when set, else the model config's coefficient; 0 disables it (and a model without a router
    has none).

    Args:
        args (`DPOREConfig`): The run's configuration.
        text_config (`transformers.PretrainedConfig`): The policy's text config.

    Returns:
        `float`: The coefficient (0.0: no router term).
    """
    if not hasattr(text_config, "output_router_logits"):
        return 0.0
    coefficient = args.router_aux_loss_coef
    if coefficient is None:
        coefficient = getattr(text_config, "router_aux_loss_coef", 0.0)
    return float(coefficient or 0.0)


def resolve_re_placement(args: DPOREConfig, router_aux_loss_coef: float = 0.0) -> str:
    """Decide the placement of the regularizer for a run, now that the model is known, and write it into
    `args.re_placement`.

    A placement the user chose is kept (and `"margin"` is refused with an MoE router loss, which L_total has no term
    for). `"auto"` (recorded by the config as `re_placement_auto`) is `"margin"`, the DPORE paper's L_total, when TRL's
    loss is the sigmoid term alone, else `"additive"`; with `re_lambda > 0` the choice is logged, once per trainer.

    Args:
        args (`DPOREConfig`): The run's configuration (its `re_placement` is updated).
        router_aux_loss_coef (`float`, *optional*, defaults to `0.0`): From `router_coefficient`.

    Returns:
        `str`: `"margin"` or `"additive"`.

    Raises:
        `InputError`: If `re_placement="margin"` was chosen explicitly, `re_lambda > 0`, and the router loss is on.
    """
    if not getattr(args, "re_placement_auto", False):
        if args.re_lambda > 0 and args.re_placement == "margin" and router_aux_loss_coef:
            raise InputError(
                "re_placement='margin' computes the whole loss as the DPORE paper's L_total, which has no MoE "
                f"load-balancing term (router_aux_loss_coef={router_aux_loss_coef}); use re_placement='additive' "
                "(or 'auto', the default), or set router_aux_loss_coef=0.0."
            )
        return args.re_placement
    problems = margin_conflicts(args)
    if router_aux_loss_coef:
        problems.append(f"an MoE load-balancing term (router_aux_loss_coef={router_aux_loss_coef})")
    args.re_placement = "additive" if problems else "margin"
    if args.re_lambda > 0:
        if problems:
            logger.warning(
                "DPORE: re_placement='auto' chose 'additive' (TRL's loss - lambda * mean(d)) because of %s; the margin "
                "placement (the DPORE paper's L_total) needs TRL's loss to be the sigmoid term alone.",
                ", ".join(problems),
            )
        else:
            logger.info("DPORE: re_placement='auto' chose 'margin' (the DPORE paper's L_total) for the sigmoid loss.")
    return args.re_placement


def head_dtype(policy: nn.Module) -> torch.dtype:
    """The dtype for DPORE's projection head: that of the policy's trainable parameters (a policy loaded in bfloat16
    or float16 trains a head of the same dtype; float32 weights trained under mixed precision, and PEFT adapters,
    which PEFT keeps in float32, give a float32 head that autocast runs in the low precision).

    Args:
        policy (`nn.Module`): The (unwrapped) policy.

    Returns:
        `torch.dtype`: The first trainable floating-point parameter's dtype, else the first floating-point one's.
    """
    floating = [parameter for parameter in policy.parameters() if parameter.is_floating_point()]
    trainable = [parameter for parameter in floating if parameter.requires_grad]
    return (trainable or floating)[0].dtype if floating else torch.float32


def first_embedding_size(dataset: IterableDataset, column: str) -> int | None:
    """The size of the first non-missing value of `column` in an `IterableDataset`, read from its first
    `ITERABLE_EMBEDDING_SCAN` rows (the stream is not consumed: iterating an `IterableDataset` starts it anew).

    Args:
        dataset (`datasets.IterableDataset`): The dataset.
        column (`str`): An embedding column.

    Returns:
        `int` or `None`: The size, or `None` when the column is absent or missing in all those rows.
    """
    names = dataset.column_names
    if names is not None and column not in names:
        return None
    for index, example in enumerate(dataset):
        if index >= ITERABLE_EMBEDDING_SCAN:
            return None
        value = example.get(column)
        if value is not None:
            return len(value)
    return None
