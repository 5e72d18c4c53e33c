"""The whole command surface under bad input: every case runs the CLI as a user would (in-process behind the same
typed error map as the console script; signals in a subprocess) on inputs written here, as tiny as possible, in the
real release schemas, and asserts:

- the exit code;
- for a refused input, exactly one `error:` line, naming what it should (file, row, column, option, path);
- no traceback and no "internal error";
- no partial output: no staging folder (`.NAME.*.partial`) left, and a refused command leaves its output absent
  (or, where it existed, untouched);
- no token: `HF_TOKEN` (set for every case) and any `--hub_token` never appear in the output or in any file written.

`PERSONALIGN_MATRIX_REPORT=path.json pytest tests/test_bad_inputs.py` also writes each case's grade (good: every
assertion holds; weak: refused with one clean line but not naming what it should, or a usage message; bad: a
traceback, an internal error, rc 0 on bad input, partial output or a leaked token) for the before / after counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalign.cli import app, run
from personalign.data.synthetic_aloe import aloe_rows
from test_multifacet_builder import real_schema_rows

pytestmark = pytest.mark.usefixtures("one_thread")

SECRET = "hf_MatrixSecretToken0123456789"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIMENSIONS = 90
# The smallest run that still trains and checkpoints.
SMALL = [
    "--max_steps", "2", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
    "--save_steps", "1", "--logging_steps", "1", "--max_length", "512", "--disable_tqdm", "true",
]  # fmt: skip


# ------------------------------------------------------------------------------------------ rows in release schemas
def vector(**set_dims: float) -> list[float]:
    """A 90-dimension AlignX preference vector: neutral (0.5) except the given `d<index>` dimensions."""
    values = [0.5] * DIMENSIONS
    for name, value in set_dims.items():
        values[int(name[1:])] = value
    return values


def alignx_row(i: int) -> dict[str, Any]:
    """One AlignX training row exactly as released (column names with spaces; vectors of 90 in {0, 0.5, 1}); rows
    alternate between two opposite personas on dimension 3 (extraversion) and 7."""
    pole = float(i % 2)
    return {
        "prompt": f"Suggest a weekend plan number {i}.",
        "chosen": "A lively party with friends!" if pole else "A quiet day with a book.",
        "rejected": "A quiet day with a book." if pole else "A lively party with friends!",
        "Preference Direction": vector(d3=pole, d7=pole),
        "Demographic Information": f"User {i % 2}: a person who writes short comments.",
        "User-Generated Content": [
            {
                "prompt": "What do you do on Fridays?",
                "comment": "Out dancing, always!" if pole else "Home, tea, silence.",
                "Preference Direction": vector(d3=pole),
            }
        ],
        "Pair-wise Comparative Feedback": [
            {
                "prompt": "Pick a holiday.",
                "chosen": "A festival." if pole else "A cabin.",
                "rejected": "A cabin." if pole else "A festival.",
                "Preference Direction": vector(d7=pole),
            }
        ],
    }


def alignx_rows(n: int = 8) -> list[dict[str, Any]]:
    return [alignx_row(i) for i in range(n)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def changed(rows: list[dict[str, Any]], index: int, **values: Any) -> list[dict[str, Any]]:
    rows = [dict(row) for row in rows]
    rows[index].update(values)
    return rows


def without(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != column} for row in rows]


# --------------------------------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    """One command on one input.

    `args` may hold `{placeholders}` filled from the dict `setup(tmp, env)` returns (plus `{tmp}`, `{lm}`, `{encoder}`,
    `{assets}`). `says` are regexes the `error:` line must match (case-insensitive); `code` 0 means the input is
    fine and the command must succeed. `output` names the path (after formatting) a refused command must not
    leave behind; `check` runs extra assertions after the command."""

    id: str
    args: list[str]
    setup: Callable[[Path, dict[str, Any]], dict[str, Any]] = lambda tmp, env: {}
    code: int = 1
    says: tuple[str, ...] = ()
    output: str | None = "{tmp}/out"
    check: Callable[[Path, dict[str, Any], str], None] | None = None
    marks: tuple[Any, ...] = ()


def files(**contents: Any) -> Callable[[Path, dict[str, Any]], dict[str, Any]]:
    """A setup writing files: `name=rows` (JSON lines), `name=str` (text as is) or `name=bytes`; the placeholder
    is the name without its suffix part after `__` (name `data__jsonl` -> file `data.jsonl`, placeholder
    `{data}`)."""

    def setup(tmp: Path, env: dict[str, Any]) -> dict[str, Any]:
        paths = {}
        for key, content in contents.items():
            stem, _, suffix = key.partition("__")
            path = tmp / f"{stem}.{suffix}" if suffix else tmp / stem
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif isinstance(content, str):
                path.write_text(content)
            elif callable(content):
                content(path, env)
            else:
                write_jsonl(path, content)
            paths[stem] = str(path)
        return paths

    return setup


def jsonl_with_bad_line(rows: list[dict[str, Any]], line: int) -> str:
    """JSON lines with line `line` (1-based) cut in half."""
    lines = [json.dumps(row) for row in rows]
    lines[line - 1] = lines[line - 1][: len(lines[line - 1]) // 2]
    return "\n".join(lines) + "\n"


def jsonl_with_bytes(rows: list[dict[str, Any]], line: int, junk: bytes) -> bytes:
    """JSON lines with `junk` (bytes that are not UTF-8) put inside the first text of line `line` (1-based)."""
    lines = [json.dumps(row).encode() for row in rows]
    lines[line - 1] = lines[line - 1].replace(b'": "', b'": "' + junk, 1)
    return b"\n".join(lines) + b"\n"


def parquet_bytes(rows: list[dict[str, Any]], tmp_dir: Path) -> bytes:
    from datasets import Dataset

    target = tmp_dir / "_rows.parquet"
    Dataset.from_list(rows).to_parquet(str(target))
    data = target.read_bytes()
    target.unlink()
    return data


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def model_copy(name: str, damage: Callable[[Path], None] | None = None) -> Callable[[Path, dict], None]:
    """A setup entry copying the tiny LM to `name`, then damaging it."""

    def write(path: Path, env: dict[str, Any]) -> None:
        shutil.copytree(env["lm"], path)
        if damage:
            damage(path)

    return write


def pickle_only(folder: Path) -> None:
    """The folder holds its weights only as a pickled `pytorch_model.bin` (a legacy checkpoint)."""
    import torch
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")


def yaml_config(method: str, **overrides: Any) -> Callable[[Path, dict[str, Any]], None]:
    def write(path: Path, env: dict[str, Any]) -> None:
        values = yaml.safe_load((EXAMPLES / "configs" / "tiny" / f"{method}.yaml").read_text())
        values.update(
            model_name_or_path=str(env["lm"]), dataset_name=str(env["assets"] / "alignx"), dataset_test_split=None
        )
        values.pop("dataset_test_split")
        if method == "dpore":
            values["persona_encoder"] = str(env["assets"] / "encoder")
        values.update(overrides)
        path.write_text(yaml.safe_dump(values))

    return write


def train(method: str, *extra: str, dataset: str = "{data}", config: str | None = None) -> list[str]:
    return [
        "train",
        method,
        "--config",
        config or str(EXAMPLES / "configs" / "tiny" / f"{method}.yaml"),
        "--model_name_or_path",
        "{lm}",
        "--dataset_name",
        dataset,
        "--dataset_test_split",
        "",
        "--output_dir",
        "{tmp}/out",
        *(["--persona_encoder", "{assets}/encoder"] if method == "dpore" else []),
        *SMALL,
        *extra,
    ]


def eval_policy(*extra: str, model: str = "{lm}", dataset: str = "{data}") -> list[str]:
    return [
        "eval",
        "policy",
        "--model",
        model,
        "--reference",
        "none",
        "--dataset",
        dataset,
        "--output",
        "{tmp}/out",
        "--persona-sizes",
        "none",
        *extra,
    ]


def nominal(*extra: str, model: str = "{lm}") -> list[str]:
    """`eval nominal` on the shipped example task (examples/nominal); every case here is refused before it runs."""
    tasks = ["--tasks", "personalign_tiny_qa", "--include-path", str(EXAMPLES / "nominal")]
    return ["eval", "nominal", "--model", model, *tasks, *extra, "--output", "{tmp}/out"]


def build(name: str, *extra: str, source: str = "{data}") -> list[str]:
    return ["build-dataset", name, "--source", source, "--output", "{tmp}/out", *extra]


ROWS = alignx_rows()
MF = real_schema_rows(12)  # Multifaceted-Collection rows as released
FEEDBACK_ITEM = "'Pair-wise Comparative Feedback'"
ROW = r"(row|line) \d+"


# ----------------------------------------------------------------------- responses folders (`generate` writes them)
def response_record(i: int, **values: Any) -> dict[str, Any]:
    """A `responses.jsonl` record as `personalign generate` writes it, for counterfactual MultiFacet row `i`."""
    record = {
        "id": f"rows:{i}",
        "row": i,
        "prompt": f"How do I start running, take {i}?",
        "messages": [{"role": "user", "content": f"How do I start running, take {i}?"}],
        "response": f"Start slowly, answer {i}.",
        "persona": {"dimension": "style", "preference": "concise, plain answers", "history": "1. ..."},
        "reference": {"chosen": "Run three times a week.", "rejected": "Running is a long story..."},
        "rubric": None,
        "reference_answer": None,
    }
    return {**record, **values}


def responses_folder(records: list[Any], **meta: Any) -> Callable[[Path, dict[str, Any]], None]:
    """A setup writing a responses folder: `records` (dicts, or raw lines as str) and its `generation.json`."""

    def write(path: Path, env: dict[str, Any]) -> None:
        path.mkdir()
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        (path / "responses.jsonl").write_text("".join(line + "\n" for line in lines))
        generation = {"model": "m", "backend": "transformers", "dataset": "d", "num_rows": len(records), **meta}
        (path / "generation.json").write_text(json.dumps(generation))

    return write


def judge(protocol: str, *extra: str, responses: str = "{gen}") -> list[str]:
    return [
        "judge",
        "--responses",
        responses,
        "--protocol",
        protocol,
        "--judge",
        "{lm}",
        "--output",
        "{tmp}/out",
        *extra,
    ]


def generate(*extra: str, model: str = "{lm}", dataset: str = "{data}") -> list[str]:
    return [
        "generate",
        "--model",
        model,
        "--dataset",
        dataset,
        "--output",
        "{tmp}/out",
        "--max-new-tokens",
        "2",
        *extra,
    ]


def infer(dataset: str, inferencer: str = "llm") -> list[str]:
    return [
        "infer-preferences",
        "--inferencer",
        inferencer,
        "--model",
        "{lm}",
        "--dataset",
        dataset,
        "--output",
        "{tmp}/out",
    ]


RECORDS = [response_record(i) for i in range(3)]


CASES: list[Case] = [
    # ------------------------------------------------------------------------------------- build-dataset alignx
    Case("build-alignx/good", build("alignx"), files(data__jsonl=ROWS), code=0),
    Case("build-alignx/empty-file", build("alignx"), files(data__jsonl=""), says=(r"data\.jsonl", "empty")),
    Case("build-alignx/empty-list", build("alignx"), files(data__json="[]"), says=(r"data\.json", "no rows")),
    Case(
        "build-alignx/malformed-json-line",
        build("alignx"),
        files(data__jsonl=jsonl_with_bad_line(ROWS, 5)),
        says=(r"data\.jsonl", r"line 5\b"),
    ),
    Case("build-alignx/not-json", build("alignx"), files(data__json="{not json"), says=(r"data\.json",)),
    Case(
        "build-alignx/corrupt-parquet",
        build("alignx"),
        files(data__parquet=b"PAR1 this is not a parquet file PAR1"),
        says=(r"data\.parquet",),
    ),
    Case(
        "build-alignx/missing-chosen",
        build("alignx"),
        files(data__jsonl=without(ROWS, "chosen")),
        says=(r"data\.jsonl", "missing column", "chosen"),
    ),
    Case(
        "build-alignx/int-chosen",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 2, chosen=3)),
        says=(r"data\.jsonl", ROW, "chosen", "text"),
    ),
    Case(
        "build-alignx/null-prompt",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 2, prompt=None)),
        says=(r"data\.jsonl", ROW, "prompt"),
    ),
    Case(
        "build-alignx/short-vector",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 3, **{"Preference Direction": [0.5] * 89})),
        says=(r"data\.jsonl", ROW, "Preference Direction", "89"),
    ),
    Case(
        "build-alignx/vector-value",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 3, **{"Preference Direction": vector(d3=0.7)})),
        says=(r"data\.jsonl", ROW, "Preference Direction"),
    ),
    Case(
        "build-alignx/bad-item-vector",
        build("alignx"),
        files(
            data__jsonl=changed(
                ROWS,
                4,
                **{
                    "Pair-wise Comparative Feedback": [
                        {**ROWS[4]["Pair-wise Comparative Feedback"][0], "Preference Direction": [2.0] * 90}
                    ]
                },
            )
        ),
        says=(r"data\.jsonl", ROW, FEEDBACK_ITEM),
    ),
    Case(
        "build-alignx/ugc-item-without-comment",
        build("alignx"),
        files(
            data__jsonl=changed(
                ROWS, 1, **{"User-Generated Content": [{"prompt": "p", "Preference Direction": vector()}]}
            )
        ),
        says=(r"data\.jsonl", ROW, "User-Generated Content", "comment"),
    ),
    Case(
        "build-alignx/empty-persona",
        build("alignx"),
        files(
            data__jsonl=changed(
                ROWS,
                6,
                **{
                    "User-Generated Content": [],
                    "Pair-wise Comparative Feedback": [],
                    "Preference Direction": vector(),
                    "Demographic Information": "",
                },
            )
        ),
        code=0,  # a user with nothing known is legal data: the row builds with a neutral profile
    ),
    Case(
        "build-alignx/extra-columns-and-unusual-text",
        build("alignx"),
        files(
            data__jsonl=[
                {**row, "extra": i, "prompt": row["prompt"] + " \u202eRTL \U0001f600 \u00e9" + "x" * 20_000}
                for i, row in enumerate(ROWS)
            ]
        ),
        code=0,
    ),
    Case("build-alignx/missing-source", build("alignx", source="{tmp}/nowhere.jsonl"), says=("nowhere", "no such")),
    Case(
        "build-alignx/source-without-data",
        build("alignx", source="{tmp}/empty_dir"),
        files(empty_dir=lambda p, env: p.mkdir()),
        says=("empty_dir", r"no \.parquet"),
    ),
    Case(
        "build-alignx/existing-output",
        build("alignx"),
        files(data__jsonl=ROWS, out=lambda p, env: p.mkdir() or (p / "keep.txt").write_text("keep")),
        says=("out", "already exists", "--overwrite"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "keep.txt"),
    ),
    Case(
        "build-alignx/output-under-a-file",
        ["build-dataset", "alignx", "--source", "{data}", "--output", "{tmp}/afile.txt/out"],
        files(data__jsonl=ROWS, afile__txt="I am a file"),
        says=(r"afile\.txt",),
        output="{tmp}/afile.txt/out",
    ),
    Case(
        "build-alignx/unwritable-parent",
        ["build-dataset", "alignx", "--source", "{data}", "--output", "{tmp}/locked/out"],
        files(data__jsonl=ROWS, locked=lambda p, env: (p.mkdir(), p.chmod(0o500))),
        says=("locked",),
        output="{tmp}/locked/out",
        marks=(pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder modes"),),
    ),
    Case(
        "build-alignx/unknown-config",
        build("alignx", "--config", "dpo"),
        files(data__jsonl=ROWS),
        says=("dpo", "config"),
    ),
    Case(
        "build-alignx/bad-prompt-format",
        build("alignx", "--prompt-format", "llama"),
        files(data__jsonl=ROWS),
        says=("llama",),
    ),
    Case(
        "build-alignx/bad-arithmetic",
        build("alignx", "--arithmetic", "float8"),
        files(data__jsonl=ROWS),
        says=("float8",),
    ),
    # ------------------------------------------------------------------------------- build-dataset multifacet-cf
    Case(
        "build-mf/good",
        build("multifacet-cf", "--history-size", "2", "--test-instructions", "3"),
        files(data__jsonl=MF),
        code=0,
    ),
    Case("build-mf/empty-file", build("multifacet-cf"), files(data__jsonl=""), says=(r"data\.jsonl", "empty")),
    Case(
        "build-mf/missing-preference-set",
        build("multifacet-cf"),
        files(data__jsonl=without(MF, "preference_set")),
        says=(r"data\.jsonl", "preference_set"),
    ),
    Case(
        "build-mf/malformed-json-line",
        build("multifacet-cf"),
        files(data__jsonl=jsonl_with_bad_line(MF, 7)),
        says=(r"data\.jsonl", r"line 7\b"),
    ),
    Case(
        "build-mf/null-output",
        build("multifacet-cf", "--history-size", "2", "--test-instructions", "3"),
        files(data__jsonl=changed(MF, 4, output=None)),
        says=(r"data\.jsonl", ROW, "output"),
    ),
    Case(
        "build-mf/bad-preference-set",
        build("multifacet-cf", "--history-size", "2", "--test-instructions", "3"),
        files(data__jsonl=changed(MF, 5, preference_set="style")),
        says=(r"data\.jsonl", ROW, "preference_set"),
    ),
    Case("build-mf/bad-match", build("multifacet-cf", "--match", "vibes"), files(data__jsonl=MF), says=("vibes",)),
    Case(
        "build-mf/zero-history",
        build("multifacet-cf", "--history-size", "0"),
        files(data__jsonl=MF),
        says=("history",),
    ),
    # --------------------------------------------------------- h17vec: vector types, text types, UTF-8, blank files
    Case(
        "build-alignx/string-in-vector",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 3, **{"Preference Direction": [*vector()[:7], "1", *vector()[8:]]})),
        says=(r"data\.jsonl", r"line 4\b", "Preference Direction", "index 7", "string"),
    ),
    Case(
        "build-alignx/boolean-vector",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 1, **{"Preference Direction": [True] * DIMENSIONS})),
        says=(r"data\.jsonl", r"line 2\b", "Preference Direction", "index 0", "boolean"),
    ),
    Case(
        "build-alignx/string-in-item-vector",
        build("alignx"),
        files(
            data__jsonl=changed(
                ROWS,
                2,
                **{
                    "User-Generated Content": [
                        {**ROWS[2]["User-Generated Content"][0], "Preference Direction": ["0.5", *vector()[1:]]}
                    ]
                },
            )
        ),
        says=(r"data\.jsonl", r"line 3\b", "User-Generated Content", "index 0", "string"),
    ),
    Case(
        "train/pba-string-in-vector",
        train("pba"),
        files(data__jsonl=changed(ROWS, 3, **{"Preference Direction": [*vector()[:7], "1", *vector()[8:]]})),
        says=(r"data\.jsonl", r"line 4\b", "Preference Direction", "index 7"),
    ),
    Case(
        "train/dpore-boolean-vector",
        train("dpore"),
        files(data__jsonl=changed(ROWS, 1, **{"Preference Direction": [True] * DIMENSIONS})),
        says=(r"data\.jsonl", r"line 2\b", "Preference Direction", "boolean"),
    ),
    Case(
        "build-alignx/number-comment",
        build("alignx"),
        files(
            data__jsonl=changed(
                ROWS, 2, **{"User-Generated Content": [{**ROWS[2]["User-Generated Content"][0], "comment": 5}]}
            )
        ),
        says=(r"data\.jsonl", r"line 3\b", "User-Generated Content", "comment", "expected text"),
    ),
    Case(
        "build-alignx/number-demographics",
        build("alignx"),
        files(data__jsonl=changed(ROWS, 1, **{"Demographic Information": 42})),
        says=(r"data\.jsonl", r"line 2\b", "Demographic Information", "expected text"),
    ),
    Case(
        "build-alignx/not-utf8",
        build("alignx"),
        files(data__jsonl=jsonl_with_bytes(ROWS, 3, b"\xff\xfe")),
        says=(r"data\.jsonl", r"line 3\b", "UTF-8", "0xff"),
    ),
    Case(
        "train/pba-not-utf8",
        train("pba"),
        files(data__jsonl=jsonl_with_bytes(ROWS, 3, b"\xff\xfe")),
        says=(r"data\.jsonl", r"line 3\b", "UTF-8"),
    ),
    Case(
        "eval/not-utf8",
        eval_policy(),
        files(data__jsonl=jsonl_with_bytes(ROWS, 3, b"\xff\xfe")),
        says=(r"data\.jsonl", r"line 3\b", "UTF-8"),
    ),
    Case(
        "build-alignx/blank-lines-only",
        build("alignx"),
        files(data__jsonl="\n\n  \n"),
        says=(r"data\.jsonl", "no rows"),
    ),
    Case(
        "synthetic/output-is-a-folder",
        ["synthetic", "alignx", "{tmp}/out", "--rows", "4"],
        files(out=lambda p, env: p.mkdir() or (p / "keep.txt").write_text("keep")),
        says=("out", "already exists"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "keep.txt"),
    ),
    Case(
        "synthetic/overwrite-a-folder",
        ["synthetic", "alignx", "{tmp}/out", "--rows", "4", "--overwrite"],
        files(out=lambda p, env: p.mkdir() or (p / "keep.txt").write_text("keep")),
        says=("out", "is a folder", "cannot be replaced by a file"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "keep.txt"),
    ),
    # ------------------------------------------------------------------------------------------------ synthetic
    Case("synthetic/good", ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "4"], code=0, output=None),
    Case(
        "synthetic/odd-rows",
        ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "3"],
        says=("rows", "even"),
        output="{tmp}/out.jsonl",
    ),
    Case(
        "synthetic/negative-rows",
        ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "-2"],
        says=("rows",),
        output="{tmp}/out.jsonl",
    ),
    Case(
        "synthetic/csv-output",
        ["synthetic", "alignx", "{tmp}/out.csv", "--rows", "4"],
        says=(r"\.csv",),
        output="{tmp}/out.csv",
    ),
    Case(
        "synthetic/item-noise",
        ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "4", "--item-noise", "2"],
        says=("item.noise",),
        output="{tmp}/out.jsonl",
    ),
    Case(
        "synthetic/existing-output",
        ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "4"],
        files(out__jsonl="keep me\n"),
        says=(r"out\.jsonl", "already exists"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out.jsonl", "keep me\n"),
    ),
    Case(
        "synthetic/mf-zero",
        ["synthetic", "multifaceted", "{tmp}/out.jsonl", "--instructions", "0"],
        says=("instructions",),
        output="{tmp}/out.jsonl",
    ),
    # ------------------------------------------------------------------------------------------------ eval policy
    Case("eval/good", eval_policy(), files(data__jsonl=ROWS[:4]), code=0, output=None),
    Case("eval/empty-file", eval_policy(), files(data__jsonl=""), says=(r"data\.jsonl", "empty")),
    Case(
        "eval/malformed-json-line",
        eval_policy(),
        files(data__jsonl=jsonl_with_bad_line(ROWS, 3)),
        says=(r"data\.jsonl", r"line 3\b"),
    ),
    Case(
        "eval/missing-chosen",
        eval_policy(),
        files(data__jsonl=without(ROWS, "chosen")),
        says=(r"data\.jsonl", "missing column", "chosen"),
    ),
    Case(
        "eval/null-prompt",
        eval_policy(),
        files(data__jsonl=changed(ROWS, 1, prompt=None)),
        says=(r"data\.jsonl", ROW, "prompt"),
    ),
    Case(
        "eval/short-vector",
        eval_policy(),
        files(data__jsonl=changed(ROWS, 2, **{"Preference Direction": [1.0] * 12})),
        says=(r"data\.jsonl", ROW, "Preference Direction"),
    ),
    Case(
        "eval/corrupt-parquet",
        eval_policy(),
        files(data__parquet=b"PAR1garbagegarbagePAR1"),
        says=(r"data\.parquet",),
    ),
    Case(
        "eval/missing-model",
        eval_policy(model="{tmp}/no_model"),
        files(data__jsonl=ROWS[:4]),
        says=("no_model", "no such"),
    ),
    Case(
        "eval/missing-reference",
        [
            "eval",
            "policy",
            "--model",
            "{lm}",
            "--reference",
            "./no_ref",
            "--dataset",
            "{data}",
            "--output",
            "{tmp}/out",
        ],
        files(data__jsonl=ROWS[:4]),
        says=("no_ref", "no such"),
    ),
    Case(
        "eval/truncated-safetensors",
        eval_policy(model="{model}"),
        files(data__jsonl=ROWS[:4], model=model_copy("model", lambda p: truncated(p / "model.safetensors"))),
        says=(r"model\.safetensors",),
    ),
    Case(
        "eval/pickle-only-model",
        eval_policy(model="{model}"),
        files(data__jsonl=ROWS[:4], model=model_copy("model", pickle_only)),
        says=(r"pytorch_model\.bin|pickle", "safetensors"),
    ),
    Case(
        "eval/existing-output",
        eval_policy(),
        files(data__jsonl=ROWS[:4], out=lambda p, env: (p.mkdir(), (p / "results.json").write_text("{}"))),
        says=("out", "already exists"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "results.json", "{}"),
    ),
    Case(
        "eval/model-card-is-a-folder",
        eval_policy("--model-card", "{tmp}"),
        files(data__jsonl=ROWS[:4]),
        says=("model.card|README|folder",),
    ),
    Case(
        "eval/model-card-new-file",
        eval_policy("--model-card", "{tmp}/card/README.md"),
        files(data__jsonl=ROWS[:4], card=lambda p, env: p.mkdir()),
        code=0,
        output=None,
        check=lambda tmp, env, out: _assert_card_created(tmp / "card" / "README.md", out),
    ),
    Case("eval/bad-format", eval_policy("--format", "csv"), files(data__jsonl=ROWS[:4]), says=("csv",)),
    Case("eval/bad-dtype", eval_policy("--dtype", "float8"), files(data__jsonl=ROWS[:4]), says=("float8",)),
    Case("eval/zero-batch", eval_policy("--batch-size", "0"), files(data__jsonl=ROWS[:4]), says=("batch",)),
    Case(
        "eval/bad-sizes",
        eval_policy("--persona-sizes", "a,b"),
        files(data__jsonl=ROWS[:4]),
        says=("persona.sizes|a,b",),
    ),
    Case(
        "eval/bad-persona-format", eval_policy("--persona-format", "xyz"), files(data__jsonl=ROWS[:4]), says=("xyz",)
    ),
    # ----------------------------------------------------------------------------------------------- eval encoder
    Case(
        "eval-encoder/missing-model",
        ["eval", "encoder", "--model", "./no_encoder", "--dataset", "{data}", "--output", "{tmp}/out.json"],
        files(data__jsonl=ROWS),
        says=("no_encoder", "no such"),
        output="{tmp}/out.json",
    ),
    Case(
        "eval-encoder/bad-format",
        [
            "eval",
            "encoder",
            "--model",
            "{assets}/encoder",
            "--dataset",
            "{data}",
            "--output",
            "{tmp}/out.json",
            "--format",
            "xml",
        ],
        files(data__jsonl=ROWS),
        says=("xml",),
        output="{tmp}/out.json",
    ),
    Case(
        "eval-encoder/table-without-text-column",
        [
            "eval",
            "encoder",
            "--model",
            "{assets}/encoder",
            "--dataset",
            "{data}",
            "--output",
            "{tmp}/out.json",
            "--format",
            "table",
        ],
        files(data__jsonl=[{"persona_id": str(i % 2), "words": "hello"} for i in range(6)]),
        says=(r"data\.jsonl", "text"),
        output="{tmp}/out.json",
    ),
    Case(
        "eval-encoder/empty-file",
        ["eval", "encoder", "--model", "{assets}/encoder", "--dataset", "{data}", "--output", "{tmp}/out.json"],
        files(data__jsonl=""),
        says=(r"data\.jsonl", "empty"),
        output="{tmp}/out.json",
    ),
    # ------------------------------------------------------------------------------------------------------ train
    Case("train/unknown-method", ["train", "kto", "--output_dir", "{tmp}/out"], says=("kto",)),
    Case(
        "train/unknown-flag",
        train("pba", "--learnin_rate", "1"),
        files(data__jsonl=ROWS),
        says=("learnin_rate",),
    ),
    Case("train/missing-config", ["train", "pba", "--config", "{tmp}/nope.yaml"], says=(r"nope\.yaml",)),
    Case(
        "train/yaml-syntax",
        train("pba", config="{cfg}"),
        files(data__jsonl=ROWS, cfg__yaml="learning_rate: [1, 2\nbeta: 0.1\n"),
        says=(r"cfg\.yaml",),
    ),
    Case(
        "train/yaml-not-a-mapping",
        train("pba", config="{cfg}"),
        files(data__jsonl=ROWS, cfg__yaml="- 1\n- 2\n"),
        says=(r"cfg\.yaml",),
    ),
    Case(
        "train/yaml-list-learning-rate",
        ["train", "pba", "--config", "{cfg}"],
        files(cfg__yaml=yaml_config("pba", learning_rate=[1, 2], output_dir="{tmp}/out")),
        says=(r"cfg\.yaml", "learning_rate"),
    ),
    Case(
        "train/yaml-text-max-steps",
        ["train", "pba", "--config", "{cfg}"],
        files(cfg__yaml=yaml_config("pba", max_steps="abc", output_dir="{tmp}/out")),
        says=(r"cfg\.yaml", "max_steps"),
    ),
    Case(
        "train/yaml-unknown-key",
        ["train", "pba", "--config", "{cfg}"],
        files(cfg__yaml=yaml_config("pba", learning_rat=1, output_dir="{tmp}/out")),
        says=(r"cfg\.yaml|learning_rat", "learning_rat"),
    ),
    Case("train/negative-lr", train("pba", "--learning_rate", "-1"), files(data__jsonl=ROWS), says=("learning_rate",)),
    Case(
        "train/zero-batch",
        train("pba", "--per_device_train_batch_size", "0"),
        files(data__jsonl=ROWS),
        says=("per_device_train_batch_size",),
    ),
    Case(
        "train/missing-model",
        train("pba", "--model_name_or_path", "./no_model"),
        files(data__jsonl=ROWS),
        says=("no_model", "no such"),
    ),
    Case("train/missing-dataset", train("pba", dataset="./no_data.jsonl"), says=("no_data", "no such")),
    Case("train/empty-dataset", train("pba"), files(data__jsonl=""), says=(r"data\.jsonl", "empty")),
    Case(
        "train/malformed-json-line",
        train("pba"),
        files(data__jsonl=jsonl_with_bad_line(ROWS, 4)),
        says=(r"data\.jsonl", r"line 4\b"),
    ),
    Case(
        "train/missing-chosen",
        train("pba"),
        files(data__jsonl=without(ROWS, "chosen")),
        says=(r"data\.jsonl", "chosen"),
    ),
    Case(
        "train/null-prompt",
        train("pba"),
        files(data__jsonl=changed(ROWS, 2, prompt=None)),
        says=(r"data\.jsonl", ROW, "prompt"),
    ),
    Case(
        "train/int-chosen",
        train("ica"),
        files(data__jsonl=changed(ROWS, 2, chosen=7)),
        says=(r"data\.jsonl", ROW, "chosen"),
    ),
    Case(
        "train/bad-item-vector",
        train("pba"),
        files(
            data__jsonl=changed(
                ROWS,
                5,
                **{
                    "User-Generated Content": [
                        {**ROWS[5]["User-Generated Content"][0], "Preference Direction": [0.5] * 89}
                    ]
                },
            )
        ),
        says=(r"data\.jsonl", ROW, "User-Generated Content", "89"),
    ),
    Case(
        "train/dpore-missing-encoder",
        train("dpore", "--persona_encoder", "./no_encoder"),
        files(data__jsonl=ROWS),
        says=("no_encoder", "no such"),
    ),
    Case(
        "train/ica-every-row-too-long",
        train("ica", "--max_length", "24"),
        files(data__jsonl=ROWS),
        says=("max_length", r"\b8\b"),
    ),
    Case(
        "train/reward-on-alignx-rows",
        [
            "train",
            "reward",
            "--config",
            str(EXAMPLES / "configs" / "tiny" / "reward.yaml"),
            "--model_name_or_path",
            "{lm}",
            "--dataset_name",
            "{data}",
            "--dataset_test_split",
            "",
            "--output_dir",
            "{tmp}/out",
            *SMALL,
        ],
        files(data__jsonl=ROWS),
        says=(r"data\.jsonl", "history|multifacet"),
    ),
    Case(
        "train/reward-every-row-too-long",
        [
            "train",
            "reward",
            "--config",
            str(EXAMPLES / "configs" / "tiny" / "reward.yaml"),
            "--model_name_or_path",
            "{lm}",
            "--dataset_name",
            "{assets}/multifacet",
            "--dataset_test_split",
            "",
            "--output_dir",
            "{tmp}/out",
            *SMALL,
            "--max_length",
            "16",
        ],
        says=("max_length",),
    ),
    Case(
        "train/existing-output",
        train("pba"),
        files(data__jsonl=ROWS, out=lambda p, env: (p.mkdir(), (p / "keep.txt").write_text("keep"))),
        says=("out", "--resume|--overwrite"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "keep.txt"),
    ),
    Case("train/resume-without-run", train("pba", "--resume"), files(data__jsonl=ROWS), says=("checkpoint",)),
    Case(
        "train/print-config-masks-token",
        train("pba", "--hub_token", SECRET, "--print-config"),
        files(data__jsonl=ROWS),
        code=0,
    ),
    Case(
        "train/token-not-saved",
        train("pba", "--hub_token", SECRET, "--max_steps", "1"),
        files(data__jsonl=ROWS),
        code=0,
        output=None,
    ),
    Case(
        "train/resume-damaged-checkpoint",
        train("pba", "--resume", "--max_steps", "3"),
        files(data__jsonl=ROWS, out=lambda p, env: _damaged_run(p, env, "checkpoint-2", "model.safetensors")),
        says=("checkpoint-2", "checkpoint-1"),
        output=None,
    ),
    Case(
        "train/resume-pickled-optimizer",
        train("pba", "--resume", "--max_steps", "3"),
        files(data__jsonl=ROWS, out=lambda p, env: _damaged_run(p, env, "checkpoint-2", "optimizer.pt")),
        says=("checkpoint-2", r"optimizer\.pt"),
        output=None,
    ),
    Case(
        "train/resume-incomplete-checkpoint",
        train("pba", "--resume", "--max_steps", "2"),
        files(data__jsonl=ROWS, out=lambda p, env: _damaged_run(p, env, "checkpoint-2", "trainer_state.json")),
        code=0,
        output=None,
        check=lambda tmp, env, out: _assert_said(out, "checkpoint-1"),
    ),
    # h17sec: tokens in messages, NaN / inf, TRL's dispatched choices, model paths, resume edge cases, duplicate keys
    Case(
        "train/misspelled-token-flag",
        train("pba", "--hub_tokn", SECRET),
        files(data__jsonl=ROWS),
        says=("hub_tokn",),
    ),
    Case(
        "train/misspelled-token-flag-equals",
        train("pba", f"--hub-tokenn={SECRET}"),
        files(data__jsonl=ROWS),
        says=("hub-tokenn",),
    ),
    Case(
        "train/yaml-token-of-the-wrong-type",
        ["train", "pba", "--config", "{cfg}"],
        # Not SECRET: the input file would hold it. Another token, which the line must not show either.
        files(cfg__yaml=yaml_config("pba", hub_token=["hf_YamlOnlyToken0123456789"], output_dir="{tmp}/out")),
        says=(r"cfg\.yaml", "hub_token", r"^(?!.*YamlOnlyToken).*got \*\*\*"),
    ),
    Case(
        "train/yaml-nan-beta",
        ["train", "pba", "--config", "{cfg}"],
        files(cfg__yaml=yaml_config("pba", beta=float("nan"), output_dir="{tmp}/out")),
        says=(r"cfg\.yaml", "beta", "finite"),
    ),
    Case(
        "train/nan-lr", train("pba", "--learning_rate", "nan"), files(data__jsonl=ROWS), says=("learning_rate", "nan")
    ),
    Case(
        "train/inf-lr", train("pba", "--learning_rate", "inf"), files(data__jsonl=ROWS), says=("learning_rate", "inf")
    ),
    Case(
        "train/unknown-loss-type",
        train("pba", "--loss_type", "bogus"),
        files(data__jsonl=ROWS),
        says=("loss_type", "bogus", "sigmoid"),
    ),
    Case(
        "train/yaml-unknown-loss-type",
        ["train", "pba", "--config", "{cfg}"],
        files(cfg__yaml=yaml_config("pba", loss_type="bogus", output_dir="{tmp}/out")),
        says=(r"cfg\.yaml", "loss_type", "bogus"),
    ),
    Case(
        "train/unknown-f-divergence",
        train("dpore", "--f_divergence_type", "kl"),
        files(data__jsonl=ROWS),
        says=("f_divergence_type", "'kl'", "reverse_kl"),
    ),
    Case(
        "train/yaml-duplicate-key",
        train("pba", config="{cfg}"),
        files(data__jsonl=ROWS, cfg__yaml="learning_rate: 1.0e-5\nbeta: 0.1\nlearning_rate: 2.0e-5\n"),
        says=(r"cfg\.yaml", "learning_rate", "line 1", "line 3"),
    ),
    Case(
        "train/model-is-a-file",
        train("pba", "--model_name_or_path", "{data}"),
        files(data__jsonl=ROWS),
        says=(r"data\.jsonl", "is a file"),
    ),
    Case(
        "train/model-empty-folder",
        train("pba", "--model_name_or_path", "{empty}"),
        files(data__jsonl=ROWS, empty=lambda p, env: p.mkdir()),
        says=("empty", r"config\.json"),
    ),
    Case(
        "eval/model-empty-folder",
        eval_policy(model="{empty}"),
        files(data__jsonl=ROWS[:4], empty=lambda p, env: p.mkdir()),
        says=("empty", r"config\.json"),
    ),
    Case(
        "train/resume-deleted-weights",
        train("pba", "--resume", "--max_steps", "3"),
        files(
            data__jsonl=ROWS,
            out=lambda p, env: (_trained_run(p, env), (p / "checkpoint-2" / "model.safetensors").unlink()),
        ),
        says=(r"checkpoint-2/model\.safetensors", "missing", "checkpoint-1"),
        output=None,
    ),
    Case(
        "train/resume-checkpoint-is-a-file",
        train("pba", "--resume", "--max_steps", "3"),
        files(
            data__jsonl=ROWS,
            out=lambda p, env: (
                _trained_run(p, env),
                shutil.rmtree(p / "checkpoint-2"),
                (p / "checkpoint-2").write_text("keep"),
            ),
        ),
        says=("checkpoint-2", "is a file"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "checkpoint-2"),
    ),
    Case(
        "train/resume-finished-run",
        train("pba", "--resume"),
        files(data__jsonl=ROWS, out=lambda p, env: _trained_run(p, env)),
        says=("max_steps=2", "checkpoint-2"),
        output=None,
        check=lambda tmp, env, out: _assert_said(
            " ".join(sorted(p.name for p in (tmp / "out").glob("checkpoint-*"))), "^checkpoint-1 checkpoint-2$"
        ),
    ),
    # ------------------------------------------------------------------------------------------------- push-model
    Case("push-model/missing-folder", ["push-model", "{tmp}/no_run", "--to-dir", "{tmp}/out"], says=("no_run",)),
    Case(
        "push-model/not-a-run",
        ["push-model", "{run}", "--to-dir", "{tmp}/out"],
        files(run=lambda p, env: (p.mkdir(), (p / "notes.txt").write_text("x"))),
        says=("run",),
    ),
    Case(
        "push-model/no-target",
        ["push-model", "{run}"],
        files(run=lambda p, env: _trained_run(p, env)),
        says=("--repo-id|--to-dir",),
    ),
    Case(
        "push-model/half-written-weights",
        ["push-model", "{run}", "--to-dir", "{tmp}/out"],
        files(run=lambda p, env: (_trained_run(p, env), truncated(p / "model.safetensors"))),
        says=(r"model\.safetensors", "does not load"),
    ),
    Case(
        "push-model/offline-hub",
        ["push-model", "{run}", "--repo-id", "me/model"],
        files(run=lambda p, env: _trained_run(p, env)),
        says=("Hub|offline|unreachable|token",),
    ),
    # ---------------------------------------------------------------------------------------------- push-dataset
    Case(
        "push-dataset/missing-from-dir",
        ["push-dataset", "alignx", "--repo-id", "me/data", "--from-dir", "{tmp}/no_dir"],
        says=("no_dir",),
    ),
    Case(
        "push-dataset/no-source",
        ["push-dataset", "alignx", "--repo-id", "me/data"],
        says=("--source|--from-dir",),
    ),
    # ------------------------------------------------------------------------------------------- rejection-sample
    Case(
        "rejection-sample/missing-reward-model",
        ["rejection-sample", "--reward-model", "./no_rm", "--dataset", "{assets}/multifacet", "--output", "{tmp}/out"],
        says=("no_rm", "no such"),
    ),
    Case(
        "rejection-sample/keep-out-of-range",
        [
            "rejection-sample",
            "--reward-model",
            "{lm}",
            "--dataset",
            "{assets}/multifacet",
            "--output",
            "{tmp}/out",
            "--keep",
            "1.5",
        ],
        says=("keep",),
    ),
    # ------------------------------------------------------------------------------------------------------ space
    Case("space/unknown-name", ["space", "klingon"], says=("klingon",), output=None),
    Case(
        "space/file-missing-fields",
        ["space", "{space}"],
        files(space__json=json.dumps({"name": "mine", "dimensions": [{"index": 0, "name": "tone"}]})),
        says=(r"space\.json", "positive_label|negative_label"),
        output=None,
    ),
    Case(
        "space/file-not-json", ["space", "{space}"], files(space__json="dims: 3"), says=(r"space\.json",), output=None
    ),
    # ------------------------------------------------------------------------------------------------------- demo
    Case("demo/zero-epochs", ["demo", "--output", "{tmp}/out", "--epochs", "0"], says=("epochs",)),
    Case("demo/odd-rows", ["demo", "--output", "{tmp}/out", "--train-rows", "3"], says=("train.rows",)),
    Case(
        "demo/existing-output",
        ["demo", "--output", "{tmp}/out"],
        files(out=lambda p, env: (p.mkdir(), (p / "keep.txt").write_text("keep"))),
        says=("out", "already exists"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "keep.txt"),
    ),
    # ------------------------------------------------------------------------------------------- more of each
    Case(
        "build-alignx/zero-num-proc", build("alignx", "--num-proc", "0"), files(data__jsonl=ROWS), says=("num.proc",)
    ),
    Case(
        "synthetic/odd-personas",
        ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "4", "--num-personas", "3"],
        says=("personas",),
        output="{tmp}/out.jsonl",
    ),
    Case(
        "synthetic/history-bounds-swapped",
        ["synthetic", "alignx", "{tmp}/out.jsonl", "--rows", "4", "--min-history", "6", "--max-history", "2"],
        says=("history",),
        output="{tmp}/out.jsonl",
    ),
    Case("eval/zero-limit", eval_policy("--limit", "0"), files(data__jsonl=ROWS[:4]), says=("limit",)),
    Case("eval/zero-max-length", eval_policy("--max-length", "0"), files(data__jsonl=ROWS[:4]), says=("max.length",)),
    Case(
        "eval/extra-columns-and-unusual-text",
        eval_policy(),
        files(
            data__jsonl=[{**row, "extra": [1, 2], "prompt": row["prompt"] + " \u202e\U0001f600"} for row in ROWS[:4]]
        ),
        code=0,
        output=None,
    ),
    Case(
        "eval-encoder/aloe-format-on-alignx-rows",
        [
            "eval",
            "encoder",
            "--model",
            "{assets}/encoder",
            "--dataset",
            "{data}",
            "--output",
            "{tmp}/out.json",
            "--format",
            "aloe",
        ],
        files(data__jsonl=ROWS),
        says=(r"data\.jsonl", "profile|conversations|personality"),
        output="{tmp}/out.json",
    ),
    Case(
        "train/output-dir-is-a-file",
        train("pba"),
        files(data__jsonl=ROWS, out="I am a file"),
        says=("out",),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out", "I am a file"),
    ),
    Case(
        "train/resume-and-overwrite",
        train("pba", "--resume", "--overwrite"),
        files(data__jsonl=ROWS),
        says=("resume", "overwrite"),
    ),
    Case(
        "train/zero-max-train-samples",
        train("pba", "--max_train_samples", "0"),
        files(data__jsonl=ROWS),
        says=("max_train_samples",),
    ),
    Case(
        "train/empty-yaml",
        train("pba", config="{cfg}"),
        files(data__jsonl=ROWS, cfg__yaml=""),
        code=0,  # an empty config is no config: the flags carry the run
        output=None,
    ),
    Case(
        "train/extra-columns-and-unusual-text",
        train("pba", "--max_steps", "1"),
        files(
            data__jsonl=[
                {**row, "extra": i, "chosen": row["chosen"] + " \u202e\U0001f600 \u00e9"} for i, row in enumerate(ROWS)
            ]
        ),
        code=0,
        output=None,
    ),
    Case(
        "train/encoder-missing-column",
        [
            "train",
            "encoder",
            "--config",
            str(EXAMPLES / "configs" / "tiny" / "encoder.yaml"),
            "--model_name_or_path",
            "{assets}/encoder_backbone",
            "--dataset_name",
            "{data}",
            "--output_dir",
            "{tmp}/out",
            "--max_steps",
            "1",
        ],
        files(data__jsonl=without(ROWS, "User-Generated Content")),  # legal (benchmark files lack it), too thin
        says=(r"data\.jsonl", "two excerpts"),
    ),
    Case(
        "train/encoder-eval-fraction",
        [
            "train",
            "encoder",
            "--config",
            str(EXAMPLES / "configs" / "tiny" / "encoder.yaml"),
            "--model_name_or_path",
            "{assets}/encoder_backbone",
            "--dataset_name",
            "{data}",
            "--output_dir",
            "{tmp}/out",
            "--eval_fraction",
            "1.5",
        ],
        files(data__jsonl=ROWS),
        says=("eval_fraction",),
    ),
    Case(
        "train/encoder-empty-file",
        [
            "train",
            "encoder",
            "--config",
            str(EXAMPLES / "configs" / "tiny" / "encoder.yaml"),
            "--model_name_or_path",
            "{assets}/encoder_backbone",
            "--dataset_name",
            "{data}",
            "--output_dir",
            "{tmp}/out",
        ],
        files(data__jsonl=""),
        says=(r"data\.jsonl", "empty"),
    ),
    Case(
        "push-model/existing-target",
        ["push-model", "{run}", "--to-dir", "{target}"],
        files(
            run=lambda p, env: _trained_run(p, env),
            target=lambda p, env: (p.mkdir(), (p / "keep.txt").write_text("keep")),
        ),
        says=("target", "already exists"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "target" / "keep.txt"),
    ),
    Case(
        "push-model/bad-repo-id",
        ["push-model", "{run}", "--repo-id", "a/b/c"],
        files(run=lambda p, env: _trained_run(p, env)),
        says=("a/b/c",),
    ),
    Case(
        "push-dataset/offline-hub-with-token",
        ["push-dataset", "alignx", "--repo-id", "me/data", "--from-dir", "{built}"],
        files(built=lambda p, env: _built_alignx(p)),
        says=("Hub|offline|unreachable",),
    ),
    Case(
        "rejection-sample/missing-dataset",
        ["rejection-sample", "--reward-model", "{lm}", "--dataset", "./no_data.jsonl", "--output", "{tmp}/out"],
        says=("no_data", "no such"),
    ),
    Case("generate/good", generate("--limit", "2"), files(data__jsonl=ROWS[:4]), code=0, output=None),
    Case(
        "generate/model-not-a-model",
        generate(model="{tmp}"),
        files(data__jsonl=ROWS[:4]),
        says=("config.json|not a model|model folder",),
    ),
    Case(
        "generate/persona-format-for-other-rows",
        generate("--persona-format", "feedback"),
        files(data__jsonl=ROWS[:4]),
        says=("feedback", "alignx"),
    ),
    Case("generate/missing-dataset", generate(dataset="{tmp}/nope.jsonl"), says=("nope", "no such")),
    Case(
        "generate/null-prompt",
        generate(),
        files(data__jsonl=changed(ROWS[:4], 2, prompt=None)),
        says=(r"data\.jsonl", "line 3", "prompt"),
    ),
    Case(
        "generate/nan-temperature",
        generate("--temperature", "nan"),
        files(data__jsonl=ROWS[:4]),
        says=("temperature",),
    ),
    Case(
        "generate/preferences-of-another-dataset",
        generate("--preferences", "{prefs}"),
        files(data__jsonl=ROWS[:4], prefs=lambda p, env: _preferences_for(p, ROWS[4:8])),
        says=("prefs", "row|line"),
    ),
    Case("judge/unknown-protocol", judge("elo"), files(gen=responses_folder(RECORDS)), says=("elo",)),
    Case(
        "judge/pairwise-without-against",
        judge("pairwise-win"),
        files(gen=responses_folder(RECORDS)),
        says=("--against",),
    ),
    Case("judge/missing-folder", judge("persona-tailoring", responses="{tmp}/nope"), says=("nope",)),
    Case(
        "judge/not-json-line",
        judge("multifacet-rubric"),
        files(gen=responses_folder([RECORDS[0], "{oops", RECORDS[2]])),
        says=(r"responses\.jsonl", "line 2", "JSON"),
    ),
    Case(
        "judge/record-without-response",
        judge("multifacet-rubric"),
        files(gen=responses_folder([RECORDS[0], {k: v for k, v in RECORDS[1].items() if k != "response"}])),
        says=(r"responses\.jsonl", "line 2", "response"),
    ),
    Case(
        "judge/against-other-rows",
        judge("style-score", "--against", "{nohist}"),
        files(
            gen=responses_folder(RECORDS),
            nohist=responses_folder([response_record(i + 10) for i in range(3)]),
        ),
        says=("rows:", "against|match|differ"),
    ),
    Case(
        "judge/card-is-a-folder",
        judge("multifacet-rubric", "--model-card", "{card}"),
        files(gen=responses_folder(RECORDS), card=lambda p, env: p.mkdir()),
        says=("card",),
    ),
    Case(
        "infer-preferences/bad-inferencer",
        infer("{data}", inferencer="gpt"),
        files(data__jsonl=ROWS[:4]),
        says=("gpt", "llm, learned"),
    ),
    Case(
        "infer-preferences/multifacet-rows",
        infer("{gen}/responses.jsonl"),
        files(gen=responses_folder(RECORDS)),
        says=("responses\\.jsonl|alignx|columns?",),
    ),
    # An output that is, or holds, an input is refused even with --overwrite (it would delete the input).
    Case(
        "build-alignx/output-is-its-source-folder",
        ["build-dataset", "alignx", "--source", "{src}", "--output", "{src}", "--overwrite"],
        files(src=lambda p, env: write_jsonl(p / "rows.jsonl", ROWS)),
        says=("src: is the input", "choose another output"),
        output=None,
        check=lambda tmp, fill, out: _assert_untouched(tmp / "src" / "rows.jsonl", None),
    ),
    Case(
        "rejection-sample/output-holds-the-dataset",
        ["rejection-sample", "--reward-model", "{lm}", "--dataset", "{data}", "--output", "{tmp}", "--overwrite"],
        files(data__jsonl=ROWS[:2]),
        says=("holds the input", r"data\.jsonl"),
        output=None,
        check=lambda tmp, fill, out: _assert_untouched(tmp / "data.jsonl", None),
    ),
    Case(
        "judge/output-is-the-responses-folder",
        [*judge("multifacet-rubric")[:-2], "--output", "{gen}", "--overwrite"],
        files(gen=responses_folder(RECORDS)),
        says=("is the input",),
        output=None,
        check=lambda tmp, fill, out: _assert_untouched(tmp / "gen" / "responses.jsonl", None),
    ),
    Case(
        "judge/encoder-as-the-judge",
        [
            *judge("multifacet-rubric")[:5],
            "--judge",
            "transformers:{assets}/encoder_backbone",
            "--output",
            "{tmp}/out",
        ],
        files(gen=responses_folder(RECORDS)),
        says=("encoder_backbone", "not a causal .generative. language model"),
    ),
    Case("space/good", ["space", "psoups"], code=0, output=None),
    Case("space/missing-file", ["space", "{tmp}/nope.json"], says=(r"nope\.json",), output=None),
    # ------------------------------------------------------------------------------------- build-dataset aloe
    Case(
        "build-aloe/good", build("aloe", "--test-personas", "2"), files(data__jsonl=list(aloe_rows(8, 2, 3))), code=0
    ),
    Case(
        "build-aloe/missing-personality",
        build("aloe", "--test-personas", "2"),
        files(data__jsonl=changed(without(list(aloe_rows(8, 2, 3)), "personality"), 0, personality="calm")),
        says=(r"data\.jsonl", r"line 2\b", "personality", "expected a non-empty string"),
    ),
    Case(
        "build-aloe/wrong-type",
        build("aloe", "--test-personas", "2"),
        files(data__jsonl=changed(list(aloe_rows(8, 2, 3)), 4, profile=["a", "list"])),
        says=(r"data\.jsonl", r"line 5\b", "profile", "expected a non-empty string"),
    ),
    Case(
        "build-aloe/empty-conversation",
        build("aloe", "--test-personas", "2"),
        files(data__jsonl=changed(list(aloe_rows(8, 2, 3)), 2, conversations=[])),
        says=(r"data\.jsonl", r"line 3\b", "conversations", "non-empty list of turns"),
    ),
    Case(
        "build-aloe/chosen-not-preferred",
        build("aloe", "--test-personas", "2"),
        files(
            data__jsonl=changed(
                list(aloe_rows(8, 2, 3)),
                1,
                conversations=[{"user": "u", "assistant": {"preferred": "p", "rejected": "r"}, "chosen": "rejected"}],
            )
        ),
        says=(r"data\.jsonl", r"line 2\b", r"turn 1\b", "'chosen' is 'rejected', expected 'preferred'"),
    ),
    Case(
        "build-aloe/too-many-test-personas",
        build("aloe", "--test-personas", "8"),
        files(data__jsonl=list(aloe_rows(8, 2, 3))),
        says=("8 persona", "--test-personas"),
    ),
    *(
        Case(
            f"build-aloe/empty-{name}",
            build("aloe", "--test-personas", "2"),
            files(data__jsonl=changed(list(aloe_rows(8, 2, 3)), 1, conversations=[ok, ok, bad])),
            says=(
                r"data\.jsonl",
                r"line 2\b",
                r"turn 3\b",
                re.escape(field) + " to be a non-empty string",
            ),
        )
        for ok in [{"user": "u", "assistant": {"preferred": "p", "rejected": "r"}, "chosen": "preferred"}]
        for name, field, bad in [
            ("preferred", "'assistant'['preferred']", {"user": "u", "assistant": {"preferred": "", "rejected": "r"}}),
            ("rejected", "'assistant'['rejected']", {"user": "u", "assistant": {"preferred": "p", "rejected": " "}}),
            (
                "rejected-item",
                "'assistant'['rejected'][1]",
                {"user": "u", "assistant": {"preferred": "p", "rejected": ["r", ""]}},
            ),
            ("user", "'user'", {"user": "", "assistant": {"preferred": "p", "rejected": "r"}}),
        ]
    ),
    Case(
        "build-aloe/one-persona",
        build("aloe"),
        files(
            data__jsonl=[row for row in aloe_rows(2, 2, 3) if row["profile"] == next(aloe_rows(1, 1, 1))["profile"]]
        ),
        says=("1 persona", "at least 2 personas", "--test-personas 0"),
    ),
    Case(
        "build-aloe/one-persona-train-only",
        build("aloe", "--test-personas", "0"),
        files(data__jsonl=list(aloe_rows(1, 2, 3))),
        code=0,
    ),
    Case(
        "build-aloe/built-folder-as-source",
        build("aloe", source="{assets}/aloe"),
        says=("already a built ALOE dataset", "--dataset_name"),
    ),
    Case(
        "build-aloe/bad-rejected-option",
        build("aloe", "--rejected", "some"),
        files(data__jsonl=list(aloe_rows(8, 2, 3))),
        says=("--rejected", "'all' or 'first'"),
    ),
    Case(
        "synthetic-aloe/zero-turns",
        ["synthetic", "aloe", "--output", "{tmp}/out.jsonl", "--turns", "0"],
        says=("--turns must be at least 1",),
        output="{tmp}/out.jsonl",
    ),
    # ------------------------------------------------------------------------------------------------ eval nominal
    Case(
        "eval-nominal/unknown-task",
        nominal("--tasks", "no_such_task"),
        says=("no_such_task", "unknown task", "lm-eval ls tasks"),
    ),
    Case(
        "eval-nominal/encoder-as-the-model",
        nominal(model="{assets}/encoder_backbone"),
        says=("encoder_backbone", "not a causal .generative. language model"),
    ),
    Case("eval-nominal/missing-model", nominal(model="{tmp}/no_model"), says=("no_model", "no such")),
    Case(
        "eval-nominal/existing-output",
        nominal(),
        files(out=lambda p, env: p.mkdir() or (p / "keep.txt").write_text("keep")),
        says=("out", "already exists", "--overwrite"),
        output=None,
        check=lambda tmp, env, out: _assert_untouched(tmp / "out" / "keep.txt"),
    ),
    Case(
        "eval-nominal/missing-include-path",
        nominal("--include-path", "{tmp}/no_tasks"),  # one of two --include-path folders missing
        says=("--include-path", "no_tasks", "no such"),
    ),
    Case("eval-nominal/bad-device", nominal("--device", "tpu"), says=("--device", "cpu, cuda")),
    Case(
        "eval-nominal/persona-encoder-as-the-model",  # a sentence-transformers folder whose config.json is its own
        nominal(model="{assets}/encoder"),
        says=("encoder", "not a causal .generative. language model"),
    ),
    Case(
        "eval-nominal/a-gpu-torch-does-not-see",  # no GPU here: torch sees none; on a GPU machine: not 99 of them
        nominal("--device", "cuda:99"),
        says=("--device cuda:99", "torch sees"),
    ),
    Case("eval-nominal/unknown-dtype", nominal("--dtype", "float8"), says=("--dtype", "float16", "float8")),
    Case(
        "eval-nominal/hub-id-not-cached",
        nominal(model="my-org/not-there"),
        says=("my-org/not-there", "did not load"),
    ),
    Case(
        "eval-nominal/merge-into-a-folder-without-results",
        nominal("--merge-into", "{empty}"),
        files(empty=lambda p, env: p.mkdir()),
        says=("--merge-into", "empty", r"results\.json"),
    ),
]


# ------------------------------------------------------------------------------------------------ eval roleplay
def roleplay(*extra: str, personas: str = "{data}") -> list[str]:
    return [
        "eval", "roleplay", "--model", "{lm}", "--personas", personas, "--user-simulator", "scripted:aloe-user",
        "--judge", "scripted:aloe-judge", "--turns", "1", "--runs", "1", "--max-new-tokens", "2",
        "--output", "{tmp}/out", "--cache-dir", "{tmp}/cache", *extra,
    ]  # fmt: skip


PERSONA_ROWS = [
    {"profile": "A sailor in Lisbon.", "personality": "Terse."},
    {"profile": "A baker in Osaka.", "personality": "Chatty!"},
]

CASES.extend(
    [
        Case("roleplay/good", roleplay(personas="{assets}/aloe"), code=0, output=None),
        Case("roleplay/missing-personas", roleplay(personas="{tmp}/nope.jsonl"), says=("nope",)),
        Case(
            "roleplay/no-personality-column",
            roleplay(),
            files(data__jsonl=without(PERSONA_ROWS, "personality")),
            says=(r"data\.jsonl", "personality"),
        ),
        Case(
            "roleplay/empty-profile",
            roleplay(),
            files(data__jsonl=changed(PERSONA_ROWS, 1, profile=" ")),
            says=(r"data\.jsonl, line 2", "'profile'", "non-empty text"),
        ),
        Case(
            "roleplay/not-a-synthetic-persona-for-the-scripted-user",
            roleplay(),
            files(data__jsonl=PERSONA_ROWS),
            says=("scripted:aloe-user", "synthetic ALOE personas only"),
        ),
        Case(
            "roleplay/unknown-scripted-backend",
            [*roleplay(personas="{assets}/aloe"), "--judge", "scripted:gpt"],
            says=("'gpt'", "scripted:aloe-judge"),
        ),
        Case(
            "roleplay/labels-do-not-match-models",
            roleplay("--label", "a", "--label", "b", personas="{assets}/aloe"),
            says=("--label", "2 times for 1 --model"),
        ),
        Case("roleplay/zero-turns", roleplay("--turns", "0", personas="{assets}/aloe"), says=("--turns", ">= 1")),
        Case(
            "roleplay/model-card-with-two-models",
            roleplay("--model", "{lm}", "--label", "a", "--label", "b", "--model-card", "{tmp}/README.md"),
            files(data__jsonl=PERSONA_ROWS),
            says=("--model-card", "exactly one --model"),
        ),
        Case(
            "roleplay/broken-json-line",
            roleplay(),
            files(data__jsonl='{"profile": "A sailor.", "personality": "Terse."}\nnot json\n'),
            says=(r"data\.jsonl, line 2, column 1: not valid JSON",),
        ),
        Case(
            "roleplay/vllm-not-installed",
            roleplay("--model", "vllm:{lm}", "--label", "a", "--label", "b", personas="{assets}/aloe"),
            says=("vLLM", r'pip install "personalign\[vllm\]"'),
            marks=(pytest.mark.skipif("vllm" in sys.modules or bool(shutil.which("vllm")), reason="vLLM installed"),),
        ),
        Case(
            "roleplay/num-personas-beyond-the-file",
            roleplay("--num-personas", "100", personas="{assets}/aloe"),
            code=0,
            output=None,
            check=lambda tmp, env, out: _assert_said(out, "--num-personas 100 asked for more"),
        ),
    ]
)


def _preferences_for(path: Path, rows: list[dict[str, Any]]) -> None:
    """A preferences folder as `personalign infer-preferences` writes it, inferred for `rows` of another file."""
    from personalign.inference.preferences_file import history_sha1

    path.mkdir()
    lines = [
        {"id": f"other.jsonl:{i}", "row": i, "history_sha1": history_sha1(row), "preference_direction": [0.5] * 90,
         "profile": ""}
        for i, row in enumerate(rows)
    ]  # fmt: skip
    (path / "preferences.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (path / "inference.json").write_text(json.dumps({"inferencer": "llm", "model": "m", "num_rows": len(rows)}))


# ---------------------------------------------------------------------------------------------------- the checks
def _assert_untouched(path: Path, text: str | None = "keep") -> None:
    """`path` holds `text` (`None`: it is still there)."""
    assert path.is_file() and (text is None or path.read_text() == text), f"{path} was changed"


def _assert_said(out: str, pattern: str) -> None:
    assert re.search(pattern, out, re.IGNORECASE), f"expected the output to say {pattern!r}"


def _assert_card_created(card: Path, out: str) -> None:
    assert card.is_file() and "model-index" in card.read_text()
    assert "updated" not in out.lower(), "a card that did not exist was reported as updated"


_RUNS: dict[str, Path] = {}


def _trained_run(path: Path, env: dict[str, Any]) -> None:
    """A finished 2-step PBA run with checkpoints 1 and 2 (trained once per session, copied per case)."""
    if "pba" not in _RUNS:
        folder = env["cache"] / "pba_run"
        data = write_jsonl(env["cache"] / "rows.jsonl", ROWS)
        args = [a.format(data=data, lm=env["lm"], tmp=env["cache"], assets=env["assets"]) for a in train("pba")]
        args[args.index(f"{env['cache']}/out")] = str(folder)
        code, out = invoke(args)
        assert code == 0, out
        _RUNS["pba"] = folder
    shutil.copytree(_RUNS["pba"], path)


def _built_alignx(path: Path) -> None:
    """A folder written by `build-dataset alignx` (its raw config only)."""
    source = write_jsonl(path.parent / "built_source.jsonl", ROWS)
    code, _ = invoke(["build-dataset", "alignx", "--source", str(source), "--output", str(path), "--config", "raw"])
    assert code == 0


def _damaged_run(path: Path, env: dict[str, Any], checkpoint: str, name: str) -> None:
    _trained_run(path, env)
    target = path / checkpoint / name
    if name == "trainer_state.json":  # a kill during save: the state is written last
        target.unlink()
    elif name == "optimizer.pt":  # a pickle that is not plain tensors (refused by weights_only loading)
        import pickle

        target.write_bytes(pickle.dumps(_Unsafe()))
    else:
        truncated(target)


class _Unsafe:
    """An object whose unpickling would run code: `torch.load(weights_only=True)` must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo unpickled",))


