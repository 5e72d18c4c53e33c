"""Evaluating personalized reward models under counterfactual evaluation (the counterfactual paper, §3.2, §4.1,
Table 1).

- `evaluate_reward_model`: accuracy per preference dimension, with the history and with the history removed (the
  same model, the same rows), in the layout of the counterfactual paper's Table 1; written as JSON with a PNG bar
  plot beside it. On counterfactual rows each target pair appears under two opposite users, so a model that ignores
  the history scores exactly 0.5.
- `FeedbackRewardJudge`: the generative in-context reward baseline: an LLM reads the Appendix B.1 prompt and answers
  `[[A]]` or `[[B]]`; responses are shown in a seeded random order; unparsable answers are counted, not guessed.

Accuracy is TRL's: a row is correct when r(chosen) > r(rejected), strictly (a tie is wrong). Loading and scoring a
trained reward model live in `personalign.reward.modeling`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..evaluation.judges import LLMJudge, Outcome, PairwiseReport, parse_pairwise_verdict
from ..evaluation.plots import pyplot, save_figure
from ..io import atomic_output, ensure_writable
from ..personas.prompts import feedback_judge_messages
from ..row_names import RowNames
from .feedback import FeedbackRendering, attach_history_texts, column_values, row_history
from .modeling import score_rewards

WITH_HISTORY, WITHOUT_HISTORY, GENERATIVE = "with_history", "without_history", "generative_judge"
TABLE1_DIMENSIONS = ("style", "background_knowledge", "informativeness", "harmlessness")
"""The counterfactual paper's Table 1 column order (MultiFacet's four dimensions); other dimension names follow,
sorted."""
OVERALL = "overall"


# ------------------------------------------------------------------------------------------------- pure functions
def accuracy_table(
    correct: Mapping[str, Sequence[bool | None]], dimensions: Sequence[str | None] | None = None
) -> dict[str, dict[str, Any]]:
    """Accuracy per dimension and overall, one column per setting: the layout of the counterfactual paper's Table 1
    (there dimensions are columns and models rows; here each dimension is a row of the dict, as a JSON reader
    expects).

    Args:
        correct (`Mapping[str, Sequence[bool | None]]`): Per setting (e.g. `"with_history"`), one entry per row:
            whether the row was ranked right; `None` leaves the row out of that setting (an unparsable judgment).
        dimensions (`Sequence[str | None]`, *optional*): The row's preference dimension; `None` puts every row in
            `"overall"` only.

    Returns:
        `dict`: `{dimension: {setting: accuracy or None, "num_pairs": rows, "num_scored_<setting>": scored}, ...,
        "overall": {...}}`, dimensions in Table 1 order (style, background knowledge, informativeness,
        harmlessness, then others sorted), `"overall"` last.
    """
    lengths = {name: len(values) for name, values in correct.items()}
    n = next(iter(lengths.values()), 0)
    if len(set(lengths.values())) > 1 or (dimensions is not None and len(dimensions) != n):
        raise InputError(f"Every setting needs one entry per row: {lengths}, dimensions {len(dimensions or [])}.")
    dimensions = list(dimensions) if dimensions is not None else [None] * n
    present = {d for d in dimensions if d is not None}
    order = [d for d in TABLE1_DIMENSIONS if d in present] + sorted(present - set(TABLE1_DIMENSIONS))
    table: dict[str, dict[str, Any]] = {}
    for group in [*order, OVERALL]:
        rows = [i for i, d in enumerate(dimensions) if group == OVERALL or d == group]
        entry: dict[str, Any] = {}
        for name, values in correct.items():
            scored = [bool(values[i]) for i in rows if values[i] is not None]
            entry[name] = sum(scored) / len(scored) if scored else None
            if len(scored) != len(rows):
                entry[f"num_scored_{name}"] = len(scored)
        entry["num_pairs"] = len(rows)
        table[group] = entry
    return table


def ranked_right(chosen_rewards: Sequence[float], rejected_rewards: Sequence[float]) -> list[bool]:
    """Whether each row's chosen response scored strictly higher (TRL's reward accuracy; a tie is wrong).

    Args:
        chosen_rewards (`Sequence[float]`): r(chosen) per row.
        rejected_rewards (`Sequence[float]`): r(rejected) per row, as many.

    Returns:
        `list[bool]`
    """
    return [float(c) > float(r) for c, r in zip(chosen_rewards, rejected_rewards, strict=True)]


def plot_accuracy_table(
    table: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    settings: Sequence[str] | None = None,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """A grouped bar plot of an `accuracy_table`: one group per dimension (and overall), one bar per setting, with
    the 0.5 chance line; a missing value is drawn as "n/a". Written atomically with matplotlib's Agg backend.

    Args:
        table (`Mapping[str, Mapping]`): An `accuracy_table`.
        path (`str` or `Path`): The PNG to write.
        settings (`Sequence[str]`, *optional*): The bars of each group (default: every column but the counts).
        title (`str`, *optional*): The plot title (default: "Personalized reward accuracy (counterfactual)").
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: The file written.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False.
    """
    plt = pyplot()
    groups = list(table)
    settings = list(settings or [k for k in next(iter(table.values())) if not k.startswith("num_")])
    width = 0.8 / max(1, len(settings))
    figure, axes = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) + 1.5), 3.8))
    for position, setting in enumerate(settings):
        values = [table[g].get(setting) for g in groups]
        xs = [i + (position - (len(settings) - 1) / 2) * width for i in range(len(groups))]
        bars = axes.bar(xs, [0.0 if v is None else v for v in values], width, label=setting.replace("_", " "))
        axes.bar_label(bars, ["n/a" if v is None else f"{v:.2f}" for v in values], fontsize=8, padding=2)
    axes.axhline(0.5, color="black", linestyle="--", linewidth=1, label="chance (0.5)")
    axes.set_xticks(range(len(groups)), [g.replace("_", "\n") for g in groups])
    axes.set_ylim(0, 1.08)
    axes.set_ylabel("accuracy")
    axes.set_title(title or "Personalized reward accuracy (counterfactual)")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, overwrite, dpi=120)


# --------------------------------------------------------------------------------------------- the reward model
def evaluate_reward_model(
    model: Any,
    tokenizer: Any,
    rows: Any,
    rendering: FeedbackRendering | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    batch_size: int = 16,
    progress: bool = True,
    responses: Any = None,
    dimension_column: str = "dimension",
    names: Callable[[int], str] | None = None,
) -> dict[str, Any]:
    """Counterfactual reward-model accuracy per dimension, with and without history (the counterfactual paper's
    Table 1 layout).

    The same model scores the same rows twice: with each row's feedback history, and with the history removed (the
    built-in ablation; on counterfactual rows it scores exactly 0.5, since twin rows then have the same input and
    opposite labels).

    Args:
        model, tokenizer: The reward model (`load_reward_model`).
        rows (`Dataset` or `Sequence[Mapping]`): Counterfactual rows (instruction, chosen, rejected, history,
            and a `dimension` column for the per-dimension rows of the table).
        rendering (`FeedbackRendering`, *optional*): As the model was trained (`load_reward_model` returns it).
        output (`str` or `Path`, *optional*): A `.json` file to write; the plot goes beside it (`.png`).
        overwrite (`bool`, *optional*, defaults to `False`): Replace existing outputs.
        batch_size, progress, responses: As in `score_rewards`.
        dimension_column (`str`, *optional*, defaults to `"dimension"`): The preference dimension of each row.
        names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
            (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
            `"rows, row <i> (0-based)"`.

    Returns:
        `dict`: `table` (`accuracy_table` with columns `with_history` / `without_history`), `num_rows`,
        `mean_history_pairs`, `over_length`, `rendering`, and `plot` (the PNG path, when written).

    Raises:
        `OutputExistsError`: If `output` (or its plot) exists and `overwrite` is False, before any scoring.
        `InputError`: If `output` is not a `.json` file, or a row is malformed.
    """
    rendering = rendering or FeedbackRendering()
    plot_path = None
    if output is not None:
        output = Path(output)
        if output.suffix != ".json":
            raise InputError(f"{output}: the results file must be .json (the plot is written beside it as .png).")
        plot_path = output.with_suffix(".png")
        ensure_writable(output, overwrite)
        ensure_writable(plot_path, overwrite)
    rows = attach_history_texts(rows, responses)
    dimensions = column_values(rows, dimension_column)
    with_history = score_rewards(model, tokenizer, rows, rendering, batch_size, progress, names=names)
    without = score_rewards(
        model, tokenizer, rows, replace(rendering, include_history=False), batch_size, progress, names=names
    )
    correct = {
        WITH_HISTORY: ranked_right(with_history["chosen_rewards"], with_history["rejected_rewards"]),
        WITHOUT_HISTORY: ranked_right(without["chosen_rewards"], without["rejected_rewards"]),
    }
    pairs = with_history["history_pairs"]
    results: dict[str, Any] = {
        "table": accuracy_table(correct, dimensions),
        "num_rows": len(pairs),
        "mean_history_pairs": sum(pairs) / len(pairs) if pairs else None,
        "over_length": with_history["over_length"],
        "rendering": rendering.to_dict(),
    }
    if output is not None:
        plot_accuracy_table(results["table"], plot_path, [WITH_HISTORY, WITHOUT_HISTORY], overwrite=overwrite)
        results["plot"] = str(plot_path)
        with atomic_output(output, overwrite) as staging:
            staging.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


# ----------------------------------------------------------------------------------- generative baseline (B.1)
@dataclass
class FeedbackJudgeReport(PairwiseReport):
    """Verdicts of the generative in-context reward baseline. `wins` are rows where the judge picked the chosen
    response; `outcomes[i]` is `None` when output i had no `[[A]]` / `[[B]]` verdict (a "tie" reading counts there
    too: the B.1 prompt offers no tie).

    Attributes:
        dimensions (`list[str | None]`): Each row's preference dimension, for `table`.
    """

    dimensions: list[str | None] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        """Correct / decided: the unparsable outputs left out (counted in `num_unparsable`)."""
        return self.win_rate

    @property
    def accuracy_unparsable_as_chance(self) -> float | None:
        """(Correct + unparsable / 2) / rows: an unparsable output taken as a coin flip."""
        n = self.num_examples
        return (self.wins + 0.5 * self.num_unparsable) / n if n else None

    def table(self) -> dict[str, dict[str, Any]]:
        """Accuracy per dimension and overall (`accuracy_table`, column `generative_judge`)."""
        correct = [None if o is None else o == "win" for o in self.outcomes]
        dimensions = self.dimensions if any(d is not None for d in self.dimensions) else None
        return accuracy_table({GENERATIVE: correct}, dimensions)

    def to_dict(self, include_outputs: bool = False) -> dict[str, Any]:
        """`PairwiseReport.to_dict` plus `accuracy`, `accuracy_unparsable_as_chance` and the per-dimension `table`."""
        summary = super().to_dict(include_outputs)
        summary.update(
            accuracy=self.accuracy,
            accuracy_unparsable_as_chance=self.accuracy_unparsable_as_chance,
            table=self.table(),
        )
        return summary


@dataclass
class FeedbackRewardJudge(LLMJudge):
    """The counterfactual paper's generative in-context reward model (§3.3, Appendix B.1): an LLM reads the user's
    feedback history, the instruction and two responses, reasons, and answers `[[A]]` or `[[B]]`.

    Each row's two responses are shown in a random order drawn from `random.Random(seed)` (one coin per row, in row
    order), so a run is reproducible and position bias averages out; verdicts are read with
    `parse_pairwise_verdict` and mapped back to chosen / rejected. Outputs without an A/B verdict are counted
    (`num_unparsable`), never guessed.

    Args:
        backend (`GenerationBackend`): The judge model (any `personalign.inference.generation` backend).
        max_new_tokens (`int`, *optional*, defaults to `512`): The prompt asks for step-by-step reasoning first.
        temperature (`float`, *optional*, defaults to `0.0`): The counterfactual paper samples Llama /
            Mistral / Claude at 0.9.
        seed (`int`, *optional*, defaults to `0`): Seeds the order and the sampling.
        randomize_order (`bool`, *optional*, defaults to `True`): `False` always shows the chosen response as A.
        rendering (`FeedbackRendering`, *optional*): Columns and T (`max_length` does not apply to the judge).
        generation_kwargs (`dict`, *optional*): More arguments of `backend.generate`.

    Example:

    ```python
    >>> judge = FeedbackRewardJudge(load_backend("openai:gpt-4o"))
    >>> report = judge.judge(test_rows)
    >>> report.accuracy, report.num_unparsable, report.table()["style"]
    ```
    """

    max_new_tokens: int = 512
    randomize_order: bool = True
    rendering: FeedbackRendering = field(default_factory=FeedbackRendering)
    dimension_column: str = "dimension"
    name = "feedback_reward_b1"

    def prompts(
        self, rows: Sequence[Mapping[str, Any]], names: Callable[[int], str] | None = None
    ) -> tuple[list[list[dict[str, str]]], list[bool]]:
        """The B.1 prompts of the rows and, per row, whether the chosen response was shown second (as B); a bad row
        is named by `names` (as in `judge`)."""
        names = names or RowNames.of("rows")
        rng = random.Random(self.seed)
        prompts, swapped = [], []
        columns = self.rendering
        for index, row in enumerate(rows):
            history = row_history(row, columns, names(index))
            chosen, rejected = row[columns.chosen_column], row[columns.rejected_column]
            swap = rng.random() < 0.5 if self.randomize_order else False
            first, second = (rejected, chosen) if swap else (chosen, rejected)
            prompts.append(feedback_judge_messages(history, row[columns.prompt_column], first, second))
            swapped.append(swap)
        return prompts, swapped

    def judge(
        self, rows: Iterable[Mapping[str, Any]], names: Callable[[int], str] | None = None
    ) -> FeedbackJudgeReport:
        """Judge every row's pair.

        Args:
            rows (`Iterable[Mapping]`): Rows with instruction, chosen, rejected, the history (and `dimension`).
            names (`Callable[[int], str]`, *optional*): Names row `i` in messages: a `personalign.data.loading.RowNames`
                (a JSON-lines row by its 1-based line, any other by its 0-based row) or any callable; by default
                `"rows, row <i> (0-based)"`.

        Returns:
            `FeedbackJudgeReport`
        """
        rows = list(rows)
        prompts, swapped = self.prompts(rows, names)
        outputs = self.generate(prompts) if prompts else []
        verdicts = [parse_pairwise_verdict(output) for output in outputs]
        outcomes: list[Outcome | None] = []
        for verdict, swap in zip(verdicts, swapped, strict=True):
            if verdict not in ("A", "B"):
                outcomes.append(None)
            else:
                outcomes.append("win" if verdict == ("B" if swap else "A") else "lose")
        dimensions = [row.get(self.dimension_column) for row in rows]
        report = FeedbackJudgeReport(self.name, self.backend.name, outcomes, verdicts, swapped, outputs, dimensions)
        self.warn_unparsable(report.num_unparsable, report.num_examples)
        return report
