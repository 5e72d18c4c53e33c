"""`personalign train` on bad inputs: every one ends with one `error:` line naming the file (row, column, key) and what
was expected, before the model loads and before the output folder is made; rows dropped for `max_length` are counted,
and dropping all of them is an error."""

import json
import logging
import re

import pytest
from datasets import Dataset
from typer.testing import CliRunner

from personalign.cli import app
from personalign.cli.train import parse_train_arguments
from personalign.data.loading import RowNames
from personalign.encoder.pipeline import check_eval_fraction
from personalign.errors import InputError
from personalign.scripts.utils import check_text_columns
from personalign.trainers.kept_rows import report_kept_rows

runner = CliRunner()
NAMES = RowNames.of("f.jsonl")  # rows in memory: named by their 0-based row
CPU = lambda: (False, False)  # noqa: E731
TINY = ["--max_steps", "1", "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--report_to", "none"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory, kit_cache):
    from personalign.testing import write_tiny_assets

    return write_tiny_assets(tmp_path_factory.mktemp("tiny") / "tiny", 16, 8, cache_dir=kit_cache)


@pytest.fixture(scope="module")
def alignx_rows(assets):
    return Dataset.from_parquet(str(assets / "alignx" / "train.parquet")).to_list()


@pytest.fixture(scope="module")
def multifacet_rows(assets):
    return Dataset.from_parquet(str(assets / "multifacet" / "train.parquet")).to_list()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def train(method, assets, dataset, output, *flags):
    """`personalign train METHOD` in process; returns (result, the error line or None)."""
    args = ["train", method, "--model_name_or_path", str(assets / "causal_lm"), "--dataset_name", str(dataset),
            "--output_dir", str(output), "--max_length", "512", *TINY, *flags]  # fmt: skip
    result = runner.invoke(app, args)
    return result, (str(result.exception) if isinstance(result.exception, InputError) else None)


def refused_before_loading(monkeypatch):
    """Make loading a model fail loudly: a check that must run before it would otherwise pass unnoticed."""
    import transformers

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the rows were checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_model)
    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", no_model)


# ----------------------------------------------------------------------------------------- 1-2: rows up front
@pytest.mark.parametrize("method", ["pba", "ica", "dpore"])
def test_alignx_rows_without_chosen_name_the_file_and_column(assets, alignx_rows, tmp_path, monkeypatch, method):
    refused_before_loading(monkeypatch)
    data = write_jsonl(tmp_path / "rows.jsonl", [{k: v for k, v in r.items() if k != "chosen"} for r in alignx_rows])
    result, error = train(method, assets, data, tmp_path / "out")
    assert error is not None, result.output
    assert f"{data}: missing column(s) 'chosen'; an AlignX row needs prompt, chosen, rejected" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda rows: rows[3].update(prompt=None), "line 4, column 'prompt': expected text, got null (no value)."),
        (
            lambda rows: rows[5]["Pair-wise Comparative Feedback"][0]["Preference Direction"].__setitem__(0, 0.7),
            "line 6, column 'Pair-wise Comparative Feedback' item 0 'Preference Direction': index 0 holds 0.7",
        ),
        (
            lambda rows: rows[2]["User-Generated Content"][1].update({"Preference Direction": [0.5] * 5}),
            "line 3, column 'User-Generated Content' item 1 'Preference Direction': preference vector has length 5",
        ),
    ],
    ids=["null-prompt", "value-outside-0-0.5-1", "wrong-length"],
)
def test_bad_alignx_rows_get_the_build_dataset_message(assets, alignx_rows, tmp_path, monkeypatch, change, message):
    """A null prompt used to train on the text "None"; a bad history vector passed epoch 0 and aborted at the
    epoch-1 redraw naming neither file nor row. Both are refused up front, as `build-dataset alignx` refuses them."""
    import copy

    rows = copy.deepcopy(alignx_rows)
    change(rows)
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    build = runner.invoke(app, ["build-dataset", "alignx", "--source", str(data), "--output", str(tmp_path / "b")])
    assert message in str(build.exception)
    refused_before_loading(monkeypatch)
    result, error = train("pba", assets, data, tmp_path / "out")
    assert error == str(build.exception) and error.startswith(f"{data}, line "), result.output


