"""`personalign train` (YAML configs with TrlParser semantics, device policy, resume), the example configs, and
`personalign push-model` (card, layout, local round trip, Hub upload with a fake client)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from personalign.cli import app
from personalign.cli.train import (
    accelerate_command,
    dpo_dispatch_values,
    parse_train_arguments,
    read_yaml_config,
    summary_lines,
)
from personalign.errors import InputError
from personalign.hub.run_record import RUN_RECORD, changed_fields
from personalign.scripts.utils import device_policy

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CPU = lambda: (False, False)  # noqa: E731

# The smallest run that still trains: 2 steps of 4 rows, checkpoints at every step.
SMALL = [
    "--max_steps", "2", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
    "--save_steps", "1", "--logging_steps", "1", "--max_length", "512", "--disable_tqdm", "true",
]  # fmt: skip


@pytest.fixture(scope="module")
def assets(tmp_path_factory, kit_cache):
    from personalign.testing import write_tiny_assets

    return write_tiny_assets(tmp_path_factory.mktemp("tiny") / "tiny", 16, 8, cache_dir=kit_cache)


def cli(*args):
    """The CLI as a user runs it (one-line errors come from the console entry point)."""
    env = {**os.environ, "PERSONALIGN_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "personalign", *args], capture_output=True, text=True, env=env, timeout=300
    )


def tiny_args(assets, method, output_dir):
    return [
        "train", method, "--config", str(EXAMPLES / "configs" / "tiny" / f"{method}.yaml"),
        "--model_name_or_path", str(assets / "causal_lm"), "--dataset_name", str(assets / "alignx"),
        "--output_dir", str(output_dir), *SMALL,
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------- parsing (no models)
def test_yaml_values_are_defaults_and_flags_override_them(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "model_name_or_path: some/model\ndataset_name: some/data\nlearning_rate: 0.001\nre_lambda: 2.5\n"
        "beta: 0.3\nuse_peft: true\nlora_r: 4\nenv:\n  PERSONALIGN_TEST_ENV: from-yaml\n"
    )
    script, dpore, model, notice = parse_train_arguments(
        "dpore", ["--config", str(config), "--re_lambda", "0.5", "--output_dir", str(tmp_path / "out")], CPU
    )
    assert dpore.re_lambda == 0.5  # the flag wins
    assert dpore.learning_rate == 0.001 and dpore.beta == 0.3  # YAML values
    assert dpore.re_placement == "margin"  # untouched default
    assert (model.model_name_or_path, model.use_peft, model.lora_r) == ("some/model", True, 4)
    assert script.dataset_name == "some/data"
    assert os.environ.pop("PERSONALIGN_TEST_ENV") == "from-yaml"
    assert dpore.use_cpu and not dpore.bf16 and "CPU" in notice
    changed = changed_fields(dpore)
    # Only what the YAML and the flags set (and the device policy's switch): not the values transformers derives
    # from the defaults (accelerator_config as an object, debug / report_to as lists, pin memory off on a CPU).
    assert changed == {"learning_rate": 0.001, "beta": 0.3, "re_lambda": 0.5, "bf16": False, "use_cpu": True}
    assert changed_fields(model) == {"model_name_or_path": "some/model", "use_peft": True, "lora_r": 4}


def test_unknown_yaml_key_and_unknown_flag_are_errors_naming_them(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("model_name_or_path: m\ndataset_name: d\nre_lamda: 5\n")
    with pytest.raises(ValueError, match=r"cfg.yaml: unknown key\(s\) 're_lamda'.*DPOREConfig"):
        parse_train_arguments("dpore", ["--config", str(config)], CPU)
    config.write_text("model_name_or_path: m\ndataset_name: d\n")
    with pytest.raises(ValueError, match=r"unknown option.*--no_such_flag"):
        parse_train_arguments("pba", ["--config", str(config), "--no_such_flag", "1"], CPU)
    with pytest.raises(ValueError, match="re_lambda"):  # a PBA config has no DPORE fields
        parse_train_arguments("pba", ["--config", str(config), "--re_lambda", "1"], CPU)
    with pytest.raises(ValueError, match="invalid float value"):
        parse_train_arguments("pba", ["--config", str(config), "--learning_rate", "fast"], CPU)
    with pytest.raises(ValueError, match="set dataset_name"):
        parse_train_arguments("pba", ["--model_name_or_path", "m"], CPU)
    config.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a YAML mapping"):
        read_yaml_config(config)
    with pytest.raises(ValueError, match="unknown method 'kto'"):
        parse_train_arguments("kto", [], CPU)


def test_a_key_set_twice_in_the_yaml_file_names_both_lines(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("learning_rate: 1.0e-5\nbeta: 0.1\nlearning_rate: 2.0e-5\n")
    with pytest.raises(InputError) as error:
        read_yaml_config(config)
    assert str(error.value) == f"{config}: key 'learning_rate' is set twice (line 1 and line 3); keep one."
    config.write_text("env:\n  A: 1\n  A: 2\n")
    with pytest.raises(InputError, match="key 'A' is set twice \\(line 2 and line 3\\)"):
        read_yaml_config(config)
    # A merge key's values may be overridden (that is what it is for); the same key in two mappings is no repeat.
    config.write_text("base: &base {beta: 0.1}\nother:\n  <<: *base\n  beta: 0.2\nmore: {beta: 0.3}\n")
    assert read_yaml_config(config)["other"] == {"beta": 0.2}


def test_the_loss_types_read_from_trl_s_dispatch_match_its_documented_values():
    """`dpo_dispatch_values` reads TRL's trainer source (an internal): pin it against `DPOConfig`'s help texts, so a
    TRL that renames or moves its dispatch fails here, not in a user's run."""
    import dataclasses
    import re

    from trl import DPOConfig

    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(DPOConfig)}
    documented_losses = re.findall(r"`'(\w+)'`", helps["loss_type"].split("If multiple")[0])
    documented_divergences = re.findall(r"`(\w+)`", helps["f_divergence_type"].split("Only the loss types")[0])
    values = dpo_dispatch_values()
    assert sorted(values["loss_type"]) == sorted(documented_losses) and "sigmoid" in values["loss_type"]
    assert sorted(values["f_divergence_type"]) == sorted(documented_divergences)


