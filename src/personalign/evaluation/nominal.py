"""Nominal capability (`personalign eval nominal`): general benchmarks run through EleutherAI's lm-evaluation-harness
(`lm_eval`, the optional extra `personalign[nominal]`), not a harness of our own.

Personalized alignment must not cost general ability: the DPORE paper checks it with MT-Bench (Table 2), others with
multiple-choice suites. Each model (a local folder, as every personalign checkpoint is, or a Hub id) is loaded by the
harness's own `HFLM` and scored with `lm_eval.simple_evaluate` on the harness's tasks (built-in, or YAML tasks of
`include_path`); the numbers here are the harness's, copied as they are:

- `evaluate_nominal` returns, per model, per task, per metric the value and its standard error, with the harness's
  version and the settings, and the raw harness results beside them;
- `write_nominal_results` writes `nominal.json`, `raw/<model>.json` (and the per-document samples) and
  `nominal.png`;
- `nominal_card_results` / `update_model_card_with_nominal` put the scores into a model card's `model-index`
  (`personalign.hub.cards`); `merge_nominal_into_results` adds them to an `eval policy` results folder.

The harness (and torch under it) is imported on first use, never with `import personalign` or `personalign --help`.
Public API of lm-evaluation-harness used: `lm_eval.simple_evaluate`, `lm_eval.tasks.TaskManager` (`all_tasks`,
`match_tasks`: glob patterns are expanded with it, as `lm-eval --tasks` expands them), `lm_eval.models.huggingface.HFLM`,
`lm_eval.utils.handle_non_serializable`.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult

from .. import __version__
from ..errors import InputError
from ..hub.cards import add_results_to_card
from ..inference.generation import check_local_model, hub_load_error
from ..io import atomic_output, one_line, require_local_path
from .plots import pyplot, save_figure

HARNESS_NAME = "lm-evaluation-harness"
HARNESS_PACKAGE = "lm_eval"
HARNESS_URL = "https://github.com/EleutherAI/lm-evaluation-harness"
INSTALL_HINT = "pip install 'personalign[nominal]'"
"""The one pip command that installs the harness at the tested version (the extra pins `lm-eval`)."""
LIST_TASKS_HINT = "lm-eval ls tasks"
NOMINAL_FILE = "nominal.json"
NOMINAL_PLOT = "nominal.png"
RAW_FOLDER = "raw"
RESULTS_FILE = "results.json"
"""The results file of `personalign eval policy` (`evaluation.runner.write_alignment_results`)."""
NOMINAL_KEY = "nominal"
"""The block of an `eval policy` results file that `merge_nominal_into_results` adds."""
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")
DTYPES = ("auto", "float32", "bfloat16", "float16")
"""The weight dtypes `--dtype` takes (`HFLM`'s `dtype`; `auto` keeps the checkpoint's)."""
PATTERN_CHARACTERS = frozenset("*?[")
"""The characters that make a task name a glob pattern (`fnmatch`, as `TaskManager.match_tasks` reads it)."""


@dataclass
class NominalEvalConfig:
    """The settings of a nominal-capability run (`evaluate_nominal`): the harness's own options, named as its
    `simple_evaluate` names them.

    Args:
        tasks (`list[str]`): Harness task, group or tag names, or glob patterns (`"mmlu_*"`) that `evaluate_nominal`
            expands over every task the harness knows (`expand_tasks`), as `lm-eval --tasks` does.
        include_path (`str` or `list[str]`, *optional*): Folders of task YAML files of your own (the harness's
            `--include_path`; several folders are all indexed). Kept as a list.
        limit (`int`, *optional*): Score only the first N documents of each task (a smoke test, not a benchmark
            number: `limit_note` says so beside every score).
        num_fewshot (`int`, *optional*): Few-shot examples per prompt; by default each task's own setting.
        batch_size (`int`, *optional*, defaults to `8`): Requests per forward pass.
        device (`str`, *optional*): `cpu`, `cuda` or `cuda:N`; by default `cuda` when torch sees a GPU, else `cpu`.
            `cuda` is refused when torch sees no GPU (`check_device`).
        dtype (`str`, *optional*, defaults to `"auto"`): The weights' dtype (`HFLM`'s `dtype`), one of `DTYPES`:
            `auto` keeps the checkpoint's.
        log_samples (`bool`, *optional*, defaults to `False`): Keep every document's requests, responses
            (log-likelihoods or generations) and per-document metrics (`raw/<model>/samples_<task>.jsonl`).
    """

    tasks: list[str] = field(default_factory=list)
    include_path: str | list[str] | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    batch_size: int = 8
    device: str | None = None
    dtype: str = "auto"
    log_samples: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [self.tasks]
        self.tasks = [name.strip() for part in self.tasks for name in str(part).split(",") if name.strip()]
        if not self.tasks:
            raise InputError(f"--tasks: name at least one task (list them with `{LIST_TASKS_HINT}`).")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be at least 1, got {self.limit}.")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise InputError(f"--num-fewshot must be 0 or more, got {self.num_fewshot}.")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.device is not None:
            check_device(self.device)
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
        if self.include_path is not None:
            paths = [self.include_path] if isinstance(self.include_path, (str, Path)) else self.include_path
            self.include_path = [str(path) for path in paths] or None
            for path in self.include_path or []:
                require_local_path(path, "--include-path")
                if not Path(path).is_dir():
                    raise InputError(f"--include-path {path}: not a folder; expected a folder of task YAML.")


def check_device(device: str) -> None:
    """Refuse a device the run cannot use, before anything loads: not `cpu`, `cuda` or `cuda:N`, a CUDA device
    while torch sees no GPU (`torch.cuda.is_available()` is False: no GPU, or a CPU-only torch), or `cuda:N` past
    the GPUs torch sees.

    Args:
        device (`str`): The `--device` value.

    Raises:
        `InputError`: Naming the device and what is wrong with it.
    """
    if not DEVICE_PATTERN.fullmatch(device):
        raise InputError(f"--device must be cpu, cuda or cuda:N, got {device!r}.")
    if device == "cpu":
        return
    import torch  # only for a CUDA device: the CLI imports torch no sooner than it must

    if not torch.cuda.is_available():
        raise InputError(
            f"--device {device}: torch sees no GPU (torch.cuda.is_available() is False); use --device cpu, or leave "
            "--device out to use a GPU when there is one."
        )
    _, _, index = device.partition(":")
    if index and int(index) >= torch.cuda.device_count():
        raise InputError(f"--device {device}: torch sees {torch.cuda.device_count()} GPU(s), numbered from 0.")


def import_harness() -> Any:
    """Import lm-evaluation-harness (`lm_eval`), the optional extra.

    Returns:
        `module`: `lm_eval`.

    Raises:
        `InputError`: If it is not installed, with the one pip command that installs it (`INSTALL_HINT`).
    """
    try:
        import lm_eval
    except ImportError as error:
        raise InputError(
            f"eval nominal runs lm-evaluation-harness, which is not installed ({error.name or 'lm_eval'}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return lm_eval


def harness_version() -> str:
    """The installed lm-evaluation-harness's version (`importlib.metadata`), e.g. `"0.4.13"`."""
    import_harness()
    return metadata.version("lm_eval")


