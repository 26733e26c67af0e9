"""The Hugging Face Hub from an offline-first tool: a quick reachability check and dataset loading."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

from roberta_ft.errors import DataError


def hub_reachable(timeout: float = 3.0) -> bool:
    """False at once when offline mode is set or the Hub's host cannot be reached (no 30 s of retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class HubDataset:
    """Where a well-known dataset lives on the Hub and which of its columns are text and label."""

    path: str
    text: str
    label: str = "label"
    text_pair: str | None = None
    config: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "validation": "validation"})


def load_hub_dataset(spec: HubDataset, split: str, label_names: Sequence[str] | None = None):
    """Load one split as the standard columns (text, text_pair, label as names; unlabelled rows dropped)."""
    import datasets

    name = f"{spec.path}" + (f" ({spec.config})" if spec.config else "")
    try:
        hub = datasets.load_dataset(spec.path, spec.config, split=spec.splits.get(split, split))
    except Exception as exc:
        cached = "" if hub_reachable() else " and the Hub is unreachable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot load dataset {name}, split {split!r}{cached}: {reason}",
            "pass a local .csv/.tsv/.jsonl file instead",
        ) from None
    missing = [c for c in (spec.text, spec.text_pair, spec.label) if c and c not in hub.column_names]
    if missing:
        raise DataError(
            f"dataset {name} has no column {missing[0]!r}", f"its columns are {', '.join(hub.column_names)}"
        )
    feature = hub.features[spec.label]
    names = list(getattr(feature, "names", None) or label_names or [])
    keep = [i for i, value in enumerate(hub[spec.label]) if value is not None and value != -1]
    if len(keep) < len(hub):
        hub = hub.select(keep)  # -1 marks unlabelled rows (test splits, SNLI's no-consensus pairs)
    data = {"text": list(hub[spec.text])}
    if spec.text_pair:
        data["text_pair"] = list(hub[spec.text_pair])
    labels = hub[spec.label]
    data["label"] = [names[v] if names and isinstance(v, int) else str(v) for v in labels]
    return datasets.Dataset.from_dict(data)
