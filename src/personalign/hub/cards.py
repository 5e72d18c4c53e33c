"""The one card writer: dataset cards (`render_dataset_card`) and the templates under `model_cards/` (`render_card`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from datasets import DatasetDict

from .. import __version__
from .datasets import split_num_bytes


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
