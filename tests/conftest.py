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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


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
def alignx_space():
    from personalign import PreferenceSpace

    return PreferenceSpace.alignx()
