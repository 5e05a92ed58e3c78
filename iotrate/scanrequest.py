"""What shapes a scan, as one typed value: the ``scan`` command builds it from its options,
``--resume`` stores it with the scan and reads it back, and the fleet agent builds it from its
settings. Output choices (``--json``, ``--report``…) are not part of it: they belong to each
invocation, not to the scan.

The field names are the ``scan`` command's parameter names, and the stored form is the one
:data:`OPTIONS_VERSION` 1 has always had (``{"version": 1, "params": {name: value}}``), so
scans recorded before the request existed still resume.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotrate.errors import UsageError
from iotrate.models import Policy
from iotrate.ratelimit import DEFAULT_RATE
from iotrate.targets import (
    AllowList,
    TargetSet,
    allow_list_from_env,
    load_allow_list,
    resolve_targets,
)

if TYPE_CHECKING:
    from iotrate.scan import ScanOptions

#: Version of the recorded options' layout; a resume refuses a layout it does not know.
OPTIONS_VERSION = 1

#: What each policy does to the devices, said once before anything is sent.
POLICY_EFFECTS: dict[Policy, str] = {
    Policy.SAFE: "connections, banner reads and TLS/SSH handshakes only; no login attempts",
    Policy.DEFAULT: "connections and handshakes, plus a few login attempts per service with "
    "well-known default passwords (--safe: none)",
    Policy.INTRUSIVE: "logins plus reverted writes (UPnP port mapping, SNMP)",
}


#: Scan profiles (docs/scanning.md, "Scope"): what a grade may rest on. ``lab`` is the documented
#: test-lab scope: every TCP port, the UDP IoT hellos, default credentials tried (not --safe).
PROFILES: dict[str, str] = {
    "home": "the ports and policy asked for",
    "lab": "all 65,535 TCP ports, the UDP IoT list, default credentials tried",
}


#: The lab profile's sweep: at most this many new connections a second to the device, the pacer
#: backing off from there on drops and slow answers (all 65,535 ports in about a minute when
#: the device keeps up; docs/lab.md, "Scope").
LAB_SWEEP_RATE = 2000.0


@dataclass(frozen=True)
class ScanRequest:
    """A scan as the user asked for it, before its targets are resolved."""

    targets: tuple[str, ...] = ()
    """Addresses, CIDRs, ranges or host names; empty: the default interface's subnet."""
    ports: str = "iot"
    """``iot``, ``all`` or a port list such as ``22,80,U:161``."""
    allow_public: bool = False
    max_hosts: int | None = None
    """More addresses than the default limit (a /22); None: the default."""
    timeout: float = 1.0
    """Connect timeout per port, seconds."""
    concurrency: int = 512
    """Most connections open at once."""
    safe: bool = False
    intrusive: bool = False
    exclude: tuple[str, ...] = ()
    """Addresses or CIDRs never to contact."""
    use_nmap: bool = False
    allow_list: Path | None = None
    """A lab allow-list file; None: ``$IOTRATE_ALLOW_LIST``, if set."""
    rate_limit: float = DEFAULT_RATE
    """New connections per second to any one host; 0: no limit."""
    budget: str | None = None
    """The time budget as typed (``60s``, ``2m``), kept as text so a resume shows it."""
    profile: str = "home"
    """``home`` or ``lab`` (:data:`PROFILES`): the lab profile sweeps all TCP ports."""

    @property
    def policy(self) -> Policy:
        return Policy.SAFE if self.safe else Policy.INTRUSIVE if self.intrusive else Policy.DEFAULT

    @property
    def scan_ports(self) -> str:
        """The port selection the scan sweeps: the lab profile's is every TCP port."""
        return "all" if self.profile == "lab" else self.ports

    @property
    def budget_seconds(self) -> float | None:
        """The budget in seconds; UsageError when it is not a duration."""
        if self.budget is None:
            return None
        # The scan machinery is imported when a scan is built, not when the CLI starts.
        from iotrate.probing import parse_budget

        try:
            return parse_budget(self.budget)
        except ValueError as exc:
            raise UsageError(f"--budget: {exc}") from None

    def check(self) -> None:
        """Refuse contradicting options, before anything else is looked at."""
        if self.safe and self.intrusive:
            raise UsageError("--safe and --intrusive exclude each other")
        if self.profile not in PROFILES:
            known = ", ".join(PROFILES)
            raise UsageError(f"--profile must be one of {known}, not {self.profile!r}")
        if self.profile == "lab" and self.safe:
            raise UsageError("--profile lab tries default credentials: it excludes --safe")
        if self.profile == "lab" and self.ports not in ("iot", "all"):
            raise UsageError("--profile lab sweeps all TCP ports: drop --ports")
        _ = self.budget_seconds

    def check_ports(self) -> None:
        from iotrate.discovery.portscan import port_specs  # heavy: see budget_seconds

        try:
            port_specs(self.scan_ports)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc

    def target_set(self, *, standing_allow_list: bool = True) -> TargetSet:
        """The vetted targets; refusals happen here, before any packet is sent.

        Without an allow-list of its own the request obeys ``$IOTRATE_ALLOW_LIST`` unless
        ``standing_allow_list`` is False (the fleet agent has never read it)."""
        allow: AllowList | None
        if self.allow_list is not None:
            allow = load_allow_list(self.allow_list)
        else:
            allow = allow_list_from_env() if standing_allow_list else None
        return resolve_targets(
            list(self.targets),
            allow_public=self.allow_public,
            max_hosts=self.max_hosts,
            exclude=list(self.exclude),
            allow_list=allow,
        )

    def scan_options(
        self, progress: Callable[[str, int, int, float], None] | None = None, **run: Any
    ) -> ScanOptions:
        """The orchestrator's options for this request; ``run`` adds what belongs to one run
        (``scan_id``, ``on_device``, ``resumed``, ``save_observations``…), ``progress`` hears
        how a full sweep goes. The lab profile's sweep paces itself (LAB_SWEEP_RATE)."""
        from iotrate.discovery.portscan import ScanLimits  # heavy: see budget_seconds
        from iotrate.scan import ScanOptions

        return ScanOptions(
            ports=self.scan_ports,
            profile="lab" if self.profile == "lab" else "home",
            limits=ScanLimits(
                connect_timeout=self.timeout,
                concurrency=self.concurrency,
                adaptive_rate=LAB_SWEEP_RATE if self.profile == "lab" else 0.0,
                progress=progress,
            ),
            policy=self.policy,
            nmap=self.use_nmap,
            rate_limit=self.rate_limit,
            budget=self.budget_seconds,
            **run,
        )

    def record(self) -> dict[str, Any]:
        """The options to store with a new scan."""
        return record_options({name: getattr(self, name) for name in SCAN_PARAMS})

    def resumed(self, params: Mapping[str, Any], specs: list[str]) -> ScanRequest:
        """This request with a stored scan's targets and recorded options in place of its own
        (the options typed again were checked to be equal by :func:`iotrate.resume.plan_resume`).
        ``max_hosts`` and ``allow_list`` are the recorded ones even when absent."""
        given = {k: _from_json(k, v) for k, v in params.items() if k in SCAN_PARAMS}
        given.setdefault("max_hosts", None)
        given.setdefault("allow_list", None)
        return replace(self, targets=tuple(specs), **given)


#: The request's fields that a scan records and a resume reuses: all but the targets, which the
#: history keeps on their own.
SCAN_PARAMS: tuple[str, ...] = tuple(f.name for f in fields(ScanRequest) if f.name != "targets")


def stored_value(value: Any) -> Any:
    """An option's value as the history stores it (JSON types, paths made absolute)."""
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, tuple | list):
        return [stored_value(v) for v in value]
    return value


def _from_json(name: str, value: Any) -> Any:
    if name == "exclude":
        return tuple(value or ())
    if name == "allow_list":
        return Path(value) if value else None
    return value


def record_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of a scan's options, from a mapping of :data:`SCAN_PARAMS` values
    (other keys are left out)."""
    return {
        "version": OPTIONS_VERSION,
        "params": {k: stored_value(params[k]) for k in SCAN_PARAMS if k in params},
    }
