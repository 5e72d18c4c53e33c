"""Multi-process training through accelerate (issue 16, part 3), on CPU: `personalign train METHOD --num-processes 2`
starts two gloo processes. A 2-process run at per-device batch b must train as a 1-process run at batch 2b (the same
rows each step, gradients averaged across processes, DPORE's projection head included): the same logged losses and
metrics (gathered across processes) and the same final weights, to float tolerance. Checkpoints written by two
processes resume under two processes to the uninterrupted run's weights.

The persona encoder is the exception by construction: its in-batch negatives are the rows of one process's batch, so
two processes at batch b train as one process at batch b with `gradient_accumulation_steps=2` (each step averages two
b-row InfoNCE losses), which is the reference it is compared with.

Each launch costs 15-20 s on 2 cores (process start, model load); the 1-process references run in this process. The
module is marked slow (about 3 minutes on 2 shared cores).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from personalign.cli import app

# One xdist worker runs this whole module (`--dist loadgroup`): two `accelerate launch`es at once would both bind
# torch.distributed's default port.
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow, pytest.mark.xdist_group("accelerate")]

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LOSS_RTOL = 1e-5
"""Relative tolerance of a logged loss (2 processes against 1: measured below 2e-6, the summation order differs)."""
WEIGHT_ATOL = 1e-4
"""Absolute tolerance of a final weight where gradients are not float noise (the head, the encoder, a resumed run)."""
UPDATE_RTOL = 1e-2
"""Tolerance of `update_difference` between a 2-process and a 1-process causal LM (see there)."""

STEPS = ["--max_steps", "2", "--save_steps", "1", "--logging_steps", "1", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory, kit_cache):
    from personalign.testing import write_tiny_assets

    return write_tiny_assets(tmp_path_factory.mktemp("tiny") / "tiny", 16, 8, cache_dir=kit_cache)


def method_args(assets: Path, method: str, output: Path, batch: int) -> list[str]:
    """`personalign train METHOD` on the tiny assets, 2 steps at per-device batch `batch`, a checkpoint at each."""
    config = ["--config", str(EXAMPLES / "configs" / "tiny" / f"{method}.yaml")]
    data = {
        "dpore": ["--model_name_or_path", str(assets / "causal_lm"), "--dataset_name", str(assets / "alignx"),
                  "--persona_encoder", str(assets / "encoder")],
        "pba": ["--model_name_or_path", str(assets / "causal_lm"), "--dataset_name", str(assets / "alignx")],
        "reward": ["--model_name_or_path", str(assets / "causal_lm"), "--dataset_name", str(assets / "multifacet")],
        "encoder": ["--model_name_or_path", str(assets / "encoder_backbone"),
                    "--dataset_name", str(assets / "alignx" / "train.parquet")],
    }[method]  # fmt: skip
    sizes = ["--per_device_train_batch_size", str(batch)]
    if method != "encoder":
        sizes += ["--per_device_eval_batch_size", "8", "--max_length", "512"]
    return ["train", method, *config, *data, "--output_dir", str(output), *sizes, *STEPS]


def launch(args: list[str], num_processes: int = 2) -> subprocess.CompletedProcess:
    """`personalign train ... --num-processes N` as a user runs it (it launches `accelerate launch`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PERSONALIGN_DEBUG": ""}
    command = [sys.executable, "-m", "personalign", *args, "--num-processes", str(num_processes)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def in_process(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def logged_steps(checkpoint: Path) -> list[dict]:
    """The training log entries (one per step) of a checkpoint's `trainer_state.json`."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [entry for entry in state["log_history"] if "loss" in entry]


def weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def max_difference(one: dict, two: dict) -> float:
    assert one.keys() == two.keys()
    difference = max((one[name].float() - two[name].float()).abs().max().item() for name in one)
    print(f"max weight difference {difference:.3g}")  # shown with -s: the measured values in the notes
    return difference


def update_difference(initial: dict, one: dict, two: dict) -> float:
    """`||one - two|| / ||one - initial||` over all tensors: how far apart two runs' weights are, as a share of how
    far training moved them. A plain tolerance on weights does not fit Adam: its first steps move every element by
    about the learning rate whatever the gradient's size, so an element whose gradient is float noise (a token no
    row uses) moves by +-lr in either run, and the runs differ there by up to 2 lr."""
    assert one.keys() == two.keys()
    names = one.keys() & initial.keys()  # a reward model's new score head has no initial weights in the LM
    assert names
    apart = sum(((one[name].double() - two[name].double()) ** 2).sum().item() for name in names) ** 0.5
    moved = sum(((one[name].double() - initial[name].double()) ** 2).sum().item() for name in names) ** 0.5
    print(f"weights apart {apart:.3g}, moved {moved:.3g}: {apart / moved:.3g}")
    return apart / moved


def assert_same_training(one: list[dict], two: list[dict], exact: tuple[str, ...] = ()) -> None:
    """Logged losses within `LOSS_RTOL`; the metrics named in `exact` equal (gathered across processes)."""
    assert [entry["step"] for entry in one] == [entry["step"] for entry in two]
    for first, second in zip(one, two, strict=True):
        print(f"step {first['step']}: loss relative difference {abs(second['loss'] / first['loss'] - 1):.3g}")
        assert second["loss"] == pytest.approx(first["loss"], rel=LOSS_RTOL), (first, second)
        for key in exact:
            assert second[key] == first[key], (key, first, second)


# ------------------------------------------------------------------------------------------------ DPO family
@pytest.mark.parametrize("method", ["dpore", "pba"])
def test_two_processes_at_batch_b_train_as_one_at_2b(assets, tmp_path, method):
    two, one = tmp_path / "two", tmp_path / "one"
    launch(method_args(assets, method, two, 2))
    in_process(method_args(assets, method, one, 4))
    one_log, two_log = logged_steps(one / "checkpoint-2"), logged_steps(two / "checkpoint-2")
    assert_same_training(one_log, two_log, exact=("rewards/accuracies", "num_tokens"))
    for key in ("logps/chosen", "logps/rejected"):
        assert [entry[key] for entry in two_log] == pytest.approx([entry[key] for entry in one_log], rel=LOSS_RTOL)
    assert update_difference(weights(assets / "causal_lm"), weights(one), weights(two)) < UPDATE_RTOL
    if method == "dpore":
        assert "re/term" in two_log[-1]
        head_one, head_two = weights(one / "projection_head"), weights(two / "projection_head")
        assert max_difference(head_one, head_two) < WEIGHT_ATOL
        assert max_difference(head_one, weights(one / "checkpoint-1" / "projection_head")) > 10 * WEIGHT_ATOL
        # Interrupted after step 1 (only checkpoint-1 left), resumed under two processes: the uninterrupted run.
        resumed = tmp_path / "resumed"
        resumed.mkdir()
        shutil.copytree(two / "checkpoint-1", resumed / "checkpoint-1")
        launch([*method_args(assets, method, resumed, 2), "--resume", "true"])
        assert max_difference(weights(two), weights(resumed)) < WEIGHT_ATOL
        assert max_difference(weights(two / "projection_head"), weights(resumed / "projection_head")) < WEIGHT_ATOL
        assert_same_training(two_log, logged_steps(resumed / "checkpoint-2"), exact=("rewards/accuracies",))
    record = json.loads((two / "personalign_run.json").read_text())
    assert record["eval_metrics"]["eval_rewards/accuracies"] == pytest.approx(
        json.loads((one / "personalign_run.json").read_text())["eval_metrics"]["eval_rewards/accuracies"]
    )


def test_reward_model_two_processes_at_batch_b_train_as_one_at_2b(assets, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    launch(method_args(assets, "reward", two, 2))
    in_process(method_args(assets, "reward", one, 4))
    one_log, two_log = logged_steps(one / "checkpoint-2"), logged_steps(two / "checkpoint-2")
    assert_same_training(one_log, two_log, exact=("accuracy",) if "accuracy" in one_log[0] else ())
    assert update_difference(weights(assets / "causal_lm"), weights(one), weights(two)) < UPDATE_RTOL


# ------------------------------------------------------------------------------------------------ encoder
def without_dropout(backbone: Path, folder: Path) -> Path:
    """A copy of a BERT-style backbone with dropout off: each process draws its own dropout masks (all seeded
    alike), so with dropout on, process 1's batch gets other masks than the second accumulated batch of one process
    and the runs differ by construction (a loss 4e-4 apart after one step)."""
    shutil.copytree(backbone, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_encoder_two_processes_train_as_one_accumulating_two_batches(assets, tmp_path):
    backbone = without_dropout(assets / "encoder_backbone", tmp_path / "backbone")
    two, one = tmp_path / "two", tmp_path / "one"
    launch([*method_args(assets, "encoder", two, 4), "--model_name_or_path", str(backbone)])
    in_process(
        [*method_args(assets, "encoder", one, 4), "--model_name_or_path", str(backbone),
         "--gradient_accumulation_steps", "2", "--dataloader_drop_last", "true"]
    )  # fmt: skip
    one_log = logged_steps(Path(f"{one}-checkpoints") / "checkpoint-2")
    two_log = logged_steps(Path(f"{two}-checkpoints") / "checkpoint-2")
    assert_same_training(one_log, two_log)
    assert max_difference(weights(one / "0_Transformer"), weights(two / "0_Transformer")) < WEIGHT_ATOL
    one_results, two_results = (json.loads((run / "eval_results.json").read_text()) for run in (one, two))
    assert two_results["after"] == pytest.approx(one_results["after"], abs=1e-6)
    resumed = tmp_path / "resumed"
    (Path(f"{resumed}-checkpoints")).mkdir()
    shutil.copytree(Path(f"{two}-checkpoints") / "checkpoint-1", Path(f"{resumed}-checkpoints") / "checkpoint-1")
    launch([*method_args(assets, "encoder", resumed, 4), "--model_name_or_path", str(backbone), "--resume", "true"])
    assert max_difference(weights(two / "0_Transformer"), weights(resumed / "0_Transformer")) < WEIGHT_ATOL
