"""Shared by the benchmarks (not a benchmark itself: `make bench` skips files starting with `_`)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any


def hermetic_workdir(name: str) -> str:
    """A private work folder removed at exit, with the Hugging Face libraries kept offline and out of the user's
    caches. Call it before they are imported: they read these variables at import."""
    work = tempfile.mkdtemp(prefix=f"personalign-bench-{name}-")
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    os.environ.update(
        HF_HOME=os.path.join(work, "hf"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TQDM_DISABLE="1",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return work


def trainer_settings(batch_size: int) -> dict[str, Any]:
    """DPOConfig settings the trainer benchmarks share: sequential batches, no checkpoints or logging, the GPU with
    bf16 when there is one."""
    import torch

    return dict(
        per_device_train_batch_size=batch_size,
        train_sampling_strategy="sequential",
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
