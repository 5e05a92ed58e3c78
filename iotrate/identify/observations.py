"""Typed observations: what discovery saw of a device, one JSON object a line.

The format is shared by live discovery (which records it) and ``iotrate identify`` (which replays
it), so a scan can be identified again offline after the fingerprint data improves. Every kind
is lenient about keys it does not need (absent or null) because recordings come from many tools;
it is strict about types, because a wrong type usually means a wrong recording.

Device-supplied strings are untrusted: they are capped in length here, once, so no later stage
(regexes, XML parsing) ever sees a megabyte banner.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from iotrate.ble.observe import (
    BleAddress,
    BleAddressType,
    BleDbm,
    BleManufacturerData,
    BleName,
    BleServiceData,
    BleTime,
    BleUuidList,
)
from iotrate.identify.errors import ObservationError

# Descriptions and HTTP bodies can be long (UPnP XML with many services); banners are short.
MAX_DOCUMENT = 256 * 1024
MAX_TEXT = 8 * 1024
MAX_MAP_ITEMS = 256

KNOWN_KINDS = ("ssdp", "mdns", "http", "banner", "mac", "dhcp", "ble")
# Kinds that later discovery sources will record; accepted and skipped with a warning.
FUTURE_KINDS: tuple[str, ...] = ()


def _text(limit: int) -> Any:
    def coerce(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, str):
            return value[:limit]
        return value  # let pydantic reject lists, dicts, ...

    return BeforeValidator(coerce)


def _string_map(value: object) -> object:
    """Headers, TXT properties and DHCP options arrive as maps of scalars (sometimes null)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return value  # rejected by the declared type
    out: dict[str, str] = {}
    for k, v in list(value.items())[:MAX_MAP_ITEMS]:
        key = str(k)[:256]
        if v is None:
            out[key] = ""
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, str | int | float):
            out[key] = str(v)[:MAX_TEXT]
        elif isinstance(v, list | dict):
            out[key] = json.dumps(v, ensure_ascii=False, default=str)[:MAX_TEXT]
        else:
            out[key] = str(v)[:MAX_TEXT]
    return out


def _device_id(value: object) -> object:
    if isinstance(value, bool):
        return value  # rejected: true is not an id
    if isinstance(value, int):
        return str(value)
    return value


def _port(value: object) -> object:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


Text = Annotated[str | None, _text(MAX_TEXT)]
Document = Annotated[str | None, _text(MAX_DOCUMENT)]
StringMap = Annotated[dict[str, str], BeforeValidator(_string_map)]
Port = Annotated[Annotated[int, Field(ge=0, le=65535)] | None, BeforeValidator(_port)]
DeviceId = Annotated[str, BeforeValidator(_device_id), Field(min_length=1, max_length=512)]


class _Observation(BaseModel):
    # Unknown keys are ignored: recorders may add context (timestamps, addresses) we do not use.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)

    device: DeviceId


class SsdpObservation(_Observation):
    """An SSDP answer or NOTIFY (``headers``) and the device description it pointed to."""

    kind: Literal["ssdp"]
    headers: StringMap = Field(default_factory=dict)
    description_xml: Document = None


class MdnsObservation(_Observation):
    """One DNS-SD service instance: type, instance name, port and TXT properties."""

    kind: Literal["mdns"]
    service_type: Text = None
    name: Text = None
    port: Port = None
    properties: StringMap = Field(default_factory=dict)


class HttpObservation(_Observation):
    """One HTTP exchange: where it was asked, the response headers, title and body."""

    kind: Literal["http"]
    port: Port = None
    path: Text = None
    headers: StringMap = Field(default_factory=dict)
    title: Text = None
    body: Document = None


class BannerObservation(_Observation):
    """Whatever a TCP or UDP service said first (or answered to a hello)."""

    kind: Literal["banner"]
    port: Port = None
    protocol: Text = None
    banner: Document = None


class MacObservation(_Observation):
    """A link-layer address (ARP, DHCP, or a device's own report)."""

    kind: Literal["mac"]
    mac: Text = None


class DhcpObservation(_Observation):
    """What a device said about itself in a DHCP request (hostname, option 60, others)."""

    kind: Literal["dhcp"]
    hostname: Text = None
    vendor_class: Text = None
    options: StringMap = Field(default_factory=dict)


class BleObservation(_Observation):
    """One Bluetooth LE advertisement (with its scan response merged), as a scanner heard it.

    The shape is the same in recordings, in ``iotrate ble scan --save-observations`` and in
    tests; ``iotrate.ble.observe`` checks and normalises every field (docs/bluetooth.md).
    Company ids are decimal strings, payloads lower-case hex without the company id or UUID,
    UUIDs full 128-bit lower-case strings; ``time`` is seconds on any monotonic clock.
    """

    kind: Literal["ble"]
    address: BleAddress = None
    address_type: BleAddressType = "unknown"
    name: BleName = None
    rssi: BleDbm = None
    manufacturer_data: BleManufacturerData = Field(default_factory=dict)
    service_data: BleServiceData = Field(default_factory=dict)
    service_uuids: BleUuidList = Field(default_factory=list)
    tx_power: BleDbm = None
    time: BleTime = None


Observation = Annotated[
    SsdpObservation
    | MdnsObservation
    | HttpObservation
    | BannerObservation
    | MacObservation
    | DhcpObservation
    | BleObservation,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Observation] = TypeAdapter(Observation)

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.IGNORECASE)


@dataclass
class ReadResult:
    """Observations read from a recording, and what was wrong with the rest of it."""

    observations: list[Observation] = field(default_factory=list)
    errors: list[ObservationError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _describe(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
    return "; ".join(parts)


def parse_observation(obj: object, line: int | None = None) -> Observation | None:
    """Validate one decoded JSON value; ``None`` for a kind this version does not identify.

    Raises :class:`ObservationError` (never anything else) for a malformed value.
    """
    if not isinstance(obj, dict):
        raise ObservationError(f"expected a JSON object, got {type(obj).__name__}", line)
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ObservationError("missing or non-string 'kind'", line)
    if "device" not in obj or obj["device"] is None:
        raise ObservationError("missing 'device'", line)
    if kind not in KNOWN_KINDS:
        return None
    try:
        obs = _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise ObservationError(f"invalid {kind} observation: {_describe(exc)}", line) from None
    except (TypeError, ValueError, RecursionError) as exc:  # pragma: no cover - defensive
        raise ObservationError(f"invalid {kind} observation: {exc}", line) from None
    if isinstance(obs, MacObservation) and obs.mac and not _MAC.match(obs.mac.strip()):
        raise ObservationError(f"not a MAC address: {obs.mac[:40]!r}", line)
    return obs


def iter_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if text and not text.startswith("#"):
            yield number, text


def read_observations(lines: Iterable[str]) -> ReadResult:
    """Read a JSONL recording; a bad line is reported with its number and the rest still read."""
    result = ReadResult()
    unknown: dict[str, int] = {}
    for number, text in iter_lines(lines):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            result.errors.append(ObservationError(f"not valid JSON ({exc})", number))
            continue
        try:
            obs = parse_observation(obj, number)
        except ObservationError as exc:
            result.errors.append(exc)
            continue
        if obs is None:
            kind = str(obj.get("kind")) if isinstance(obj, dict) else "?"
            if kind not in unknown:
                unknown[kind] = number
                why = "not identified yet" if kind in FUTURE_KINDS else "unknown kind"
                result.warnings.append(
                    f"line {number}: {why} {kind[:40]!r}; such observations are ignored"
                )
            continue
        result.observations.append(obs)
    return result
