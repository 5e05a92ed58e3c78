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

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import EllipsisType
from typing import Any, ClassVar

from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import Scheme

from iotrate.models import Confidence, Device, Finding, Service, Transport
from iotrate.models import Policy as Policy  # its home is the models; probes import it here


def catalogue() -> Scheme:
    """The check catalogue probes report against: the current rating scheme (loaded once)."""
    return load_scheme()


def make_finding(
    check: str,
    summary: str,
    port: int | None,
    data: Mapping[str, Any],
    *,
    probe: str | None = None,
    transport: Transport | None = Transport.TCP,
    confidence: Confidence = Confidence.CONFIRMED,
    evidence_port: int | EllipsisType | None = ...,
) -> Finding:
    """A finding of ``check`` with its one piece of evidence, the shape every probe reports in.

    A probe says only what it saw (summary, data, port, how sure it is); the title, severity,
    remediation and standard clauses are the scheme's, so they cannot drift from what the
    rating uses. ``evidence_port`` is where the evidence was seen when that is not the
    finding's port (a UPnP control URL on another port than SSDP's). A check id the scheme does
    not know raises :class:`~iotrate.rating_schema.model.UnknownCheck`: a probe bug.
    """
    at = port if isinstance(evidence_port, EllipsisType) else evidence_port
    found: Finding = catalogue().finding(
        check, summary, at, data, probe=probe, transport=transport, confidence=confidence
    )
    return found if at == port else found.model_copy(update={"port": port})


def service_port(ctx: ProbeContext) -> int:
    """The port of the service a per-service probe runs on."""
    if ctx.service is None:  # pragma: no cover - the runner gives per-service probes a service
        raise NotApplicable("needs a service")
    return ctx.service.port


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
    a lockout policy is never locked out (the numbers and why: docs/lab.md, "Probes").

    ``per_username`` bounds failures on one account, because device lockouts usually count
    per account; ``None`` means only ``max_attempts`` applies.
    """

    max_attempts: int = 8
    delay_s: float = 0.2
    per_username: int | None = None


class BudgetExhausted(Exception):
    """The service's login budget is spent: the probe stops and reports what it tried."""


class LoginGate:
    """One service's (or one account family's) login budget, shared by every probe that logs
    in there, so two probes on the same web account cannot add up to a lockout.

    The runner creates one per service and hands each LOGIN probe a :meth:`child` of it in the
    context (the child counts that probe's own attempts for its outcome; the budget is the
    parent's). A probe calls :meth:`take` before each attempt: attempts are spaced
    ``delay_s`` apart and :class:`BudgetExhausted` is raised once the budget is spent.
    """

    def __init__(self, budget: AttemptBudget, parent: LoginGate | None = None) -> None:
        self.budget: AttemptBudget = parent.budget if parent is not None else budget
        self.attempts = 0  # this gate's own attempts (a child's: its probe's)
        self._parent = parent
        self._used = 0
        self._per_user: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._last: float | None = None
        self._halted: str | None = None  # the root's: why no probe may try again (a lockout)
        self.note: str | None = None  # this gate's probe: what it tried, for its outcome

    def halt(self, reason: str) -> None:
        """Stop every probe of this budget: the device signalled a lockout or throttling, so
        one more attempt on any surface sharing the account could lock its owner out."""
        self._root()._halted = reason

    @property
    def halted(self) -> str | None:
        """Why this budget was stopped (see :meth:`halt`), or None."""
        return self._root()._halted

    def child(self) -> LoginGate:
        return LoginGate(self.budget, parent=self)

    def _root(self) -> LoginGate:
        return self._parent._root() if self._parent is not None else self

    def allows(self, username: str) -> bool:
        """Whether an attempt as ``username`` is still within budget (without taking it)."""
        root = self._root()
        if root._used >= root.budget.max_attempts or root._halted is not None:
            return False
        cap = root.budget.per_username
        return cap is None or root._per_user.get(username, 0) < cap

    @property
    def spent(self) -> bool:
        root = self._root()
        return root._used >= root.budget.max_attempts or root._halted is not None

    async def take(self, username: str) -> None:
        root = self._root()
        async with root._lock:
            if root._halted is not None:
                raise BudgetExhausted(root._halted)
            if root._used >= root.budget.max_attempts:
                raise BudgetExhausted(f"{root._used} login attempts made (the budget)")
            if not self.allows(username):
                raise BudgetExhausted(f"per-account budget for {username!r} spent")
            loop = asyncio.get_running_loop()
            if root._last is not None:
                wait = root._last + root.budget.delay_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            root._used += 1
            root._per_user[username] = root._per_user.get(username, 0) + 1
            root._last = loop.time()
            self.attempts += 1
            if self is not root:
                root.attempts += 1


@dataclass(frozen=True)
class ProbeContext:
    """Everything a probe may know. ``allowed_hosts`` are the device's own addresses: a probe
    never follows a redirect or a LOCATION to any other address. ``gate`` is the service's
    login budget (LOGIN and WRITE probes only)."""

    address: str
    device: Device
    service: Service | None
    policy: Policy
    timeout: float
    budget: AttemptBudget = field(default_factory=AttemptBudget)
    allowed_hosts: frozenset[str] = frozenset()
    gate: LoginGate | None = None

    def login_gate(self) -> LoginGate:
        """The gate, or a private one from ``budget`` when a probe runs outside the runner."""
        return self.gate if self.gate is not None else LoginGate(self.budget)


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
    # Login probes: the budget for their protocol, and an optional group name; probes of one
    # group on one device share a single gate (e.g. "web": HTTP and RTSP share the account).
    budget: ClassVar[AttemptBudget] = AttemptBudget()
    budget_group: ClassVar[str | None] = None
    # A heavy engine the probe drives in a worker thread (e.g. "sslyze"): the runner gives such
    # probes a few shared slots per engine (``RunnerOptions.engine_slots``) to bound memory.
    engine: ClassVar[str | None] = None

    def applies(self, device: Device, service: Service | None) -> bool:
        if self.device_level:
            return service is None
        if service is None or service.transport is not self.transport:
            return False
        return service.protocol in self.protocols or service.port in self.ports

    @abstractmethod
    async def run(self, ctx: ProbeContext) -> list[Finding]:
        """Test one service (or the device); return findings, empty when nothing was found."""

    async def precheck(self, ctx: ProbeContext) -> None:
        """Optional PASSIVE look, used only when the policy forbids :meth:`run`: raise
        :class:`NotApplicable` if the service has nothing this probe could test (an HTTP port
        that asks for no password), so ``--safe`` reports "not applicable" rather than
        "skipped" and the check is not left unknown for nothing. It must send nothing a
        PASSIVE probe would not; the default decides nothing."""
        return None

    @classmethod
    def correlate(cls, devices: Sequence[Device]) -> Mapping[str, list[Finding]]:
        """Network-level findings once every device is probed (a certificate or host key shared
        by several devices), keyed by device id. Override in probes that need the whole scan;
        the runner calls every override once, after all devices are probed. The
        checks it can emit must be in ``checks``; a crash here fails those checks on every
        device rather than passing them."""
        return {}