def test_ready_rows_with_a_null_prompt_or_message_are_refused(tmp_path):
    text = Dataset.from_list([{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": None, "chosen": "c",
                              "rejected": "r"}])  # fmt: skip
    with pytest.raises(
        InputError, match=r"^f.jsonl, row 1 \(0-based\), column 'prompt': expected text, got null \(no value\).$"
    ):
        check_text_columns(text, ("prompt", "chosen", "rejected"), NAMES)
    turn = lambda content: [{"role": "user", "content": content}]  # noqa: E731
    chat = Dataset.from_list([{"prompt": turn("a"), "chosen": turn("b")}, {"prompt": turn("a"), "chosen": turn(None)}])
    with pytest.raises(
        InputError, match=r"f.jsonl, row 1 \(0-based\), column 'chosen': a message without text content"
    ):
        check_text_columns(chat, ("prompt", "chosen"), NAMES)
    numbers = Dataset.from_list([{"prompt": 1}])
    with pytest.raises(InputError, match=r"f.jsonl, column 'prompt': expected text or a list of chat messages"):
        check_text_columns(numbers, ("prompt",), NAMES)
    check_text_columns(text.select([0]), ("prompt", "chosen", "rejected"), NAMES)  # a view: only its rows


def test_only_the_rows_trained_are_checked(assets, alignx_rows, tmp_path, monkeypatch):
    from personalign.scripts.utils import ScriptArguments, load_datasets, persona_row_check

    rows = [dict(row) for row in alignx_rows]
    rows[10] = {**rows[10], "prompt": None}
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    script = ScriptArguments(dataset_name=str(data), max_train_samples=8)
    train_rows, _ = load_datasets(script, persona_row_check("pba"), None)
    assert len(train_rows) == 8
    with pytest.raises(InputError, match="line 11, column 'prompt'"):
        load_datasets(ScriptArguments(dataset_name=str(data)), persona_row_check("pba"), None)


FINITE = "expected finite numbers (or null for the whole row: no regularizer)."
DPORE_ROW = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No.", "persona_embedding": [0.1, 0.2, 0.3, 0.4]}


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("persona_embedding", [0.1, 0.2], "expected a persona embedding of 4 numbers (as {data}, line 1), got 2."),
        ("persona_embedding", [0.1, None, 0.3, 0.4], f"the persona embedding holds a null; {FINITE}"),
        ("persona_embedding", [0.1, float("nan"), 0.3, 0.4], f"the persona embedding holds nan; {FINITE}"),
        ("persona_text", 7, "expected text (the persona the encoder embeds) or null, got int64."),
    ],
)
def test_dpore_persona_columns_are_checked_up_front(assets, tmp_path, monkeypatch, column, value, message):
    refused_before_loading(monkeypatch)
    rows = [dict(DPORE_ROW) for _ in range(4)]
    rows[2][column] = value
    if column == "persona_text":
        for row in rows:
            row.setdefault("persona_text", None)
    # A null persona is a row without one (plain DPO), never an error: row 1 has none.
    rows[1]["persona_embedding"] = None
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    flags = ["--persona_encoder", str(assets / "encoder")] if column == "persona_text" else []
    result, error = train("dpore", assets, data, tmp_path / "out", *flags)
    assert error == f"{data}, line 3, column {column!r}: {message.format(data=data)}", result.output
    assert not (tmp_path / "out").exists()