def is_pattern(name: str) -> bool:
    """Whether a task name is a glob pattern (holds `*`, `?` or `[`)."""
    return not PATTERN_CHARACTERS.isdisjoint(name)


def task_manager(tasks: Sequence[str], include_path: str | Sequence[str] | None = None) -> Any:
    """The harness's `TaskManager` that knows every task of `tasks`, checked before any model loads.

    Reading the harness's built-in task index (thousands of YAML files) takes seconds, so when the `include_path`
    folders alone hold every task named, only they are indexed. A glob pattern is always matched against the whole
    index (built-in tasks and `include_path`), as `lm-eval --tasks` matches it.

    Args:
        tasks (`Sequence[str]`): Task, group or tag names or glob patterns.
        include_path (`str` or `Sequence[str]`, *optional*): Folders of task YAML files of your own.

    Returns:
        `lm_eval.tasks.TaskManager`

    Raises:
        `InputError`: Naming each unknown task and how to list the known ones.
    """
    import_harness()
    from lm_eval.tasks import TaskManager

    paths = [include_path] if isinstance(include_path, (str, Path)) else list(include_path or [])
    paths = [str(path) for path in paths] or None
    if paths and not any(is_pattern(name) for name in tasks):
        local = TaskManager(include_path=paths, include_defaults=False)
        if not unknown_tasks(local, tasks):
            return local
    manager = TaskManager(include_path=paths)
    unknown = unknown_tasks(manager, tasks)
    if unknown:
        where = f" nor of --include-path {', '.join(paths)}" if paths else ""
        listing = " ".join([LIST_TASKS_HINT, *(f"--include_path {path}" for path in paths or [])])
        raise InputError(
            f"--tasks: unknown task{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: not a task, group or tag "
            f"of lm-evaluation-harness {metadata.version('lm_eval')}{where} (nor a pattern matching one); list them "
            f"with `{listing}`."
        )
    return manager


