"""The package list in pyproject.toml is explicit (model_cards/ ships as personalign.model_cards): keep it whole."""

from importlib import resources
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT / "src").parts)
        for init in (ROOT / "src" / "personalign").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert config["package-dir"]["personalign.model_cards"] == "model_cards"


def test_card_templates_are_importable_resources():
    names = {p.name for p in resources.files("personalign.model_cards").iterdir()}
    assert "dataset_card.md.j2" in names
    assert resources.files("personalign").joinpath("spec/alignx_preference_space.json").is_file()
