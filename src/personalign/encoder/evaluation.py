"""Held-out-persona retrieval (recall@k, MRR) and same-vs-different-persona pair AUC.

Pure functions on embeddings and persona ids; `PersonaRetrievalEvaluator` plugs them into sentence-transformers'
training loop and `evaluate_encoder` runs them for a `PersonaEncoder` on an excerpt table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from ..errors import InputError
from .data import PERSONA_ID_COLUMN, TEXT_COLUMN

DEFAULT_KS = (1, 5)
# Pairs beyond this many are subsampled (seeded) for the AUC: all pairs of 10k excerpts would be 50M scores.
MAX_AUC_PAIRS = 2_000_000


def _unit(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise InputError(f"embeddings must be a 2-D array (texts x dims), got shape {embeddings.shape}.")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def _labels(persona_ids: Sequence[Any], count: int) -> np.ndarray:
    if len(persona_ids) != count:
        raise InputError(f"persona_ids has {len(persona_ids)} entries for {count} embeddings.")
    _, labels = np.unique(np.asarray([str(p) for p in persona_ids]), return_inverse=True)
    return labels


def retrieval_metrics(
    embeddings: np.ndarray, persona_ids: Sequence[Any], ks: Sequence[int] = DEFAULT_KS, chunk_size: int = 1024
) -> dict[str, float]:
    """Leave-one-out excerpt retrieval by cosine similarity.

    Each excerpt whose persona has at least one other excerpt is a query; the candidates are all other excerpts; the
    relevant ones share its persona. The rank of a query is 1 + the number of irrelevant candidates scoring at least
    as high as the best relevant one (ties count against the query, so constant embeddings score 0, not 1).

    Returns:
        `dict`: `recall@k` (share of queries ranked within k), `mrr` (mean of 1 / rank), `chance_recall@1` (the
        expected recall@1 of a random ranking), `num_queries` and `num_personas`.
    """
    unit = _unit(embeddings)
    labels = _labels(persona_ids, len(unit))
    sizes = np.bincount(labels)
    queries = np.flatnonzero(sizes[labels] >= 2)
    if not len(queries):
        raise InputError("retrieval needs at least one persona with two excerpts.")
    ranks = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        rows = queries[start : start + chunk_size]
        scores = unit[rows] @ unit.T
        scores[np.arange(len(rows)), rows] = -np.inf
        relevant = labels[None, :] == labels[rows, None]
        relevant[np.arange(len(rows)), rows] = False
        best = np.where(relevant, scores, -np.inf).max(axis=1)
        irrelevant = ~relevant
        irrelevant[np.arange(len(rows)), rows] = False
        ranks[start : start + len(rows)] = 1 + (irrelevant & (scores >= best[:, None])).sum(axis=1)
    metrics = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / ranks))
    metrics["chance_recall@1"] = float(np.mean((sizes[labels[queries]] - 1) / (len(unit) - 1)))
    metrics["num_queries"] = len(queries)
    metrics["num_personas"] = len(sizes)
    return metrics


def pair_auc(
    embeddings: np.ndarray, persona_ids: Sequence[Any], max_pairs: int = MAX_AUC_PAIRS, seed: int = 0
) -> float:
    """ROC AUC of cosine similarity for telling same-persona pairs from different-persona pairs (0.5 is chance).

    All unordered pairs are scored, or a seeded uniform sample of `max_pairs` of them when there are more.
    """
    from sklearn.metrics import roc_auc_score

    unit = _unit(embeddings)
    labels = _labels(persona_ids, len(unit))
    first, second = np.triu_indices(len(unit), k=1)
    if len(first) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(first), size=max_pairs, replace=False)
        first, second = first[keep], second[keep]
    same = labels[first] == labels[second]
    if same.all() or not same.any():
        raise InputError("pair AUC needs both same-persona and different-persona pairs.")
    scores = np.einsum("ij,ij->i", unit[first], unit[second])
    return float(roc_auc_score(same, scores))


def persona_embedding_metrics(
    embeddings: np.ndarray, persona_ids: Sequence[Any], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """`retrieval_metrics` plus `pair_auc`, in one dict."""
    return {**retrieval_metrics(embeddings, persona_ids, ks), "pair_auc": pair_auc(embeddings, persona_ids)}


def evaluate_encoder(encoder: Any, excerpts: Any, batch_size: int = 64, ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Embed an excerpt table (`persona_id`, `text`) with a `PersonaEncoder` and score it."""
    embeddings = encoder.encode(excerpts[TEXT_COLUMN], batch_size=batch_size)
    return persona_embedding_metrics(embeddings, excerpts[PERSONA_ID_COLUMN], ks)


class PersonaRetrievalEvaluator(BaseEvaluator):
    """A sentence-transformers evaluator reporting held-out persona retrieval and pair AUC during training.

    Args:
        excerpts (`Dataset` or `dict`): `persona_id` and `text` columns (held-out personas).
        name (`str`, *optional*, defaults to `"persona"`): Prefix of the logged metric names.
        batch_size (`int`, *optional*, defaults to `64`): Encoding batch size.
    """

    def __init__(self, excerpts: Any, name: str = "persona", batch_size: int = 64) -> None:
        super().__init__()
        self.texts = list(excerpts[TEXT_COLUMN])
        self.persona_ids = list(excerpts[PERSONA_ID_COLUMN])
        self.name = name
        self.batch_size = batch_size
        self.primary_metric = "recall@1"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict:
        embeddings = model.encode(self.texts, batch_size=self.batch_size, show_progress_bar=False)
        metrics = self.prefix_name_to_metrics(persona_embedding_metrics(embeddings, self.persona_ids), self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
