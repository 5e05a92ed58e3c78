"""Advertisement payloads -> named facts, tracker signals and exposed personal data.

Identification rules (``iotrate/data/identify/ble.yaml``) never look at raw bytes: they match
facts such as ``ble.apple.tlv = 12:19`` or ``ble.svc_len.181a = 13``. This module is the only
place that reads bytes, and it reads them only in the layouts their owners or long-standing
open decoders document (sources in docs/bluetooth.md):

* Apple Continuity TLVs (furiousMAC/continuity), iBeacon, Find My offline finding;
* Eddystone frames and Google's Find My Device Network frames on UUID 0xFEAA;
* Tile (0xFEED, 0xFEEC, 0xFD84), Samsung SmartThings Find (0xFD5A), Chipolo (0xFE33), as
  read by seemoo-lab/AirGuard;
* the Bluetooth SIG's GATT measurement layouts when a device puts them in service data
  (Heart Rate, Weight Scale, Body Composition, Health Thermometer, Blood Pressure, Glucose);
* Huami/Xiaomi Mi Band frames (company 0x0157, service 0xFEE0), Xiaomi MiBeacon (0xFE95).

Device data is hostile: every read is bounds-checked, nothing here raises anything but
:class:`~iotrate.ble.errors.BleFormatError` (and only for input that is not even bytes), and
every fact value is bounded.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from iotrate.ble.assigned import company_name, uuid_owner, uuid_service_name
from iotrate.ble.errors import BleFormatError
from iotrate.ble.observe import short_uuid

APPLE = 0x004C
HUAMI = 0x0157
MAX_FACTS = 400
MAX_TEXT = 128


@dataclass(frozen=True)
class Exposure:
    """Personal data anyone in radio range can read without pairing."""

    kind: Literal["health", "identity"]
    what: str  # "heart rate", "body weight", "e-mail address"
    detail: str  # "72 bpm", "87.2 kg": what was read, for the evidence
    source: str  # "service data 0x181d"


@dataclass(frozen=True)
class TrackerSignal:
    """An item-tracker advertisement: which network, whether it says it is away from its owner,
    and whatever in it stays the same while the owner is away (so one tag can be followed)."""

    network: str
    separated: bool | None  # None: the format does not say
    identifier: str | None = None


@dataclass
class Advert:
    """One advertisement as bytes (what decoders read)."""

    address: str | None = None
    address_type: str = "unknown"
    name: str | None = None
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    tx_power: int | None = None


@dataclass
class Decoded:
    facts: list[tuple[str, str]] = field(default_factory=list)
    trackers: list[TrackerSignal] = field(default_factory=list)
    exposures: list[Exposure] = field(default_factory=list)
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (what, value)

    def add(self, name: str, value: object) -> None:
        if value is None or len(self.facts) >= MAX_FACTS:
            return
        text = str(value).strip()[:MAX_TEXT]
        if text and (name, text) not in self.facts:
            self.facts.append((name, text))


def _hex_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BleFormatError(f"{what} is not hex") from None


#: The fields of a ``ble`` observation that make an :class:`Advert`.
ADVERT_FIELDS = (
    "address",
    "address_type",
    "name",
    "manufacturer_data",
    "service_data",
    "service_uuids",
    "tx_power",
)


def advert_from_observation(obs: Mapping[str, Any] | object) -> Advert:
    """An :class:`Advert` from a ``ble`` observation: the validated model or its JSON object
    (the live scanner groups raw objects before they become models)."""
    if isinstance(obs, Mapping):
        return advert_from_fields(**{f: obs[f] for f in ADVERT_FIELDS})
    return advert_from_fields(**{f: getattr(obs, f) for f in ADVERT_FIELDS})


def advert_from_fields(
    *,
    address: str | None,
    address_type: str,
    name: str | None,
    manufacturer_data: Mapping[str, str],
    service_data: Mapping[str, str],
    service_uuids: Iterable[str],
    tx_power: int | None,
) -> Advert:
    """An :class:`Advert` from an observation's (already validated) JSON fields."""
    mfr: dict[int, bytes] = {}
    for key, value in manufacturer_data.items():
        try:
            cid = int(key)
        except ValueError:
            raise BleFormatError(f"not a company id: {key[:20]!r}") from None
        mfr[cid] = _hex_bytes(value, "manufacturer data")
    return Advert(
        address=address,
        address_type=address_type,
        name=name,
        manufacturer_data=mfr,
        service_data={k: _hex_bytes(v, "service data") for k, v in service_data.items()},
        service_uuids=tuple(service_uuids),
        tx_power=tx_power,
    )