def test_dpore_refuses_an_empty_persona_only_for_pba_prompts(assets, alignx_rows, tmp_path, monkeypatch):
    """DPORE's `persona_format` is a script argument, not a config field: `pba` (its default) needs a preference to
    state, as `train pba` does; `ica` takes the persona as it is."""
    import copy

    refused_before_loading(monkeypatch)
    rows = copy.deepcopy(alignx_rows)
    rows[2].update({"User-Generated Content": [], "Pair-wise Comparative Feedback": [], "Preference Direction": None})
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    result, error = train("dpore", assets, data, tmp_path / "out")
    assert error is not None and error.startswith(f"{data}, line 3: the persona is empty: no 'profile', "), (
        result.output
    )
    encoder = ["--persona_encoder", str(assets / "encoder")]
    result, error = train("dpore", assets, data, tmp_path / "out", "--persona_format", "ica", *encoder)
    assert error is None and result.exit_code == 0, result.output  # one step, with the empty persona


def test_dpore_embeddings_of_re_embedding_dim_and_across_files(assets, tmp_path, monkeypatch):
    refused_before_loading(monkeypatch)
    data = write_jsonl(tmp_path / "rows.jsonl", [DPORE_ROW] * 4)
    result, error = train("dpore", assets, data, tmp_path / "out", "--re_embedding_dim", "8")
    assert error == (
        f"{data}, line 1, column 'persona_embedding': expected a persona embedding of 8 numbers (re_embedding_dim), "
        "got 4."
    ), result.output
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "train-a.jsonl", [DPORE_ROW] * 2)
    write_jsonl(folder / "train-b.jsonl", [{**DPORE_ROW, "persona_embedding": [0.5] * 3}] * 2)
    result, error = train("dpore", assets, folder, tmp_path / "out")
    assert error is not None and "train-b.jsonl, line 1, column 'persona_embedding'" in error, result.output
    assert "expected a persona embedding of 4 numbers (as " in error and "train-a.jsonl, line 1)" in error


def test_train_reward_rows_without_chosen_and_bad_histories(assets, multifacet_rows, tmp_path, monkeypatch):
    import copy

    refused_before_loading(monkeypatch)
    data = write_jsonl(tmp_path / "nochosen.jsonl", [{k: v for k, v in r.items() if k != "chosen"} for r in
                                                     multifacet_rows])  # fmt: skip
    _, error = train("reward", assets, data, tmp_path / "out")
    assert error.startswith(f"{data}: missing column(s) 'chosen'; a `personalign train reward` row needs prompt, ")
    rows = copy.deepcopy(multifacet_rows)
    rows[4]["history_text"][1]["chosen"] = None
    data = write_jsonl(tmp_path / "history.jsonl", rows)
    _, error = train("reward", assets, data, tmp_path / "out")
    assert error == f"{data}, line 5, column 'history_text', item 1: expected text under 'chosen'."
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ 3: reward on AlignX rows
def test_train_reward_refuses_alignx_persona_rows(assets, tmp_path, monkeypatch):
    """It used to ignore every persona column and train a history-free "personalized" reward model."""
    refused_before_loading(monkeypatch)
    data = assets / "alignx" / "train.parquet"
    _, error = train("reward", assets, data, tmp_path / "out")
    assert error.startswith(f"{data}: AlignX persona rows (")
    assert "`personalign build-dataset multifacet-cf`" in error and "personalign train pba|ica|dpore" in error


# ------------------------------------------------------------------------------------------ 4: dropped rows
def test_report_kept_rows(caplog):
    caplog.set_level(logging.WARNING)
    report_kept_rows(range(4), range(4), 8, "f.jsonl [train]", "why")
    assert caplog.text == ""
    report_kept_rows(range(4), range(1), 8, "f.jsonl [train]", "why")
    assert "dropped 3 of 4 rows longer than max_length=8 (f.jsonl [train]): why." in caplog.text
    with pytest.raises(InputError, match=r"^f.jsonl \[train\]: all 4 rows are longer than max_length=8 \(why\)"):
        report_kept_rows(range(4), [], 8, "f.jsonl [train]", "why")


