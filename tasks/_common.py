"""Shared pieces of the built-in task plugins: a loader for well-known Hub datasets by short name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from roberta_ft.errors import DataError
from roberta_ft.hub import HubDataset, load_hub_dataset


def hub_loader(task_name: str, known: Mapping[str, HubDataset], label_names: Sequence[str] | None = None):
    """A Task.load for datasets known by short name (e.g. "imdb") or by full Hub id (e.g. "stanfordnlp/imdb")."""
    by_path = {spec.path.lower(): spec for spec in known.values()}

    def load(source: str | None, split: str):
        if source is None:
            raise DataError(
                f"task {task_name!r} needs a data file or a dataset name",
                f"pass a .csv/.tsv/.jsonl file, or one of: {', '.join(known)}",
            )
        spec = known.get(source.lower()) or by_path.get(source.lower())
        if spec is None:
            raise DataError(
                f"{source!r} is neither a file nor a dataset task {task_name!r} knows",
                f"check the path, or use one of: {', '.join(known)}",
            )
        return load_hub_dataset(spec, split, label_names)

    return load