# --- helpers ----------------------------------------------------------------------------------

_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{6,}")


def _texts(payload: bytes) -> list[str]:
    """Readable ASCII runs inside a payload (vendors put names and URLs there)."""
    return [m.group(0).decode("ascii").strip() for m in _PRINTABLE_RUN.finditer(payload)][:4]


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw)


def _sfloat(raw: int) -> float | None:
    """IEEE 11073 16-bit SFLOAT (GATT measurements)."""
    mantissa = raw & 0x0FFF
    exponent = raw >> 12
    if mantissa in (0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801):
        return None  # NaN, NRes, +/-infinity
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    if exponent >= 0x08:
        exponent -= 0x10
    return float(mantissa * (10.0**exponent))


def _float32(raw: bytes) -> float | None:
    """IEEE 11073 32-bit FLOAT (Health Thermometer)."""
    if len(raw) < 4:
        return None
    mantissa = int.from_bytes(raw[:3], "little")
    if mantissa in (0x7FFFFF, 0x800000, 0x7FFFFE, 0x800002, 0x800001):
        return None
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    exponent = raw[3] - 0x100 if raw[3] >= 0x80 else raw[3]
    return float(mantissa * (10.0**exponent))


# --- Apple ------------------------------------------------------------------------------------

# Proximity Pairing device models (furiousMAC/continuity proximity_pairing.md and apple_bleee),
# bytes in advertisement order.
APPLE_AUDIO_MODELS = {
    "0220": "AirPods",
    "0f20": "AirPods (2nd generation)",
    "1320": "AirPods (3rd generation)",
    "0e20": "AirPods Pro",
    "1420": "AirPods Pro (2nd generation)",
    "0a20": "AirPods Max",
    "0320": "Powerbeats3",
    "0520": "BeatsX",
    "0620": "Beats Solo3",
    "0920": "Beats Studio3",
    "0b20": "Powerbeats Pro",
    "0c20": "Beats Solo Pro",
    "1020": "Beats Flex",
    "1120": "Beats Studio Buds",
}


def _apple(payload: bytes, out: Decoded, address: str | None) -> None:
    if len(payload) >= 23 and payload[0] == 0x02 and payload[1] == 0x15:
        # iBeacon: anyone's beacon, under Apple's company id; says nothing about Apple.
        out.add("ble.ibeacon.uuid", str(uuidlib.UUID(bytes=payload[2:18])))
        out.add("ble.ibeacon.major", int.from_bytes(payload[18:20], "big"))
        out.add("ble.ibeacon.minor", int.from_bytes(payload[20:22], "big"))
        return
    out.add("ble.company_name", company_name(APPLE))
    i = 0
    while i + 1 < len(payload):
        kind, length = payload[i], payload[i + 1]
        value = payload[i + 2 : i + 2 + length]
        truncated = len(value) < length
        out.add("ble.apple.type", f"{kind:02x}")
        out.add("ble.apple.tlv", f"{kind:02x}:{length:02x}")
        if kind == 0x12 and value:
            _findmy(length, value, out, address)
        elif kind == 0x10 and value:
            out.add("ble.apple.nearby.action", f"{value[0] & 0x0F:x}")
        elif kind in (0x08, 0x0F):
            _apple_device_class(kind, value, out)
        elif kind == 0x07 and len(value) >= 3:
            model = value[1:3].hex()
            out.add("ble.apple.audio.model_id", model)
            out.add("ble.apple.audio.model", APPLE_AUDIO_MODELS.get(model))
        elif kind == 0x09 and len(value) >= 6:
            out.add("ble.apple.airplay.ipv4", ".".join(str(b) for b in value[2:6]))
        if truncated:
            out.add("ble.apple.truncated", "yes")
            break
        i += 2 + length


# furiousMAC/continuity's dissector: the sender's device class in "Hey Siri" (0x08, 16 bits at
# offset 4) and in Nearby Action "iOS Setup" (0x0f type 0x09, the high nibble after the flags,
# the type and the optional 3-byte auth tag).
SIRI_DEVICE_CLASSES = {0x0002: "iphone", 0x0003: "ipad", 0x0007: "homepod", 0x0009: "mac",
                       0x000A: "watch"}  # fmt: skip
