"""Data: read labelled files into a standard table, check them, map labels, tokenize and batch.

One module per stage, in the order data flows:

- ``files``: formats, encodings, CSV/TSV/JSONL into raw rows (``read_table``, ``iter_lines``);
- ``columns``: which columns hold the text(s) and the label (``resolve_columns``);
- ``labels``: label names, their order and encoding (``LabelMap``, ``MultiLabelMap``);
- ``sources``: a file or a task's dataset as the standard columns (``load_source``, ``stratified_split``);
- ``tokens`` (+ ``token_cache``): texts to model inputs, long-text strategies, the on-disk cache;
- ``batches``: length buckets for training, sorted batches for inference, padding.

The names below are re-exported so ``from roberta_ft.data import LabelMap`` keeps working.
"""

from roberta_ft.data.batches import bucketed_batches, collate, padding_multiple, sorted_batches
from roberta_ft.data.columns import LABEL_CANDIDATES, PAIR_CANDIDATES, TEXT_CANDIDATES, Columns, resolve_columns
from roberta_ft.data.files import FORMATS, Table, detect_format, is_file_source, iter_lines, read_table
from roberta_ft.data.labels import LabelMap, MultiLabelMap, normalize_label, sort_label_names, split_labels
from roberta_ft.data.sources import load_file, load_source, standardize, stratified_split
from roberta_ft.data.tokens import Encoded, encode_dataset, encode_targets, encode_texts, tokenize

__all__ = [
    "FORMATS",
    "LABEL_CANDIDATES",
    "PAIR_CANDIDATES",
    "TEXT_CANDIDATES",
    "Columns",
    "Encoded",
    "LabelMap",
    "MultiLabelMap",
    "Table",
    "bucketed_batches",
    "collate",
    "detect_format",
    "encode_dataset",
    "encode_targets",
    "encode_texts",
    "is_file_source",
    "iter_lines",
    "load_file",
    "load_source",
    "normalize_label",
    "padding_multiple",
    "read_table",
    "resolve_columns",
    "sort_label_names",
    "sorted_batches",
    "split_labels",
    "standardize",
    "stratified_split",
    "tokenize",
]
