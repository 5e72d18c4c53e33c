"""`personalign demo` at its smallest size: every step runs and the report, plots and cards are written."""

import json

import pytest
from typer.testing import CliRunner

from personalign.cli import app
from personalign.demo import BASE_NAME, plot_report

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