@pytest.mark.parametrize("method, max_length", [("ica", "64"), ("reward", "16")])
def test_dropping_every_row_is_an_error_before_training(assets, tmp_path, method, max_length):
    """`train ica --max_length 128` on long personas trained 0 steps and saved the base weights (rc 0); `train
    reward --max_length 16` ended with torch's "num_samples=0"."""
    data = assets / ("multifacet" if method == "reward" else "alignx")
    result, error = train(method, assets, data, tmp_path / "out", "--max_length", max_length)
    assert error == (
        f"{data} [train]: all {16 if method == 'ica' else 30} rows are longer than max_length={max_length} ("
        + ("even without any history; TRL drops them" if method == "reward" else "their prompt alone fills it, and "
           "TRL drops such rows with truncation_mode='keep_start'")
        + "); nothing is left to train on. Raise --max_length."
    ), result.output  # fmt: skip
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_dropped_rows_are_counted(assets, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    data = assets / "alignx"
    result, _ = train("ica", assets, data, tmp_path / "out", "--max_length", "160", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert re.search(
        rf"dropped \d+ of 16 rows longer than max_length=160 \({re.escape(str(data))} \[train\]\)", caplog.text
    )


# ------------------------------------------------------------------------------------------- 5: YAML types
@pytest.mark.parametrize(
    "line, message",
    [
        ("learning_rate: [1, 2]", "key 'learning_rate' must be a number; got [1, 2] (list)."),
        ("max_steps: abc", "key 'max_steps' must be an integer; got 'abc' (str)."),
        ("max_steps: null", "key 'max_steps' must be an integer; got null."),
        ("bf16: maybe", "key 'bf16' must be true or false or null; got 'maybe' (str)."),
        ("lr_scheduler_type: cosinee", "key 'lr_scheduler_type' must be one of 'linear', 'cosine'"),
        ("dtype: float64", "key 'dtype' must be one of 'auto', 'bfloat16', 'float16', 'float32'; got 'float64'"),
        ("lora_target_modules: {a: 1}", "key 'lora_target_modules' must be a list of text or null"),
    ],
)
def test_yaml_type_errors_name_the_file_and_key(tmp_path, line, message):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model_name_or_path: m\ndataset_name: d\noutput_dir: {tmp_path / 'out'}\n{line}\n")
    with pytest.raises(InputError) as error:
        parse_train_arguments("pba", ["--config", str(config)], CPU)
    assert str(error.value).startswith(f"{config}: {message}")
    result = runner.invoke(app, ["train", "pba", "--config", str(config)])
    assert isinstance(result.exception, InputError) and not (tmp_path / "out").exists()


def test_yaml_values_of_the_right_type_still_parse(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "model_name_or_path: m\ndataset_name: d\nlearning_rate: 1\nmax_steps: '3'\nbf16: false\nmax_length: null\n"
        "lora_target_modules: all-linear\nlr_scheduler_type: cosine\nreport_to: [none]\nmodel_init_kwargs: {a: 1}\n"
        "loss_type: [sigmoid]\nhistory_seed: 3\n"
    )
    _, pba, model, _ = parse_train_arguments("pba", ["--config", str(config)], CPU)
    assert (pba.learning_rate, pba.max_steps, pba.max_length, pba.history_seed) == (1, 3, None, 3)
    assert model.lora_target_modules == "all-linear"


@pytest.mark.parametrize(
    "key, value",
    [("learning_rate", "-1"), ("per_device_train_batch_size", "0"), ("gradient_accumulation_steps", "0"),
     ("beta", "-0.5")],
)  # fmt: skip
def test_a_non_positive_yaml_value_names_the_file_and_key(tmp_path, key, value):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model_name_or_path: m\ndataset_name: d\noutput_dir: {tmp_path / 'out'}\n{key}: {value}\n")
    with pytest.raises(InputError) as error:
        parse_train_arguments("pba", ["--config", str(config)], CPU)
    assert str(error.value) == f"{config}: key {key!r} must be above 0; got {value}."
    # A flag that overrides the bad value wins; a bad flag is named as the flag, even over a bad YAML value.
    parse_train_arguments("pba", ["--config", str(config), f"--{key}", "1"], CPU)
    parse_train_arguments("pba", ["--config", str(config), f"--{key.replace('_', '-')}=1"], CPU)
    with pytest.raises(InputError, match=f"`personalign train pba`: --{key} must be above 0, got"):
        parse_train_arguments("pba", ["--config", str(config), f"--{key}", "0"], CPU)
    result = runner.invoke(app, ["train", "pba", "--config", str(config)])
    assert isinstance(result.exception, InputError) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "1"])
