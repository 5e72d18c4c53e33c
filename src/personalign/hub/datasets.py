"""Publishing: dataset folders with cards, and pushes to the Hugging Face Hub.

A built dataset is a folder that `datasets.load_dataset(folder, config_name)` reads directly:

    README.md                       card, YAML `configs` mapping each config's splits to its files
    <config>/<split>-00000-of-0000N.parquet

`write_dataset_folder` writes it atomically (temporary folder, then rename) and never over an existing folder
unless asked. `push_dataset` pushes every config with `DatasetDict.push_to_hub(config_name=...)` plus the card.
Tokens come from the standard places (`HF_TOKEN`, `huggingface-cli login`) and are never printed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import huggingface_hub
from datasets import Dataset, DatasetDict
from huggingface_hub.errors import HfHubHTTPError

from ..errors import InputError, network_error_types
from ..io import atomic_output
from .auth import HubError, redact_token, resolve_token

MAX_SHARD_BYTES = 500 * 2**20


def _shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def split_num_bytes(data: Dataset) -> int:
    """The size of a split as `push_to_hub` records it in `dataset_info` (`SplitInfo.num_bytes`): the bytes of its
    Arrow table, scaled to the selected rows when the dataset is an indices view (`select`, `shard`, ...).

    Reads `datasets`' internal `Dataset._indices` (set on an indices view), as `push_to_hub` itself does; pinned by
    `tests/test_dataset_publishing.py::test_split_num_bytes_follows_the_selected_rows`."""
    num_bytes = data.data.nbytes
    if data._indices is not None and len(data.data):
        num_bytes = num_bytes * len(data) // len(data.data)
    return int(num_bytes)


def write_dataset_folder(
    configs: Mapping[str, DatasetDict],
    output_dir: str | Path,
    card: str,
    overwrite: bool = False,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """Write configs as parquet shards plus the card (`render_dataset_card`), atomically; `load_dataset(output_dir,
    name)` reads them back.

    Raises:
        `OutputExistsError`: If `output_dir` exists and `overwrite` is False (before anything is built or written).
    """
    if not configs:
        raise InputError("write_dataset_folder needs at least one config.")
    output_dir = Path(output_dir)
    with atomic_output(output_dir, overwrite=overwrite) as staging:
        for name, splits in configs.items():
            (staging / name).mkdir(parents=True)
            for split, data in splits.items():
                count = max(1, math.ceil(data.data.nbytes / max_shard_bytes))
                for index in range(count):
                    shard = data.shard(count, index, contiguous=True)
                    shard.to_parquet(str(staging / name / _shard_name(split, index, count)))
        (staging / "README.md").write_text(card, encoding="utf-8")
    return output_dir


def push_dataset(
    configs: Mapping[str, DatasetDict],
    repo_id: str,
    card: str,
    private: bool = False,
    token: str | None = None,
) -> str:
    """Push every config (`push_to_hub(config_name=...)`) and the card (`render_dataset_card`) to a Hub dataset
    repo.

    The card goes first so that each `push_to_hub` merges its `configs` / `dataset_info` metadata into it.

    Returns:
        `str`: The repo URL.
    """
    token = resolve_token(token)
    api = huggingface_hub.HfApi(token=token)  # looked up at call time, so a stand-in client can replace it
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_file(
            path_or_fileobj=card.encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type="dataset",
            commit_message="Dataset card (personalign)",
        )
        for index, (name, splits) in enumerate(configs.items()):
            splits.push_to_hub(
                repo_id, config_name=name, set_default=index == 0, private=private, token=token, data_dir=name
            )
    except HfHubHTTPError as error:
        raise HubError(f"pushing to {repo_id} failed: {redact_token(str(error), token)}") from None
    except (OSError, *network_error_types()) as error:
        raise HubError(f"the Hugging Face Hub is unreachable ({type(error).__name__}); the push stopped.") from None
    return str(url)
