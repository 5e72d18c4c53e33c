"""Outputs staged and renamed (`personalign.io.atomic_output`): file modes that follow the umask, output paths checked
before any work, staging folders cleaned on SIGTERM and removed when stale; and the cheap checks of weight files and
checkpoints (`personalign.io`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from personalign.errors import InputError
from personalign.io import (
    OTHER_FOLDERS,
    OutputExistsError,
    atomic_output,
    check_model_folder,
    check_run_unfinished,
    checkpoint_problem,
    checkpoint_to_resume,
    ensure_writable,
    remove_stale_staging,
    require_local_path,
    write_rows,
)

as_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder modes")


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path):
    return oct(path.stat().st_mode & 0o777)


# ------------------------------------------------------------------------------------------------------ file modes
def test_staged_outputs_follow_the_umask(tmp_path, umask_022):
    """safetensors writes through a private 0600 temporary file; what atomic_output lands follows the umask."""
    with atomic_output(tmp_path / "model") as folder:
        (folder / "sub").mkdir(parents=True)
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "model.safetensors"))
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "sub" / "model.safetensors"))
        (folder / "run.sh").write_text("#!/bin/sh\n")
        os.chmod(folder / "run.sh", 0o700)
        assert mode(folder / "model.safetensors") == oct(0o600)  # what safetensors does on its own
    model = tmp_path / "model"
    assert mode(model) == oct(0o755) and mode(model / "sub") == oct(0o755)
    assert mode(model / "model.safetensors") == mode(model / "sub" / "model.safetensors") == oct(0o644)
    assert mode(model / "run.sh") == oct(0o755)
    with atomic_output(tmp_path / "single.safetensors") as path:
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(path))
    assert mode(tmp_path / "single.safetensors") == oct(0o644)


# -------------------------------------------------------------------------------------------------- output paths
def test_an_output_under_a_file_fails_before_any_work_naming_the_user_s_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "somefile.txt").write_text("x")
    for output in ("somefile.txt/out", "somefile.txt/a/b.jsonl"):
        with pytest.raises(InputError) as error:
            ensure_writable(output)
        assert str(error.value) == f"{output}: cannot write there, somefile.txt is a file, not a folder."
    rows_read = []

    def rows():
        rows_read.append(1)
        yield {"a": 1}

    with pytest.raises(InputError, match=r"^somefile.txt/out.jsonl: cannot write there"):
        write_rows(rows(), "somefile.txt/out.jsonl", progress=False)
    assert rows_read == [] and sorted(p.name for p in tmp_path.iterdir()) == ["somefile.txt"]


@as_root
def test_an_unwritable_parent_fails_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError) as error, atomic_output(locked / "new" / "out.json"):
            pytest.fail("the body ran")
        assert (
            str(error.value)
            == f"{locked / 'new' / 'out.json'}: cannot write there, no permission to write in {locked}."
        )
    finally:
        locked.chmod(0o755)


def test_the_cli_names_the_output_path_not_a_staging_path(tmp_path):
    (tmp_path / "somefile.txt").write_text("x")
    output = tmp_path / "somefile.txt" / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "personalign", "synthetic", "alignx", str(output), "--rows", "2"],
        capture_output=True, text=True, env={**os.environ, "PERSONALIGN_DEBUG": ""}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {output}: cannot write there, {tmp_path / 'somefile.txt'} is a file, not a folder."
    ]


def test_an_output_that_is_or_holds_an_input_is_refused_even_with_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.parquet").write_text("rows")
    (tmp_path / "link").symlink_to(data)
    cases = [
        ("data", ["data"], "is"),  # the dataset folder itself
        ("./data/", ["data"], "is"),  # another spelling of it
        ("link", ["data"], "is"),  # a link to it
        ("data", [str(data / "rows.parquet")], "holds"),  # the folder of a dataset file
        (".", ["link/rows.parquet"], "holds"),  # a parent, the input named through a link
        ("data/rows.parquet", ["./data/rows.parquet"], "is"),  # the file itself
    ]
    for output, inputs, relation in cases:
        with pytest.raises(InputError) as error:
            ensure_writable(output, overwrite=True, inputs=[None, "org/hub-dataset", *inputs])
        message = f"{Path(output)}: {relation} the input {inputs[0]}; writing the output there would delete it"
        assert str(error.value) == f"{message}: choose another output.", output
    # Neither is an existing output without overwrite told to pass --overwrite: the input comes first.
    with pytest.raises(InputError, match=r"^data: is the input data;"):
        ensure_writable("data", inputs=["data"])
    # An output beside or inside an input, and inputs that are no local paths (Hub ids, API specs), are fine.
    spec = "openai:http://127.0.0.1:8000/v1@m"
    assert ensure_writable("out", inputs=["data", spec, "org/name"]) == Path("out")
    assert ensure_writable("data/out", inputs=["data", str(data / "rows.parquet")]) == Path("data/out")
    assert (data / "rows.parquet").read_text() == "rows"


def test_an_existing_output_names_the_python_argument_and_the_cli_flag(tmp_path):
    import pickle

    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError) as error:
        ensure_writable(tmp_path / "out")
    assert str(error.value) == f"{tmp_path / 'out'} already exists; pass overwrite=True to replace it."
    assert error.value.command_line_message() == f"{tmp_path / 'out'} already exists; pass --overwrite to replace it."
    again = pickle.loads(pickle.dumps(error.value))  # e.g. raised in a worker process
    assert isinstance(again, FileExistsError) and str(again) == str(error.value) and again.path == error.value.path


def test_a_name_that_is_no_hub_repo_id_is_a_missing_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("my model", "models/../x", "bad--name", "a" * 97):
        with pytest.raises(InputError, match=r"^model .*: no such file or folder\.$"):
            require_local_path(name, "model")
    require_local_path("org/model-1.5", "model")  # a valid repo id: the Hub's to answer
    (tmp_path / "my model").mkdir()
    require_local_path("my model", "model")  # exists: a local folder whatever its name


# --------------------------------------------------------------------------------------------- staging clean-up
def dead_pid():
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_staging_folders_are_removed_on_the_next_run(tmp_path):
    output = tmp_path / "data.jsonl"
    stale = tmp_path / f".data.jsonl.{dead_pid()}.abc123_x.partial"
    live = tmp_path / f".data.jsonl.{os.getppid()}.def456.partial"  # a live process: another run writing it
    other = tmp_path / f".data.jsonl.x.{dead_pid()}.abc.partial"  # the staging of the output `data.jsonl.x`
    old_form = tmp_path / ".data.jsonl.k3j4h5g6.partial"  # no owner to ask about: left alone
    for folder in (stale, live, other, old_form):
        (folder / "data.jsonl").mkdir(parents=True)
    write_rows([{"a": 1}], output, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data.jsonl", live.name, other.name, old_form.name])
    assert remove_stale_staging(tmp_path / "data.jsonl.x") == [other]


def test_sigterm_removes_the_staging_folder_and_exits_143(tmp_path):
    """SIGTERM takes the Ctrl-C path: the `finally` blocks remove the staging folder, one line, exit code 143."""
    output = tmp_path / "big.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "personalign", "synthetic", "alignx", str(output), "--rows", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PERSONALIGN_DEBUG": ""},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".big.jsonl.*.partial")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    staging = next(tmp_path.glob(".big.jsonl.*.partial"))
    assert staging.name.startswith(f".big.jsonl.{process.pid}.")  # the owner's pid, for the stale check
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.strip().splitlines() == ["error: terminated (SIGTERM)"]
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handler_is_restored_after_a_run(monkeypatch, capsys):
    from personalign.cli import app, run

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sys, "argv", ["personalign", "--version"])
    with pytest.raises(SystemExit):
        run(app)
    assert signal.getsignal(signal.SIGTERM) is before


# ----------------------------------------------------------------------------------- weight files and checkpoints
def write_checkpoint(folder, state=True):
    folder.mkdir(parents=True)
    save_file({"w": np.ones(4, dtype=np.float32)}, str(folder / "model.safetensors"))
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": int(folder.name.split("-")[1])}))
    return folder


def test_checkpoint_checks(tmp_path):
    run = tmp_path / "run"
    first, second = write_checkpoint(run / "checkpoint-5"), write_checkpoint(run / "checkpoint-10")
    assert checkpoint_problem(first) is None and checkpoint_to_resume(run) == second
    assert checkpoint_to_resume(tmp_path / "missing") is None

    (second / "trainer_state.json").write_text('{"global_step": 1')  # cut short while writing it
    assert checkpoint_to_resume(run) == first
    (second / "trainer_state.json").write_text('{"global_step": 10}')
    weights = second / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(InputError) as error:
        checkpoint_to_resume(run)
    assert str(error.value).startswith(f"--resume: {weights}: does not load (")
    assert str(error.value).endswith(
        f"the last intact checkpoint is {first}: move {second} out of {run} and resume again to continue from it."
    )

    (first / "trainer_state.json").unlink()
    with pytest.raises(InputError, match=f"no checkpoint in {run} is intact; start again with --overwrite true"):
        checkpoint_to_resume(run)


def test_check_model_folder(tmp_path):
    check_model_folder("org/not-a-local-folder")  # a Hub id: nothing to check here
    folder = tmp_path / "model"
    module = folder / "0_Transformer"
    module.mkdir(parents=True)
    save_file({"w": np.ones(4, dtype=np.float32)}, str(module / "model.safetensors"))
    (folder / "modules.json").write_text("[]")  # a sentence-transformers model
    (folder / "training_args.bin").write_bytes(b"pickle")  # a trainer's state beside weights: not weights
    check_model_folder(folder)
    (module / "model.safetensors").write_bytes(b"\x00" * 8)
    with pytest.raises(InputError, match=rf"^persona encoder {module / 'model.safetensors'}: does not load \("):
        check_model_folder(folder, "persona encoder")
    (module / "model.safetensors").unlink()
    (module / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(InputError, match=rf"^model {module}: holds only pickled weights \(pytorch_model.bin\)"):
        check_model_folder(folder)
    broken = folder / "checkpoint-3"  # checkpoints are not part of the model
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"")
    (module / "pytorch_model.bin").unlink()
    check_model_folder(folder)


def test_torch_file_problem_reads_no_tensor_and_runs_no_pickle(tmp_path):
    import zipfile

    from personalign.io import torch_file_problem

    path = tmp_path / "optimizer.pt"
    torch.save({"state": {}, "step": torch.zeros(2)}, path)
    assert torch_file_problem(path) is None
    with zipfile.ZipFile(path, "w") as archive:  # a zip with a pickle, but not torch's layout
        archive.writestr("optimizer/data.pkl", b"\x80\x02}q\x00.")
    assert torch_file_problem(path).startswith("not a torch.save archive (")
    path.write_bytes(path.read_bytes()[:-10])
    assert torch_file_problem(path).startswith("not a whole torch.save archive (")


def test_a_model_path_that_is_a_file_or_a_folder_without_a_config_is_one_line(tmp_path):
    weights = tmp_path / "model.safetensors"
    save_file({"w": np.ones(4, dtype=np.float32)}, str(weights))
    with pytest.raises(InputError) as error:
        check_model_folder(weights)
    assert str(error.value) == (
        f"model {weights}: is a file; expected a model folder (as save_pretrained writes it) or a Hub id."
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=rf"^reward model {empty}: no config\.json \(nor adapter_config\.json"):
        check_model_folder(empty, "reward model")
    # A folder personalign writes that is no model is named, with what to do with it.
    inferencer = tmp_path / "inferencer"
    inferencer.mkdir()
    (inferencer / "learned_inference_config.json").write_text("{}")
    with pytest.raises(InputError) as error:
        check_model_folder(inferencer)
    assert str(error.value) == (
        f"model {inferencer}: a learned preference inferencer folder (learned_inference_config.json), not a model "
        "folder; infer preferences with it through `personalign infer-preferences --inferencer learned`."
    )
    # Each layout a loader accepts passes: transformers' config.json, a PEFT adapter, a sentence-transformers model.
    for marker in ("config.json", "adapter_config.json", "modules.json"):
        folder = tmp_path / marker.split(".")[0]
        folder.mkdir()
        (folder / marker).write_text("{}")
        check_model_folder(folder)


def test_a_checkpoint_without_its_weights_is_damaged(tmp_path):
    run = tmp_path / "run"
    first, second = write_checkpoint(run / "checkpoint-1"), write_checkpoint(run / "checkpoint-2")
    (second / "model.safetensors").unlink()
    assert checkpoint_problem(second) == (
        f"{second / 'model.safetensors'} is missing (the checkpoint holds no model weights)"
    )
    with pytest.raises(InputError) as error:
        checkpoint_to_resume(run)
    assert str(error.value) == (
        f"--resume: {second / 'model.safetensors'} is missing (the checkpoint holds no model weights); the last "
        f"intact checkpoint is {first}: move {second} out of {run} and resume again to continue from it."
    )
    # A sharded checkpoint needs every shard its index lists; a PEFT adapter's weights are weights too.
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (second / "model.safetensors.index.json").write_text(json.dumps(index))
    save_file({"a": np.ones(2, dtype=np.float32)}, str(second / "model-00001-of-00002.safetensors"))
    assert checkpoint_problem(second) == (
        f"{second / 'model-00002-of-00002.safetensors'} is missing (a shard listed in model.safetensors.index.json)"
    )
    save_file({"b": np.ones(2, dtype=np.float32)}, str(second / "model-00002-of-00002.safetensors"))
    assert checkpoint_problem(second) is None
    adapter = write_checkpoint(run / "checkpoint-3")
    (adapter / "model.safetensors").rename(adapter / "adapter_model.safetensors")
    assert checkpoint_problem(adapter) is None


def test_resume_refuses_a_checkpoint_that_is_a_file(tmp_path):
    run = tmp_path / "run"
    write_checkpoint(run / "checkpoint-1")
    (run / "checkpoint-2").write_text("hi")
    with pytest.raises(InputError) as error:
        checkpoint_to_resume(run)
    assert str(error.value) == (
        f"--resume: {run / 'checkpoint-2'} is a file, not a checkpoint folder; move it out of {run} and resume again."
    )


def test_resume_refuses_a_finished_run(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run" / "checkpoint-2")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2, "epoch": 1.0, "max_steps": 2}))
    check_run_unfinished(checkpoint, 3, 1.0)
    with pytest.raises(InputError) as error:
        check_run_unfinished(checkpoint, 2, 1.0)
    assert str(error.value) == (
        f"--resume: the run in {tmp_path / 'run'} already reached max_steps=2 (checkpoint-2); raise --max_steps to "
        "train further."
    )
    check_run_unfinished(checkpoint, -1, 2.0)  # epoch-based: 1 of 2 epochs done
    with pytest.raises(InputError, match=r"already reached num_train_epochs=1 \(checkpoint-2\); raise --num_train"):
        check_run_unfinished(checkpoint, -1, 1.0)


def test_other_folders_are_named_by_the_files_their_writers_write():
    from personalign.evaluation.responses import RESPONSES_FILE
    from personalign.inference.learned import CONFIG_NAME
    from personalign.inference.preferences_file import PREFERENCES_FILE

    assert {CONFIG_NAME, RESPONSES_FILE, PREFERENCES_FILE} == set(OTHER_FOLDERS)