def expand_tasks(manager: Any, tasks: Sequence[str]) -> list[str]:
    """The task, group and tag names to run: each name as it is, each glob pattern as the names it matches
    (`TaskManager.match_tasks`, sorted), in order, each once: what the harness's own CLI passes on for
    `--tasks "mmlu_*"` (`simple_evaluate` itself takes no patterns).

    Args:
        manager (`lm_eval.tasks.TaskManager`): The harness's task index (`task_manager`).
        tasks (`Sequence[str]`): Names or glob patterns, each known (`task_manager` has checked them).

    Returns:
        `list[str]`
    """
    expanded: list[str] = []
    for name in tasks:
        for match in manager.match_tasks([name]):
            if match not in expanded:
                expanded.append(match)
    return expanded


def unknown_tasks(manager: Any, tasks: Sequence[str]) -> list[str]:
    """The names of `tasks` that match no task, group or tag of `manager` (`TaskManager.match_tasks`, glob
    patterns included), in order.

    Args:
        manager (`lm_eval.tasks.TaskManager`): The harness's task index.
        tasks (`Sequence[str]`): Names or glob patterns.

    Returns:
        `list[str]`
    """
    return [name for name in tasks if not manager.match_tasks([name])]


def check_model(model: str) -> None:
    """Check a model before the harness loads it: a local path must be a causal LM folder
    (`inference.generation.check_local_model`); a Hub id passes (its load failure is explained later).

    `check_local_model` refuses a sentence-transformers folder (a PersonaEncoder's too) but leaves any other folder
    whose `config.json` names a model type transformers does not know to transformers (custom code may still load
    it elsewhere). The harness loads with `AutoConfig` / `AutoModelForCausalLM` and no remote code, so such a folder
    cannot load here: it is refused too.

    Args:
        model (`str`): Local folder or Hub id.

    Raises:
        `InputError`: Naming the path and what is wrong with it (missing, a file, not a causal LM, bad weights).
    """
    check_local_model("transformers", model)
    folder = Path(model).expanduser()
    config_file = folder / "config.json"
    if not config_file.is_file():
        return
    from transformers import CONFIG_MAPPING  # only to check a local folder; the harness imports it anyway

    config = json.loads(config_file.read_text(encoding="utf-8"))  # check_local_model has read it
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or model_type in CONFIG_MAPPING or config.get("auto_map"):
        return
    raise InputError(
        f"model {folder}: a model of type {model_type!r}, which transformers does not know, not a causal "
        "(generative) language model; lm-evaluation-harness needs one, such as an instruction-tuned chat model's "
        "folder."
    )


