"""The project's error types. Library code raises these; only the CLI prints them."""

from __future__ import annotations


class RobertaFtError(Exception):
    """An error the user can fix. Its message is one line naming the problem and the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(RobertaFtError):
    """A setting or combination of settings is invalid."""


class DataError(RobertaFtError):
    """An input file or dataset cannot be read or does not have the expected shape."""


class UnknownTaskError(ConfigError):
    """A task name that no plugin registered."""


class ModelLoadError(RobertaFtError):
    """A model or tokenizer cannot be loaded or built."""


class DeviceError(ConfigError):
    """The requested device or precision is not available on this machine."""


class TrainingError(RobertaFtError):
    """Training cannot continue (for example a non-finite loss)."""

    exit_code = 1


class RunStopped(RobertaFtError):
    """A run stopped on purpose by its caller (e.g. a hyperparameter search pruning it), not a failure.

    Raised from a progress callback at the end of an epoch, after the best model so far is saved:
    `train` records ``status`` (e.g. "pruned") in run_config.json and re-raises it.
    """

    exit_code = 1

    def __init__(self, message: str, status: str = "stopped") -> None:
        self.status = status
        super().__init__(message)
