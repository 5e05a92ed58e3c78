"""The typed scan result that every stage reads and writes.

Scripts, CI pipelines and the fleet collector read the JSON these models produce, so the field
names are a public interface: they are versioned by ``SCHEMA_VERSION`` and published as a JSON
Schema file (``iotrate/schemas/scan-result.schema.json``, regenerated with ``iotrate schema``).
Adding an optional field is a minor change; renaming or removing one is a major change.

Models are frozen: a stage builds new objects rather than mutating what an earlier stage
produced, so a result already handed to storage or a report never changes under it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from iotrate import __version__

SCHEMA_VERSION = "1.2"

Grade = Literal["A", "B", "C", "D", "E", "F", "G"]
GRADES: tuple[Grade, ...] = ("A", "B", "C", "D", "E", "F", "G")


def utcnow() -> datetime:
    """Timestamps are always timezone-aware UTC so results from different machines compare."""
    return datetime.now(UTC)


def _utc_expressible(value: datetime) -> datetime:
    """Storage writes every time in UTC; a time near the ends of the calendar with an offset
    (year 1 at +14:00) has no UTC form, and would fail there instead of here."""
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("the time has no UTC equivalent (out of range)") from None
    return value


#: A TCP or UDP port number.
Port = Annotated[int, Field(ge=0, le=65535)]
#: A count of things a scan did or saw (attempts, checks, sightings): far below the 32-bit
#: integer columns of PostgreSQL, so a number from outside can never overflow one.
Count = Annotated[int, Field(ge=0, le=1_000_000_000)]
#: Seconds a probe or scan took or may take: ten years at most.
Seconds = Annotated[float, Field(ge=0, le=315_360_000)]
Timestamp = Annotated[datetime, AfterValidator(_utc_expressible)]
#: Upper bounds on the lists of one device: every TCP and UDP port, and room far beyond what
#: a real device yields, so a hostile agent's message is refused before it becomes rows.
MAX_ITEMS = 262_144


class _Model(BaseModel):
    """Frozen, no unknown fields, and finite floats only: NaN and infinity come from nowhere
    real and turn into NULLs or failed checks once stored."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False
    )


class Policy(StrEnum):
    """What the user allows: ``safe`` never logs in, ``default`` tries default credentials,
    ``intrusive`` (lab only) may change device state and put it back."""

    SAFE = "safe"
    DEFAULT = "default"
    INTRUSIVE = "intrusive"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Transport(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class Confidence(StrEnum):
    """How sure a finding is, in the spirit of a quality-of-detection figure."""

    CONFIRMED = "confirmed"  # the login worked, the handshake completed
    PROBABLE = "probable"  # e.g. a version match
    POSSIBLE = "possible"


class OutcomeStatus(StrEnum):
    """A probe that could not test is never the same as a probe that found nothing."""

    RAN = "ran"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    SKIPPED_BY_POLICY = "skipped_by_policy"


class TargetKind(StrEnum):
    ADDRESS = "address"
    NETWORK = "network"
    RANGE = "range"
    HOSTNAME = "hostname"


class Target(_Model):
    """One target as the user gave it, with what it expanded to."""

    spec: str = Field(description="The target exactly as given on the command line.")
    kind: TargetKind
    first: str = Field(description="First address covered.")
    last: str = Field(description="Last address covered.")
    size: int = Field(ge=1, le=2**128, description="Number of host addresses covered.")


class Service(_Model):
    port: Port
    transport: Transport = Transport.TCP
    protocol: str | None = Field(
        default=None, description="Protocol name (e.g. 'ssh', 'http'); null when unknown."
    )
    banner: str | None = Field(
        default=None, description="Printable, length-capped first bytes the service sent."
    )
    tls: bool | None = Field(
        default=None, description="True if the port speaks TLS; null if untested."
    )
    product: str | None = None
    version: str | None = None
    source: str | None = Field(default=None, description="Which discovery source saw the port.")


class Evidence(_Model):
    """What a finding rests on, in a form a test lab can put in its report."""

    summary: str
    port: Port | None = None
    transport: Transport | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Finding(_Model):
    check: str = Field(description="Check id from the rating scheme, e.g. 'cred.telnet.default'.")
    severity: Severity
    title: str
    evidence: list[Evidence] = Field(default_factory=list, max_length=MAX_ITEMS)
    remediation: str | None = None
    standards: list[str] = Field(
        default_factory=list, description="Standard clauses, e.g. 'ETSI EN 303 645 5.1-1'."
    )
    confidence: Confidence = Confidence.CONFIRMED
    probe: str | None = None
    port: Port | None = None


class ProbeOutcome(_Model):
    probe: str
    status: OutcomeStatus
    port: Port | None = None
    transport: Transport | None = None
    reason: str | None = Field(default=None, description="Why it failed, was skipped or n/a.")
    duration_s: Seconds | None = None
    checks: list[str] = Field(
        default_factory=list,
        description="Check ids this run evaluated (status ran) or could not evaluate (otherwise); "
        "the rating's coverage is computed from these.",
    )
    attempts: Count | None = Field(
        default=None,
        description="Login attempts the probe made (login probes only), so a report can say "
        "how much of the credential list was tried within the attempt budget.",
    )
    budget_s: Seconds | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="Set when the scan's time budget cut this run (not started, or stopped): "
        "the budget in seconds (0 when none was given as a figure). Absent otherwise.",
    )