def invoke(args: list[str]) -> tuple[int, str]:
    """The console script in-process (same `run` and error map as `python -m personalign`); returns the exit code
    and stdout + stderr. The caller captures output with capsys."""
    saved = sys.argv
    sys.argv = ["personalign", *args]
    try:
        run(app)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = saved
    return code, ""


def _all_bytes(folder: Path) -> list[tuple[Path, bytes]]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(PermissionError):
                found.append((path, path.read_bytes()))
    return found


def grade(case: Case, code: int, out: str, tmp: Path, output: str | None) -> tuple[str, list[str]]:
    """`("good" | "weak" | "bad", problems)` for one case's result."""
    bad, weak = [], []
    if "Traceback (most recent call last)" in out:
        bad.append("traceback")
    if "internal error" in out:
        bad.append("internal error")
    if code != case.code:
        (weak if code in (1, 2) and case.code in (1, 2) else bad).append(f"exit code {code}, expected {case.code}")
    if SECRET in out:
        bad.append("token in output")
    for path, data in _all_bytes(tmp):
        if SECRET.encode() in data:
            bad.append(f"token in {path.relative_to(tmp)}")
    staging = [p for p in tmp.rglob("*.partial")]
    if staging:
        bad.append(f"staging left: {[str(p.relative_to(tmp)) for p in staging]}")
    if case.code != 0:
        if output and Path(output).exists():
            bad.append(f"partial output left: {output}")
        error_lines = [line for line in out.splitlines() if line.startswith("error:")]
        if case.code == 1:
            if len(error_lines) != 1:
                (bad if not error_lines else weak).append(f"{len(error_lines)} error lines")
            line = error_lines[0] if error_lines else ""
        else:  # usage errors: the CLI framework's own message (exit 2)
            line = out
        for pattern in case.says:
            if not re.search(pattern, line, re.IGNORECASE):
                weak.append(f"does not say {pattern!r}: {line.strip()[:300]!r}")
    if case.check is not None:
        try:
            case.check(tmp, {}, out)
        except AssertionError as failure:
            bad.append(str(failure))
    return ("bad" if bad else "weak" if weak else "good"), bad + weak