SETUP_DEVICE_CLASSES = {0x2: "iphone", 0x4: "ipod", 0x6: "ipad", 0x8: "homepod", 0xA: "mac",
                        0xC: "appletv", 0xE: "watch"}  # fmt: skip


def _apple_device_class(kind: int, value: bytes, out: Decoded) -> None:
    """The sender's own device class, where a Continuity message carries one."""
    name = None
    if kind == 0x08 and len(value) >= 6:
        name = SIRI_DEVICE_CLASSES.get(int.from_bytes(value[4:6], "big"))
    elif kind == 0x0F and len(value) >= 3 and value[1] == 0x09:
        at = 2 + (3 if value[0] & 0x80 else 0)
        if len(value) > at:
            name = SETUP_DEVICE_CLASSES.get(value[at] >> 4)
    if name:
        out.add("ble.apple.device_class", name)


def _findmy(length: int, value: bytes, out: Decoded, address: str | None) -> None:
    status = value[0]
    if status & 0x18 == 0x10:
        device = "airtag"
    elif status & 0x18 == 0x18:
        device = "airpods"
    else:
        device = "accessory"
    out.add("ble.findmy.device", device)
    if length >= 0x19:
        out.add("ble.findmy.state", "separated")
        # Bytes 6..27 of the public key: the same until the key rotates (daily when separated).
        key = value[1:23].hex() if len(value) >= 23 else None
        out.trackers.append(TrackerSignal("Apple Find My", True, key))
        if key:
            out.identifiers.append(("Find My public key", key))
    else:
        out.add("ble.findmy.state", "near owner")
        out.trackers.append(TrackerSignal("Apple Find My", False, None))


# --- manufacturer data of other companies -----------------------------------------------------


def _huami(payload: bytes, out: Decoded, address: str | None) -> None:
    """Mi Band / Amazfit frames: 24 bytes, the device's own MAC last, heart rate in byte 3."""
    if len(payload) == 24:
        out.add("ble.huami.layout", "band")
        embedded = payload[-6:]
        if embedded != b"\xff" * 6 and any(embedded):
            out.identifiers.append(("own MAC address in the payload", _mac_text(embedded)))
        heart = payload[3]
        if heart not in (0x00, 0xFF):
            out.exposures.append(
                Exposure("health", "heart rate", f"{heart} bpm", "manufacturer data 0x0157")
            )
    elif len(payload) == 6:
        out.add("ble.huami.layout", "mac")


def _manufacturer(cid: int, payload: bytes, out: Decoded, address: str | None) -> None:
    key = f"{cid:04x}"
    out.add("ble.company", str(cid))
    out.add("ble.company_hex", key)
    out.add(f"ble.mfr.{key}", payload.hex()[:MAX_TEXT])
    out.add(f"ble.mfr_len.{key}", len(payload))
    out.add(f"ble.mfr_head.{key}", payload[:2].hex() if payload else "")
    if cid == APPLE:
        _apple(payload, out, address)
        return
    # 0x0000 and the test id 0xFFFF are placeholders; Microsoft's id on a Connected Devices
    # Platform beacon (01 ..) is sent by every Windows PC, whoever made it.
    cdp = cid == 0x0006 and payload[:1] == b"\x01"
    if cid not in (0x0000, 0xFFFF) and not cdp:
        out.add("ble.company_name", company_name(cid))
    if cid == HUAMI:
        _huami(payload, out, address)
    for text in _texts(payload):
        out.add("ble.text", text)


# --- service data -----------------------------------------------------------------------------

#: Reads one service's data (payload, facts to add to, evidence source).
_ServiceDecoder = Callable[[bytes, Decoded, str], None]


def _eddystone(payload: bytes, out: Decoded, source: str) -> None:
    frame = payload[0]
    out.add("ble.eddystone.frame", f"{frame:02x}")
    if frame == 0x10 and len(payload) >= 4:
        out.add("ble.eddystone.url", _eddystone_url(payload[3:], payload[2]))
    elif frame in (0x40, 0x41):
        # Google Find My Device Network: 0x41 is the unwanted-tracking-protection mode a tag
        # enters when separated from its owner (nRF Connect SDK locator tag documentation).
        out.add("ble.fmdn.frame", f"{frame:02x}")
        eid = payload[1:21].hex() if len(payload) >= 21 else None
        out.trackers.append(TrackerSignal("Google Find My Device", frame == 0x41, eid))


