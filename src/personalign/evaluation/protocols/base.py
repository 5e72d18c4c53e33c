"""What every judge protocol shares: its inputs (one or two responses folders matched by row id), its settings, the
`JudgeProtocol` interface, and the score summaries (mean, spread, bootstrap interval, histogram, per dimension).

A protocol turns matched responses into one JSON-ready judgment per item (`JudgeProtocol.judge`, through the judges
of `personalign.evaluation.judges`), then summarises the judgments (`JudgeProtocol.summarize`, no call), plots the
summary and names the numbers that go into a model card.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ...errors import InputError
from ...inference.generation import GenerationBackend, check_generation_settings
from ...row_names import RowNames
from ..judges import LLMJudge
from ..metrics import bootstrap_interval, nan_mean_rows
from ..plots import plot_score_histograms, plot_scores_by_group
from ..responses import RESPONSES_FILE, ResponseRecord, read_responses

RESPONSES, AGAINST = "responses", "against"
"""The two systems of a judged comparison: the `--responses` folder and the `--against` folder."""


MAX_BOOTSTRAP_RESAMPLES = 100_000
"""The most bootstrap resamples `JudgeSettings` takes: the percentile interval settles long before (Efron & Tibshirani
suggest 1,000 to 2,000), and the resampling runs after the judge calls are paid, so an oversized count would cost
minutes and memory for nothing."""


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class JudgeSettings:
    """How the judge is called and the results summarised (the options of `personalign judge`). Every value is
    checked when the settings are made, so a command refuses a bad option before it reads a file or sends a call
    (the bootstrap runs after the calls are paid).

    Args:
        seed (`int`, *optional*, defaults to `0`): Seed of the judge's sampling, of the pairwise order
            randomization and of the bootstrap resampling; an integer in [0, 2**63 - 1] (`MAX_SEED`).
        max_new_tokens (`int`, *optional*): Tokens per judge output, >= 1; by default the judge's own (pairwise 128,
            persona tailoring 64, rubric 512).
        temperature (`float`, *optional*, defaults to `0.0`): The judge's sampling temperature, finite and >= 0
            (greedy by default, as the papers' judges).
        top_p (`float`, *optional*, defaults to `1.0`): Nucleus sampling mass (when sampling), in (0, 1].
        num_resamples (`int`, *optional*, defaults to `1000`): Bootstrap resamples of the confidence intervals, from
            1 to 100,000 (`MAX_BOOTSTRAP_RESAMPLES`); every summary has an interval, so there is no "0 = none".
        confidence (`float`, *optional*, defaults to `0.95`): Coverage of the confidence intervals, in (0, 1).

    Raises:
        `InputError`: On a value out of range, naming the `personalign judge` option.
    """

    seed: int = 0
    max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    num_resamples: int = 1000
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_generation_settings(self.max_new_tokens, self.temperature, self.top_p, self.seed)
        if not (_is_integer(self.num_resamples) and 1 <= self.num_resamples <= MAX_BOOTSTRAP_RESAMPLES):
            raise InputError(
                f"--bootstrap (resamples of the confidence intervals) must be an integer from 1 to "
                f"{MAX_BOOTSTRAP_RESAMPLES:,}, got {self.num_resamples!r}."
            )
        if not (_is_number(self.confidence) and 0 < self.confidence < 1):
            raise InputError(
                f"--confidence (coverage of the confidence intervals) must be a number in (0, 1), got "
                f"{self.confidence!r}."
            )

    def judge_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of an `LLMJudge` (its own `max_new_tokens` unless one is set here); the judge's own
        unparsable warning is off, `judge_responses` reports those outputs in the protocol's words."""
        kwargs: dict[str, Any] = {
            "temperature": self.temperature,
            "seed": self.seed,
            "generation_kwargs": {"top_p": self.top_p},
            "report_unparsable": False,
        }
        if self.max_new_tokens is not None:
            kwargs["max_new_tokens"] = self.max_new_tokens
        return kwargs

    def interval(self, statistic: Callable[[np.ndarray], np.ndarray], num_items: int) -> dict[str, Any]:
        """`bootstrap_interval` of `statistic` over `num_items` items with these settings, as a dict."""
        return bootstrap_interval(statistic, num_items, self.num_resamples, self.confidence, self.seed).to_dict()


@dataclass
class System:
    """One judged system: a responses folder and its `generation.json`.

    Attributes:
        key (`str`): `"responses"` or `"against"`.
        folder (`str`): The folder as given.
        generation (`dict`): Its `generation.json`.
    """

    key: str
    folder: str
    generation: dict[str, Any]

    @property
    def label(self) -> str:
        """The generating model (from `generation.json`: a Hub id as it is, a local path by its last part), else the
        folder; `" (no history)"` marks a `--no-history` run."""
        model = str(self.generation.get("model") or self.folder)
        if model.startswith((".", "/", "~")) or model.count("/") > 1:  # a local path, not `org/name`
            model = Path(model).name
        return model + (" (no history)" if self.generation.get("no_history") else "")


@dataclass
class JudgeInputs:
    """The responses to judge: the `--responses` records in file order and, when given, the `--against` record of the
    same row id for each.

    Attributes:
        responses (`list[ResponseRecord]`): The records of `--responses`.
        against (`list[ResponseRecord]` or `None`): Per record of `responses`, the `--against` record with its id.
        systems (`dict[str, System]`): `"responses"` and (when given) `"against"`.
        names (`Callable[[int], str]`): Names record `i` of `responses` in messages (its file and line, and id).
        notes (`list[str]`): Lines worth telling the user before judging (e.g. two folders that name their dataset
            differently but hold the same rows); the command line prints them.
    """

    responses: list[ResponseRecord]
    against: list[ResponseRecord] | None
    systems: dict[str, System]
    names: Callable[[int], str] = field(repr=False, default=lambda index: f"record {index}")
    notes: list[str] = field(default_factory=list)


def _ids_line(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:3])
    return f"{len(ids)} ({shown}{', ...' if len(ids) > 3 else ''})"


