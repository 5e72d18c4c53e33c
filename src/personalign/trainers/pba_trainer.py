"""PBATrainer: preference-bridged alignment (the AlignX paper, eq. 2) as a TRL DPOTrainer subclass."""

from __future__ import annotations

from typing import ClassVar

from .alignx_trainer import AlignXPersonaTrainer
from .pba_config import PBAConfig


class PBATrainer(AlignXPersonaTrainer):
    r"""Preference-bridged alignment: DPO where the persona enters the prompt as its preference direction in words
    ("User Preferences: Concise communication style, Dislikes humor"), rendered by `personalign.pba_messages`.

    For AlignX rows with raw persona columns the direction is the AlignX aggregation of the drawn history items'
    gold vectors (`PBAConfig.upper` / `lower`), redrawn each epoch; rows whose `prompt` is already rendered (e.g.
    with an inferred profile) are used as they are.

    ```python
    from personalign import PBAConfig, PBATrainer

    trainer = PBATrainer(model="meta-llama/Llama-3.1-8B-Instruct", args=PBAConfig(output_dir="pba", beta=0.1),
                         train_dataset=load_dataset("JinaLeejnl/AlignX", split="train"))
    trainer.train()
    ```
    """

    _style = "pba"
    _config_class = PBAConfig
    _tag_names: ClassVar[list[str]] = ["trl", "dpo", "pba", "alignx", "personalign"]
    _name = "PBA"
