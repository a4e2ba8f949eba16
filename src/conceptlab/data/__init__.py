"""Datasets with official splits, one file per dataset family; splits.py carves validation."""

from conceptlab.data.base import DataError, Dataset, DataSplit, build_dataset, known_datasets

__all__ = ["DataError", "DataSplit", "Dataset", "build_dataset", "known_datasets"]
