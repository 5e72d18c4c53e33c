"""Dataset builders. `synthetic` generates offline data in the real release schemas."""

from .synthetic import (
    ALIGNX_FEATURES,
    ALIGNX_METADATA_FEATURES,
    MULTIFACETED_FEATURES,
    alignx_dataset,
    alignx_rows,
    multifaceted_dataset,
    multifaceted_rows,
)

__all__ = [
    "ALIGNX_FEATURES",
    "ALIGNX_METADATA_FEATURES",
    "MULTIFACETED_FEATURES",
    "alignx_dataset",
    "alignx_rows",
    "multifaceted_dataset",
    "multifaceted_rows",
]
