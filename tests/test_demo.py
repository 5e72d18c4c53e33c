"""`personalign demo` at its smallest size: every step runs and the report, plots and cards are written."""

import json
import sys

import pytest
from typer.testing import CliRunner

from personalign import demo
from personalign.cli import app, run
from personalign.demo import BASE_NAME, INCOMPLETE_MARKER, fresh_output, plot_report, run_demo

runner = CliRunner()


def test_demo_runs_end_to_end_at_the_smallest_size(tmp_path, kit_cache, monkeypatch):
    monkeypatch.setenv("PERSONALIGN_TESTING_CACHE", str(kit_cache))  # the tiny models built once per test run
    output = tmp_path / "demo"
    result = runner.invoke(
        app,
        [
            "demo",
            "--output",
            str(output),
            "--train-rows",
            "32",
            "--test-rows",
            "16",
            "--epochs",
            "1",
            "--encoder-steps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((output / "report.json").read_text())
    assert set(report["models"]) == {BASE_NAME, "dpore", "pba"}
    for metrics in report["models"].values():
        assert 0.0 <= metrics["alignment_accuracy"] <= 1.0 and 0.0 <= metrics["flip_rate"] <= 1.0
    assert "recall@1" in report["encoder"]["after"]
    assert (output / "report.png").read_bytes().startswith(b"\x89PNG")
    assert (output / "eval" / "results.json").exists()
    for card in ("dpore.md", "pba.md", "encoder.md"):
        assert (output / "cards" / card).read_text().startswith("---")
    assert "re_lambda" in (output / "cards" / "dpore.md").read_text()

    refused = runner.invoke(app, ["demo", "--output", str(output), "--train-rows", "32"])
    assert isinstance(refused.exception, FileExistsError)  # an earlier report is never replaced silently


def test_report_plot(tmp_path):
    path = plot_report(
        {"base": {"alignment_accuracy": 0.5, "flip_rate": 0.1}, "pba": {"alignment_accuracy": 0.8, "flip_rate": None}},
        tmp_path / "report.png",
    )
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("rows", [3])
def test_odd_row_counts_are_refused(tmp_path, rows):
    from personalign.demo import write_demo_data

    with pytest.raises(ValueError, match="even"):
        write_demo_data(tmp_path / "data", rows, 16)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--epochs", "0", "error: epochs must be an integer >= 1, got 0 (CLI: --epochs)."),
        ("--encoder-steps", "-1", "error: encoder_steps must be an integer >= 1, got -1 (CLI: --encoder-steps)."),
        ("--train-rows", "9", "error: num_train_rows must be an even integer >= 8 "),
        ("--train-rows", "4", "error: num_train_rows must be an even integer >= 8 "),
        ("--test-rows", "0", "error: num_test_rows must be an even integer >= 2 "),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, option, value, message):
    output = tmp_path / "demo"
    monkeypatch.setattr(sys, "argv", ["personalign", "demo", "--output", str(output), option, value])
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(lines) == 1 and lines[0].startswith(message), lines
    assert list(tmp_path.iterdir()) == []


def test_a_failed_demo_leaves_nothing_and_keeps_the_previous_output(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("a step failed")

    monkeypatch.setattr(demo, "write_tiny_assets", fail)
    output = tmp_path / "demo"
    with pytest.raises(RuntimeError, match="a step failed"):
        run_demo(output, 8, 2, 1, 1, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []  # nothing left: the corrected rerun is not refused
    output.mkdir()
    (output / "report.json").write_text("{}")
    with pytest.raises(RuntimeError, match="a step failed"):
        run_demo(output, 8, 2, 1, 1, overwrite=True, log=lambda line: None)
    assert [p.name for p in tmp_path.iterdir()] == ["demo"] and (output / "report.json").read_text() == "{}"


def test_a_killed_demos_folder_is_replaced(tmp_path):
    output = tmp_path / "demo"
    output.mkdir()
    (output / INCOMPLETE_MARKER).touch()
    (output / "assets").mkdir()
    logged = []
    with fresh_output(output, log=logged.append) as folder:
        assert folder == output and sorted(p.name for p in output.iterdir()) == [INCOMPLETE_MARKER]
        (folder / "report.json").write_text("{}")
    assert [p.name for p in output.iterdir()] == ["report.json"]
    assert logged == [f"removing {output}, left incomplete by an interrupted demo"]
    with pytest.raises(FileExistsError), fresh_output(output):
        pass
