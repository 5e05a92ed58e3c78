"""Bluetooth SIG assigned numbers: who a company id or a 16-bit UUID belongs to.

Read from maintained packages rather than typed in: ``bluetooth-numbers`` (company ids, GATT
services) and bleak's ``uuid16_dict`` (member UUIDs up to 2017); the few newer member UUIDs
the format rules need are data (``iotrate/data/identify/ble_uuids.yaml``). A number nobody owns
gives ``None``, never a guess.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID

from bleak.uuids import uuid16_dict
from bluetooth_numbers import company, service
from bluetooth_numbers.exceptions import BluetoothNumbersError

from iotrate.ble.observe import short_uuid

MEMBER_RANGE = range(0xFC00, 0x10000)  # 16-bit UUIDs the SIG assigns to member companies


def company_name(cid: int) -> str | None:
    """The registered owner of a company identifier (``0x004C`` -> ``"Apple, Inc."``)."""
    try:
        return str(company[cid])
    except (BluetoothNumbersError, KeyError, TypeError, ValueError):
        return None


@lru_cache(maxsize=1)
def _members() -> dict[int, str]:
    # Imported here: iotrate.identify imports this package's decoders while it initialises.
    from iotrate.identify.datafiles import load_yaml, require_mapping

    doc = require_mapping(load_yaml("ble_uuids.yaml"), "ble_uuids.yaml")
    table = require_mapping(doc.get("member_uuids"), "ble_uuids.yaml member_uuids")
    return {int(k): str(v) for k, v in table.items()}


def uuid_owner(uuid: str) -> str | None:
    """The member company a 16-bit member UUID was assigned to (``feed`` -> ``"Tile, Inc."``)."""
    short = short_uuid(uuid)
    if short is None:
        return None
    number = int(short, 16)
    if number not in MEMBER_RANGE:
        return None
    owner = _members().get(number) or uuid16_dict.get(number)
    # bleak's table spells "Tile, Inc." as "Tile: Inc.".
    return owner.replace(": ", ", ") if owner else None


def uuid_service_name(uuid: str) -> str | None:
    """The GATT service a UUID stands for (``180d`` -> ``"Heart Rate"``), if the SIG or a
    well-known vendor service table names it."""
    short = short_uuid(uuid)
    try:
        if short is not None:
            number = int(short, 16)
            if number in MEMBER_RANGE:
                return None
            return str(service[number])
        return str(service[UUID(uuid)])
    except (BluetoothNumbersError, KeyError, TypeError, ValueError):
        return None
