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
    assert result.stderr.strip().splitlines() == [f"error: {output} already exists; pass --overwrite to replace it."]
    assert "Traceback" not in result.stderr
    assert output.read_text() == "keep me\n"
    assert run_cli("synthetic", "alignx", str(output), "--rows", "2", "--overwrite").returncode == 0
    assert len(output.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synthetic", "alignx", "OUT.jsonl", "--rows", "3"], "error: num_rows must be a positive even number"),
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


# ------------------------------------------------------------------------------------ start-up and the error map
def test_help_imports_no_torch_transformers_or_trl():
    code = (
        "import sys\n"
        "from personalign.cli import main\n"
        "sys.argv = ['personalign', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert "train" in result.stdout and "eval" in result.stdout


def run_main(monkeypatch, capsys, *args, debug=False):
    """The console entry point in this process: `(exit code, stderr)`."""
    from personalign.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["personalign", *args])
    monkeypatch.setenv("PERSONALIGN_DEBUG", "1" if debug else "")
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def break_space_command(monkeypatch, error):
    from personalign.personas.space import PreferenceSpace

    def broken(cls):
        raise error

    monkeypatch.setattr(PreferenceSpace, "psoups", classmethod(broken))


# A plain ValueError is a bug too: user-facing problems raise InputError (a ValueError), library ValueErrors on user
# input are turned into one at the boundary that reads the input (e.g. data/loading.py).
@pytest.mark.parametrize(
    "error", [ZeroDivisionError("division by zero"), KeyError("dimensions"), ValueError("shapes (2,) and (3,)")]
)
def test_an_unexpected_exception_is_reported_as_a_bug(monkeypatch, capsys, error):
    break_space_command(monkeypatch, error)
    code, stderr = run_main(monkeypatch, capsys, "space", "psoups")
    lines = stderr.strip().splitlines()
    assert code == 1 and "Traceback" not in stderr
    assert lines == [
        f"error: internal error in personalign (a bug; please report it): {type(error).__name__}: {error}",
        "set PERSONALIGN_DEBUG=1 for the traceback",
    ]
    code, stderr = run_main(monkeypatch, capsys, "space", "psoups", debug=True)
    assert code == 1 and stderr.startswith("Traceback") and "broken" in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: internal error in personalign (a bug")


def test_a_known_error_is_one_line_and_its_traceback_only_under_debug(monkeypatch, capsys):
    from personalign.errors import InputError

    break_space_command(monkeypatch, InputError("row 3: no 'prompt' column"))
    code, stderr = run_main(monkeypatch, capsys, "space", "psoups")
    assert (code, stderr.strip().splitlines()) == (1, ["error: row 3: no 'prompt' column"])
    code, stderr = run_main(monkeypatch, capsys, "space", "psoups", debug=True)
    assert code == 1 and stderr.startswith("Traceback")
    assert stderr.strip().splitlines()[-1] == "error: row 3: no 'prompt' column"


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    break_space_command(monkeypatch, KeyboardInterrupt())
    code, stderr = run_main(monkeypatch, capsys, "space", "psoups")
    assert (code, stderr.strip().splitlines()) == (130, ["error: interrupted"])


def test_usage_errors_keep_typer_s_message(monkeypatch, capsys):
    code, stderr = run_main(monkeypatch, capsys, "build-dataset", "alignx", "--source", "s", "--output", "o",
                            "--history-size", "3")  # fmt: skip
    assert code == 2 and "No such option" in stderr and "--history-size" in stderr


def test_the_error_map():
    import json

    import yaml
    from huggingface_hub.errors import LocalEntryNotFoundError

    from personalign.cli.error_map import error_message, is_user_error
    from personalign.errors import InputError, PersonalignError
    from personalign.hub.auth import HubError
    from personalign.io import OutputExistsError

    # Our errors are also the builtins they replaced, so `except ValueError` and friends keep working.
    assert issubclass(InputError, ValueError) and issubclass(OutputExistsError, FileExistsError)
    assert issubclass(HubError, OSError)
    known = [InputError("x"), OutputExistsError("x"), HubError("x"), FileNotFoundError("x"), PermissionError("x"),
             IsADirectoryError("x"), yaml.YAMLError("x"), json.JSONDecodeError("x", "doc", 0), ConnectionError("x")]  # fmt: skip
    assert all(isinstance(error, PersonalignError) for error in known[:3])
    assert all(is_user_error(error) for error in known)
    for error in (
        KeyError("x"),
        ZeroDivisionError("x"),
        TypeError("x"),
        AttributeError("x"),
        OSError("x"),
        ValueError("x"),
    ):
        assert not is_user_error(error)
    # An unreachable host: huggingface_hub's HTTP client (httpx2) raises transport errors that are not OSErrors.
    httpx2 = pytest.importorskip("httpx2")  # huggingface_hub 2's client (1.x: httpx, same class names)
    assert is_user_error(httpx2.ConnectError("[Errno -2] Name or service not known"))
    # transformers re-raises huggingface_hub's "not in the cache" as a plain OSError from it: user-facing.
    try:
        try:
            raise LocalEntryNotFoundError("not cached")
        except LocalEntryNotFoundError as cause:
            raise OSError("We couldn't connect to 'https://huggingface.co'\nCheck your connection.") from cause
    except OSError as error:
        assert is_user_error(error)
        assert error_message(error) == "We couldn't connect to 'https://huggingface.co' Check your connection."


@pytest.mark.parametrize("variable", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
def test_the_error_line_never_shows_a_token(monkeypatch, capsys, variable):
    """The safety net at the boundary: whatever put a token into a message (a library, a site that forgot), the
    `error:` line masks the environment's token and anything shaped like a Hub token, for user errors and bugs."""
    from personalign.cli.error_map import error_message
    from personalign.errors import InputError

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv(variable, "plain-env-secret-42")  # not shaped like a Hub token: found by its value
    shaped = "hf_" + "Ab1" * 8
    assert error_message(InputError(f"bad value plain-env-secret-42 near {shaped}.")) == "bad value *** near ***."
    assert error_message(KeyError(shaped)).endswith("KeyError: '***'")
    assert error_message(InputError("hf_short and hf_ alone stay")) == "hf_short and hf_ alone stay"
    break_space_command(monkeypatch, ValueError(f"token {shaped} in a library's message"))
    code, stderr = run_main(monkeypatch, capsys, "space", "psoups")
    assert code == 1 and shaped not in stderr and "token *** in a library's message" in stderr