_URL_SCHEMES = {0: "http://www.", 1: "https://www.", 2: "http://", 3: "https://"}
_URL_CODES = {
    0: ".com/",
    1: ".org/",
    2: ".edu/",
    3: ".net/",
    4: ".info/",
    5: ".biz/",
    6: ".gov/",
    7: ".com",
    8: ".org",
    9: ".edu",
    10: ".net",
    11: ".info",
    12: ".biz",
    13: ".gov",
}


def _eddystone_url(body: bytes, scheme: int) -> str:
    parts = [_URL_SCHEMES.get(scheme, "")]
    for b in body[:64]:
        if b in _URL_CODES:
            parts.append(_URL_CODES[b])
        elif 0x21 <= b <= 0x7E:
            parts.append(chr(b))
        else:
            parts.append("?")
    return "".join(parts)


def _weight(payload: bytes, out: Decoded, source: str) -> None:
    """Weight Measurement (GATT 0x2A9D) layout: flags, weight in 0.005 kg (or 0.01 lb)."""
    if len(payload) < 3:
        return
    flags = payload[0]
    raw = int.from_bytes(payload[1:3], "little")
    if raw in (0, 0xFFFF):
        return
    detail = f"{raw * 0.01:.1f} lb" if flags & 0x01 else f"{raw * 0.005:.1f} kg"
    out.exposures.append(Exposure("health", "body weight", detail, source))


def _tile(payload: bytes, out: Decoded, source: str) -> None:
    if len(payload) >= 10 and payload[:2] == b"\x02\x00":
        ident = payload[2:10].hex()
        out.add("ble.tile.id", ident)
        out.identifiers.append(("Tile identifier", ident))
        out.trackers.append(TrackerSignal("Tile", None, ident))
    else:
        out.trackers.append(TrackerSignal("Tile", None, None))


def _smarttag(payload: bytes, out: Decoded, source: str) -> None:
    if payload[0] & 0xF8 != 0x10:
        return
    state = payload[0] & 0x07
    names = {1: "premature offline", 2: "offline", 3: "overmature offline"}
    out.add("ble.smarttag.state", names.get(state, "connected"))
    tag_key = payload[4:12].hex() if len(payload) >= 12 else None
    out.trackers.append(TrackerSignal("Samsung SmartThings Find", state in names, tag_key))


def _chipolo(payload: bytes, out: Decoded, source: str) -> None:
    separated = bool(payload[1] & 0x01) if len(payload) > 1 else None
    out.trackers.append(TrackerSignal("Chipolo", separated, None))


def _heart_rate(payload: bytes, out: Decoded, source: str) -> None:
    if len(payload) < 2:
        return
    flags = payload[0]
    bpm = int.from_bytes(payload[1:3], "little") if flags & 0x01 else payload[1]
    if 0 < bpm < 300:
        out.exposures.append(Exposure("health", "heart rate", f"{bpm} bpm", source))


def _body_composition(payload: bytes, out: Decoded, source: str) -> None:
    out.exposures.append(
        Exposure("health", "body composition", f"{len(payload)}-byte measurement", source)
    )


def _thermometer(payload: bytes, out: Decoded, source: str) -> None:
    # Only a real Temperature Measurement (GATT 0x2A1C layout) in the range of a human body
    # is health data; room thermometers reuse the UUID with their own text.
    temp = _float32(payload[1:5]) if len(payload) >= 5 and payload[0] <= 0x07 else None
    if temp is not None and 30.0 <= temp <= 45.0 and not payload[0] & 0x01:
        out.exposures.append(Exposure("health", "body temperature", f"{temp:.1f} °C", source))


def _blood_pressure(payload: bytes, out: Decoded, source: str) -> None:
    if len(payload) < 7:
        return
    sys_ = _sfloat(int.from_bytes(payload[1:3], "little"))
    dia = _sfloat(int.from_bytes(payload[3:5], "little"))
    detail = f"{sys_:.0f}/{dia:.0f}" if sys_ is not None and dia is not None else "a reading"
    out.exposures.append(Exposure("health", "blood pressure", detail, source))


def _reading(what: str) -> _ServiceDecoder:
    """A decoder that records only that a reading of ``what`` is there, and its size."""

    def decode(payload: bytes, out: Decoded, source: str) -> None:
        out.exposures.append(Exposure("health", what, f"{len(payload)}-byte reading", source))

    return decode


def _huami_steps(payload: bytes, out: Decoded, source: str) -> None:
    if len(payload) != 4:
        return
    steps = int.from_bytes(payload, "little")
    out.add("ble.huami.steps", "yes")
    if steps:
        out.exposures.append(Exposure("health", "step count", f"{steps} steps", source))