def default_device() -> str:
    """`cuda` when torch sees a GPU, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_harness_model(model: str, config: NominalEvalConfig) -> Any:
    """Load `model` as the harness's transformers model (`lm_eval.models.huggingface.HFLM`), with the run's device,
    batch size and dtype.

    Args:
        model (`str`): Local folder or Hub id (`check_model` has passed).
        config (`NominalEvalConfig`): The settings.

    Returns:
        `lm_eval.models.huggingface.HFLM`

    Raises:
        `InputError`: If a Hub id does not load (not on the Hub, or not cached while offline), naming it.
    """
    import_harness()
    from lm_eval.models.huggingface import HFLM

    try:
        return HFLM(
            pretrained=model,
            device=config.device or default_device(),
            batch_size=config.batch_size,
            dtype=config.dtype,
        )
    except OSError as error:
        if Path(model).expanduser().exists():
            raise
        raise hub_load_error(model, error) from None


def metric_name(key: str) -> str:
    """Our name of a harness result key: `"acc,none"` -> `"acc"`, `"exact_match,strict-match"` ->
    `"exact_match,strict-match"` (the filter kept where there is one)."""
    name, _, filter_name = key.partition(",")
    return name if filter_name in ("", "none") else key


def harness_scores(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Per task (and group) of one `simple_evaluate` result: per metric the value and its standard error, with the
    task's version, few-shot count, number of documents scored and which metrics are better higher.

    Args:
        raw (`Mapping`): What `lm_eval.simple_evaluate` returned.

    Returns:
        `dict`: `{task: {"metrics": {metric: {"value": float, "stderr": float | None}}, "version", "num_fewshot",
        "num_samples", "higher_is_better", "group": bool}}`; a standard error the harness did not compute
        (`"N/A"`) is `None`.
    """
    scores: dict[str, Any] = {}
    groups = set(raw.get("groups") or {})
    for task, values in raw["results"].items():
        metrics: dict[str, Any] = {}
        for key, value in values.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            name, _, filter_name = key.partition(",")
            stderr = values.get(f"{name}_stderr,{filter_name}")
            metrics[metric_name(key)] = {
                "value": float(value),
                "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
            }
        samples = (raw.get("n-samples") or {}).get(task) or {}
        scores[task] = {
            "metrics": metrics,
            "version": (raw.get("versions") or {}).get(task),
            "num_fewshot": (raw.get("n-shot") or {}).get(task),
            "num_samples": samples.get("effective"),
            "higher_is_better": (raw.get("higher_is_better") or {}).get(task) or {},
            "group": task in groups,
        }
    return scores


def raw_names(models: Sequence[str]) -> dict[str, str]:
    """A file name per model for `raw/`: its folder's (or Hub repo's) last part, numbered where two would clash."""
    names: dict[str, str] = {}
    for model in models:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(model).rstrip("/")).name) or "model"
        name, number = base, 2
        while name in names.values():
            name, number = f"{base}-{number}", number + 1
        names[model] = name
    return names


