"""The identification layer's own errors, under :class:`iotrate.errors.IotrateError`.

Callers (the CLI, the scan, the benchmark) catch :class:`IdentifyError` alone: whatever a device
sends, or a recording contains, identification either answers or raises one of these.
"""

from __future__ import annotations

from iotrate.errors import IotrateError, RuntimeFailure, UsageError


class IdentifyError(IotrateError):
    """Base of every error the identification layer raises on purpose."""


class ObservationError(IdentifyError, UsageError):
    """One observation is malformed; ``line`` says where, so the user can fix the recording.

    A usage error (exit code 2): the input file is the user's.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.reason = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


class FingerprintDataError(IdentifyError, RuntimeFailure):
    """A bundled fingerprint data file is unreadable or invalid: a packaging bug, not user input."""
