"""The reference lab: an emulated home network of real daemons in network namespaces.

Tests, demos and benchmarks scan it instead of real devices. Its layout is a bridge in namespace
``iotr-br``, one namespace per device (``iotr-<name>``) and the scanner's (``iotr-scan``); no
namespace has a default route, so nothing the lab does can reach past this machine. The device
table is ``devices.yaml`` in this package.

These five functions are the interface the CLI uses; they raise ``LabError`` with a one-line
reason on failure.
"""

from __future__ import annotations

from typing import Any

# ``core`` is imported inside each function: the helper programs started with
# ``python -m iotrate.lab.<helper>`` import this package too, and must start fast.


def lab_up(
    subnet: str | None = None,
    profile: str = "reference",
    hosts: int | None = None,
    link: str = "auto",
) -> dict[str, Any]:
    """Build the lab, or return the status of the one already running (idempotent).

    A half-built or crashed lab is torn down and rebuilt. ``subnet`` defaults to
    ``$IOTRATE_LAB_SUBNET`` and then to 10.231.47.0/24. ``hosts`` and ``link`` size and wire
    the ``scale`` profile (``iotrate.lab.scale``).
    """
    from iotrate.lab import core

    return core.lab_up(subnet, profile, hosts, link)


def lab_down() -> None:
    """Stop every lab process and delete every lab namespace, with or without a state file."""
    from iotrate.lab import core

    core.lab_down()


def lab_status() -> dict[str, Any]:
    """JSON-able status: ``running``, subnet, scanner, CA certificate and the device table."""
    from iotrate.lab import core

    return core.lab_status()


def lab_exec(cmd: list[str]) -> int:
    """Run ``cmd`` in the scanner namespace with inherited stdio; returns its exit code."""
    from iotrate.lab import core

    return core.lab_exec(cmd)


def device_table() -> list[dict[str, Any]]:
    """The device table from ``devices.yaml``, each row with its address in the lab subnet."""
    from iotrate.lab import core

    return core.device_table()


__all__ = ["device_table", "lab_down", "lab_exec", "lab_status", "lab_up"]