def test_train_encoder_names_eval_fraction_as_typed(value):
    """The held-out share is the option `eval_fraction`, not the library's `test_fraction` (`split_personas`)."""
    args = ["--model_name_or_path", "m", "--dataset_name", "d", "--output_dir", "out", "--eval_fraction", value]
    with pytest.raises(InputError, match=rf"^eval_fraction must be at least 0 and below 1 .*, got {float(value)}\.$"):
        parse_train_arguments("encoder", args, CPU)
    with pytest.raises(InputError, match=rf"^eval_fraction must be at least 0 and below 1 .*, got {float(value)}\.$"):
        check_eval_fraction(float(value))


# -------------------------------------------------------------------------------------------- 6: method help
def test_train_method_help_shows_its_own_fields():
    result = runner.invoke(app, ["train", "pba", "--help"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Usage: personalign train pba --config cfg.yaml" in output
    for flag in ("--upper", "--lower", "--arithmetic", "--max_history_items", "--dataset_name", "--resume"):
        assert flag in output
    assert "Every field of trl.DPOConfig" in output and "learning_rate" in output and "beta" in output
    assert "Every field of trl.ModelConfig" in output and "lora_r" in output
    dpore = " ".join(runner.invoke(app, ["train", "dpore", "--help"]).output.split())
    assert "--re_lambda" in dpore and "--persona_encoder" in dpore and "--upper" not in dpore
    assert "Methods:" in runner.invoke(app, ["train", "--help"]).output  # the command's own help is unchanged


@pytest.mark.parametrize("key, value", [("beta", ".nan"), ("learning_rate", ".inf"), ("beta", "-.inf")])
def test_a_nan_or_infinite_yaml_value_is_refused_naming_the_key(tmp_path, key, value):
    """NaN is neither above nor at most 0: `beta: .nan` trained with a zero loss and saved NaN in the record."""
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model_name_or_path: m\ndataset_name: d\noutput_dir: {tmp_path / 'out'}\n{key}: {value}\n")
    with pytest.raises(InputError) as error:
        parse_train_arguments("pba", ["--config", str(config)], CPU)
    shown = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert str(error.value) == f"{config}: key {key!r} must be a finite number above 0; got {shown}."


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_nan_or_infinite_flag_is_refused_when_parsed(tmp_path, value):
    """`--learning_rate nan` passed the parse and failed in torch mid-run, leaving an empty output folder."""
    result = runner.invoke(app, ["train", "pba", "--model_name_or_path", "m", "--dataset_name", "d", "--output_dir",
                                 str(tmp_path / "out"), f"--learning_rate={value}"])  # fmt: skip
    assert str(result.exception) == (
        f"`personalign train pba`: --learning_rate must be a finite number above 0, got {float(value)}."
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "method, key, value, where",
    [
        ("dpore", "re_lambda", ".nan", "yaml"),
        ("pba", "weight_decay", "nan", "flag"),
        ("pba", "lora_dropout", ".nan", "yaml"),  # a trl.ModelConfig field
        ("pba", "label_smoothing", "inf", "flag"),
    ],
)
def test_nan_or_infinity_in_any_float_field_is_refused(tmp_path, method, key, value, where):
    """Fields without a positive rule took NaN silently (a NaN `re_lambda` or `weight_decay` trains on NaN losses)."""
    config = tmp_path / "cfg.yaml"
    text = f"model_name_or_path: m\ndataset_name: d\noutput_dir: {tmp_path / 'out'}\n"
    config.write_text(text + (f"{key}: {value}\n" if where == "yaml" else ""))
    flags = [f"--{key}={value}"] if where == "flag" else []
    with pytest.raises(InputError) as error:
        parse_train_arguments(method, ["--config", str(config), *flags], CPU)
    if where == "yaml":
        assert str(error.value) == f"{config}: key {key!r} must be a finite number; got {float(value[1:])}."
    else:
        assert (
            str(error.value) == f"`personalign train {method}`: --{key} must be a finite number, got {float(value)}."
        )


def test_an_infinite_max_grad_norm_means_no_clipping_and_is_kept(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model_name_or_path: m\ndataset_name: d\noutput_dir: {tmp_path / 'out'}\nmax_grad_norm: .inf\n")
    _, training_args, _, _ = parse_train_arguments("pba", ["--config", str(config)], CPU)
    assert training_args.max_grad_norm == float("inf")


@pytest.mark.parametrize(
    "yaml_text, flags, message",
    [
        ("loss_type: bogus\n", [], "{config}: key 'loss_type' must be one of 'sigmoid', 'hinge', "),
        ("loss_type: [sigmoid, bogus]\n", [], "{config}: key 'loss_type' must be one of 'sigmoid', 'hinge', "),
        ("", ["--loss_type", "sigmoid", "bogus"], "`personalign train pba`: --loss_type must be one of 'sigmoid', "),
        ("f_divergence_type: kl\n", [], "{config}: key 'f_divergence_type' must be one of 'reverse_kl', "),
        ("", ["--f_divergence_type", "kl"], "`personalign train pba`: --f_divergence_type must be one of "),
    ],
)
def test_an_unknown_loss_type_or_f_divergence_is_refused_before_anything_loads(tmp_path, yaml_text, flags, message):
    """TRL checks them only when the loss is first computed: an internal error mid-run, after output_dir was made."""
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model_name_or_path: m\ndataset_name: d\noutput_dir: {tmp_path / 'out'}\n{yaml_text}")
    result = runner.invoke(app, ["train", "pba", "--config", str(config), *flags])
    assert isinstance(result.exception, InputError) and not (tmp_path / "out").exists()
    text = str(result.exception)
    assert text.startswith(message.format(config=config)) and text.endswith(("got 'bogus'.", "got 'kl'."))
    # Every value TRL handles parses, alone or mixed (for the methods built on DPOConfig).
    for method in ("pba", "ica", "dpore"):
        parse_train_arguments(method, ["--model_name_or_path", "m", "--dataset_name", "d", "--loss_type", "ipo",
                                       "hinge", "--loss_weights", "1", "1", "--f_divergence_type", "reverse_kl"], CPU)  # fmt: skip


def test_a_hub_token_is_not_echoed_in_a_type_error_or_a_misspelled_flag(tmp_path):
    secret = "hf_" + "Zz9" * 9
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model_name_or_path: m\ndataset_name: d\nhub_token: [{secret}]\n")
    with pytest.raises(InputError) as error:
        parse_train_arguments("pba", ["--config", str(config)], CPU)
    assert str(error.value) == f"{config}: key 'hub_token' must be text or null; got *** (list)."
    for flags, shown in [
        (["--hub_tokn", secret], "--hub_tokn ***"),
        ([f"--hub-tokenn={secret}"], "--hub-tokenn=***"),
        (["--hub_tokn", "short-but-secret"], "--hub_tokn ***"),  # a token flag's value, whatever its shape
        (["--learnin_rate", "1", "--no_such", secret], "--learnin_rate 1 --no_such ***"),  # a token's shape
    ]:
        with pytest.raises(InputError) as error:
            parse_train_arguments("pba", ["--model_name_or_path", "m", "--dataset_name", "d", *flags], CPU)
        assert f"unknown option(s) {shown}" in str(error.value) and secret not in str(error.value)
