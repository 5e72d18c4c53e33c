import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import ClassVar

import pytest
from datasets import load_dataset
from typer.testing import CliRunner

from personalign.cli import app
from personalign.data.loading import load_configs
from personalign.data.synthetic import ALIGNX_FEATURES, alignx_rows
from personalign.hub.auth import HubError, resolve_token
from personalign.io import write_rows

runner = CliRunner()


def run_cli(*args, env=None):
    """The command line in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "personalign", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alignx_source")
    write_rows(alignx_rows(40, seed=2), folder / "train.parquet", ALIGNX_FEATURES, progress=False)
    write_rows(alignx_rows(10, seed=3), folder / "test.parquet", ALIGNX_FEATURES, progress=False)
    return folder


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    output = tmp_path_factory.mktemp("built") / "alignx"
    result = runner.invoke(
        app, ["build-dataset", "alignx", "--source", str(source), "--output", str(output), "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    return output


def test_built_folder_loads_back_with_identical_rows(built, source):
    from personalign.data.alignx import AlignXBuildConfig, build_alignx_configs

    expected = build_alignx_configs(source, config=AlignXBuildConfig(seed=4))
    for name in ("raw", "ica", "pba"):
        loaded = load_dataset(str(built), name)
        assert sorted(loaded) == ["test", "train"]
        for split in ("train", "test"):
            assert loaded[split].features == expected[name][split].features
            assert loaded[split].to_list() == expected[name][split].to_list()
    assert sorted(load_configs(built)) == ["ica", "pba", "raw"]


def test_card_has_configs_provenance_license_and_citation(built):
    import yaml

    card = (built / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["raw", "ica", "pba"]
    assert header["configs"][0]["default"] is True
    assert {"split": "train", "path": "pba/train-*.parquet"} in header["configs"][2]["data_files"]
    assert header["license"] == "other"
    info = {entry["config_name"]: entry for entry in header["dataset_info"]}
    splits = info["pba"]["splits"]
    assert [(s["name"], s["num_examples"]) for s in splits] == [("train", 40), ("test", 10)]
    expected_bytes = load_dataset(str(built), "pba", split="train").data.nbytes
    assert splits[0]["num_bytes"] == expected_bytes > 0
    assert info["pba"]["dataset_size"] == sum(s["num_bytes"] for s in splits)
    assert {"name": "profile", "dtype": "string"} in info["pba"]["features"]
    assert "| `pba` | train | 40 |" in card
    assert "'seed': 4" in card
    assert "From 1,000,000 Users to Every User" in card
    assert "source dataset's card for its license" in card


def test_card_reads_back_with_huggingface_hub(built):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(built / "README.md")
    assert card.data.pretty_name == "AlignX (personalign build)" and card.data.license == "other"
    assert [c["config_name"] for c in card.data["configs"]] == ["raw", "ica", "pba"]
    assert card.text.lstrip().startswith("# AlignX (personalign build)")


def test_build_refuses_to_overwrite_and_leaves_nothing_half_written(built, source):
    marker = (built / "README.md").read_text()
    result = run_cli("build-dataset", "alignx", "--source", str(source), "--output", str(built))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {built} already exists; pass --overwrite to replace it."
    assert (built / "README.md").read_text() == marker
    assert not [p for p in built.parent.iterdir() if p.name.endswith(".partial")]


def test_build_with_one_config_and_release_format(source, tmp_path):
    output = tmp_path / "release"
    result = runner.invoke(
        app,
        [
            "build-dataset",
            "alignx",
            "--source",
            str(source),
            "--output",
            str(output),
            "--config",
            "pba",
            "--prompt-format",
            "alignx_release",
        ],
    )
    assert result.exit_code == 0, result.output
    loaded = load_dataset(str(output), "pba", split="train")
    assert loaded[0]["prompt"].startswith("<|start_header_id|>system")
    assert sorted(p.name for p in output.iterdir()) == ["README.md", "pba"]


def test_malformed_rows_fail_with_one_line_and_no_output(tmp_path):
    rows = list(alignx_rows(4, seed=0))
    rows[3]["Preference Direction"] = [0.5] * 91
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "out"
    result = run_cli("build-dataset", "alignx", "--source", str(tmp_path / "src"), "--output", str(output))
    assert result.returncode == 1
    # progress bars may precede it; the error itself is one line, with no traceback
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "train.jsonl, line 4, column 'Preference Direction': preference vector has length 91" in errors[0]
    assert not output.exists()


def test_push_without_token_fails_early_with_one_line(monkeypatch, built):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(HubError, match="no Hugging Face token found"):
        resolve_token()
    env = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}
    env["HF_HOME"] = str(built.parent / "empty_hf_home")  # no saved login
    result = run_cli("push-dataset", "alignx", "--repo-id", "me/x", "--from-dir", str(built), env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no Hugging Face token found: set HF_TOKEN or run `hf auth login` (the token is never printed)."
    ]


class FakeApi:
    calls: ClassVar[list] = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", repo_id, kwargs["repo_type"], kwargs["private"]))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_file(self, **kwargs):
        FakeApi.calls.append(("upload_file", kwargs["path_in_repo"], kwargs["path_or_fileobj"][:3]))


def test_push_sends_the_card_then_every_config(monkeypatch, built):
    from datasets import DatasetDict

    secret = "hf_abcdefghijklmnopqrstuvwxyz123456"
    monkeypatch.setenv("HF_TOKEN", secret)
    FakeApi.calls = []
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)

    def fake_push(self, repo_id, config_name="default", set_default=None, private=None, token=None, data_dir=None):
        assert token == secret
        FakeApi.calls.append(("push_to_hub", repo_id, config_name, set_default, data_dir, sorted(self)))

    monkeypatch.setattr(DatasetDict, "push_to_hub", fake_push)
    result = runner.invoke(
        app, ["push-dataset", "alignx", "--repo-id", "me/alignx", "--from-dir", str(built), "--private"]
    )
    assert result.exit_code == 0, result.output
    assert FakeApi.calls == [
        ("create_repo", "me/alignx", "dataset", True),
        ("upload_file", "README.md", b"---"),
        ("push_to_hub", "me/alignx", "raw", True, "raw", ["test", "train"]),
        ("push_to_hub", "me/alignx", "ica", False, "ica", ["test", "train"]),
        ("push_to_hub", "me/alignx", "pba", False, "pba", ["test", "train"]),
    ]
    assert secret not in result.output


def test_hub_errors_never_show_the_token(monkeypatch, built):
    from huggingface_hub.errors import HfHubHTTPError

    secret = "hf_zyxwvutsrqponmlkjihgfedcba654321"
    monkeypatch.setenv("HF_TOKEN", secret)

    class FailingApi(FakeApi):
        def create_repo(self, repo_id, **kwargs):
            response = SimpleNamespace(headers={}, request=None)
            raise HfHubHTTPError(f"401 Unauthorized for token {secret}", response=response)

    monkeypatch.setattr("huggingface_hub.HfApi", FailingApi)
    with pytest.raises(HubError) as caught:
        from personalign.hub.datasets import push_dataset

        push_dataset(load_configs(built), "me/alignx", "card")
    assert secret not in str(caught.value) and "***" in str(caught.value)


def test_push_needs_exactly_one_source(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    result = runner.invoke(app, ["push-dataset", "alignx", "--repo-id", "me/x"])
    assert result.exit_code != 0
    assert "exactly one of --source" in str(result.exception)


def test_unreachable_hub_is_one_clear_error(monkeypatch, built):
    monkeypatch.setenv("HF_TOKEN", "hf_offline_token_value")

    class OfflineApi(FakeApi):
        def create_repo(self, repo_id, **kwargs):
            raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr("huggingface_hub.HfApi", OfflineApi)
    result = runner.invoke(app, ["push-dataset", "alignx", "--repo-id", "me/alignx", "--from-dir", str(built)])
    assert result.exit_code != 0
    assert isinstance(result.exception, HubError)
    assert str(result.exception) == "the Hugging Face Hub is unreachable (ConnectionError); the push stopped."


def test_unknown_config_names_are_refused(monkeypatch, built):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    result = runner.invoke(
        app, ["push-dataset", "alignx", "--repo-id", "me/x", "--from-dir", str(built), "--config", "dpo"]
    )
    assert result.exit_code != 0
    assert str(result.exception) == f"{built} has no config 'dpo'; choose from raw, ica, pba"


@pytest.fixture
def datasets_log():
    """Messages the `datasets` loggers emit (its root logger does not propagate, so caplog alone misses them)."""
    import logging

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    library_logger = logging.getLogger("datasets")
    library_logger.addHandler(handler)
    yield messages
    library_logger.removeHandler(handler)


def test_built_folders_load_without_dataset_info_warnings(built, tmp_path, datasets_log):
    import re

    from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows

    write_rows(
        multifaceted_rows(12, seed=0), tmp_path / "mf_src" / "train.parquet", MULTIFACETED_FEATURES, progress=False
    )
    multifacet = tmp_path / "mf"
    result = runner.invoke(
        app, ["build-dataset", "multifacet-cf", "--source", str(tmp_path / "mf_src"), "--output", str(multifacet)]
    )
    assert result.exit_code == 0, result.output
    for folder, names in ((built, ("raw", "ica", "pba")), (multifacet, ("counterfactual", "responses"))):
        for name in names:
            loaded = load_dataset(str(folder), name)
            assert all(len(split) > 0 for split in loaded.values())
    assert not [m for m in datasets_log if "malformed" in m or "Ignoring part of dataset_info" in m], datasets_log
    # the capture works: the same card without num_bytes is the warning this guards against
    card = multifacet / "README.md"
    card.write_text(re.sub(r"\n\s*num_bytes: \d+", "", card.read_text()))
    load_dataset(str(multifacet), "responses")
    assert any("malformed" in m for m in datasets_log)


def test_split_num_bytes_follows_the_selected_rows():
    """`split_num_bytes` reads `datasets`' internal `Dataset._indices`: a `select` view counts only its rows' share."""
    from datasets import Dataset

    from personalign.hub.datasets import split_num_bytes

    full = Dataset.from_dict({"text": ["x" * 100] * 40})
    assert split_num_bytes(full) == full.data.nbytes > 4000
    view = full.select(range(0, 40, 4))  # not contiguous: `datasets` keeps an indices mapping
    assert view._indices is not None  # the attribute this function relies on still exists
    assert split_num_bytes(view) == full.data.nbytes // 4
    assert split_num_bytes(view.flatten_indices()) == pytest.approx(full.data.nbytes / 4, rel=0.05)
