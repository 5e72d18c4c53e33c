"""Datasets: one loader (`loading`: Hub ids, local files and folders, `personalign build-dataset` folders), the
AlignX and counterfactual MultiFacet builders (`alignx`, `multifacet`), and offline data in the real release schemas
(`synthetic`)."""

from .loading import DatasetSource, load_configs, load_rows, load_source
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
    "DatasetSource",
    "alignx_dataset",
    "alignx_rows",
    "load_configs",
    "load_rows",
    "load_source",
    "multifaceted_dataset",
    "multifaceted_rows",
]
