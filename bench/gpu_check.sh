#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA machine (an H200 here), logged to $OUT/gpu_check.log:
#   1. tests/test_gpu.py: bf16 training of DPORE (margin), PBA and the personalized reward model on CUDA, DPORE's margin
#      loss against its reference formulation in fp32 and bf16, the persona encoder on CUDA against the CPU;
#   2. `personalign train dpore --accelerate-config` (one process, bf16 mixed precision: the project's accelerate
#      route) and `accelerate launch --num_processes 1 --mixed_precision bf16 -m personalign train pba`, on the tiny
#      assets: each must finish, write its output folder and have trained in bf16;
#   3. vLLM: reported as skipped unless the machine already has it (its wheels cannot travel to an offline machine).
#
# Usage, from the repository root:  bash bench/gpu_check.sh
# Wheels of what the machine lacks (trl, datasets, evaluate, dill, multiprocess) are installed from .whl/ when that
# folder exists (to /tmp/site, first on PYTHONPATH). The package runs from src/ (PYTHONPATH), not installed.
# Environment: OUT (log folder; default /tmp/gpu_check_out), PYTHON (default python3), GPU_CHECK_WORK (scratch folder;
# default /tmp/gpu_check), GPU_CHECK_SKIP_INSTALL (non-empty: install nothing). Without CUDA (a dry run of the
# script's logic) the tests skip, the launches run on the CPU in fp32 and only the GPU assertions are left out.
set -o pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1

OUT=${OUT:-/tmp/gpu_check_out}
PY=${PYTHON:-python3}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
LOG="$OUT/gpu_check.log"
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
export HF_HOME="$WORK/hf" PERSONALIGN_TESTING_CACHE="$WORK/kit"

step() { echo; echo "=== $(date +%T) $*"; }
FAILURES=()
check() {  # check NAME COMMAND...: run it, record a failure without stopping the other checks
    local name=$1 start=$SECONDS status
    shift
    step "$name"
    "$@"
    status=$?
    echo "--- $name: exit $status after $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || FAILURES+=("$name (exit $status)")
}

# The card templates ship from model_cards/ as personalign.model_cards (pyproject's package-dir); running from src/
# needs the link. Removed at the end if this script made it.
MADE_LINK=""
if [ ! -e src/personalign/model_cards ]; then
    ln -s ../../model_cards src/personalign/model_cards && MADE_LINK=1
fi
cleanup() { [ -n "$MADE_LINK" ] && rm -f src/personalign/model_cards; }
trap cleanup EXIT

