"""DPORETrainer: TRL's DPOTrainer plus the DPORE persona-representation regularizer (the DPORE paper, §3.3).

Everything DPO does stays TRL's: tokenization, the fused-LM-head forward, the reference log-probs, the loss and its
metrics. This subclass adds, through TRL's documented override points:

- `_prepare_dataset`: persona embeddings computed once by a `PersonaEncoder` (batched, cached by fingerprint);
- `_set_signature_columns_if_needed` and a collator wrapper: the embedding columns reach the batch;
- `_compute_loss`: forward hooks read the policy's last hidden states and per-token log-probs from the *same*
  forward TRL runs (no extra pass), and the regularizer is added in the margin or additively;
- `save_model` / `train`: the projection head is saved as safetensors with every checkpoint and restored on resume.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from trl import DPOTrainer

from ..papers import DPORE_CITATION
from .dpore_config import DPOREConfig

HEAD_WEIGHTS_NAME = "dpore_projection.safetensors"
HEAD_CONFIG_NAME = "dpore_projection.json"
HEAD_ATTRIBUTE = "dpore_projection"
# Batch keys the collator adds; popped before anything reaches the model.
CHOSEN_KEY, REJECTED_KEY, MASK_KEY = "persona_embedding_chosen", "persona_embedding_rejected", "persona_mask"
BATCH_KEYS = (CHOSEN_KEY, REJECTED_KEY, MASK_KEY)


# ----------------------------------------------------------------------------------------------- pure functions
def pool_response_states(hidden: torch.Tensor, completion_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool `(N, T, H)` hidden states over each row's response tokens (`completion_mask == 1`): `"mean"` averages
    them, `"last"` takes the final response token."""
    mask = completion_mask.to(hidden.dtype).unsqueeze(-1)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    if mode == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (completion_mask.long() * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"re_pooling must be 'mean' or 'last', got {mode!r}.")


