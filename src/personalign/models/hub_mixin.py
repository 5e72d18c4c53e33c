"""The one save / load convention of personalign's small torch modules (DPORE's projection head, the learned
inferencer's preference head): huggingface_hub's `PyTorchModelHubMixin`, i.e. a folder with `config.json` (the
constructor's arguments) and `model.safetensors`, loadable from a local folder or a Hub repo, also from a subfolder
of a larger checkpoint (a policy folder carries its projection head in `projection_head/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, snapshot_download
from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE
from huggingface_hub.errors import HFValidationError
from safetensors.torch import load_model

T = TypeVar("T", bound="HubModule")


def local_folder(
    name_or_path: str | Path,
    subfolder: str | None = None,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local folder holding a saved model: `name_or_path` (joined with `subfolder`) when it is a folder on disk,
    otherwise the Hub repo's files (only those under `subfolder/` when given), downloaded with `snapshot_download`.

    Raises:
        `FileNotFoundError`: If `name_or_path` is neither a local folder nor a valid Hub repo id, or the folder has
            no `subfolder`.
    """
    path = Path(name_or_path)
    if path.is_dir():
        folder = path / subfolder if subfolder else path
    else:
        try:
            root = snapshot_download(
                str(name_or_path),
                allow_patterns=[f"{subfolder}/*"] if subfolder else None,
                revision=revision,
                token=token,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        except HFValidationError:
            raise FileNotFoundError(f"{name_or_path}: neither a local folder nor a Hub repo id.") from None
        folder = Path(root) / subfolder if subfolder else Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"{name_or_path}: no folder {subfolder!r} in it.")
    return folder


SMALL_MODULE_CARD = """---
{{ card_data }}
---

# {{ class_name }}

A small module saved by [personalign](https://github.com/personalign/personalign): `config.json` holds its
constructor's arguments, `model.safetensors` its weights. Load it with

```python
from {{ module_name }} import {{ class_name }}

module = {{ class_name }}.from_pretrained("<this repo or folder>")  # add subfolder="..." when it sits in one
```
"""
"""The README.md `save_pretrained` writes beside a small module (huggingface_hub's default asks for "More
Information Needed")."""


class HubModule(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="personalign",
    tags=["personalign"],
    model_card_template=SMALL_MODULE_CARD,
):
    """Base class of a small module saved with `save_pretrained(folder)` (`config.json` + `model.safetensors`) and
    loaded with `from_pretrained(name_or_path, subfolder=...)`. Weights are safetensors; nothing is unpickled.

    A subclass's `__init__` arguments must be JSON values: the mixin records them in `config.json` and passes them
    back on load.
    """

    @classmethod
    def from_pretrained(
        cls: type[T],
        pretrained_model_name_or_path: str | Path,
        *,
        subfolder: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        **model_kwargs: Any,
    ) -> T:
        """Load a module saved with `save_pretrained`, from a local folder or a Hub repo, optionally from its
        `subfolder`.

        Raises:
            `FileNotFoundError`: As `local_folder`.
        """
        folder = local_folder(
            pretrained_model_name_or_path,
            subfolder,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        return super().from_pretrained(folder, **model_kwargs)

    @classmethod
    def _from_pretrained(
        cls: type[T],
        *,
        model_id: str,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> T:
        """The mixin's documented loading hook, narrowed to what `from_pretrained` hands it: a local folder. Reads
        `model.safetensors` strictly (a missing or unexpected tensor is an error; the mixin's default is lenient and
        falls back to a pickled `pytorch_model.bin`) and prints nothing.

        Raises:
            `FileNotFoundError`: If the folder has no `model.safetensors`.
        """
        for hub_argument in ("revision", "cache_dir", "force_download", "local_files_only", "token"):
            model_kwargs.pop(hub_argument, None)  # already used by `local_folder`
        weights = Path(model_id) / SAFETENSORS_SINGLE_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{model_id}: no {SAFETENSORS_SINGLE_FILE}.")
        model = cls(**model_kwargs)
        load_model(model, weights, strict=strict, device=map_location)
        return model

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The mixin's card hook: `SMALL_MODULE_CARD` filled with this module's class and import path."""
        kwargs.setdefault("class_name", type(self).__name__)
        kwargs.setdefault("module_name", type(self).__module__)
        return super().generate_model_card(*args, **kwargs)
