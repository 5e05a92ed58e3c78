"""What a probe is: a declared id, the services it applies to, how intrusive it is, and an async
``run()`` that returns findings with evidence.

The runner (``iotrate.probing``), not the probe, owns concurrency, timeouts and policy: a probe
only says what it needs. A probe signals "could not test" by raising :class:`ProbeFailed` (or by
timing out, or by crashing — the runner catches both) and "does not apply here" by raising
:class:`NotApplicable`; returning an empty list means "tested, nothing found". Keeping those
apart is what lets the rating treat unknown as unknown, never as pass (see sslyze's scan
attempts in ../shared/STYLE.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import ClassVar

from iotrate.models import Device, Finding, Service, Transport


class Policy(StrEnum):
    """What the user allows: ``safe`` never logs in, ``default`` tries default credentials,
    ``intrusive`` (lab only) may change device state and put it back."""

    SAFE = "safe"
    DEFAULT = "default"
    INTRUSIVE = "intrusive"


class Intrusiveness(IntEnum):
    PASSIVE = 0  # connects, reads banners, completes handshakes, asks unauthenticated questions
    LOGIN = 1  # tries credentials
    WRITE = 2  # changes device state (and reverts it)


ALLOWED: dict[Policy, Intrusiveness] = {
    Policy.SAFE: Intrusiveness.PASSIVE,
    Policy.DEFAULT: Intrusiveness.LOGIN,
    Policy.INTRUSIVE: Intrusiveness.WRITE,
}


class ProbeFailed(Exception):
    """The probe could not test (reset mid-handshake, garbage reply...): a failed outcome."""


class NotApplicable(Exception):
    """The service turned out not to be what the probe tests (e.g. port 443 is not TLS)."""


@dataclass(frozen=True)
class AttemptBudget:
    """Login attempts allowed per service and the pause between them, so that a device with
    a lockout policy is never locked out (documented in docs/lab.md)."""

    max_attempts: int = 8
    delay_s: float = 0.2


@dataclass(frozen=True)
class ProbeContext:
    """Everything a probe may know. ``allowed_hosts`` are the scan's targets: a probe never
    follows a redirect or a LOCATION to any other address."""

    address: str
    device: Device
    service: Service | None
    policy: Policy
    timeout: float
    budget: AttemptBudget = field(default_factory=AttemptBudget)
    allowed_hosts: frozenset[str] = frozenset()


class Probe(ABC):
    """Subclass, declare the class variables, implement :meth:`run`.

    ``checks`` lists every check id (from the rating scheme) the probe evaluates; the runner
    records them on the outcome so coverage is computed from what really ran.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    protocols: ClassVar[frozenset[str]] = frozenset()
    ports: ClassVar[frozenset[int]] = frozenset()
    transport: ClassVar[Transport] = Transport.TCP
    device_level: ClassVar[bool] = False  # runs once per device (service is None)
    intrusiveness: ClassVar[Intrusiveness] = Intrusiveness.PASSIVE
    timeout: ClassVar[float] = 10.0
    checks: ClassVar[tuple[str, ...]] = ()

    def applies(self, device: Device, service: Service | None) -> bool:
        if self.device_level:
            return service is None
        if service is None or service.transport is not self.transport:
            return False
        return service.protocol in self.protocols or service.port in self.ports

    @abstractmethod
    async def run(self, ctx: ProbeContext) -> list[Finding]:
        """Test one service (or the device); return findings, empty when nothing was found."""
