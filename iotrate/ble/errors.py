"""The Bluetooth layer's own errors, under :class:`iotrate.errors.IotrateError`.

Advertisements are hostile input: a decoder either returns facts or raises
:class:`BleFormatError`, never an ``IndexError`` from a truncated payload.
"""

from __future__ import annotations

from iotrate.errors import IotrateError, RuntimeFailure, UsageError


class BleError(IotrateError):
    """Base of every error the Bluetooth layer raises on purpose."""


class BleFormatError(BleError, UsageError):
    """A value that cannot be an advertisement field (bad hex, bad UUID, out of range)."""


class BleUnavailable(BleError, RuntimeFailure):
    """No Bluetooth adapter, no BlueZ, or no permission to scan: exit code 3, one line."""
