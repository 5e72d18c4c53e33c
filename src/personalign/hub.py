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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from . import __version__
from .io import atomic_output

MAX_SHARD_BYTES = 500 * 2**20

ALIGNX_CITATION = """@article{li2025alignx,
  title   = {From 1,000,000 Users to Every User: Scaling Up Personalized Preference for User-level Alignment},
  author  = {Li, Jia-Nan and Guan, Jian and Wu, Songhao and Wu, Wei and Yan, Rui},
  journal = {arXiv preprint arXiv:2503.15463},
  year    = {2025}
}"""
COUNTERFACTUAL_CITATION = """@article{jin2025counterfactual,
  title  = {In-Context Personalized Alignment with Feedback History under Counterfactual Evaluation},
  author = {Jin, Xisen and Li, Zheng and Dai, Zhenwei and Liu, Hui and Tang, Xianfeng and Luo, Chen and
            Goutam, Rahul and Ren, Xiang and He, Qi},
  year   = {2025}
}"""
MULTIFACETED_CITATION = """@article{lee2024janus,
  title   = {Aligning to Thousands of Preferences via System Message Generalization},
  author  = {Lee, Seongyun and Park, Sue Hyun and Kim, Seungone and Seo, Minjoon},
  journal = {arXiv preprint arXiv:2405.17977},
  year    = {2024}
}"""

DPORE_CITATION = """@misc{dpore2025,
  title  = {Context-Aware Alignment: Adapting Large Language Models to Individual Historical Data},
  author = {Anonymous},
  note   = {Under double-blind review},
  year   = {2025}
}"""


class HubError(OSError):
    """A Hub operation failed for a reason the user can act on (no token, Hub unreachable, ...)."""


@dataclass
class DatasetCardSpec:
    """What a dataset card says beyond the data itself.

    Args:
        pretty_name (`str`): Title of the card.
        summary (`str`): One paragraph on what the dataset is.
        source (`str`): Where the data came from (Hub id or local path).
        descriptions (`dict[str, str]`): One line per config.
        provenance (`dict[str, Any]`): Build settings (seed, thresholds, T, ...), rendered as a list.
        license (`str`): SPDX id for the YAML header (`"other"` when the source's license is not known).
        license_text (`str`): The license section's text.
        citations (`list[str]`): BibTeX entries.
        tags (`list[str]`): Extra Hub tags.
    """

    pretty_name: str
    summary: str
    source: str
    descriptions: dict[str, str]
    provenance: dict[str, Any] = field(default_factory=dict)
    license: str = "other"
    license_text: str = "See the source dataset's card for its license; this derived dataset inherits it."
    citations: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


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


def render_card(template_name: str, metadata: Mapping[str, Any], **context: Any) -> str:
    """Render a card template of `model_cards/` with `metadata` as its YAML front matter (`metadata_yaml`) and the
    library version (`version`); an unknown template variable is an error, not an empty string."""
    import jinja2
    import yaml

    template = resources.files("personalign.model_cards").joinpath(template_name).read_text("utf-8")
    environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(template).render(
        metadata_yaml=yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=True),
        version=__version__,
        **context,
    )


def render_dataset_card(configs: Mapping[str, DatasetDict], spec: DatasetCardSpec) -> str:
    """The README.md of a built dataset: YAML metadata (with `configs` pointing at the shard files) and a body
    rendered from `model_cards/dataset_card.md.j2`."""
    names = list(configs)
    metadata = {
        "pretty_name": spec.pretty_name,
        "license": spec.license,
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["personalization", "alignment", "preference", "personalign", *spec.tags],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in configs[name]],
                **({"default": True} if index == 0 else {}),
            }
            for index, name in enumerate(names)
        ],
        # The features and sizes `push_to_hub` would record, so a local folder's card is complete too. `datasets`
        # reads a split entry only with all of name / num_bytes / num_examples (else it logs "Ignoring part of
        # dataset_info ... malformed" on every load).
        "dataset_info": [
            {
                "config_name": name,
                "features": next(iter(configs[name].values())).features._to_yaml_list(),
                "splits": [
                    {"name": split, "num_bytes": split_num_bytes(data), "num_examples": len(data)}
                    for split, data in configs[name].items()
                ],
                "dataset_size": sum(split_num_bytes(data) for data in configs[name].values()),
            }
            for name in names
        ],
    }
    if spec.license == "other":
        metadata["license_name"] = "source-license"
    return render_card(
        "dataset_card.md.j2",
        metadata,
        pretty_name=spec.pretty_name,
        summary=spec.summary,
        source=spec.source,
        configs=[
            {
                "name": name,
                "description": spec.descriptions.get(name, ""),
                "columns": list(next(iter(configs[name].values())).column_names),
                "splits": [{"name": split, "rows": len(data)} for split, data in configs[name].items()],
            }
            for name in names
        ],
        provenance=spec.provenance,
        license_text=spec.license_text,
        citations=spec.citations,
    )


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
        raise ValueError("write_dataset_folder needs at least one config.")
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


def load_dataset_folder(folder: str | Path) -> dict[str, DatasetDict]:
    """Every config of a folder written by `write_dataset_folder`, by name."""
    from datasets import get_dataset_config_names, load_dataset

    folder = str(folder)
    return {name: load_dataset(folder, name) for name in get_dataset_config_names(folder)}


def resolve_token(token: str | None = None) -> str:
    """The Hub token: the argument, else `HF_TOKEN` / the saved login. Never printed or logged.

    Raises:
        `HubError`: If there is none, with what to do about it.
    """
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError(
            "no Hugging Face token found: set HF_TOKEN or run `hf auth login` (the token is never printed)."
        )
    return token


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
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = resolve_token(token)
    api = HfApi(token=token)
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
        raise HubError(f"pushing to {repo_id} failed: {_without_token(str(error), token)}") from None
    except (ConnectionError, OSError) as error:
        raise HubError(f"the Hugging Face Hub is unreachable ({type(error).__name__}); the push stopped.") from None
    return str(url)


def _without_token(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
