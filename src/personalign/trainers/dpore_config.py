"""Configuration of DPO with persona-representation regularization (the DPORE paper, §3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig

from ..errors import InputError

RE_PLACEMENTS = ("auto", "margin", "additive")
RE_POOLINGS = ("mean", "last")
RE_SIMILARITIES = ("cosine", "dot")


@dataclass
class DPOREConfig(DPOConfig):
    r"""Configuration for [`DPORETrainer`]: every [`~trl.DPOConfig`] field, plus the representation regularizer.

    The regularizer compares the policy's own representation of each response (its last hidden states, pooled over
    the response tokens, from the same forward that computes the DPO log-probs) with the persona embedding G mapped
    into the policy's hidden space by a trained projection head h_phi:

        d = sim(y(m, chosen), h(G_chosen)) - sim(y(m, rejected), h(G_rejected))      (sim: `re_similarity`)

    **Sign convention**: minimising the loss *raises* d, so the preferred response's representation is pulled toward
    the persona embedding and the rejected one is pushed away from it (the DPORE paper's L_reg enters L_total with a
    plus sign inside the log-sigmoid, which is maximised).

    Args:
        re_lambda (`float`, *optional*, defaults to `5.0`):
            lambda, the weight of the regularizer (the DPORE paper's best setting is 5; 0 is exactly DPO).
        re_placement (`str`, *optional*, defaults to `"auto"`):
            `"margin"`: inside the log-sigmoid, as in the DPORE paper's L_total:
            `-log sigmoid(beta * (logratio_chosen - logratio_rejected) + lambda * d)`; needs TRL's loss to be DPO's
            sigmoid term alone (`loss_type=["sigmoid"]`, `f_divergence_type="reverse_kl"`, no `ld_alpha`, no
            `use_weighting`, no MoE router loss).
            `"additive"`: TRL's loss `- lambda * mean(d)` (the DPORE paper's L_reg as a separate term); works with
            every TRL loss (each `loss_type` and their weighted sums, WPO, LD, the f-divergences).
            `"auto"`: `"margin"` where it applies, else `"additive"`. The choice is made when the config is built
            (and checked again by the trainer, which also sees the model's router loss), logged once by the trainer,
            and written into this field, so the saved arguments, the run record and the model card show it.
        re_pooling (`str`, *optional*, defaults to `"mean"`):
            How a response's hidden states become one vector: `"mean"` over its tokens or `"last"` (its final token).
        re_similarity (`str`, *optional*, defaults to `"cosine"`):
            sim(., .): `"cosine"` (the DPORE paper's choice, bounded in [-1, 1]) or `"dot"` (unbounded; use a small
            lambda).
        re_projection_hidden_size (`int`, *optional*):
            The projection head's shape: `None` is one linear layer (embedding dim -> policy hidden size); an integer
            adds a hidden layer of that size with a GELU.
        re_embedding_dim (`int`, *optional*):
            Size of the persona embeddings; inferred from the data or the persona encoder when unset.
        persona_embedding_column (`str`, *optional*, defaults to `"persona_embedding"`):
            One persona vector per row (used for both responses). Rows where it is missing (None) get no regularizer,
            which is how general preference data (e.g. UltraFeedback) is mixed in.
        persona_embedding_chosen_column (`str`, *optional*, defaults to `"persona_embedding_chosen"`):
            Per-response variant, the DPORE paper's G(m, p): a vector for the chosen response...
        persona_embedding_rejected_column (`str`, *optional*, defaults to `"persona_embedding_rejected"`):
            ... and one for the rejected response, G(m, r).
        persona_text_column (`str`, *optional*, defaults to `"persona_text"`):
            With a `persona_encoder` passed to the trainer: a text column to embed once per row. Without that column,
            the encoder embeds prompt + chosen and prompt + rejected (the DPORE paper's G(m, p) and G(m, r)).
        persona_encoder_batch_size (`int`, *optional*, defaults to `64`):
            Batch size for embedding the dataset with the persona encoder (once, during dataset preparation).
        general_row_column (`str`, *optional*, defaults to `"general_row"`):
            A boolean column marking general (non-personal) preference rows, such as UltraFeedback mixed in as the
            DPORE paper does (§4.1): a marked row gets no persona embedding (the encoder skips it) and no regularizer
            (its persona mask is 0 even if it holds an embedding), so it trains as plain DPO. The general-data
            mixing of `personalign train dpore` (`general_dataset_name`) adds it; rows without it are personal.

    Attributes:
        re_placement_auto (`bool`): Whether `re_placement` was `"auto"` when the config was built (then the trainer
            makes the choice again, with the model in view); not an argument, and not serialized by `to_dict`, so a
            config saved as JSON / YAML and read back keeps the placement that was chosen.
    """

    re_lambda: float = field(default=5.0, metadata={"help": "Weight lambda of the representation regularizer."})
    re_placement: str = field(
        default="auto",
        metadata={
            "help": "'margin' (inside the log-sigmoid, the DPORE paper's L_total; the sigmoid loss only), 'additive' "
            "(TRL's loss - lambda*d; any loss) or 'auto' (margin where it applies, else additive)."
        },
    )
    re_pooling: str = field(default="mean", metadata={"help": "Pool response hidden states: 'mean' or 'last'."})
    re_similarity: str = field(default="cosine", metadata={"help": "sim(., .): 'cosine' or 'dot'."})
    re_projection_hidden_size: int | None = field(
        default=None, metadata={"help": "Hidden size of a 2-layer projection head; None for a linear head."}
    )
    re_embedding_dim: int | None = field(
        default=None, metadata={"help": "Persona embedding size (inferred from the data or encoder when unset)."}
    )
    persona_embedding_column: str = field(
        default="persona_embedding", metadata={"help": "Column with one persona embedding per row."}
    )
    persona_embedding_chosen_column: str = field(
        default="persona_embedding_chosen", metadata={"help": "Column with the chosen response's persona embedding."}
    )
    persona_embedding_rejected_column: str = field(
        default="persona_embedding_rejected",
        metadata={"help": "Column with the rejected response's persona embedding."},
    )
    persona_text_column: str = field(
        default="persona_text", metadata={"help": "Text the persona encoder embeds per row (when present)."}
    )
    persona_encoder_batch_size: int = field(
        default=64, metadata={"help": "Batch size for embedding the dataset with the persona encoder."}
    )
    general_row_column: str = field(
        default="general_row",
        metadata={
            "help": "Boolean column marking general (non-personal) rows: no persona embedding, no regularizer (added "
            "when general_dataset_name is mixed in)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.re_placement not in RE_PLACEMENTS:
            raise InputError(f"re_placement must be one of {RE_PLACEMENTS}, got {self.re_placement!r}.")
        if self.re_pooling not in RE_POOLINGS:
            raise InputError(f"re_pooling must be one of {RE_POOLINGS}, got {self.re_pooling!r}.")
        if self.re_similarity not in RE_SIMILARITIES:
            raise InputError(f"re_similarity must be one of {RE_SIMILARITIES}, got {self.re_similarity!r}.")
        if self.re_lambda < 0:
            raise InputError(f"re_lambda must be >= 0, got {self.re_lambda}.")
        # Whether the placement is this config's choice (re-made by the trainer, which also sees the model) or the
        # user's (then checked). A plain attribute, not a field: it is not an argument of its own.
        self.re_placement_auto = self.re_placement == "auto"
        if self.re_placement_auto:
            self.re_placement = "additive" if margin_conflicts(self) else "margin"


def margin_conflicts(args: Any) -> list[str]:
    """The settings of a config under which TRL's DPO loss is more than the sigmoid term that
    `re_placement="margin"` replaces with the DPORE paper's L_total (§3.3). (The one that depends on the model, an
    MoE router loss, is checked by the trainer.)

    Args:
        args (`DPOREConfig`): The run's configuration.

    Returns:
        `list[str]`: One phrase per conflicting setting (empty: the margin placement applies).
    """
    problems = []
    if list(args.loss_type) != ["sigmoid"]:
        problems.append(f"loss_type={list(args.loss_type)} (needs ['sigmoid'] alone)")
    if args.f_divergence_type != "reverse_kl":
        problems.append(f"f_divergence_type={args.f_divergence_type!r}")
    if args.ld_alpha is not None:
        problems.append(f"ld_alpha={args.ld_alpha}")
    if args.use_weighting:
        problems.append("use_weighting=True")
    return problems