def _report(case_id: str, verdict: str, problems: list[str]) -> None:
    target = os.environ.get("PERSONALIGN_MATRIX_REPORT")
    if not target:
        return
    path = Path(target)
    grades = json.loads(path.read_text()) if path.exists() else {}
    grades[case_id] = {"grade": verdict, "problems": problems}
    path.write_text(json.dumps(grades, indent=1, sort_keys=True))


@pytest.fixture(scope="module")
def env(tmp_path_factory, kit_cache, tiny_lm_path):
    from personalign.testing import write_tiny_assets

    assets = write_tiny_assets(tmp_path_factory.mktemp("matrix") / "tiny", 16, 8, cache_dir=kit_cache)
    return {"lm": Path(tiny_lm_path), "assets": assets, "cache": tmp_path_factory.mktemp("matrix_cache")}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_case(case: Case, env, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "case"
    work.mkdir()
    paths = case.setup(work, env) if case.setup else {}
    fill = {"tmp": str(work), "lm": str(env["lm"]), "assets": str(env["assets"]), **paths}
    capsys.readouterr()
    try:
        code, _ = invoke([arg.format(**fill) for arg in case.args])
    finally:
        for path in work.rglob("*"):  # undo read-only set-ups so the folder can be scanned and removed
            if path.is_dir() and not os.access(path, os.W_OK):
                path.chmod(0o755)
    captured = capsys.readouterr()
    out = captured.out + captured.err + caplog.text  # warnings of the library's loggers count as output
    output = case.output.format(**fill) if case.output else None
    verdict, problems = grade(case, code, out, work, output)
    _report(case.id, verdict, problems)
    assert verdict == "good", f"{case.id}: {verdict}: {problems}\n--- output ---\n{out[-3000:]}"


# ------------------------------------------------------------------------------------------ signals (subprocesses)
def _default_signals() -> None:
    # A test run started in the background of a non-interactive shell inherits SIGINT ignored, and Python keeps an
    # ignored SIGINT ignored: give the command the disposition a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """The commands a test starts; any still running at the end (a failed test) is killed."""
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PERSONALIGN_DEBUG": "", "HF_TOKEN": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "personalign", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_signals,
    )