def test_device_policy():
    values = {"bf16": True, "fp16": False, "use_cpu": False}
    assert "fp32" in device_policy(values, cuda_available=False, bf16_supported=False)
    assert values == {"bf16": False, "fp16": False, "use_cpu": True}
    values = {"bf16": None, "fp16": False, "use_cpu": False}
    assert device_policy(values, cuda_available=True, bf16_supported=True) is None and values["bf16"] is True
    values = {"bf16": None, "fp16": False, "use_cpu": False}
    assert "fp16" in device_policy(values, cuda_available=True, bf16_supported=False)
    assert (values["bf16"], values["fp16"]) == (False, True)
    values = {"bf16": False, "fp16": False, "use_cpu": False}  # fp32 on a GPU when asked
    assert device_policy(values, cuda_available=True, bf16_supported=True) is None and values["bf16"] is False
    assert device_policy({"learning_rate": 1.0}, cuda_available=False, bf16_supported=False) is None


@pytest.mark.parametrize("path", sorted((EXAMPLES / "configs").rglob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_config_parses_without_unknown_keys(path):
    methods = ("dpore", "dpo", "sft", "pba", "ica", "reward", "encoder", "preference-inferencer")
    method = next(m for m in methods if path.stem.startswith(m))
    config = yaml.safe_load(path.read_text())
    method = "dpore" if method == "dpo" and "re_lambda" in config else method  # DPORE at lambda 0
    # Parsed here with the CPU policy (building a bf16 config needs a GPU); every key must still be known, and none
    # deprecated (transformers 5 renamed `gradient_checkpointing` to `activation_checkpointing`; TRL's default of the
    # old name warns unless a config sets the new one).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, parsed, _, _ = parse_train_arguments(method, ["--config", str(path)], CPU)
    assert not [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    for key, value in config.items():
        if (
            hasattr(parsed, key)
            and key not in ("bf16", "use_cpu", "report_to")
            and not isinstance(value, (list, dict))
        ):
            assert getattr(parsed, key) == value or str(getattr(parsed, key)).endswith(str(value)), key
    if "/gpu/" in path.as_posix():
        assert config["bf16"] is True and "GPU config" in path.read_text()


@pytest.mark.parametrize("name", ["zero3", "fsdp"])
def test_accelerate_configs_are_valid(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(EXAMPLES / "accelerate" / f"{name}.yaml"))
    assert (
        str(getattr(config.distributed_type, "value", config.distributed_type))
        == {"zero3": "DEEPSPEED", "fsdp": "FSDP"}[name]
    )
    assert (
        config.num_processes == 8 and str(getattr(config.mixed_precision, "value", config.mixed_precision)) == "bf16"
    )
    if name == "zero3":
        assert config.deepspeed_config["zero_stage"] == 3
    else:
        assert config.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"


def test_num_processes_goes_through_accelerate_launch():
    command = accelerate_command("pba", ["--config", "c.yaml", "--lr", "1"], 8, "examples/accelerate/zero3.yaml")
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[3:7] == ["--num_processes", "8", "--config_file", "examples/accelerate/zero3.yaml"]
    assert command[7:] == ["-m", "personalign", "train", "pba", "--config", "c.yaml", "--lr", "1"]


def test_num_processes_on_a_machine_without_cuda_starts_that_many_cpu_processes():
    # accelerate's `--cpu` (or a MULTI_CPU config without an MPI hostfile) starts one process; `--multi_gpu` starts N
    # through torch.distributed.run, and each runs on CPU with gloo (tests/test_multiprocess.py runs it).
    command = accelerate_command("pba", ["--config", "c.yaml"], 2, cuda_available=False)
    launcher = command[: command.index("-m", 3)]
    assert launcher[3:5] == ["--num_processes", "2"] and "--multi_gpu" in launcher and "--cpu" not in launcher
    assert command[-5:] == ["personalign", "train", "pba", "--config", "c.yaml"]
    # A config file decides the launcher (unchanged on GPUs or CPU), and one process launches nothing extra.
    with_config = accelerate_command("pba", [], 2, "examples/accelerate/fsdp.yaml", cuda_available=False)
    assert "--multi_gpu" not in with_config and "--config_file" in with_config
    assert "--multi_gpu" not in accelerate_command("pba", [], 8, cuda_available=True)


def test_print_config_shows_the_resolved_values(tmp_path):
    result = runner.invoke(
        app,
        ["train", "pba", "--config", str(EXAMPLES / "configs" / "tiny" / "pba.yaml"), "--beta", "0.25",
         "--print-config"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.stdout)
    assert resolved["config"]["beta"] == 0.25 and resolved["config"]["max_history_items"] == 4
    assert resolved["model"]["model_name_or_path"] == "runs/tiny/causal_lm"


def test_print_config_with_accelerate_prints_and_launches_nothing(monkeypatch):
    def launched(command):
        raise AssertionError(f"launched {command}")

    monkeypatch.setattr(subprocess, "call", launched)
    config = str(EXAMPLES / "configs" / "tiny" / "pba.yaml")
    result = runner.invoke(app, ["train", "pba", "--config", config, "--num-processes", "2", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "would launch:" in result.stderr and "--num_processes 2" in result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["model"]["model_name_or_path"] == "runs/tiny/causal_lm"
    # a bad key fails once, before anything is launched
    result = runner.invoke(app, ["train", "pba", "--config", config, "--num-processes", "2", "--learning_rat", "1"])
    assert result.exit_code != 0 and "learning_rat" in str(result.exception or result.output)


@pytest.mark.parametrize(
    "flag, value", [("learning_rate", "-5"), ("per_device_train_batch_size", "0"), ("beta", "-1")]
)
def test_values_that_must_be_positive_are_refused_naming_the_flag(flag, value):
    config = str(EXAMPLES / "configs" / "tiny" / "pba.yaml")
    with pytest.raises(InputError, match=f"--{flag} must be above 0, got"):
        parse_train_arguments("pba", ["--config", config, f"--{flag}", value])


@pytest.mark.parametrize(
    "method, flags, message",
    [
        ("pba", ["--model_name_or_path", "./missing_model"], "model ./missing_model: no such file or folder"),
        ("dpore", ["--persona_encoder", "/missing/encoder"], "persona encoder /missing/encoder: no such file"),
    ],
)
def test_a_missing_local_model_is_named_not_sent_to_the_hub(tmp_path, method, flags, message):
    """A missing local folder used to reach the Hub client, whose error is about the form of repo ids."""
    from personalign.scripts.utils import start_run

    config = str(EXAMPLES / "configs" / "tiny" / f"{method}.yaml")
    (tmp_path / "config.json").write_text("{}")
    model = ["--model_name_or_path", str(tmp_path)]  # exists, a model folder
    script_args, training_args, model_args, _ = parse_train_arguments(method, ["--config", config, *model, *flags])
    with pytest.raises(InputError, match=message):
        start_run(method, script_args, training_args, model_args)


def test_bad_config_exits_with_one_line(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("model_name_or_path: m\ndataset_name: d\nlearning_rat: 1\n")
    result = cli("train", "pba", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "learning_rat" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------ training (tiny model)
def test_train_pba_then_resume_from_the_last_checkpoint(assets, tmp_path):
    output = tmp_path / "pba"
    result = runner.invoke(app, [*tiny_args(assets, "pba", output), "--dataset_test_split", "test"])
    assert result.exit_code == 0, result.output
    record = json.loads((output / RUN_RECORD).read_text())
    assert record["method"] == "pba" and record["train_metrics"]["train_loss"] > 0
    assert "eval_rewards/accuracies" in record["eval_metrics"]
    assert (output / "model.safetensors").exists() and (output / "checkpoint-2").is_dir()

    # The same output without --resume is refused: nothing is overwritten silently.
    refused = runner.invoke(app, tiny_args(assets, "pba", output))
    assert isinstance(refused.exception, ValueError) and "--resume" in str(refused.exception)

    # Resuming continues from checkpoint-2 to step 3: only step 3 is trained.
    resumed = runner.invoke(app, [*tiny_args(assets, "pba", output), "--max_steps", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    state = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]


SECRET = "hf_personalignTestSecret0123456789"


def test_a_hub_token_is_never_printed_or_saved(assets, tmp_path):
    """`--hub_token` used to be echoed by --print-config and the launch line, and pickled into every
    `training_args.bin`."""
    output = tmp_path / "pba"
    shown = runner.invoke(
        app, [*tiny_args(assets, "pba", output), "--hub_token", SECRET, "--num-processes", "2", "--print-config"]
    )
    assert shown.exit_code == 0, shown.output
    assert SECRET not in shown.stdout + shown.stderr
    assert yaml.safe_load(shown.stdout)["config"]["hub_token"] == "***" and "--hub_token '***'" in shown.stderr
    trained = runner.invoke(app, [*tiny_args(assets, "pba", output), "--hub_token", SECRET])
    assert trained.exit_code == 0, trained.output
    assert SECRET not in trained.stdout + trained.stderr
    files = [path for path in output.rglob("*") if path.is_file()]
    assert any(path.name == "training_args.bin" for path in files)
    assert [str(path) for path in files if SECRET.encode() in path.read_bytes()] == []


def test_train_dpore_push_model_round_trip(assets, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from personalign import PersonaEncoder
    from personalign.trainers import PersonaProjectionHead

    output = tmp_path / "dpore"
    args = [*tiny_args(assets, "dpore", output), "--persona_encoder", str(assets / "encoder")]
    result = runner.invoke(app, [*args, "--dataset_test_split", "test"])
    assert result.exit_code == 0, result.output
    assert (output / "projection_head" / "model.safetensors").exists() and (output / "persona_encoder").is_dir()

    exported = tmp_path / "exported"
    result = runner.invoke(app, ["push-model", str(output), "--to-dir", str(exported)])
    assert result.exit_code == 0, result.output
    published = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    head_files = {"projection_head/model.safetensors", "projection_head/config.json"}
    assert {"model.safetensors", "config.json", "README.md", *head_files, RUN_RECORD} <= published
    assert not any(name.startswith("checkpoint-") or name.endswith((".bin", ".pt", ".pth")) for name in published)

    model = AutoModelForCausalLM.from_pretrained(exported)
    trained = AutoModelForCausalLM.from_pretrained(output)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    assert AutoTokenizer.from_pretrained(exported).chat_template
    head = PersonaProjectionHead.from_pretrained(exported, subfolder="projection_head")
    assert head.config["hidden_size"] == model.config.hidden_size
    encoder = PersonaEncoder.from_pretrained(exported, subfolder="persona_encoder")
    assert encoder.encode(["a comment about cooking"]).shape[1] == head.config["embedding_dim"]

    card = (exported / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    metrics = metadata["model-index"][0]["results"][0]["metrics"]
    assert metrics[0]["type"] == "alignment_accuracy" and 0.0 <= metrics[0]["value"] <= 1.0
    assert "re_lambda" in card and "DPORE" in card and "base_model" not in metadata  # a local base is not a Hub id

    again = runner.invoke(app, ["push-model", str(output), "--to-dir", str(exported)])
    assert isinstance(again.exception, FileExistsError)  # never overwritten silently


def test_train_encoder_from_yaml(assets, tmp_path):
    output = tmp_path / "encoder"
    result = runner.invoke(
        app,
        ["train", "encoder", "--config", str(EXAMPLES / "configs" / "tiny" / "encoder.yaml"),
         "--model_name_or_path", str(assets / "encoder_backbone"),
         "--dataset_name", str(assets / "alignx" / "train.parquet"), "--output_dir", str(output),
         "--max_steps", "2", "--eval_fraction", "0.25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((output / RUN_RECORD).read_text())
    assert record["method"] == "encoder" and "recall@1" in record["eval"]["after"]
    assert (output / "README.md").read_text().startswith("---")


def test_push_model_to_the_hub_with_a_fake_client(assets, tmp_path, monkeypatch):
    import huggingface_hub
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "run"
    folder.mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))  # push-model checks that weights load
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "checkpoint-1").mkdir()
    (folder / "checkpoint-1" / "model.safetensors").write_bytes(b"old")
    record = {"method": "pba", "base_model": "org/base", "dataset": "org/data", "hyperparameters": {"beta": 0.1},
              "eval_metrics": {"eval_rewards/accuracies": 0.75}}  # fmt: skip
    (folder / RUN_RECORD).write_text(json.dumps(record))
    # Results added by `personalign eval --model-card` are kept in the pushed card.
    eval_index = [{"name": "run", "results": [{
        "task": {"type": "text-generation"}, "dataset": {"name": "org/heldout", "type": "org/heldout", "split": "test"},
        "metrics": [{"type": "flip_rate", "value": 0.625, "name": "Flip rate"}],
    }]}]  # fmt: skip
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump({'model-index': eval_index})}---\n\nold card\n")
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["repo"] = repo_id

        def create_commit(self, repo_id, operations, **kwargs):
            calls["files"] = sorted(op.path_in_repo for op in operations)
            calls["card"] = next(op for op in operations if op.path_in_repo == "README.md").path_or_fileobj

            class Commit:
                commit_url = f"https://huggingface.co/{repo_id}/commit/1"

            return Commit()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    result = runner.invoke(app, ["push-model", str(folder), "--repo-id", "me/pba-tiny"])
    assert result.exit_code == 0, result.output
    assert "hf_secret_token_value" not in result.output
    assert calls["repo"] == "me/pba-tiny" and calls["token"] == "hf_secret_token_value"
    assert calls["files"] == ["README.md", "model.safetensors", RUN_RECORD]
    card = calls["card"].decode()
    assert "base_model: org/base" in card and "value: 0.75" in card and "me/pba-tiny" in card
    assert "value: 0.625" in card and "flip_rate" in card and "old card" not in card


def test_push_without_a_token_is_one_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RUN_RECORD).write_text(json.dumps({"method": "pba", "base_model": "m", "dataset": "d"}))
    env_token = os.environ.pop("HF_TOKEN", None)
    try:
        result = cli("push-model", str(folder), "--repo-id", "me/x")
    finally:
        if env_token is not None:
            os.environ["HF_TOKEN"] = env_token
    assert result.returncode == 1 and "no Hugging Face token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("push-model", str(tmp_path), "--repo-id", "me/x")
    assert result.returncode == 1 and RUN_RECORD in result.stderr


def test_push_with_the_hub_offline_is_one_line(tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "run"
    folder.mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))  # weights that load: the push is what fails
    (folder / RUN_RECORD).write_text(json.dumps({"method": "pba", "base_model": "m", "dataset": "d"}))
    env = {**os.environ, "PERSONALIGN_DEBUG": "", "HF_TOKEN": "hf_not_a_real_token", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "personalign", "push-model", str(folder), "--repo-id", "me/x"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "hf_not_a_real_token" not in result.stderr + result.stdout
    assert "does not load" not in result.stderr


def test_train_reward_and_load_the_pushed_layout(assets, tmp_path):
    from transformers import AutoModelForSequenceClassification

    output = tmp_path / "reward"
    args = [*tiny_args(assets, "reward", output), "--dataset_name", str(assets / "multifacet")]
    result = runner.invoke(app, [*args, "--dataset_test_split", "test"])
    assert result.exit_code == 0, result.output
    record = json.loads((output / RUN_RECORD).read_text())
    assert record["method"] == "reward" and "eval_accuracy" in record["eval_metrics"]
    exported = tmp_path / "exported"
    assert runner.invoke(app, ["push-model", str(output), "--to-dir", str(exported)]).exit_code == 0
    model = AutoModelForSequenceClassification.from_pretrained(exported)
    assert model.config.num_labels == 1
    card = (exported / "README.md").read_text()
    assert "Personalized reward model" in card and "history_size" in card


# ------------------------------------------------------------------------------------------- the method registry
def test_a_flag_or_key_of_another_method_is_an_error_naming_that_method(tmp_path):
    from personalign.errors import InputError

    required = ["--model_name_or_path", "m", "--dataset_name", "d"]
    with pytest.raises(InputError, match=r"unknown option\(s\) --excerpt_format aloe .*`personalign train encoder`"):
        parse_train_arguments("pba", [*required, "--excerpt_format", "aloe"], CPU)
    with pytest.raises(InputError, match=r"--re_lambda is an option of `personalign train dpore`"):
        parse_train_arguments("ica", [*required, "--re_lambda", "1"], CPU)
    config = tmp_path / "cfg.yaml"
    config.write_text("model_name_or_path: m\ndataset_name: d\npersona_encoder: enc\n")
    with pytest.raises(InputError, match=r"unknown key\(s\) 'persona_encoder'.*`personalign train dpore`"):
        parse_train_arguments("reward", ["--config", str(config)], CPU)
    with pytest.raises(InputError, match="persona_format must be 'pba' or 'ica'"):
        parse_train_arguments("dpore", [*required, "--persona_format", "aloe"], CPU)
    with pytest.raises(InputError, match="takes no dataset_train_split / dataset_test_split"):
        parse_train_arguments("encoder", [*required, "--dataset_test_split", "test"], CPU)


def test_train_encoder_takes_every_option_the_old_train_encoder_command_had():
    script, config, model, _ = parse_train_arguments(
        "encoder",
        ["--model_name_or_path", "backbone", "--dataset_name", "rows.parquet", "--output_dir", "out",
         "--excerpt_format", "table", "--persona_column", "user", "--text_column", "body", "--include_demographics",
         "--eval_fraction", "0.2", "--num_train_epochs", "2", "--max_steps", "7", "--per_device_train_batch_size", "4",
         "--learning_rate", "1e-4", "--warmup_steps", "3", "--temperature", "0.1", "--num_negatives", "2",
         "--truncation_probability", "0.3", "--pooling", "cls", "--projection_dim", "64", "--save_steps", "5",
         "--checkpoint_dir", "ckpt", "--seed", "1", "--resume", "--overwrite"],
        CPU,
    )  # fmt: skip
    assert (model.model_name_or_path, script.dataset_name, config.output_dir) == ("backbone", "rows.parquet", "out")
    assert (script.excerpt_format, script.persona_column, script.text_column) == ("table", "user", "body")
    assert script.include_demographics and script.eval_fraction == 0.2
    assert (config.num_train_epochs, config.max_steps, config.per_device_train_batch_size) == (2, 7, 4)
    assert (config.learning_rate, config.warmup_steps, config.temperature) == (1e-4, 3, 0.1)
    assert (config.num_negatives, config.truncation_probability, config.save_steps, config.seed) == (2, 0.3, 5, 1)
    assert (script.pooling, script.projection_dim, script.checkpoint_dir) == ("cls", 64, "ckpt")
    assert script.resume and script.overwrite


def test_each_method_s_script_parses_its_registered_config():
    from trl import ModelConfig

    from personalign.methods import METHODS
    from personalign.scripts.utils import ScriptArguments

    for method in METHODS.values():
        script_arguments, config, model = method.script_module().make_parser().dataclass_types
        assert issubclass(script_arguments, ScriptArguments) and model is ModelConfig
        assert config is method.config_class(), method.name


def test_train_help_lists_the_registered_methods():
    from personalign.methods import METHODS

    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    for name, method in METHODS.items():
        assert f"{name}: {' '.join(method.summary.split()[:4])}" in output


TOY_METHOD = '''"""A throwaway method: PBA with a setting of its own (one file, plus one registry entry in the test)."""

from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser

from personalign.scripts.utils import ScriptArguments, train_and_save, trainer_kwargs
from personalign.trainers import PBAConfig, PBATrainer


@dataclass
class ToyConfig(PBAConfig):
    toy_weight: float = field(default=1.0, metadata={"help": "A setting only this method has."})


class ToyTrainer(PBATrainer):
    pass


@dataclass
class ToyScriptArguments(ScriptArguments):
    toy_note: str = field(default="", metadata={"help": "A script argument only this method has."})


def build_trainer(script_args, training_args, model_args, train_dataset, eval_dataset):
    return ToyTrainer(**trainer_kwargs(training_args, model_args, train_dataset, eval_dataset))


def make_parser():
    return TrlParser((ToyScriptArguments, ToyConfig, ModelConfig), exit_on_error=False)


def main(script_args, training_args, model_args):
    return train_and_save("toy", script_args, training_args, model_args, build_trainer)
'''


def test_a_new_method_is_one_file_and_one_registry_entry(assets, tmp_path, monkeypatch):
    from personalign.errors import InputError
    from personalign.methods import METHODS, Method, register_method, unregister_method
    from personalign.papers import ALIGNX_CITATION

    (tmp_path / "toy_method.py").write_text(TOY_METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    register_method(
        Method(name="toy", summary="A throwaway method for the registry test.", config="toy_method:ToyConfig",
               trainer="toy_method:ToyTrainer", script="toy_method", citation=ALIGNX_CITATION,
               card=METHODS["pba"].card)
    )  # fmt: skip
    try:
        help_text = " ".join(runner.invoke(app, ["train", "--help"]).output.split())
        assert "toy: A throwaway method for the registry test." in help_text
        script, config, _, _ = parse_train_arguments(
            "toy", ["--model_name_or_path", "m", "--dataset_name", "d", "--toy_weight", "2", "--toy_note", "n"], CPU
        )
        assert type(config).__name__ == "ToyConfig" and config.toy_weight == 2.0 and script.toy_note == "n"
        with pytest.raises(InputError, match="--toy_weight is an option of `personalign train toy`"):
            parse_train_arguments(
                "pba", ["--model_name_or_path", "m", "--dataset_name", "d", "--toy_weight", "2"], CPU
            )

        output = tmp_path / "toy"
        args = [*tiny_args(assets, "pba", output)]
        args[1] = "toy"
        result = runner.invoke(app, [*args, "--toy_weight", "3"])
        assert result.exit_code == 0, result.output
        record = json.loads((output / RUN_RECORD).read_text())
        assert record["method"] == "toy" and record["hyperparameters"]["toy_weight"] == 3.0
        assert record["train_metrics"]["train_loss"] > 0 and (output / "model.safetensors").exists()
        exported = tmp_path / "exported"
        assert runner.invoke(app, ["push-model", str(output), "--to-dir", str(exported)]).exit_code == 0
        assert "toy_weight" in (exported / "README.md").read_text()  # the card reads the registry too
    finally:
        unregister_method("toy")
        sys.modules.pop("toy_method", None)
    assert "toy" not in METHODS


# --------------------------------------------------------------------------------- resume from damaged checkpoints
@pytest.fixture(scope="module")
def pba_run(assets, tmp_path_factory):
    """A finished 3-step PBA run with a checkpoint at every step (copied by each test that changes it)."""
    output = tmp_path_factory.mktemp("pba_run") / "run"
    result = runner.invoke(app, [*tiny_args(assets, "pba", output), "--max_steps", "3"])
    assert result.exit_code == 0, result.output
    return output


def resume_in_process(monkeypatch, capsys, assets, output):
    """`train pba --resume` through the console entry point, in this process: `(exit code, stderr lines)`."""
    from personalign.cli import run

    argv = ["personalign", *tiny_args(assets, "pba", output), "--max_steps", "3", "--resume", "true"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("damage", ["truncated weights", "plain pickle", "refused global"])
def test_resume_on_a_damaged_checkpoint_names_the_file_and_the_last_intact_one(
    pba_run, assets, tmp_path, monkeypatch, capsys, damage
):
    import fractions
    import pickle
    import shutil

    import torch

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    last = output / "checkpoint-3"
    if damage == "truncated weights":
        damaged = last / "model.safetensors"
        damaged.write_bytes(damaged.read_bytes()[:1000])
        reason = "does not load ("
    elif damage == "plain pickle":
        damaged = last / "optimizer.pt"
        damaged.write_bytes(pickle.dumps({"state": {}}))
        reason = "not a whole torch.save archive"
    else:
        damaged = last / "optimizer.pt"
        torch.save({"state": fractions.Fraction(1, 2)}, damaged)
        reason = "holds objects a weights-only load refuses (fractions.Fraction)"
    before = sorted(str(path) for path in output.rglob("*"))
    code, lines = resume_in_process(monkeypatch, capsys, assets, output)
    assert code == 1 and "Traceback" not in "\n".join(lines)
    assert lines[-1].startswith(f"error: --resume: {damaged}: {reason}")
    assert lines[-1].endswith(
        f"the last intact checkpoint is {output / 'checkpoint-2'}: move {last} out of {output} and resume again to "
        "continue from it."
    )
    assert sorted(str(path) for path in output.rglob("*")) == before  # nothing written, nothing removed


def test_resume_after_a_kill_during_a_save_falls_back_to_the_last_complete_checkpoint(
    pba_run, assets, tmp_path, monkeypatch, capsys, caplog
):
    """A checkpoint without `trainer_state.json` (the trainer writes it last) was cut short by a kill: `--resume`
    says so in one line and continues from the checkpoint before it, reproducing the uninterrupted run exactly."""
    import shutil

    from safetensors.torch import load_file

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    (output / "checkpoint-3" / "trainer_state.json").unlink()
    for name in ("model.safetensors", RUN_RECORD):  # the run never got to its end
        (output / name).unlink()
    code, _ = resume_in_process(monkeypatch, capsys, assets, output)
    assert code in (0, None)
    warnings = [r.getMessage() for r in caplog.records if r.name == "personalign.io"]
    assert warnings == [
        f"--resume: {output / 'checkpoint-3' / 'trainer_state.json'} is missing: its save was cut short; resuming "
        f"from {output / 'checkpoint-2'}, the last complete checkpoint."
    ]
    straight = json.loads((pba_run / "checkpoint-3" / "trainer_state.json").read_text())
    resumed = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    losses = [[entry["loss"] for entry in state["log_history"] if "loss" in entry] for state in (straight, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    expected, got = load_file(pba_run / "model.safetensors"), load_file(output / "model.safetensors")
    assert expected.keys() == got.keys() and all(expected[key].equal(got[key]) for key in expected)


def test_training_outputs_follow_the_umask(pba_run):
    """safetensors writes its files 0600; a finished run's files follow the umask as any other file does."""
    mask = os.umask(0o022)
    os.umask(mask)
    files = [pba_run / "model.safetensors", pba_run / "checkpoint-3" / "model.safetensors"]
    assert [oct(path.stat().st_mode & 0o777) for path in files] == [oct(0o666 & ~mask)] * 2


def test_overwrite_sets_the_earlier_run_aside_so_resume_continues_the_new_one(pba_run, assets, tmp_path, caplog):
    """train (3 steps) -> train --overwrite (1 step) -> --resume (to step 2): the resume continues the new run, not
    the earlier run's last checkpoint; the earlier run is moved aside in one announced rename, deleted at the end."""
    import shutil

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    again = runner.invoke(app, [*tiny_args(assets, "pba", output), "--max_steps", "1", "--overwrite", "true"])
    assert again.exit_code == 0, again.output
    lines = [r.getMessage() for r in caplog.records if r.name == "personalign.hub.run_record"]
    assert len(lines) == 1 and lines[0].startswith(f"--overwrite: moved the earlier run in {output} to {tmp_path}")
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the set-aside run is gone once this one finished
    assert json.loads((output / RUN_RECORD).read_text())["hyperparameters"]["max_steps"] == 1

    resumed = runner.invoke(app, [*tiny_args(assets, "pba", output), "--max_steps", "2", "--resume", "true"])
    assert resumed.exit_code == 0, resumed.output
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2]


def test_a_resumed_run_s_record_reports_the_whole_run(pba_run, assets, tmp_path, monkeypatch, capsys):
    """Killed after checkpoint-2 and resumed to step 3: the record's train_loss is the mean over all 3 steps (not
    step 3's alone) and num_tokens goes on from the checkpoint, as in the uninterrupted run's record."""
    import shutil

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    shutil.rmtree(output / "checkpoint-3")
    for name in ("model.safetensors", RUN_RECORD):
        (output / name).unlink()
    code, _ = resume_in_process(monkeypatch, capsys, assets, output)
    assert code in (0, None)
    straight = json.loads((pba_run / RUN_RECORD).read_text())["train_metrics"]
    resumed = json.loads((output / RUN_RECORD).read_text())["train_metrics"]
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-9, abs=1e-12)
    tokens = [
        [e["num_tokens"] for e in json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]]
        for run in (pba_run, output)
    ]
    assert tokens[0] == tokens[1] and tokens[0][-1] > tokens[0][0]  # the count goes on from the checkpoint
    assert resumed["num_tokens"] == straight["num_tokens"] == tokens[0][-1]


def test_resume_when_the_last_checkpoint_s_weights_were_deleted_names_the_file(
    pba_run, assets, tmp_path, monkeypatch, capsys
):
    import shutil

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    last = output / "checkpoint-3"
    (last / "model.safetensors").unlink()
    code, lines = resume_in_process(monkeypatch, capsys, assets, output)
    assert code == 1 and [line for line in lines if line.startswith("error:")] == [
        f"error: --resume: {last / 'model.safetensors'} is missing (the checkpoint holds no model weights); the last "
        f"intact checkpoint is {output / 'checkpoint-2'}: move {last} out of {output} and resume again to continue "
        "from it."
    ]


def test_resume_when_a_checkpoint_is_a_file_is_refused_before_training(pba_run, assets, tmp_path, monkeypatch, capsys):
    """The trainer resumed from checkpoint-2, trained step 3, then failed to save it over the file: all lost."""
    import shutil

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    shutil.rmtree(output / "checkpoint-3")
    (output / "checkpoint-3").write_text("hi")
    before = sorted(str(path) for path in output.rglob("*"))
    code, lines = resume_in_process(monkeypatch, capsys, assets, output)
    assert code == 1 and [line for line in lines if line.startswith("error:")] == [
        f"error: --resume: {output / 'checkpoint-3'} is a file, not a checkpoint folder; move it out of {output} and "
        "resume again."
    ]
    assert sorted(str(path) for path in output.rglob("*")) == before


def test_resume_on_a_finished_run_is_refused(pba_run, assets, tmp_path, monkeypatch, capsys):
    """transformers' Trainer resumed at max_steps trains one step more (checkpoint-4 of a 3-step run)."""
    import shutil

    output = tmp_path / "run"
    shutil.copytree(pba_run, output)
    before = sorted(str(path) for path in output.rglob("*"))
    code, lines = resume_in_process(monkeypatch, capsys, assets, output)  # --max_steps 3, as the run had
    assert code == 1 and [line for line in lines if line.startswith("error:")] == [
        f"error: --resume: the run in {output} already reached max_steps=3 (checkpoint-3); raise --max_steps to "
        "train further."
    ]
    assert sorted(str(path) for path in output.rglob("*")) == before


def test_the_summary_line_shows_each_methods_headline_metric():
    dpo = {"eval_metrics": {"eval_loss": 0.61, "eval_rewards/accuracies": 0.875}}
    sft = {"eval_metrics": {"eval_loss": 1.25, "eval_mean_token_accuracy": 0.5, "eval_runtime": 1.0}}
    assert summary_lines(dpo) == ["eval_rewards/accuracies 0.8750"]
    assert summary_lines(sft) == ["eval_loss 1.2500 eval_mean_token_accuracy 0.5000"]
    assert summary_lines({"eval_metrics": {"eval_runtime": 1.0}}) == []