def evaluate_nominal(
    models: str | Sequence[str],
    config: NominalEvalConfig,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run lm-evaluation-harness on each model and collect its scores (the harness's numbers, unchanged).

    Every task is checked (`task_manager`) and every local model folder (`check_model`) before the first model
    loads; models are loaded one at a time by the harness's `HFLM`.

    Args:
        models (`str` or `Sequence[str]`): Local folders (a trained personalign checkpoint) or Hub ids.
        config (`NominalEvalConfig`): Tasks and harness settings.
        log (`Callable[[str], None]`, *optional*): Receives one line per step (the CLI prints them).

    Returns:
        `dict`: `{"harness": {"name", "package", "version", "url"}, "settings": {...}, "models": {model: {"tasks":
        harness_scores(...), "raw_file": "raw/<name>.json"}}, "raw": {model: the harness's results}}`; samples (with
        `config.log_samples`) are under `"samples"`: `{model: {task: [document records]}}`.

    Raises:
        `InputError`: The harness not installed (with the pip command), an unknown task, a model path that is not
            a causal LM folder, a Hub id that does not load; each in one line.
    """
    log = log or (lambda line: None)
    models = [str(models)] if isinstance(models, (str, Path)) else [str(model) for model in models]
    if not models:
        raise InputError("no model to evaluate.")
    if len(set(models)) != len(models):
        twice = sorted({model for model in models if models.count(model) > 1})
        raise InputError(f"--model: name each model once; given more than once: {', '.join(twice)}.")
    lm_eval = import_harness()
    version = metadata.version("lm_eval")
    for model in models:
        check_model(model)
    manager = task_manager(config.tasks, config.include_path)
    tasks = expand_tasks(manager, config.tasks)
    names = raw_names(models)
    results: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    for model in models:
        log(f"{HARNESS_NAME} {version}: {model} on {', '.join(tasks)}")
        harness_model = load_harness_model(model, config)
        try:
            output = lm_eval.simple_evaluate(
                model=harness_model,
                tasks=tasks,
                num_fewshot=config.num_fewshot,
                limit=config.limit,
                log_samples=config.log_samples,
                task_manager=manager,
            )
        except ValueError as error:
            # The harness refuses a task named twice, e.g. a group and one of its own tasks (`--tasks "mmlu_stem*"`
            # matches the group `mmlu_stem` and its subgroups), when it builds its task dict.
            if "Duplicate task" not in str(error):
                raise
            raise InputError(
                f"--tasks {', '.join(tasks)}: {one_line(error)}; a group runs its own tasks, so list either the "
                "group or its tasks (a narrower pattern)."
            ) from None
        del harness_model
        gc.collect()  # one model in memory at a time
        if config.log_samples:
            samples[model] = output.pop("samples", {})
        raw[model] = output
        results[model] = {"tasks": harness_scores(output), "raw_file": f"{RAW_FOLDER}/{names[model]}.json"}
    settings = {
        "models": models,
        **asdict(config),
        "tasks": tasks,
        **({"task_patterns": list(config.tasks)} if tasks != config.tasks else {}),
        "device": config.device or default_device(),
        "seeds": {key: value for key, value in raw[models[0]]["config"].items() if key.endswith("seed")},
        "personalign_version": __version__,
    }
    harness = {"name": HARNESS_NAME, "package": HARNESS_PACKAGE, "version": version, "url": HARNESS_URL}
    out = {"harness": harness, "settings": settings, "models": results, "raw": raw}
    if config.limit is not None:
        out["note"] = limit_note(config.limit)
    if config.log_samples:
        out["samples"] = samples
    return out


def limit_note(limit: int | None, num_samples: int | None = None) -> str | None:
    """What a score under `--limit` is: a smoke test on the first documents only, not a benchmark number; `None`
    without a limit.

    Args:
        limit (`int`, *optional*): The run's `limit`.
        num_samples (`int`, *optional*): The documents a task actually scored (fewer when it has fewer).

    Returns:
        `str` or `None`: e.g. `"--limit 3: scores on the first 3 documents of each task only (a smoke test, not a
        benchmark number)"`.
    """
    if limit is None:
        return None
    count = limit if num_samples is None else num_samples
    each = "" if num_samples is not None else " of each task"
    return f"--limit {limit}: scores on the first {count} documents{each} only (a smoke test, not a benchmark number)"


def to_json(value: Any) -> str:
    """JSON text of harness output, whose objects (dtypes, functions of task configs) become strings as the
    harness's own writer makes them (`lm_eval.utils.handle_non_serializable`)."""
    from lm_eval.utils import handle_non_serializable

    return json.dumps(value, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n"


def write_nominal_results(results: Mapping[str, Any], output_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write `nominal.json` (the scores, the harness and the settings), `raw/<model>.json` (each model's harness
    results as the harness returned them; with samples, `raw/<model>/samples_<task>.jsonl`) and `nominal.png`
    into `output_dir`, atomically (the folder appears whole or not at all).

    Args:
        results (`Mapping`): The output of `evaluate_nominal`.
        output_dir (`str` or `Path`): The folder to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing folder.

    Returns:
        `list[Path]`: The files written.

    Raises:
        `OutputExistsError`: If `output_dir` exists and `overwrite` is False.
    """
    output_dir = Path(output_dir)
    summary = {key: results[key] for key in ("note", "harness", "settings", "models") if key in results}
    written = [NOMINAL_FILE]
    with atomic_output(output_dir, overwrite=overwrite) as folder:
        folder.mkdir()
        (folder / NOMINAL_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (folder / RAW_FOLDER).mkdir()
        for model, entry in results["models"].items():
            raw_file = folder / entry["raw_file"]
            raw_file.write_text(to_json(results["raw"][model]), encoding="utf-8")
            written.append(entry["raw_file"])
            for task, records in (results.get("samples") or {}).get(model, {}).items():
                sample_file = raw_file.with_suffix("") / f"samples_{task}.jsonl"
                sample_file.parent.mkdir(exist_ok=True)
                lines = (to_json(record).replace("\n", "") for record in records)
                sample_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
                written.append(str(sample_file.relative_to(folder)))
        plot_nominal(summary, folder / NOMINAL_PLOT)
        written.append(NOMINAL_PLOT)
    return [output_dir / name for name in written]


def main_metric(task_scores: Mapping[str, Any]) -> str | None:
    """The metric a task's bar shows: `acc` when it has one, else its first metric (the harness's order)."""
    metrics = task_scores["metrics"]
    return "acc" if "acc" in metrics else next(iter(metrics), None)


def plot_nominal(results: Mapping[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """One bar group per task, one bar per model (the task's `main_metric`, with its standard error as an error
    bar), as a PNG.

    Args:
        results (`Mapping`): `evaluate_nominal`'s output (or `nominal.json`).
        path (`str` or `Path`): The PNG to write.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing file.

    Returns:
        `Path`: `path`.
    """
    plt = pyplot()
    models = results["models"]
    tasks = list(dict.fromkeys(task for entry in models.values() for task in entry["tasks"]))
    labels = raw_names(list(models))
    width = 0.8 / max(len(models), 1)
    figure, axes = plt.subplots(figsize=(max(4.8, 1.3 * len(tasks) * max(len(models), 1) + 1.5), 4.2))
    for index, (model, entry) in enumerate(models.items()):
        xs, values, errors = [], [], []
        for position, task in enumerate(tasks):
            scores = entry["tasks"].get(task)
            metric = main_metric(scores) if scores else None
            if metric is None:
                continue
            xs.append(position - 0.4 + width * (index + 0.5))
            values.append(scores["metrics"][metric]["value"])
            errors.append(scores["metrics"][metric]["stderr"] or 0.0)
        axes.bar(xs, values, width=width, yerr=errors, capsize=3, label=labels[model], color=f"C{index % 10}")
    names = []
    for task in tasks:
        shown = next((main_metric(e["tasks"][task]) for e in models.values() if task in e["tasks"]), None)
        names.append(f"{task}\n({shown})" if shown else task)
    axes.set_xticks(range(len(tasks)), names)
    axes.set_ylabel("score (harness metric)")
    axes.set_title(f"Nominal capability ({results['harness']['name']} {results['harness']['version']})")
    axes.legend(fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    return save_figure(figure, path, overwrite=overwrite)


def nominal_card_results(results: Mapping[str, Any], model: str | None = None) -> list[EvalResult]:
    """One model's scores as `model-index` results: per task and metric an `EvalResult` whose dataset is the task
    (its few-shot count and document limit in `dataset_args`) and whose source is the harness (its version in
    `metric_args`), so a re-run with the same settings replaces the old value and other settings sit beside it.

    Args:
        results (`Mapping`): `evaluate_nominal`'s output (or `nominal.json`).
        model (`str`, *optional*): Whose scores; required when `results` holds several models.

    Returns:
        `list[EvalResult]`

    Raises:
        `InputError`: If `model` is missing (several models) or unknown.
    """
    models = results["models"]
    if model is None:
        if len(models) != 1:
            raise InputError(f"results hold {len(models)} models; say which one goes into the card.")
        model = next(iter(models))
    if model not in models:
        raise InputError(f"no results for {model!r}; results hold {', '.join(models)}.")
    harness, settings = results["harness"], results["settings"]
    cards = []
    for task, scores in models[model]["tasks"].items():
        for metric, score in scores["metrics"].items():
            cards.append(
                EvalResult(
                    task_type="text-generation",
                    task_name=f"Nominal capability ({task})",
                    dataset_type=task,
                    dataset_name=task,
                    dataset_args={"num_fewshot": scores["num_fewshot"], "limit": settings.get("limit")},
                    metric_type=metric,
                    metric_value=round(float(score["value"]), 4),
                    metric_name=metric,
                    metric_args={"harness": f"{harness['package']}=={harness['version']}"},
                    source_name=harness["name"],
                    source_url=harness["url"],
                )
            )
    return cards


def update_model_card_with_nominal(
    card_path: str | Path, results: Mapping[str, Any], model: str | None = None
) -> Path:
    """Add one model's nominal scores (`nominal_card_results`) to a model card's `model-index` with
    `personalign.hub.cards.add_results_to_card`: the same evaluation run again replaces its old values, every other
    result and the card's text are kept, a missing card is created.

    Args:
        card_path (`str` or `Path`): The card (the model folder's `README.md`).
        results (`Mapping`): `evaluate_nominal`'s output (or `nominal.json`).
        model (`str`, *optional*): Whose scores; required when `results` holds several models.

    Returns:
        `Path`: `card_path`.

    Raises:
        `InputError`: If `model` is missing or unknown, or the card's folder is missing or its metadata unreadable.
    """
    new = nominal_card_results(results, model)
    name = Path(str(model or next(iter(results["models"]))).rstrip("/")).name
    return add_results_to_card(card_path, new, name, description="Evaluated with `personalign eval nominal`.")


def check_results_folder(results_dir: str | Path) -> Path:
    """Check, before any work, that `results_dir` is an `eval policy` results folder whose `results.json` reads.

    Args:
        results_dir (`str` or `Path`): The folder `personalign eval policy --output` wrote.

    Returns:
        `Path`: Its `results.json`.

    Raises:
        `InputError`: If the folder or its `results.json` is missing, or the file is not that command's results.
    """
    path = Path(results_dir) / RESULTS_FILE
    if not path.is_file():
        raise InputError(
            f"--merge-into {results_dir}: no {RESULTS_FILE}; expected a `personalign eval policy` folder."
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"--merge-into {path}: not readable JSON ({error}).") from None
    if not isinstance(results, dict) or not isinstance(results.get("models"), dict):
        raise InputError(f"--merge-into {path}: not `personalign eval policy` results (no 'models').")
    return path


def merge_nominal_into_results(results_dir: str | Path, results: Mapping[str, Any]) -> Path:
    """Add the nominal scores to an `eval policy` results folder: its `results.json` gains (or updates) a top-level
    `nominal` block holding the harness, the settings and, per model, per task the scores (`nominal.json`'s shape,
    without the raw results). A model and task scored again replace their old entry; everything else is kept. The
    file is replaced in one rename.

    The block sits beside `models` rather than inside each model's entry: its tasks are not the alignment dataset
    of `settings` / `dataset`, and a model may be named differently in the two runs.

    Args:
        results_dir (`str` or `Path`): The `personalign eval policy` output folder.
        results (`Mapping`): `evaluate_nominal`'s output (or `nominal.json`).

    Returns:
        `Path`: The updated `results.json`.

    Raises:
        `InputError`: As `check_results_folder`.
    """
    path = check_results_folder(results_dir)
    existing = json.loads(path.read_text(encoding="utf-8"))
    block = existing.get(NOMINAL_KEY) or {"models": {}}
    for model, entry in results["models"].items():
        tasks = block["models"].setdefault(model, {"tasks": {}})["tasks"]
        for task, scores in entry["tasks"].items():
            tasks[task] = {**scores, "harness": results["harness"]["version"], "settings": results["settings"]}
    existing[NOMINAL_KEY] = {"harness": dict(results["harness"]), "models": block["models"]}
    with atomic_output(path, overwrite=True) as temporary:
        temporary.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
    return path
