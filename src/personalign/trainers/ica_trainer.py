"""ICATrainer: in-context alignment (the AlignX paper, eq. 1) as a TRL DPOTrainer subclass."""

from __future__ import annotations

from typing import ClassVar

from .alignx_trainer import AlignXPersonaTrainer
from .ica_config import ICAConfig


class ICATrainer(AlignXPersonaTrainer):
    r"""In-context alignment: DPO where policy and reference both see the persona's history (comments, chosen /
    rejected pairs, demographic description) in the prompt, rendered by `personalign.ica_messages` and the
    tokenizer's chat template.

    Accepts AlignX rows with raw persona columns (the release or `build-dataset alignx --config raw`), whose history
    is drawn with AlignX's 0-4 / 0-4 rule and redrawn each epoch, or rows whose `prompt` is already rendered.

    ```python
    from personalign import ICAConfig, ICATrainer

    trainer = ICATrainer(model="meta-llama/Llama-3.1-8B-Instruct", args=ICAConfig(output_dir="ica", beta=0.1),
                         train_dataset=load_dataset("JinaLeejnl/AlignX", split="train"))
    trainer.train()
    ```
    """

    _style = "ica"
    _config_class = ICAConfig
    _tag_names: ClassVar[list[str]] = ["trl", "dpo", "ica", "alignx", "personalign"]
    _name = "ICA"
