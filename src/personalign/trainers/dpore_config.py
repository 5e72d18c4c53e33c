"""Configuration of DPO with persona-representation regularization (the DPORE paper, §3.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

from ..errors import InputError

RE_PLACEMENTS = ("margin", "additive")
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
        re_placement (`str`, *optional*, defaults to `"margin"`):
            `"margin"`: inside the log-sigmoid, as in the DPORE paper's L_total:
            `-log sigmoid(beta * (logratio_chosen - logratio_rejected) + lambda * d)`; needs the `"sigmoid"` loss.
            `"additive"`: `DPO loss - lambda * mean(d)`; works with every DPO loss type.
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
    """

    re_lambda: float = field(default=5.0, metadata={"help": "Weight lambda of the representation regularizer."})
    re_placement: str = field(
        default="margin",
        metadata={
            "help": "'margin' (inside the log-sigmoid, the DPORE paper's L_total) or 'additive' (DPO loss - lambda*d)."
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
