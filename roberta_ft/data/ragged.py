"""Rows of token ids of different lengths in one flat array: 4 bytes a token instead of a Python int each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class Ragged:
    """Row i is ``flat[offsets[i]:offsets[i + 1]]`` (a numpy view). Equal to a list of lists with the same rows."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat, self.offsets = flat, offsets

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]], dtype=np.int32) -> Ragged:
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=offsets[1:])
        flat = np.fromiter((token for row in rows for token in row), dtype=dtype, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        if index < 0:
            index += len(self)
        return self.flat[self.offsets[index] : self.offsets[index + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tolist(self) -> list[list[int]]:
        values, bounds = self.flat.tolist(), self.offsets.tolist()
        return [values[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ragged):
            return np.array_equal(self.lengths, other.lengths) and np.array_equal(
                self.flat[self.offsets[0] : self.offsets[-1]], other.flat[other.offsets[0] : other.offsets[-1]]
            )
        if isinstance(other, list):
            return self.tolist() == other
        return NotImplemented

    __hash__ = None  # mutable-looking container: no hash, as for lists