install_wheels() {
    if [ -n "${GPU_CHECK_SKIP_INSTALL:-}" ]; then
        echo "GPU_CHECK_SKIP_INSTALL is set: using the installed packages"
    elif compgen -G ".whl/*.whl" >/dev/null; then
        ls -l .whl/*.whl
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
            return 1
        # datasets 5.2.0 wants fsspec<=2026.9.0 (the tested set's version): carried, installed only over a newer one.
        local fsspec
        fsspec=$($PY -c 'import importlib.metadata as m; print(m.version("fsspec"))') || return 1
        if $PY -c "import sys; from packaging.version import Version as V; sys.exit(V('$fsspec') <= V('2026.9.0'))" &&
            compgen -G ".whl/fallback/fsspec-*.whl" >/dev/null; then
            echo "fsspec $fsspec is newer than datasets 5.2.0 allows (<=2026.9.0): installing .whl/fallback's"
            $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
                .whl/fallback/fsspec-*.whl || return 1
        fi
    else
        echo "no .whl/ folder: using the installed packages"
    fi
}

versions() {
    uname -a
    nvidia-smi || echo "(no nvidia-smi)"
    $PY - <<'EOF'
import importlib.metadata as md, sys, torch
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported(),
          "tf32 matmul", torch.backends.cuda.matmul.allow_tf32)
for name in ("transformers", "trl", "datasets", "evaluate", "accelerate", "peft", "sentence-transformers",
             "huggingface-hub", "tokenizers", "pyarrow", "fsspec", "dill", "multiprocess", "xxhash", "pandas",
             "numpy", "safetensors", "typer", "rich", "jinja2", "matplotlib", "scikit-learn", "pytest"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} MISSING")
import personalign, trl, datasets, evaluate  # noqa: E401  (the imports the checks need)
print("personalign", personalign.__version__, "from", personalign.__file__)
print("trl from", trl.__file__, "| datasets from", datasets.__file__)
EOF
}

vllm_check() {
    if $PY -c "import vllm; print('vllm', vllm.__version__)" 2>/dev/null; then
        echo "vllm is installed here, but the vLLM backend check is not part of this script: SKIPPED"
    else
        echo "vLLM: SKIPPED. vllm is not installed on this machine, and it cannot be carried: its wheel and its pinned"
        echo "torch build are far over the 64 MiB a device call may carry, and the machine has no network."
    fi
}

gpu_tests() {
    timeout 420 $PY -m pytest -q -s -rA tests/test_gpu.py -p no:cacheprovider
}

build_assets() {
    timeout 180 $PY examples/build_tiny_assets.py "$WORK/tiny" --train-rows 128 --test-rows 32
}

cat >"$WORK/accelerate.yaml" <<'EOF'
compute_environment: LOCAL_MACHINE
distributed_type: 'NO'
mixed_precision: bf16
num_machines: 1
num_processes: 1
machine_rank: 0
gpu_ids: all
use_cpu: false
EOF

# The tiny configs, pointed at the assets built above; 8 steps of 16 rows, checkpoints at 4 and 8.
tiny_flags() {
    echo --config "examples/configs/tiny/$1.yaml" --model_name_or_path "$WORK/tiny/causal_lm" \
        --dataset_name "$WORK/tiny/alignx" --output_dir "$WORK/$1" --disable_tqdm true
}

train_dpore_accelerate_config() {  # the project's route: personalign train --accelerate-config -> accelerate launch
    # shellcheck disable=SC2046
    timeout 300 $PY -m personalign train dpore --accelerate-config "$WORK/accelerate.yaml" $(tiny_flags dpore) \
        --persona_encoder "$WORK/tiny/encoder"
}

train_pba_accelerate_launch() {  # accelerate launch with flags, as a user would type it
    # shellcheck disable=SC2046
    timeout 300 $PY -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \
        --dynamo_backend no -m personalign train pba $(tiny_flags pba)
}

verify_run() {  # verify_run METHOD: the output folder is complete and the run trained in bf16 (on a GPU)
    cp "$WORK/$1/personalign_run.json" "$OUT/$1_run.json" 2>/dev/null
    $PY - "$WORK/$1" "$1" <<'EOF'
import json, math, sys
from pathlib import Path
import torch
folder, method = Path(sys.argv[1]), sys.argv[2]
files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
print(f"{folder}: {len(files)} files:", ", ".join(f for f in files if "/" not in f or f.startswith("projection_head")))
record = json.loads((folder / "personalign_run.json").read_text())
args = torch.load(folder / "training_args.bin", weights_only=False)
train = record.get("train_metrics", {})
print("run record: method", record["method"], "| hyperparameters bf16:", record.get("hyperparameters", {}).get("bf16"),
      "| training_args.bin bf16", args.bf16, "fp16", args.fp16, "use_cpu", args.use_cpu)
print("train metrics:", json.dumps(train))
print("eval metrics:", json.dumps(record.get("eval_metrics", {})))
state = json.loads(max(folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1])).read_text())
losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
print("global_step", state["global_step"], "logged losses", losses)
assert record["method"] == method and state["global_step"] == 8 and losses and all(math.isfinite(v) for v in losses)
assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
if method == "dpore":
    assert (folder / "projection_head" / "model.safetensors").is_file() and (folder / "persona_encoder").is_dir()
if torch.cuda.is_available():
    assert args.bf16 and not args.fp16 and not args.use_cpu, "the run did not train in bf16 on the GPU"
    print(f"OK: {method} trained on the GPU in bf16")
else:
    print(f"OK (dry run, no CUDA): {method} trained on the CPU in fp32")
EOF
}

main() {
    echo "gpu_check.sh at $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($(date -u +%FT%TZ)); log: $LOG"
    check "install wheels" install_wheels
    export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    check "versions" versions
    check "vllm" vllm_check
    check "tests/test_gpu.py" gpu_tests
    check "build tiny assets" build_assets
    check "train dpore (personalign --accelerate-config, bf16)" train_dpore_accelerate_config
    check "verify dpore" verify_run dpore
    check "train pba (accelerate launch --mixed_precision bf16)" train_pba_accelerate_launch
    check "verify pba" verify_run pba
    step "summary (${SECONDS} s in all)"
    if [ ${#FAILURES[@]} -eq 0 ]; then
        echo "ALL CHECKS PASSED"
    else
        printf 'FAILED: %s\n' "${FAILURES[@]}"
        return 1
    fi
}

main 2>&1 | tee "$LOG"