def _wait_for_staging(cwd: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(cwd.glob(".*.partial")):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no staging folder appeared"
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_write_leaves_no_staging_and_says_so(tmp_path, started, sig, code):
    process = _cli("synthetic", "alignx", "out.jsonl", "--rows", "2000000", cwd=tmp_path)
    started.append(process)
    _wait_for_staging(tmp_path, process)
    time.sleep(0.3)
    process.send_signal(sig)
    out = process.communicate(timeout=60)[0]
    assert process.returncode == code, out
    assert "Traceback" not in out and SECRET not in out
    assert [line for line in out.splitlines() if line.startswith("error:")] == ["error: interrupted"] or (
        len([line for line in out.splitlines() if line.startswith("error:")]) == 1
    ), out
    assert not list(tmp_path.glob(".*.partial")) and not (tmp_path / "out.jsonl").exists()


def test_kill_9_leaves_a_staging_folder_that_the_next_run_removes(tmp_path, started):
    process = _cli("synthetic", "alignx", "out.jsonl", "--rows", "2000000", cwd=tmp_path)
    started.append(process)
    _wait_for_staging(tmp_path, process)
    process.kill()
    process.communicate(timeout=60)
    assert list(tmp_path.glob(".*.partial")), "kill -9 cannot clean up: a stale staging folder is expected"
    rerun = _cli("synthetic", "alignx", "out.jsonl", "--rows", "4", cwd=tmp_path)
    started.append(rerun)
    out = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, out
    assert (tmp_path / "out.jsonl").is_file() and not list(tmp_path.glob(".*.partial"))


def test_outputs_follow_the_umask(env, tmp_path, capsys):
    """Staging folders and temporary files are private while written; what lands follows the user's umask."""
    previous = os.umask(0o022)
    try:
        code, _ = invoke(["push-model", str(_RUNS.get("pba") or _make_run(env)), "--to-dir", str(tmp_path / "out")])
    finally:
        os.umask(previous)
    assert code == 0, capsys.readouterr()
    landed = [tmp_path / "out", *(tmp_path / "out").rglob("*")]
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in landed}
    assert all(mode == ("0o755" if Path(tmp_path, p).is_dir() else "0o644") for p, mode in modes.items()), modes


