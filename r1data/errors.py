"""Named exceptions: the CLI turns each into a one-line error, so messages name file, row, field."""

from __future__ import annotations


class R1DataError(Exception):
    """Base of every error r1data raises on purpose; its message is one line for the user."""


class InputError(R1DataError):
    """Bad user input: a file, row or field that cannot be used as given."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 field: str | None = None):
        where = ", ".join(
            part for part in (
                str(path) if path is not None else None,
                f"row {row}" if row is not None else None,
                f"field {field!r}" if field is not None else None,
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.row, self.field = path, row, field


class StoreError(R1DataError):
    """The sample store is missing, malformed or not a directory."""


class EngineError(R1DataError):
    """A generation engine failed to start or to answer."""


class ConfigError(R1DataError):
    """A configuration value is out of range or unknown (e.g. a reward name)."""
