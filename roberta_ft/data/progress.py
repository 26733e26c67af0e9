"""Progress of the long phases before training (reading a big file, tokenizing it): rows/s and time left.

A line through `logging` at most every `every_seconds`, so the CLI shows it and --quiet hides it; small
inputs finish before the first line is due and print nothing.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


class Rate:
    def __init__(self, what: str, *, total_rows: int | None = None, total_bytes: int | None = None,
                 every_seconds: float = 10.0) -> None:  # fmt: skip
        self.what, self.total_rows, self.total_bytes, self.every = what, total_rows, total_bytes, every_seconds
        self.started = self.last = time.monotonic()
        self.rows = 0
        self.bytes = 0
        self.reported = False

    def bytes_done(self, count: int) -> None:
        self.bytes = count

    def rows_done(self, count: int) -> None:
        self.rows += count
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.reported = True
            logger.info("%s: %s", self.what, self._state(now))

    def finish(self) -> float:
        """Seconds since the start; a closing line when progress lines were shown."""
        seconds = time.monotonic() - self.started
        if self.reported:
            logger.info(
                "%s: %d rows in %.1f s (%.0f rows/s)", self.what, self.rows, seconds, self.rows / max(seconds, 1e-9)
            )
        return seconds

    def _state(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        shown = f"{self.rows:,} rows ({self.rows / elapsed:,.0f} rows/s)"
        share = None
        if self.total_rows:
            share = self.rows / self.total_rows
        elif self.total_bytes and self.bytes:
            share = self.bytes / self.total_bytes
        if share:
            left = elapsed * (1 - share) / share
            shown += f", {share:.0%}, about {left:.0f} s left"
        return shown
