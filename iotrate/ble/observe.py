"""The ``ble`` observation's fields: checked once, normalised once, bounded once.

One advertisement arrives from a recording someone else made, from a test, or from bleak; in
every case the payload is what a device chose to broadcast. So every field is normalised to one
spelling here (upper-case addresses, decimal company ids, lower-case hex, full 128-bit UUIDs)
and bounded (no megabyte "hex", no thousand UUIDs), and anything that cannot be what it claims
is refused with a message, before any decoder sees it.

The functions raise :class:`ValueError` inside pydantic validation (which the observation
reader turns into :class:`~iotrate.identify.errors.ObservationError` with the line number) and
:class:`~iotrate.ble.errors.BleFormatError` when called directly (``normalise_uuid``...).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from iotrate.ble.errors import BleFormatError

AddressType = Literal[
    "public",
    "random_static",
    "random_private_resolvable",
    "random_private_nonresolvable",
    "unknown",
]
ADDRESS_TYPES: tuple[str, ...] = (
    "public",
    "random_static",
    "random_private_resolvable",
    "random_private_nonresolvable",
    "unknown",
)

# An extended advertisement carries at most 1650 bytes of data in all (Core 5.x, Vol 6 Part B
# 2.3.4.9); no single field can be longer.
MAX_PAYLOAD_BYTES = 1650
MAX_ENTRIES = 32  # manufacturer or service data entries in one advertisement
MAX_UUIDS = 64
MAX_NAME = 248  # the GAP device name's maximum length in octets
SIG_BASE = "-0000-1000-8000-00805f9b34fb"

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
_PLATFORM_UUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")
_HEX = re.compile(r"^[0-9a-f]*$")
_UUID128 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def normalise_uuid(value: object) -> str:
    """``"feed"``, ``"0xFEED"``, ``0xFEED``, 32-bit or 128-bit -> the full lower-case UUID."""
    if isinstance(value, bool):
        raise BleFormatError("a UUID cannot be true or false")
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise BleFormatError(f"UUID number out of range: {value}")
        return f"{value:08x}{SIG_BASE}"
    if not isinstance(value, str):
        raise BleFormatError(f"a UUID must be a string, not {type(value).__name__}")
    text = value.strip().lower()
    if len(text) > 40:
        raise BleFormatError(f"not a UUID: {value[:40]!r}...")
    if text.startswith("0x"):
        text = text[2:]
    if re.fullmatch(r"[0-9a-f]{4}|[0-9a-f]{8}", text):
        return f"{int(text, 16):08x}{SIG_BASE}"
    if _UUID128.match(text):
        return text
    if re.fullmatch(r"[0-9a-f]{32}", text):
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    raise BleFormatError(f"not a UUID: {value[:40]!r}")


def short_uuid(uuid: str) -> str | None:
    """The 16-bit short form (``"feed"``) of a SIG-base UUID, else ``None``."""
    if uuid.endswith(SIG_BASE) and uuid.startswith("0000"):
        return uuid[4:8]
    return None


def normalise_hex(value: object, what: str = "payload") -> str:
    """Lower-case hex without separators; refuses odd lengths, non-hex and oversize values."""
    if isinstance(value, bytes | bytearray):
        if len(value) > MAX_PAYLOAD_BYTES:
            raise BleFormatError(f"{what} longer than {MAX_PAYLOAD_BYTES} bytes")
        return bytes(value).hex()
    if not isinstance(value, str):
        raise BleFormatError(f"{what} must be a hex string, not {type(value).__name__}")
    if len(value) > 4 * MAX_PAYLOAD_BYTES:
        raise BleFormatError(f"{what} longer than {MAX_PAYLOAD_BYTES} bytes")
    text = re.sub(r"[\s:]", "", value).lower()
    if text.startswith("0x"):
        text = text[2:]
    if not _HEX.match(text):
        raise BleFormatError(f"{what} is not hex: {value[:40]!r}")
    if len(text) % 2:
        raise BleFormatError(f"{what} has an odd number of hex digits")
    if len(text) > 2 * MAX_PAYLOAD_BYTES:
        raise BleFormatError(f"{what} longer than {MAX_PAYLOAD_BYTES} bytes")
    return text


def company_key(value: object) -> str:
    """A company identifier as its decimal string (``"76"``); ``"0x004c"`` is accepted too."""
    if isinstance(value, bool):
        raise BleFormatError("a company id cannot be true or false")
    number: int
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            number = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            raise BleFormatError(f"not a company id: {value[:20]!r}") from None
    else:
        raise BleFormatError(f"not a company id: {type(value).__name__}")
    if not 0 <= number <= 0xFFFF:
        raise BleFormatError(f"company id out of range: {number}")
    return str(number)


def classify_random(address: str) -> str:
    """The kind of a random address from its two most significant bits (Core Vol 6 B 1.3)."""
    top = int(address[:2], 16) >> 6
    return {
        0b11: "random_static",
        0b01: "random_private_resolvable",
        0b00: "random_private_nonresolvable",
    }.get(top, "unknown")


def _wrap(fn: Any) -> Any:
    """Run a normaliser inside pydantic: our error becomes a ValueError it reports."""

    def check(value: object) -> object:
        try:
            return fn(value)
        except BleFormatError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(check)


def _address(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BleFormatError(f"address must be a string, not {type(value).__name__}")
    text = value.strip()
    if _MAC.match(text):
        return text.replace("-", ":").upper()
    # macOS (CoreBluetooth) hides addresses behind a per-host UUID.
    if _PLATFORM_UUID.match(text):
        return text.upper()
    raise BleFormatError(f"not a Bluetooth address: {text[:40]!r}")


def _address_type(value: object) -> str:
    if value is None or value == "":
        return "unknown"
    if not isinstance(value, str) or value not in ADDRESS_TYPES:
        shown = value[:40] if isinstance(value, str) else type(value).__name__
        raise BleFormatError(f"address_type must be one of {', '.join(ADDRESS_TYPES)}: {shown!r}")
    return value


def _name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BleFormatError(f"name must be a string, not {type(value).__name__}")
    return value[:MAX_NAME]


def _dbm(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BleFormatError(f"a dBm value must be a number, not {type(value).__name__}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise BleFormatError(f"a dBm value must be a whole number: {value!r}")
    number = int(value)
    if not -127 <= number <= 127:
        raise BleFormatError(f"dBm value out of range: {number}")
    return number


def _time(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BleFormatError(f"time must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > 1e11:
        raise BleFormatError(f"time out of range: {value!r}")
    return number


def _mapping(value: object, what: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BleFormatError(f"{what} must be an object, not {type(value).__name__}")
    if len(value) > MAX_ENTRIES:
        raise BleFormatError(f"{what} has more than {MAX_ENTRIES} entries")
    return value


def _manufacturer_data(value: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, payload in _mapping(value, "manufacturer_data").items():
        cid = company_key(key)
        out[cid] = normalise_hex(payload, f"manufacturer_data[{cid}]")
    return out


def _service_data(value: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, payload in _mapping(value, "service_data").items():
        uuid = normalise_uuid(key)
        out[uuid] = normalise_hex(payload, f"service_data[{uuid}]")
    return out


def _uuid_list(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise BleFormatError(f"service_uuids must be a list, not {type(value).__name__}")
    if len(value) > MAX_UUIDS:
        raise BleFormatError(f"more than {MAX_UUIDS} service UUIDs")
    out: list[str] = []
    for item in value:
        uuid = normalise_uuid(item)
        if uuid not in out:
            out.append(uuid)
    return out


BleAddress = Annotated[str | None, _wrap(_address)]
BleAddressType = Annotated[AddressType, _wrap(_address_type)]
BleName = Annotated[str | None, _wrap(_name)]
BleDbm = Annotated[int | None, _wrap(_dbm)]
BleTime = Annotated[float | None, _wrap(_time)]
BleManufacturerData = Annotated[dict[str, str], _wrap(_manufacturer_data)]
BleServiceData = Annotated[dict[str, str], _wrap(_service_data)]
BleUuidList = Annotated[list[str], _wrap(_uuid_list)]


def observation_dict(
    device: str,
    *,
    address: str | None,
    address_type: str,
    name: str | None,
    rssi: int | None,
    manufacturer_data: dict[int, bytes],
    service_data: dict[str, bytes],
    service_uuids: list[str],
    tx_power: int | None,
    time: float | None,
) -> dict[str, Any]:
    """A ``ble`` observation as the JSON object recordings hold (the documented key order)."""
    return {
        "device": device,
        "kind": "ble",
        "address": address,
        "address_type": address_type,
        "name": name,
        "rssi": rssi,
        "manufacturer_data": {str(k): bytes(v).hex() for k, v in sorted(manufacturer_data.items())},
        "service_data": {
            normalise_uuid(k): bytes(v).hex() for k, v in sorted(service_data.items())
        },
        "service_uuids": [normalise_uuid(u) for u in service_uuids],
        "tx_power": tx_power,
        "time": time,
    }