def _excerpt(text: Any, width: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= width else text[: width - 4] + "...'"


ROW_FIELDS = ("prompt", "reference.chosen", "reference.rejected")
"""What identifies a row's content in a responses record: two folders answer the same row when its id has the same
values of these fields in both (`row_difference`). The persona text is not compared: it is rendered by the version of
personalign that generated the folder, and the judges read it from `--responses` only."""


def row_difference(record: ResponseRecord, other: ResponseRecord) -> str | None:
    """What differs between two records of the same row id (`ROW_FIELDS`), or `None` when they answer the same row.

    Args:
        record (`ResponseRecord`): The `--responses` record.
        other (`ResponseRecord`): The `--against` record with its id.

    Returns:
        `str` or `None`: e.g. `"its prompt differs ('Plan a trip' in --responses, 'Plan a party' in --against)"`.
    """
    for name in ROW_FIELDS:
        key, _, part = name.partition(".")
        mine, theirs = getattr(record, key), getattr(other, key)
        if part:
            mine, theirs = (mine or {}).get(part), (theirs or {}).get(part)
        if mine != theirs:
            shown = "its prompt" if name == "prompt" else f"the {part} response of its reference pair"
            return f"{shown} differs ({_excerpt(mine)} in --responses, {_excerpt(theirs)} in --against)"
    return None


def load_judge_inputs(responses: str | Path, against: str | Path | None = None) -> JudgeInputs:
    """Read one or two responses folders (`personalign.evaluation.responses.read_responses`) and match the second to
    the first by row id.

    The two folders must be two folders, hold the same row ids (any order), and answer the same rows: each id's
    prompt and reference pair must be the same in both (`row_difference`). How their `generation.json` names the
    dataset and split does not decide it (`data/x.parquet`, `./data/x.parquet`, an absolute path or a copy on
    another machine are the same rows); when the names differ, `notes` says so.

    Args:
        responses (`str` or `Path`): The `--responses` folder.
        against (`str` or `Path`, *optional*): The `--against` folder.

    Returns:
        `JudgeInputs`

    Raises:
        `InputError`: On `against` being the `responses` folder itself, a folder that cannot be read
            (`read_responses`: a missing file, a bad line, a repeated id, no record), ids that differ between the
            folders, or a row whose content differs (naming the first such row and what differs); one line each.
    """
    if against is not None and Path(responses).resolve() == Path(against).resolve():
        raise InputError(
            f"--against {against} is the --responses folder itself: judging a system against itself would pay for "
            "calls that say nothing; pass the other system's responses folder."
        )
    records, meta = read_responses(responses)
    path = Path(responses) / RESPONSES_FILE
    row_names = RowNames.of(str(path), [(str(path), 0)])

    def names(index: int) -> str:
        return f"{row_names(index)} (id {records[index].id!r})"

    systems = {RESPONSES: System(RESPONSES, str(responses), meta)}
    if against is None:
        return JudgeInputs(records, None, systems, names)
    others, other_meta = read_responses(against)
    systems[AGAINST] = System(AGAINST, str(against), other_meta)
    by_id = {record.id: record for record in others}
    missing = [record.id for record in records if record.id not in by_id]
    extra = sorted(set(by_id) - {record.id for record in records})
    if missing or extra:
        parts = [f"{_ids_line(missing)} ids of --responses are not in it"] if missing else []
        parts += [f"it has {_ids_line(extra)} ids --responses lacks"] if extra else []
        raise InputError(f"--against {against} holds other rows than --responses {responses}: {'; '.join(parts)}.")
    matched = [by_id[record.id] for record in records]
    named = {key: (meta.get(key), other_meta.get(key)) for key in ("dataset", "split")}
    generated = "; ".join(f"{key} {a!r} and {b!r}" for key, (a, b) in named.items() if a != b)
    for index, (record, other) in enumerate(zip(records, matched, strict=True)):
        difference = row_difference(record, other)
        if difference is not None:
            raise InputError(
                f"{names(index)}: {difference}; --responses {responses} and --against {against} answer different "
                f"rows{f' (generated from {generated}, per their generation.json)' if generated else ''}; judge "
                "responses to the same rows."
            )
    notes = []
    if generated:
        notes.append(
            f"note: --responses {responses} and --against {against} name their rows differently ({generated}, per "
            f"their generation.json), but their {len(records)} rows agree (same ids, prompts and reference pairs): "
            "judged together."
        )
    return JudgeInputs(records, matched, systems, names, notes)


# --------------------------------------------------------------------------------------------------- persona text
def persona_text(record: ResponseRecord, fields: Sequence[str], at: str, purpose: str) -> tuple[str, str]:
    """The first non-empty persona field of a record, in the order of `fields`.

    Args:
        record (`ResponseRecord`): The record.
        fields (`Sequence[str]`): Keys of `record.persona`, in order of preference.
        at (`str`): Names the record in the error.
        purpose (`str`): What the text is for, for the error.

    Returns:
        `tuple[str, str]`: The text and the field it came from.

    Raises:
        `InputError`: If none of the fields holds text.
    """
    for key in fields:
        value = (record.persona or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value, key
    raise InputError(
        f"{at}: its persona has none of {', '.join(fields)}, so the judge has nothing to read {purpose} from."
    )


# ------------------------------------------------------------------------------------------------------- protocol
@dataclass
class CardMetric:
    """One number of a summary for a model card's `model-index`.

    Attributes:
        type (`str`): The metric type (`win_rate`, `rubric_score`, ...).
        name (`str`): Its display name.
        value (`float`): The value.
        config (`str`, *optional*): The metric's config (e.g. a dimension).
        args (`dict`, *optional*): More arguments of the metric.
    """

    type: str
    name: str
    value: float
    config: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


class JudgeProtocol(ABC):
    """A judged evaluation protocol of a paper: which systems it needs, how it asks the judge (through the judges of
    `personalign.evaluation.judges`), how it summarises the verdicts, and what it plots.

    Subclasses set `name`, `paper`, `against` (`"required"` or `"optional"`) and `judge_class` (the judge they ask),
    extend `check` with what they need of each row, and implement `judge`, `summarize`, `describe`, `plot` and
    `card_metrics`. Options of a protocol are its constructor's arguments, reported by
    `options`.
    """

    name: ClassVar[str]
    paper: ClassVar[str]
    against: ClassVar[Literal["required", "optional"]] = "optional"
    judge_class: ClassVar[type[LLMJudge]]

    def options(self) -> dict[str, Any]:
        """The protocol's options, for the summary."""
        return {}

    def check(self, inputs: JudgeInputs) -> None:
        """Refuse inputs the protocol cannot judge, before any backend is loaded or called (here: a required
        `--against`; subclasses add what they need of each row). `judge` calls it first too.

        Raises:
            `InputError`
        """
        if self.against == "required" and inputs.against is None:
            raise InputError(f"the {self.name} protocol compares two systems: pass --against DIR.")

    @abstractmethod
    def judge(self, inputs: JudgeInputs, backend: GenerationBackend, settings: JudgeSettings) -> list[dict[str, Any]]:
        """Judge every item: one JSON-ready record per item, holding its `id`, `row`, `protocol`, the raw judge
        outputs, the parsed verdicts or scores and `unparsable`. Every input is checked before the first call.

        Raises:
            `InputError`: On an item that cannot be judged, naming it.
        """

    @abstractmethod
    def summarize(
        self, judgments: Sequence[Mapping[str, Any]], inputs: JudgeInputs, settings: JudgeSettings
    ) -> dict[str, Any]:
        """The results (JSON-ready) from the judgments (and the inputs, for what was left unjudged)."""

    @abstractmethod
    def describe(self, results: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
        """A few lines for the terminal: the headline numbers of `results`, naming each system by `labels[key]`."""

    @abstractmethod
    def plot(self, results: Mapping[str, Any], folder: Path, labels: Mapping[str, str]) -> list[str]:
        """Write the PNG plots of `results` into `folder`, naming each system by `labels[key]`; returns the file
        names."""

    @abstractmethod
    def card_metrics(self, results: Mapping[str, Any]) -> list[CardMetric]:
        """The numbers of `results` that go into the `--responses` model's card."""


# ------------------------------------------------------------------------------------------------ score summaries
SCORE_RANGE = range(1, 6)
"""The judges' 1-5 scale."""


def score_statistics(
    scores: Sequence[float | None], outputs: Sequence[int | None], settings: JudgeSettings
) -> dict[str, Any]:
    """Mean, spread, bootstrap interval and histogram of one system's scores.

    Args:
        scores (`Sequence[float | None]`): One per item (a rubric item mean for rubric judges); `None` for an item
            whose every judge output was unparsable (left out).
        outputs (`Sequence[int | None]`): Every parsed judge output of these items (the histogram), `None` if
            unparsable.
        settings (`JudgeSettings`): The bootstrap settings.

    Returns:
        `dict`: `mean`, `std` (sample standard deviation, `ddof=1`; `None` under two scores), `ci` (the bootstrap
        interval of the mean, items resampled), `num_items`, `num_scored`, `num_unscored`, `num_judge_outputs`,
        `num_unparsable_outputs`, `histogram` (`{"1": n, ..., "5": n}` over the parsed judge outputs).
    """
    values = np.array([np.nan if s is None else float(s) for s in scores], dtype=np.float64)
    scored = values[~np.isnan(values)]
    counts = Counter(o for o in outputs if o is not None)
    return {
        "mean": float(scored.mean()) if len(scored) else None,
        "std": float(scored.std(ddof=1)) if len(scored) > 1 else None,
        "ci": settings.interval(lambda rows: nan_mean_rows(values, rows), len(values)),
        "num_items": len(values),
        "num_scored": len(scored),
        "num_unscored": int(len(values) - len(scored)),
        "num_judge_outputs": len(outputs),
        "num_unparsable_outputs": sum(o is None for o in outputs),
        "histogram": {str(s): counts.get(s, 0) for s in SCORE_RANGE},
    }


def difference_statistics(
    first: Sequence[float | None], second: Sequence[float | None], settings: JudgeSettings
) -> dict[str, Any]:
    """The difference of two systems' mean scores on the same items, `mean(first) - mean(second)` (each over its own
    scored items), with a paired bootstrap interval (items resampled together).

    Returns:
        `dict`: `value` (`None` when either mean is undefined) and `ci`.
    """
    a = np.array([np.nan if s is None else float(s) for s in first], dtype=np.float64)
    b = np.array([np.nan if s is None else float(s) for s in second], dtype=np.float64)
    full = np.arange(len(a))[None, :]
    value = float((nan_mean_rows(a, full) - nan_mean_rows(b, full))[0]) if len(a) else float("nan")
    return {
        "value": None if np.isnan(value) else value,
        "ci": settings.interval(lambda rows: nan_mean_rows(a, rows) - nan_mean_rows(b, rows), len(a)),
    }


def score_results(
    judgments: Sequence[Mapping[str, Any]], systems: Sequence[str], settings: JudgeSettings, by_dimension: bool
) -> dict[str, Any]:
    """The summary of a score protocol's judgments: per system the `score_statistics`, with two systems the
    `difference_statistics` (first minus second), overall and (with `by_dimension`) per `dimension`.

    Args:
        judgments (`Sequence[Mapping]`): Records with `scores[system]` and `calls` (`system`, `score`).
        systems (`Sequence[str]`): The systems judged (`"responses"`, and `"against"` when given).
        settings (`JudgeSettings`): The bootstrap settings.
        by_dimension (`bool`): Add `per_dimension` when records have a `dimension` (records without one count in
            `overall` only).

    Returns:
        `dict`: `{"overall": {system: stats, ..., "difference": ...}, "per_dimension": {dimension: {...}}}`.
    """

    def block(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            system: score_statistics(
                [item["scores"][system] for item in items],
                [call["score"] for item in items for call in item["calls"] if call["system"] == system],
                settings,
            )
            for system in systems
        }
        if len(systems) == 2:
            entry["difference"] = difference_statistics(
                [item["scores"][systems[0]] for item in items],
                [item["scores"][systems[1]] for item in items],
                settings,
            )
        return entry

    results: dict[str, Any] = {"overall": block(judgments)}
    dimensions = list(dict.fromkeys(item["dimension"] for item in judgments if item.get("dimension")))
    if by_dimension and dimensions:
        results["per_dimension"] = {
            dimension: block([item for item in judgments if item.get("dimension") == dimension])
            for dimension in dimensions
        }
    return results


def describe_scores(title: str, stats: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """Terminal lines for score statistics: `title: <system> mean [low, high] (n scored)` per system, then the
    difference when there is one.

    Args:
        title (`str`): What is scored.
        stats (`Mapping`): `{system: score_statistics, ..., "difference": difference_statistics}`.
        labels (`Mapping[str, str]`): Display names of the systems.
    """

    def interval(value: float | None, ci: Mapping[str, Any]) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f}" + ("" if ci["low"] is None else f" [{ci['low']:.3f}, {ci['high']:.3f}]")

    parts = [
        f"{labels.get(key, key)} {interval(entry['mean'], entry['ci'])} ({entry['num_scored']} scored)"
        for key, entry in stats.items()
        if key != "difference"
    ]
    lines = [f"{title}: " + "; ".join(parts)]
    if "difference" in stats:
        lines.append(f"{title} difference: {interval(stats['difference']['value'], stats['difference']['ci'])}")
    return lines


def plot_score_results(
    results: Mapping[str, Any], folder: Path, labels: Mapping[str, str], groups_file: str, title: str
) -> list[str]:
    """The plots of a 1-5 score protocol: a histogram of each system's scores (`score_histogram.png`) and the mean
    per group with its interval (`groups_file`: per dimension where the rows have one, and overall).

    Args:
        results (`Mapping`): The protocol's results: `overall` (`{system: score_statistics, "difference": ...}`) and,
            optionally, `per_dimension` (`{dimension: the same}`).
        folder (`Path`): Where to write the PNGs.
        labels (`Mapping[str, str]`): Display names of the systems.
        groups_file (`str`): The file name of the per-group plot.
        title (`str`): Its title.

    Returns:
        `list[str]`: The file names written.
    """
    overall = results["overall"]
    systems = [key for key in overall if key != "difference"]
    plot_score_histograms({labels[s]: overall[s]["histogram"] for s in systems}, folder / "score_histogram.png")
    groups = {**results.get("per_dimension", {}), "overall": overall}
    plot_scores_by_group(
        {group: {labels[s]: stats[s] for s in systems} for group, stats in groups.items()},
        folder / groups_file,
        title=title,
    )
    return ["score_histogram.png", groups_file]