class CapApplied(_Model):
    cap: str
    grade: Grade
    reason: str


class EtsiCoverage(_Model):
    """ETSI EN 303 645's provisions for one rated device: a provision is tested (or partly
    tested) only when a check that maps to it ran, declared when the declaration spoke to it,
    and not assessed otherwise."""

    tested: int = Field(ge=0)
    partly: int = Field(ge=0)
    declared: int = Field(ge=0)
    not_assessed: int = Field(ge=0)


class Coverage(_Model):
    """How much of the scheme the scan could actually test; shown honestly on the label."""

    fraction: float = Field(ge=0, le=1)
    checks_run: Count
    checks_total: Count
    checks_unknown: list[str] = Field(
        default_factory=list,
        description="Check ids that could not be evaluated (probe failed or skipped, or never "
        "attempted); unknown is never counted as a pass.",
    )
    rows_tested: int | None = Field(
        default=None,
        ge=0,
        description="Label rows (the topics a user recognises) with at least one check that "
        "ran; absent before scheme 2026.3.",
    )
    rows_total: int | None = Field(default=None, ge=0, description="Label rows of the scheme.")
    etsi: EtsiCoverage | None = Field(
        default=None, description="ETSI EN 303 645 provisions by how far this rating assessed them."
    )


class CategoryStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a label status, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"


class CategoryResult(_Model):
    """One pictogram row of the label: passwords, encryption, updates, services, privacy."""

    id: str
    title: str
    status: CategoryStatus
    checks_failed: list[str] = Field(default_factory=list)
    reason: str | None = Field(
        default=None, description="Why the row is unknown (not tested), in a few words."
    )


class DeclaredFacts(_Model):
    """The manufacturer declaration a rating used, embedded so that re-rating never needs the
    file again and the label can mark declared facts as declared."""

    content: dict[str, Any] = Field(description="The declaration as validated (plain data).")
    sha256: str = Field(description="SHA-256 of the declaration file's bytes.")
    source: str = Field(description="Where it was read from (file name) when first used.")
    forced: bool = Field(
        default=False,
        description="Put on this device with --device --force although its vendor, model or "
        "firmware did not match what the scan saw.",
    )
    mismatch: list[str] = Field(
        default_factory=list, description="What did not match, when forced."
    )


class Rating(_Model):
    grade: Grade | None = None
    score: float | None = None
    caps: list[CapApplied] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    scheme_id: str | None = None
    scheme_version: str | None = None
    coverage: Coverage | None = None
    categories: list[CategoryResult] = Field(
        default_factory=list, description="The label's pictogram rows, in scheme order."
    )
    support_until: date | None = Field(
        default=None, description="End of the security-update period, from the declaration."
    )
    declaration: str | None = Field(
        default=None, description="Where the manufacturer declaration came from, if one was used."
    )
    status: Literal["rated", "insufficient_evidence"] | None = Field(
        default=None,
        description="'insufficient_evidence': nothing decisive was tested, so no letter is "
        "given (grade is null). Absent before scheme 2026.3.",
    )
    at_best: bool = Field(
        default=False,
        description="The grade is an upper bound: part of the scan was left out (listed in "
        "left_out), and what was not tested could only lower it.",
    )
    left_out: list[str] = Field(
        default_factory=list, description="What this scan did not test, in plain words."
    )
    vulndb_date: date | None = Field(
        default=None, description="Date of the vulnerability data the update checks used."
    )
    valid_until: date | None = Field(
        default=None,
        description="The earlier of scan date + 12 months and the declared support end.",
    )
    declared: DeclaredFacts | None = Field(
        default=None, description="The declaration used, embedded (scheme 2026.3 on)."
    )


class IdentityEvidence(_Model):
    """One observed datum an identification weighed, and what it claimed."""

    source: str = Field(description="Observation kind: ssdp, mdns, http, banner, mac, dhcp.")
    field: str = Field(description="Named fact, e.g. 'ssdp.manufacturer' or 'mdns.txt.md'.")
    value: str = Field(description="What the device said (printable, length-capped).")
    rule: str = Field(description="Fingerprint that read it, e.g. 'upnp.device.igd'.")
    claims: dict[str, str] = Field(
        default_factory=dict, description="Attribute -> value this evidence voted for."
    )
    weight: float = Field(ge=0, le=1, description="How much the vote counted (0..1).")
    supports: list[str] = Field(
        default_factory=list, description="Attributes of the final answer this evidence backs."
    )