def _mibeacon(payload: bytes, out: Decoded, source: str) -> None:
    """Xiaomi MiBeacon header: frame control (2 bytes LE), product id (2 bytes LE), counter."""
    if len(payload) < 5:
        return
    control = int.from_bytes(payload[0:2], "little")
    out.add("ble.mibeacon.product_id", f"{int.from_bytes(payload[2:4], 'little'):04x}")
    out.add("ble.mibeacon.version", (control >> 12) & 0x0F)
    out.add("ble.mibeacon.encrypted", "yes" if control & 0x08 else "no")


# One decoder per 16-bit service UUID whose service data has a documented layout; each gets a
# non-empty payload and checks the length its layout needs.
_SERVICE_DECODERS: dict[str, _ServiceDecoder] = {
    "feed": _tile,
    "feec": _tile,
    "fd84": _tile,
    "fd5a": _smarttag,
    "fe33": _chipolo,
    "feaa": _eddystone,
    "180d": _heart_rate,
    "181d": _weight,
    "181b": _body_composition,
    "1809": _thermometer,
    "1810": _blood_pressure,
    "1808": _reading("blood glucose"),
    "181f": _reading("blood glucose"),
    "1822": _reading("blood oxygen"),
    "fee0": _huami_steps,
    "fe95": _mibeacon,
}


def _service(uuid: str, payload: bytes, out: Decoded) -> None:
    short = short_uuid(uuid)
    key = short or uuid
    out.add("ble.svc_uuid", key)
    out.add(f"ble.svc.{key}", payload.hex()[:MAX_TEXT])
    out.add(f"ble.svc_len.{key}", len(payload))
    out.add(f"ble.svc_head.{key}", payload[:2].hex() if payload else "")
    _uuid_names(uuid, out)
    source = f"service data 0x{short}" if short else f"service data {uuid}"
    for text in _texts(payload):
        out.add("ble.text", text)
    if not payload or short is None:
        return
    decoder = _SERVICE_DECODERS.get(short)
    if decoder is not None:
        decoder(payload, out, source)


# Member UUIDs that name a shared standard rather than one maker's products: Eddystone and Fast
# Pair (Google), Exposure Notification (Apple and Google), BTHome (Allterco), Nordic's DFU.
SHARED_UUIDS = frozenset({"feaa", "fe2c", "fd6f", "fcd2", "fe59"})


def _uuid_names(uuid: str, out: Decoded) -> None:
    out.add("ble.service_name", uuid_service_name(uuid))
    owner = uuid_owner(uuid)
    if owner and short_uuid(uuid) not in SHARED_UUIDS:
        out.add("ble.uuid_owner", owner)


# --- the whole advertisement ------------------------------------------------------------------

_MAC = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def decode(advert: Advert) -> Decoded:
    """Every fact the advertisement's documented layouts give, bounded; never raises on bytes."""
    out = Decoded()
    out.add("ble.address_type", advert.address_type)
    if advert.address:
        out.add("ble.address", advert.address)
    if advert.name is not None:
        name = " ".join(advert.name.replace("\x00", " ").split())
        out.add("ble.name", name)
    if advert.tx_power is not None:
        out.add("ble.tx_power", advert.tx_power)
    for cid, payload in sorted(advert.manufacturer_data.items()):
        _manufacturer(cid, payload, out, advert.address)
    for svc_uuid, payload in sorted(advert.service_data.items()):
        _service(svc_uuid, payload, out)
    for svc_uuid in advert.service_uuids:
        short = short_uuid(svc_uuid)
        out.add("ble.uuid", short or svc_uuid)
        _uuid_names(svc_uuid, out)
    _embedded_own_mac(advert, out)
    return out


def _embedded_own_mac(advert: Advert, out: Decoded) -> None:
    """Sensor firmwares (ATC, pvvx, MiBeacon) repeat the device's MAC inside their payload."""
    if not advert.address or not _MAC.match(advert.address):
        return
    mac = bytes.fromhex(advert.address.replace(":", ""))
    if mac in (b"\x00" * 6, b"\xff" * 6):
        return
    payloads = list(advert.manufacturer_data.values()) + list(advert.service_data.values())
    for payload in payloads:
        if mac in payload:
            out.add("ble.own_mac_in_payload", "forward")
        elif mac[::-1] in payload:
            out.add("ble.own_mac_in_payload", "reversed")
