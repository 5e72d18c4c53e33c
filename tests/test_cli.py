import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import personalign
from personalign.cli import app

runner = CliRunner()


def run_cli(*args, cwd=None):
    """The installed console entry point, in a subprocess (as a user runs it)."""
    env = {**os.environ, "PERSONALIGN_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "personalign", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"personalign {personalign.__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "synthetic" in result.output and "space" in result.output


def test_import_is_light():
    code = (
        "import sys, personalign; print(personalign.__version__); print('torch' in sys.modules, 'trl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [personalign.__version__, "False", "False"]


def test_synthetic_alignx_command_writes_the_dataset(tmp_path):
    output = tmp_path / "alignx.jsonl"
    result = runner.invoke(app, ["synthetic", "alignx", str(output), "--rows", "6", "--seed", "2", "--with-metadata"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 6
    assert {"Preference Direction", "persona_id", "counterfactual_id"} <= set(rows[0])


def test_synthetic_multifaceted_command_writes_parquet(tmp_path):
    from datasets import load_dataset

    output = tmp_path / "mf.parquet"
    result = runner.invoke(app, ["synthetic", "multifaceted", str(output), "--instructions", "4"])
    assert result.exit_code == 0, result.output
    assert len(load_dataset("parquet", data_files=str(output), split="train")) == 12


def test_existing_output_is_refused_with_one_line(tmp_path):
    output = tmp_path / "alignx.jsonl"
    output.write_text("keep me\n")
    result = run_cli("synthetic", "alignx", str(output), "--rows", "2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {output} already exists; pass overwrite=True (CLI: --overwrite) to replace it."
    ]
    assert "Traceback" not in result.stderr
    assert output.read_text() == "keep me\n"
    assert run_cli("synthetic", "alignx", str(output), "--rows", "2", "--overwrite").returncode == 0
    assert len(output.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synthetic", "alignx", "OUT.jsonl", "--rows", "3"], "error: num_rows must be a non-negative even number"),
        (["synthetic", "alignx", "OUT.csv", "--rows", "2"], "error: OUT.csv: unsupported output format '.csv'"),
        (["space", "nope"], "error: unknown preference space 'nope'"),
    ],
)
def test_bad_input_exits_non_zero_with_one_readable_line(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_space_command_lists_dimensions():
    result = runner.invoke(app, ["space", "psoups"])
    assert result.exit_code == 0
    assert "Prefers concise answers" in result.output
