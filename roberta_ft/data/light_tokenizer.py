"""A model directory's tokenizer.json read with the `tokenizers` library alone, without transformers.

`LightTokenizer` answers the calls `data.tokens` makes of a tokenizer (``__call__`` with truncation,
stride and overflowing windows, ``num_special_tokens_to_add``, ``get_special_tokens_mask``,
``model_input_names``, ``pad_token_id``, ``model_max_length``) with exactly the outputs transformers'
fast tokenizer gives for the same directory: it sets truncation on the backend the way transformers
does (longest first, from the right, no padding) and reads the same encodings. The ONNX backend uses
it so that predicting needs neither torch nor transformers; tests check it against
``AutoTokenizer.from_pretrained`` token for token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roberta_ft.errors import ModelLoadError

TOKENIZER_FILE = "tokenizer.json"
_CONFIG_FILE = "tokenizer_config.json"
_SPECIAL_FILE = "special_tokens_map.json"
_VERY_LARGE = int(1e30)  # transformers' "no limit" model_max_length


class LightTokenizer:
    def __init__(self, model_dir: str | Path, *, model_input_names: Sequence[str] = ("input_ids", "attention_mask")):
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        path = model_dir / TOKENIZER_FILE
        if not path.is_file():
            raise ModelLoadError(f"{model_dir} has no {TOKENIZER_FILE}", "re-save the tokenizer with a fast tokenizer")
        try:
            self.backend = Tokenizer.from_file(str(path))
        except Exception as exc:  # a damaged or foreign file
            raise ModelLoadError(f"cannot read {path}: {exc}", "re-save the model directory") from None
        self.backend.no_padding()
        self.backend.no_truncation()
        self.backend.encode_special_tokens = False
        settings = _read_json(model_dir / _CONFIG_FILE)
        self.model_input_names = list(model_input_names)
        limit = settings.get("model_max_length")
        self.model_max_length = int(limit) if isinstance(limit, (int, float)) and limit < _VERY_LARGE else _VERY_LARGE
        pad = _token_text(settings.get("pad_token")) or _token_text(
            _read_json(model_dir / _SPECIAL_FILE).get("pad_token")
        )
        self.pad_token_id = self.backend.token_to_id(pad) if pad else None
        self._truncation: tuple | None = None

    def _truncate(self, max_length: int | None, stride: int) -> None:
        wanted = None if max_length is None else (max_length, stride)
        if wanted == self._truncation:
            return
        if wanted is None:
            self.backend.no_truncation()
        else:
            self.backend.enable_truncation(max_length, stride=stride, strategy="longest_first", direction="right")
        self._truncation = wanted

    def __call__(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        truncation: bool = False,
        max_length: int | None = None,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
        return_token_type_ids: bool = False,
        **_ignored: Any,
    ) -> dict[str, list]:
        """The ``input_ids`` (and ``token_type_ids``, ``overflow_to_sample_mapping``) transformers would give."""
        self._truncate(max_length if truncation else None, stride if truncation else 0)
        inputs = list(zip(texts, pairs, strict=True)) if pairs is not None else list(texts)
        encodings = self.backend.encode_batch(inputs, add_special_tokens=True)
        ids, types, owners = [], [], []
        for index, encoding in enumerate(encodings):
            parts = [encoding, *encoding.overflowing] if return_overflowing_tokens else [encoding]
            for part in parts:
                ids.append(part.ids)
                types.append(part.type_ids)
                owners.append(index)
        result: dict[str, list] = {"input_ids": ids}
        if return_token_type_ids:
            result["token_type_ids"] = types
        if return_overflowing_tokens:
            result["overflow_to_sample_mapping"] = owners
        return result

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self.backend.num_special_tokens_to_add(pair)

    def get_special_tokens_mask(self, ids: Sequence[int], already_has_special_tokens: bool = True) -> list[int]:
        special = {
            self.backend.token_to_id(token.content)
            for token in self.backend.get_added_tokens_decoder().values()
            if token.special
        }
        return [1 if token in special else 0 for token in ids]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None
