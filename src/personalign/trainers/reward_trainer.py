"""PersonalizedRewardTrainer: the counterfactual paper's in-context personalized Bradley-Terry reward model (§3.3,
§4.1) as a TRL `RewardTrainer` subclass."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, ClassVar

from datasets import Dataset
from trl import RewardTrainer
from trl.data_utils import get_dataset_column_names

from ..data.multifacet import attach_history
from ..errors import InputError
from ..papers import COUNTERFACTUAL_CITATION
from ..reward.feedback import HISTORY_IDS_COLUMN, FeedbackRendering, render_reward_batch, write_rendering_file
from .kept_rows import data_label, report_kept_rows
from .reward_config import PersonalizedRewardConfig


def _first_row(dataset: Any) -> dict[str, Any]:
    try:
        return dict(next(iter(dataset)))
    except StopIteration:
        return {}


def needs_rendering(dataset: Any, rendering: FeedbackRendering) -> bool:
    """Whether rows carry a feedback history to render (history texts, possibly attached lazily, or history ids),
    rather than ready TRL rows (`prompt`/`chosen`/`rejected`) or tokenized ones (`chosen_ids`/`rejected_ids`)."""
    columns = set(get_dataset_column_names(dataset) or [])
    if {"chosen_ids", "rejected_ids"} <= columns:
        return False
    if rendering.history_column in columns or HISTORY_IDS_COLUMN in columns:
        return True
    return rendering.history_column in _first_row(dataset)  # attached with `with_transform`: not a column


def render_reward_dataset(
    dataset: Any,
    tokenizer: Any,
    rendering: FeedbackRendering,
    dataset_name: str = "train",
    responses: Dataset | None = None,
    num_proc: int | None = None,
) -> Any:
    """Rows with a feedback history as tokenized reward-model rows (`chosen_ids`, `rejected_ids`, `history_pairs`,
    `history_dropped`; a `margin` column is kept), rendered by `personalign.reward.feedback.render_reward_example`.

    Args:
        dataset (`Dataset` or `IterableDataset`): Counterfactual MultiFacet rows with `history_text` (or history
            ids in `history` plus `responses`).
        tokenizer: The reward model's tokenizer (its chat template renders the input).
        rendering (`FeedbackRendering`): Columns, T, the ablation switch and the token budget.
        dataset_name (`str`, *optional*, defaults to `"train"`): Named in progress bars and errors.
        responses (`Dataset`, *optional*): The `responses` config the history ids point into.
        num_proc (`int`, *optional*): Processes for `Dataset.map`.

    Raises:
        `InputError`: If rows carry history ids but no `responses` table is given, or a row is malformed (named by
            dataset, row and column).
    """
    first = _first_row(dataset)
    if rendering.history_column not in first and rendering.include_history:
        if HISTORY_IDS_COLUMN not in first:
            raise InputError(
                f"The {dataset_name} dataset has no {rendering.history_column!r} column (the feedback history as "
                f"[{{prompt, chosen, rejected}}]) and no {HISTORY_IDS_COLUMN!r} ids (found: {', '.join(first)})."
            )
        if responses is None:
            raise InputError(
                f"The {dataset_name} dataset carries history ids ({HISTORY_IDS_COLUMN!r}) but no history texts: pass "
                "responses= (the 'responses' config of the counterfactual MultiFacet build), or attach them with "
                "personalign.data.multifacet.attach_history."
            )
        dataset = attach_history(dataset, responses, lazy=True)
    kept = [c for c in ("margin",) if c in first]
    remove = [c for c in (get_dataset_column_names(dataset) or list(first)) if c not in kept]
    kwargs: dict[str, Any] = {}
    if isinstance(dataset, Dataset):
        kwargs = {"num_proc": num_proc, "desc": f"Rendering feedback histories of the {dataset_name} dataset"}
    rendered = dataset.map(
        render_reward_batch,
        batched=True,
        with_indices=True,
        fn_kwargs={"tokenizer": tokenizer, "rendering": rendering, "name": f"{dataset_name} dataset"},
        remove_columns=remove,
        **kwargs,
    )
    if isinstance(rendered, Dataset) and rendered.format.get("type") == "custom":
        rendered = rendered.with_format(None)  # the lazy history transform no longer applies
    return rendered


class PersonalizedRewardTrainer(RewardTrainer):
    r"""The counterfactual paper's personalized reward model: a Bradley-Terry reward model (TRL's `RewardTrainer`)
    whose input is the user's feedback history (T pairs, Appendix B.3 format), then the instruction, then the
    response.

    `_prepare_dataset` renders rows of the counterfactual MultiFacet schema (`prompt`, `chosen`, `rejected` and
    `history_text`, or history ids with `responses=`) through the tokenizer's chat template, dropping the oldest
    history pairs when an input exceeds `max_length` (never the instruction or the response; chosen and rejected
    keep the same history). Ready TRL rows and tokenized rows pass through unchanged. With
    `include_history=False` every history is removed: the built-in ablation.

    ```python
    from personalign import PersonalizedRewardConfig, PersonalizedRewardTrainer
    from personalign.data.multifacet import attach_history

    trainer = PersonalizedRewardTrainer(
        model="meta-llama/Meta-Llama-3-8B-Instruct",
        args=PersonalizedRewardConfig(output_dir="personalized-rm", history_size=10),
        train_dataset=configs["counterfactual"]["train"],
        responses=configs["responses"]["train"],
    )
    trainer.train()
    ```

    Args:
        model, args: As in [`~trl.RewardTrainer`]; `args` must be a [`PersonalizedRewardConfig`].
        data_collator, train_dataset, eval_dataset, processing_class, compute_metrics, callbacks: As in
            [`~trl.RewardTrainer`].
        optimizers, optimizer_cls_and_kwargs, preprocess_logits_for_metrics, quantization_config, peft_config: As
            in [`~trl.RewardTrainer`].
        responses (`Dataset`, *optional*):
            The `responses` config of the counterfactual MultiFacet build, for rows whose history is response ids.
        data_sources (`dict[str, str]`, *optional*):
            Names the data (`{"train": ..., "eval": ...}`, e.g. by file) in the report of rows longer than
            `max_length` even without history, which TRL drops; a dataset of which none is left is refused.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "reward-trainer", "personalized-reward-model", "personalign"]
    _name = "Personalized Reward"
    _paper: ClassVar[dict[str, Any]] = {
        "title": "In-Context Personalized Alignment with Feedback History under Counterfactual Evaluation",
        "id": None,
        "citation": textwrap.dedent(COUNTERFACTUAL_CITATION),
    }

    def __init__(
        self,
        model: Any,
        args: PersonalizedRewardConfig | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Any = None,
        callbacks: Any = None,
        optimizers: tuple[Any, Any] = (None, None),
        optimizer_cls_and_kwargs: Any = None,
        preprocess_logits_for_metrics: Any = None,
        quantization_config: Any = None,
        peft_config: Any = None,
        responses: Dataset | None = None,
        data_sources: dict[str, str] | None = None,
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = PersonalizedRewardConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-Personalized-Reward")
        if not isinstance(args, PersonalizedRewardConfig):
            raise TypeError(f"PersonalizedRewardTrainer needs a PersonalizedRewardConfig, got {type(args).__name__}.")
        self.responses = responses
        self.data_sources = dict(data_sources or {})
        super().__init__(
            model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            quantization_config=quantization_config,
            peft_config=peft_config,
        )

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        rendering = args.rendering()
        if not needs_rendering(dataset, rendering):
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        rendered = render_reward_dataset(
            dataset, processing_class, rendering, dataset_name, self.responses, args.dataset_num_proc
        )
        prepared = super()._prepare_dataset(rendered, processing_class, args, dataset_name)
        source = data_label(self.data_sources, dataset_name)
        report_kept_rows(rendered, prepared, args.max_length, source, "even without any history; TRL drops them")
        return prepared

    # ------------------------------------------------------------------------------------------------- saving
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model as TRL does, plus `personalign_reward.json` (`personalign.reward.feedback.RENDERING_FILE`:
        the input rendering it was trained with, which `load_reward_model` reads back)."""
        super().save_model(output_dir, _internal_call)
        folder = Path(output_dir or self.args.output_dir)
        if self.is_world_process_zero() and folder.is_dir():
            write_rendering_file(folder, self.args.rendering())

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """TRL's model card, plus the input format (history, T, budget) the reward model expects."""
        super().create_model_card(*args, **kwargs)
        path = Path(self.args.output_dir) / "README.md"
        if not self.is_world_process_zero() or not path.is_file():
            return
        rendering = self.args.rendering()
        section = (
            "\n## Personalized reward model\n\n"
            "A Bradley-Terry reward model whose input is the user's feedback history (Appendix B.3 format), then the "
            "instruction, then the response, as in *In-Context Personalized Alignment with Feedback History under "
            "Counterfactual Evaluation*; trained with [personalign](https://github.com/personalign/personalign). "
            "When an input is too long, the oldest history pairs are dropped first.\n\n"
            f"| setting | value |\n|---|---|\n| history pairs (T) | {rendering.history_size} |\n"
            f"| with history | {rendering.include_history} |\n| max_length | {self.args.max_length} |\n"
            f"| truncate oldest pairs | {self.args.truncate_history} |\n"
        )
        path.write_text(path.read_text(encoding="utf-8") + section, encoding="utf-8")