class Identity(_Model):
    """What a device is, how sure we are, and the evidence, from every observation of it."""

    category: str = Field(description="One of the category words; 'other' when unsure.")
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    confidence: float = Field(ge=0, le=1, description="Confidence in the answer as a whole.")
    confidences: dict[str, float] = Field(
        default_factory=dict, description="Per attribute: category, vendor, model, firmware."
    )
    evidence: list[IdentityEvidence] = Field(default_factory=list, max_length=MAX_ITEMS)


class BluetoothInfo(_Model):
    """What a Bluetooth LE capture knows of a device besides its identity and findings."""

    address_type: str = Field(
        default="unknown",
        description="public, random_static, random_private_resolvable, "
        "random_private_nonresolvable or unknown.",
    )
    first_seen: float | None = Field(default=None, description="Seconds, capture clock.")
    last_seen: float | None = Field(default=None, description="Seconds, capture clock.")
    sightings: Count = Field(default=0, description="Advertisements heard.")
    rssi_max: int | None = Field(
        default=None, ge=-255, le=255, description="Strongest signal heard, dBm."
    )


class Device(_Model):
    id: str = Field(description="Stable key: the MAC when known, else the address.")
    transport: Literal["ip", "bluetooth"] = Field(
        default="ip",
        description="How iotrate reached the device: ip (a network scan) or bluetooth (its "
        "BLE advertisements; address is then the Bluetooth address).",
    )
    address: str
    addresses: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    mac: str | None = None
    vendor: str | None = None
    model: str | None = None
    category: str | None = None
    firmware: str | None = None
    names: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    sources: list[str] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Discovery sources that saw it."
    )
    services: list[Service] = Field(default_factory=list, max_length=MAX_ITEMS)
    findings: list[Finding] = Field(default_factory=list, max_length=MAX_ITEMS)
    outcomes: list[ProbeOutcome] = Field(default_factory=list, max_length=MAX_ITEMS)
    rating: Rating | None = None
    identity: Identity | None = Field(
        default=None, description="Identification with confidence and evidence, when run."
    )
    os_guess: str | None = Field(default=None, description="nmap's OS guess (--nmap as root).")
    bluetooth: BluetoothInfo | None = Field(
        default=None, description="Bluetooth LE details (transport bluetooth only)."
    )


class ToolInfo(_Model):
    name: str = "iotrate"
    version: str = __version__


class ScanScope(_Model):
    """What a scan covered, on record, so a grade can say what it is based on (issue 15): a
    home scan of the curated ports under the default policy is not a lab's full sweep, and a
    budget that cut probes leaves checks untested. ``None`` on results written before 1.2."""

    profile: Literal["home", "lab"] = Field(
        default="home",
        description="'lab': all TCP ports, the UDP IoT list, default credentials, declaration "
        "required (the only profile that can earn A); 'home': everything else.",
    )
    tcp_ports: Literal["curated", "all", "custom"] = Field(
        description="The TCP ports swept: the curated IoT list, all 65,535, or a user's list."
    )
    tcp_port_count: int = Field(ge=0, le=65535)
    udp: bool = Field(description="Whether the UDP IoT hellos (SNMP, SSDP, mDNS, CoAP) were sent.")
    policy: Policy
    budget_s: Seconds | None = Field(default=None, description="--budget, if any.")
    budget_cut: bool = Field(
        default=False, description="True when the time budget stopped or skipped probes."
    )


class ScanResult(_Model):
    schema_version: str = SCHEMA_VERSION
    tool: ToolInfo = Field(default_factory=ToolInfo)
    scan_id: str
    started_at: Timestamp
    finished_at: Timestamp | None = None
    discovery_mode: str | None = Field(
        default=None, description="Which host discovery ran, e.g. 'tcp-connect' or 'arp'."
    )
    policy: str = "default"
    targets: list[Target] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    scope: ScanScope | None = Field(
        default=None, description="What the scan covered; absent in results before 1.2."
    )
    vulndb_date: date | None = Field(
        default=None,
        description="Date of the vulnerability dataset the scan used (its oldest source); "
        "absent in results before 1.2.",
    )


def json_schema() -> dict[str, Any]:
    """The published JSON Schema for :class:`ScanResult` (serialisation side)."""
    schema = ScanResult.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://iotrate.invalid/schemas/scan-result-{SCHEMA_VERSION}.json"
    return schema
