"""`models.hub_mixin.HubModule`: the one save / load convention of the small modules."""

from __future__ import annotations

import json

import pytest
import torch

from personalign.models.hub_mixin import HubModule


class Scale(HubModule):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, width)


def test_a_module_round_trips_through_a_subfolder_with_its_own_card(tmp_path):
    module = Scale(width=5)
    module.save_pretrained(tmp_path / "run" / "scale")
    assert json.loads((tmp_path / "run" / "scale" / "config.json").read_text()) == {"width": 5}
    card = (tmp_path / "run" / "scale" / "README.md").read_text()
    assert "Scale.from_pretrained" in card and "More Information Needed" not in card
    loaded = Scale.from_pretrained(tmp_path / "run", subfolder="scale")
    assert torch.equal(loaded.linear.weight, module.linear.weight) and loaded.linear.in_features == 5


def test_loading_is_strict_and_names_what_is_missing(tmp_path):
    Scale(width=3).save_pretrained(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text('{"width": 4}')  # weights of another shape
    with pytest.raises(RuntimeError, match=r"size mismatch"):
        Scale.from_pretrained(tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        Scale.from_pretrained(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no folder 'missing' in it"):
        Scale.from_pretrained(tmp_path / "a", subfolder="missing")
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a Hub repo id"):
        Scale.from_pretrained(tmp_path / "nowhere" / "deep" / "x")