def representation_similarities(
    pooled_chosen: torch.Tensor,
    pooled_rejected: torch.Tensor,
    target_chosen: torch.Tensor,
    target_rejected: torch.Tensor,
    similarity: str = "cosine",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(sim(y(m, chosen), h(G_chosen)), sim(y(m, rejected), h(G_rejected)))` per row; sim is `"cosine"` or `"dot"`."""
    if similarity == "cosine":
        return (
            F.cosine_similarity(pooled_chosen, target_chosen, dim=-1),
            F.cosine_similarity(pooled_rejected, target_rejected, dim=-1),
        )
    if similarity == "dot":
        return (pooled_chosen * target_chosen).sum(dim=-1), (pooled_rejected * target_rejected).sum(dim=-1)
    raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}.")


def dpore_margin_losses(dpo_logits: torch.Tensor, re_difference: torch.Tensor, re_lambda: float) -> torch.Tensor:
    """The DPORE paper's L_total per row: `-log sigmoid(beta * (logratio_c - logratio_r) + lambda * d)`, where
    `dpo_logits` is the DPO term `beta * (...)` and `re_difference` is d = sim_chosen - sim_rejected (0 for rows
    without persona)."""
    return -F.logsigmoid(dpo_logits + re_lambda * re_difference)


# ----------------------------------------------------------------------------------------------- projection head
class PersonaProjectionHead(nn.Module):
    """h_phi: persona embedding -> policy hidden space. Linear, or a 2-layer MLP with a GELU when
    `intermediate_size` is set. Saved as safetensors beside each checkpoint."""

    def __init__(self, embedding_dim: int, hidden_size: int, intermediate_size: int | None = None) -> None:
        super().__init__()
        self.config = {
            "embedding_dim": embedding_dim,
            "hidden_size": hidden_size,
            "intermediate_size": intermediate_size,
        }
        if intermediate_size:
            self.layers = nn.Sequential(
                nn.Linear(embedding_dim, intermediate_size), nn.GELU(), nn.Linear(intermediate_size, hidden_size)
            )
        else:
            self.layers = nn.Sequential(nn.Linear(embedding_dim, hidden_size))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {key: value.detach().contiguous().cpu() for key, value in self.state_dict().items()}
        save_file(state, str(folder / HEAD_WEIGHTS_NAME))
        (folder / HEAD_CONFIG_NAME).write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **hub_kwargs: Any) -> PersonaProjectionHead:
        """Load the head from a DPORE output folder or checkpoint, or from a Hub model repo (only the head's two
        files are downloaded; `hub_kwargs` such as `revision` / `token` go to `snapshot_download`)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            allow = [HEAD_CONFIG_NAME, HEAD_WEIGHTS_NAME]
            folder = Path(snapshot_download(str(folder), allow_patterns=allow, **hub_kwargs))
        config_path = folder / HEAD_CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{folder}: no {HEAD_CONFIG_NAME} (not a DPORE checkpoint?).")
        head = cls(**json.loads(config_path.read_text(encoding="utf-8")))
        head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS_NAME)))
        return head


# --------------------------------------------------------------------------------------------------- collation
@dataclass
class PersonaEmbeddingCollator:
    """Wraps a preference collator: takes the persona embedding columns out of each example, collates the rest with
    `collator`, and adds `persona_embedding_chosen` / `persona_embedding_rejected` `(B, D)` and `persona_mask` `(B,)`
    (1 where the row has embeddings; missing ones are zeros with mask 0)."""

    collator: Callable[[list[dict[str, Any]]], dict[str, Any]]
    single_column: str
    chosen_column: str
    rejected_column: str
    embedding_dim: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        columns = (self.single_column, self.chosen_column, self.rejected_column)
        chosen, rejected, mask = [], [], []
        for example in examples:
            single = example.get(self.single_column)
            pick_c = example.get(self.chosen_column)
            pick_r = example.get(self.rejected_column)
            pick_c = single if pick_c is None else pick_c
            pick_r = single if pick_r is None else pick_r
            present = pick_c is not None and pick_r is not None
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
    G(m, r) from prompt + chosen and prompt + rejected. Cached by the dataset's and the encoder's fingerprints."""
    from datasets.fingerprint import Hasher
    from trl.trainer.utils import hash_module

    text_column = args.persona_text_column
    per_row = text_column in dataset.column_names

    def embed(texts: list[str | None]) -> list[list[float] | None]:
        keep = [i for i, text in enumerate(texts) if text]
        vectors = encoder.encode([texts[i] for i in keep], batch_size=args.persona_encoder_batch_size)
        out: list[list[float] | None] = [None] * len(texts)
        for i, vector in zip(keep, vectors, strict=True):
            out[i] = vector.tolist()
        return out

    def add_embeddings(batch: Mapping[str, list]) -> dict[str, list]:
        if per_row:
            return {args.persona_embedding_column: embed(batch[text_column])}
        prompts = [_message_text(p) for p in batch["prompt"]]
        return {
            args.persona_embedding_chosen_column: embed(
                [p + "\n" + _message_text(c) for p, c in zip(prompts, batch["chosen"], strict=True)]
            ),
            args.persona_embedding_rejected_column: embed(
                [p + "\n" + _message_text(r) for p, r in zip(prompts, batch["rejected"], strict=True)]
            ),
        }

    # The weights alone do not fix the embeddings: a prompt, the pooling or the token limit change them too.
    settings = {key: getattr(getattr(encoder, "config", None), key, None) for key in ENCODER_EMBEDDING_SETTINGS}
    fingerprint = Hasher.hash(
        ["dpore-embed-v1", dataset._fingerprint, hash_module(encoder), settings, per_row, text_column]
    )
    return dataset.map(
        add_embeddings,
        batched=True,
        batch_size=max(args.persona_encoder_batch_size * 8, 256),
        new_fingerprint=fingerprint,
        desc=f"Embedding personas of the {dataset_name} dataset",
    )


# ----------------------------------------------------------------------------------------------------- capture
@dataclass
class _Capture:
    """What the hooks record during one `_compute_loss`: the policy backbone's last hidden state (first call only) and
    every causal-LM output's per-token log-probs, in call order (policy first; under PEFT the reference second)."""

    hidden: torch.Tensor | None = None
    log_probs: list[torch.Tensor] | None = None
    ref_log_probs: torch.Tensor | None = None


class DPORETrainer(DPOTrainer):
    r"""DPO with persona-representation regularization (DPORE), a drop-in [`~trl.DPOTrainer`].

    The constructor is `DPOTrainer`'s plus `persona_encoder=`. Persona embeddings come from columns of the dataset
    (`persona_embedding`, or `persona_embedding_chosen` and `persona_embedding_rejected`) or are computed once from
    the data by the given [`PersonaEncoder`]; rows without one are trained with plain DPO. A projection head h_phi
    (its parameters registered on the policy, so the optimizer, DDP and DeepSpeed see them) maps embeddings into the
    policy's hidden space, and the loss adds `lambda * (sim(y_chosen, h(G_c)) - sim(y_rejected, h(G_r)))` inside the
    log-sigmoid (`re_placement="margin"`, the DPORE paper's L_total) or subtracts its mean from the DPO loss
    (`"additive"`). At `re_lambda=0` it is DPO exactly.

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
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = DPOREConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-DPORE")
        if not isinstance(args, DPOREConfig):
            raise TypeError(f"DPORETrainer needs a DPOREConfig, got {type(args).__name__}.")
        refuse_unsupported(args)
        self.persona_encoder = persona_encoder
        self._capture: _Capture | None = None
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
        self.embedding_dim = self._embedding_dim()
        self.data_collator = PersonaEmbeddingCollator(
            self.data_collator,
            args.persona_embedding_column,
            args.persona_embedding_chosen_column,
            args.persona_embedding_rejected_column,
            self.embedding_dim,
        )
        self.projection_head: PersonaProjectionHead | None = None
        if args.re_lambda > 0:
            self._attach_head()
        self._install_hooks()

    # ------------------------------------------------------------------------------------------ data preparation
    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        columns = getattr(dataset, "column_names", None) or []
        embedded = {args.persona_embedding_column, args.persona_embedding_chosen_column} & set(columns)
        if self.persona_encoder is not None and "prompt_ids" not in columns and not embedded:
            if not isinstance(dataset, Dataset):
                raise ValueError("a persona_encoder embeds map-style Datasets only; precompute the column instead.")
            dataset = embed_personas(dataset, self.persona_encoder, args, dataset_name)
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        extra = [
            self.args.persona_embedding_column,
            self.args.persona_embedding_chosen_column,
            self.args.persona_embedding_rejected_column,
        ]
        self._signature_columns = [*self._signature_columns, *[c for c in extra if c not in self._signature_columns]]

    def _embedding_dim(self) -> int:
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
        if self.args.re_lambda > 0:
            raise ValueError(
                f"DPORE needs persona embeddings: add a {columns[0]!r} column (or {columns[1]!r} and {columns[2]!r}), "
                "pass persona_encoder=, or set re_embedding_dim for data whose rows all lack them."
            )
        return 1

    # ---------------------------------------------------------------------------------------------------- head
    def _causal_lm(self) -> nn.Module:
        model = self.accelerator.unwrap_model(self.model)
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def _attach_head(self) -> None:
        hidden_size = self._causal_lm().config.get_text_config().hidden_size
        with torch.random.fork_rng(devices=[]):
            # Seeded on its own, so adding the head does not shift any other random draw of the run.
            torch.manual_seed(self.args.seed)
            head = PersonaProjectionHead(self.embedding_dim, hidden_size, self.args.re_projection_hidden_size)
        policy = self.accelerator.unwrap_model(self.model)
        head.to(next(policy.parameters()).device)
        # Registered on the policy so that the optimizer, DDP / FSDP / DeepSpeed and `model.train()` all cover it.
        setattr(policy, HEAD_ATTRIBUTE, head)
        if hasattr(policy, "_keys_to_ignore_on_save") and not hasattr(policy, "get_base_model"):
            # The policy checkpoint stays a plain causal LM; the head is saved beside it (`save_model`).
            ignored = set(policy._keys_to_ignore_on_save or [])
            policy._keys_to_ignore_on_save = ignored | {f"{HEAD_ATTRIBUTE}.{key}" for key in head.state_dict()}
        self.projection_head = head

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """`Trainer.save_model`, plus the projection head as `dpore_projection.safetensors` (+ its JSON config)."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.projection_head is not None and self.args.should_save:
            self.projection_head.save_pretrained(output_dir or self.args.output_dir)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.train`; when resuming, the projection head is restored from the checkpoint first."""
        if resume_from_checkpoint is True:
            from transformers.trainer_utils import get_last_checkpoint

            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No valid checkpoint found in output directory ({self.args.output_dir})")
        if resume_from_checkpoint and self.projection_head is not None:
            saved = PersonaProjectionHead.from_pretrained(resume_from_checkpoint)
            self.projection_head.load_state_dict(saved.state_dict())
        return super().train(resume_from_checkpoint, *args, **kwargs)

    # --------------------------------------------------------------------------------------------------- hooks
    def _install_hooks(self) -> None:
        causal_lm = self._causal_lm()

        def on_backbone(module: nn.Module, inputs: Any, output: Any) -> None:
            capture = self._capture
            if capture is not None and capture.hidden is None:
                capture.hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

        def on_causal_lm(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._capture is not None and getattr(output, "log_probs", None) is not None:
                self._capture.log_probs.append(output.log_probs)

        def on_reference(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._capture is not None and self._capture.ref_log_probs is None:
                self._capture.ref_log_probs = output.log_probs

        causal_lm.base_model.register_forward_hook(on_backbone)
        causal_lm.register_forward_hook(on_causal_lm)
        if self.ref_model is not None:
            self.accelerator.unwrap_model(self.ref_model).register_forward_hook(on_reference)

    # ---------------------------------------------------------------------------------------------------- loss
    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k not in BATCH_KEYS})

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        persona = {key: inputs[key] for key in BATCH_KEYS if key in inputs}
        inputs = {key: value for key, value in inputs.items() if key not in BATCH_KEYS}
        if self.projection_head is None or not persona:
            return super()._compute_loss(model, inputs, return_outputs)
        self._capture = _Capture(log_probs=[])
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
            capture = self._capture
        finally:
            self._capture = None
        loss, outputs = result if return_outputs else (result, None)
        mode = "train" if self.model.training else "eval"

        completion_mask = inputs["completion_mask"]
        seq_len = completion_mask.shape[1]
        hidden = capture.hidden[:, -seq_len:].float()  # prompt-learning PEFT prepends virtual tokens
        pooled_chosen, pooled_rejected = pool_response_states(hidden, completion_mask, self.args.re_pooling).chunk(2)
        head = self.projection_head
        sim_chosen, sim_rejected = representation_similarities(
            pooled_chosen,
            pooled_rejected,
            head(persona[CHOSEN_KEY].to(hidden.device, head.layers[0].weight.dtype)).float(),
            head(persona[REJECTED_KEY].to(hidden.device, head.layers[0].weight.dtype)).float(),
            self.args.re_similarity,
        )
        mask = persona[MASK_KEY].to(hidden.device)
        difference = (sim_chosen - sim_rejected) * mask
        rows = mask.sum().clamp(min=1.0)
        lam = self.args.re_lambda
        if self.args.re_placement == "additive":
            loss = loss - lam * difference.sum() / rows
        else:
            logits = self._dpo_logits(capture, inputs, seq_len)
            weight = self.loss_weights[self.loss_types.index("sigmoid")]
            # TRL's loss holds weight * mean(-log sigmoid(logits)); swap that term for the DPORE paper's margin form.
            correction = dpore_margin_losses(logits, difference, lam) - dpore_margin_losses(logits, 0 * difference, 0)
            loss = loss + weight * correction.mean()

        gather = self.accelerator.gather
        total_rows = gather(mask.sum()).sum().clamp(min=1.0)
        self._metrics[mode]["re/sim_chosen"].append((gather((sim_chosen * mask).sum()).sum() / total_rows).item())
        self._metrics[mode]["re/sim_rejected"].append((gather((sim_rejected * mask).sum()).sum() / total_rows).item())
        self._metrics[mode]["re/term"].append((lam * gather(difference.detach().sum()).sum() / total_rows).item())
        self._metrics[mode]["re/persona_rows"].append((gather(mask).mean()).item())
        return (loss, outputs) if return_outputs else loss

    def _dpo_logits(self, capture: _Capture, inputs: dict[str, Any], seq_len: int) -> torch.Tensor:
        """Per-row `beta * (logratio_chosen - logratio_rejected)` from the log-probs of the forward TRL just ran."""
        shifted = seq_len - 1  # log-probs are per predicted token: one fewer than the sequence
        policy = capture.log_probs[0][:, -shifted:].sum(dim=1)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_per_token = capture.ref_log_probs if capture.ref_log_probs is not None else capture.log_probs[1]
            ref_chosen, ref_rejected = ref_per_token[:, -shifted:].sum(dim=1).chunk(2)
        chosen, rejected = policy.chunk(2)
        return self.beta * ((chosen - ref_chosen.to(chosen.dtype)) - (rejected - ref_rejected.to(rejected.dtype)))

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
    """Refuse, with the reason, the configurations DPORE cannot honour."""
    if args.use_liger_kernel:
        raise ValueError(
            "DPORETrainer does not support use_liger_kernel=True: Liger's fused loss path replaces the forward that "
            "DPORE reads the policy's hidden states from. Set use_liger_kernel=False."
        )
    if args.sync_ref_model:
        raise ValueError(
            "DPORETrainer does not support sync_ref_model=True: the projection head is registered on the policy, so "
            "TRL's parameter-by-parameter reference sync would pair the wrong tensors. Set sync_ref_model=False."
        )
    if args.padding_free:
        raise ValueError(
            "DPORETrainer does not support padding_free=True: the regularizer pools each response's hidden states "
            "from the padded [chosen; rejected] batch. Set padding_free=False."
        )
    if args.re_lambda > 0 and args.re_placement == "margin":
        problems = []
        if "sigmoid" not in args.loss_type:
            problems.append(f"loss_type={args.loss_type} (needs 'sigmoid')")
        if args.f_divergence_type != "reverse_kl":
            problems.append(f"f_divergence_type={args.f_divergence_type!r}")
        if args.ld_alpha is not None:
            problems.append(f"ld_alpha={args.ld_alpha}")
        if args.use_weighting:
            problems.append("use_weighting=True")
        if problems:
            raise ValueError(
                "re_placement='margin' puts the regularizer inside DPO's sigmoid log-likelihood, which "
                f"{', '.join(problems)} changes; use re_placement='additive' with these settings."
            )