def _make_run(env: dict[str, Any]) -> Path:
    target = env["cache"] / "run_copy"
    if not target.exists():
        _trained_run(target, env)
    return _RUNS["pba"]


# ------------------------------------------------------------------ general data mixed into sft / dpo / dpore (K2)
from test_aloe_training import aloe_preference_rows, general_rows, write_aloe_folder  # noqa: E402

ALOE = aloe_preference_rows(4)
GENERAL = general_rows(12)


def aloe_folder(rows: list[dict[str, Any]]) -> Callable[[Path, dict], None]:
    """A setup entry writing a `build-dataset aloe` folder whose config `preference` trains on `rows`."""
    return lambda path, env: write_aloe_folder(path, 0, 2, train_rows=rows)


def train_aloe(method: str, *extra: str) -> list[str]:
    """`train METHOD` with its tiny ALOE config on the ALOE folder `{data}` and general data `{general}`."""
    args = train(method, "--general_dataset_name", "{general}", *extra)
    args[args.index("--config") + 1] = str(EXAMPLES / "configs" / "tiny" / f"{method}_aloe.yaml")
    return args


GENERAL_DATA_CASES = [
    Case(
        "train-sft/general-missing-file",
        train_aloe("sft", "--general_dataset_name", "{tmp}/nope.jsonl"),
        files(data=aloe_folder(ALOE), general__jsonl=GENERAL),
        says=(r"nope\.jsonl",),
    ),
    Case(
        "train-dpo/general-without-rejected",
        train_aloe("dpo"),
        files(data=aloe_folder(ALOE), general__jsonl=without(GENERAL, "rejected")),
        says=(r"general\.jsonl", "missing column", "rejected"),
    ),
    Case(
        "train-dpo/general-null-chosen",
        train_aloe("dpo"),
        files(data=aloe_folder(ALOE), general__jsonl=changed(GENERAL, 2, chosen=None)),
        says=(r"general\.jsonl", r"line 3\b", "chosen"),
    ),
    Case(
        "train-sft/general-text-without-prompt",
        train_aloe("sft"),
        files(data=aloe_folder(ALOE), general__jsonl=[{"chosen": "a", "rejected": "b"}] * 8),
        says=(r"general\.jsonl", "prompt"),
    ),
    Case(
        "train-sft/general-share-one",
        train_aloe("sft", "--general_share", "1.0"),
        files(data=aloe_folder(ALOE), general__jsonl=GENERAL),
        says=("general_share", r"\[0, 1\)"),
    ),
    Case(
        "train-dpo/general-share-negative",
        train_aloe("dpo", "--general_share", "-0.1"),
        files(data=aloe_folder(ALOE), general__jsonl=GENERAL),
        says=("general_share", r"\[0, 1\)"),
    ),
    Case(
        "train-sft/general-share-without-data",
        train_aloe("sft", "--general_dataset_name", ""),
        files(data=aloe_folder(ALOE), general__jsonl=GENERAL),
        says=("general_share", "general_dataset_name"),
    ),
    Case(
        "train-dpo/general-too-few-rows",
        train_aloe("dpo", "--general_share", "0.75"),
        files(data=aloe_folder(ALOE), general__jsonl=GENERAL),
        says=(r"general\.jsonl", "12 general rows", "needs 36"),
    ),
    Case(
        "train-dpo/general-conversational-into-text-rows",
        train_aloe("dpo"),
        files(data=aloe_folder([{"prompt": "hi", "chosen": "a", "rejected": "b"}] * 8), general__jsonl=GENERAL),
        says=(r"general\.jsonl", "conversational", "one format"),
    ),
    Case(
        "train-dpore/general-into-raw-alignx-rows",
        train("dpore", "--general_dataset_name", "{general}", "--general_share", "0.25"),
        files(data__jsonl=ROWS, general__jsonl=GENERAL),
        says=("raw AlignX rows", "build-dataset alignx"),
    ),
    Case(
        "train-pba/general-data-refused",
        train("pba", "--general_dataset_name", "{general}", "--general_share", "0.25"),
        files(data__jsonl=ROWS, general__jsonl=GENERAL),
        says=("train pba", "does not mix general data"),
    ),
    Case(
        "train-sft/missing-chosen",
        train_aloe("sft"),
        files(data=aloe_folder(without(ALOE, "chosen")), general__jsonl=GENERAL),
        says=(r"preference-\w+/train\.jsonl|data \[train\]", "missing column", "chosen"),
    ),
    Case(
        "train-dpo/null-rejected",
        train_aloe("dpo"),
        files(data=aloe_folder(changed(ALOE, 1, rejected=None)), general__jsonl=GENERAL),
        says=(r"preference-\w+/train\.jsonl|data \[train\]", r"row 1\b", "rejected"),
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in GENERAL_DATA_CASES])
def test_general_data_case(case: Case, env, tmp_path, capsys, caplog, monkeypatch):
    """The cases above, graded as `test_case` grades the matrix (appended after it, so listed on their own)."""
    test_case(case, env, tmp_path, capsys, caplog, monkeypatch)
