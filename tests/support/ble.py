"""Build BLE recordings (``ble`` observation dicts) from the documented advertisement formats.

Each payload follows the layout its owner or AirGuard documents (see docs/bluetooth.md and
../shared/fixtures/ble/FORMATS.md): Find My offline finding (``12 19 <status> <22 key bytes>
<key bits> <hint>``), the near-owner frame (``12 02 <status> <bits>``), Continuity Nearby Info
from resolvable private addresses, Tile's ``02 00 <8-byte id>`` on 0xFEED, SmartTag on 0xFD5A,
Google FMDN frames on 0xFEAA, GATT Heart Rate and Weight Scale measurements. Times are seconds
on the capture's clock, so a thirty-minute capture is thirty minutes of recording, built in
milliseconds.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

APPLE = "76"
SIG = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: str) -> str:
    return f"0000{short}{SIG}"


def address(top_bits: int, rng: random.Random) -> str:
    """A random address of the kind its two top bits say (11 static, 01 resolvable...)."""
    raw = [rng.randrange(256) for _ in range(6)]
    raw[0] = (raw[0] & 0x3F) | (top_bits << 6)
    return ":".join(f"{b:02X}" for b in raw)


def findmy_separated(key: bytes, status: int = 0x10) -> str:
    assert len(key) == 22
    return (bytes([0x12, 0x19, status]) + key + bytes([0x01, 0x00])).hex()


def findmy_near_owner(status: int = 0x54) -> str:
    return bytes([0x12, 0x02, status, 0x02]).hex()


def nearby_info_iphone(rng: random.Random) -> str:
    return bytes([0x10, 0x06, 0x1A, 0x1E, *(rng.randrange(256) for _ in range(4))]).hex()


def tile(ident: bytes) -> dict[str, str]:
    return {uuid16("feed"): (b"\x02\x00" + ident).hex()}


def smarttag(state: int, key: bytes) -> dict[str, str]:
    return {uuid16("fd5a"): (bytes([0x10 | state, 1, 0, 0]) + key + b"\x40").hex()}


def fmdn(frame: int, eid: bytes) -> dict[str, str]:
    return {uuid16("feaa"): (bytes([frame]) + eid + b"\x00").hex()}


def heart_rate(bpm: int) -> dict[str, str]:
    return {uuid16("180d"): bytes([0x00, bpm]).hex()}


def weight_kg(kg: float) -> dict[str, str]:
    raw = round(kg / 0.005)
    return {uuid16("181d"): bytes([0x02, raw & 0xFF, raw >> 8]).hex()}


def observation(device: str, t: float, **fields: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "device": device,
        "kind": "ble",
        "address": None,
        "address_type": "unknown",
        "name": None,
        "rssi": -70,
        "manufacturer_data": {},
        "service_data": {},
        "service_uuids": [],
        "tx_power": None,
        "time": round(t, 3),
    }
    obs.update(fields)
    return obs


def capture(
    device: str,
    make: Callable[[float], dict[str, Any]],
    *,
    minutes: float = 30,
    every_s: float = 30,
    start: float = 1000.0,
    rng: random.Random | None = None,
) -> Iterator[dict[str, Any]]:
    """One observation of ``device`` every ``every_s`` seconds for ``minutes``, signal strength
    wandering as a bag moves (the checks must not care)."""
    rng = rng or random.Random(1)
    t = start
    end = start + minutes * 60
    while t <= end:
        obs = observation(device, t, **make(t))
        obs["rssi"] = rng.randrange(-98, -45)
        yield obs
        t += every_s


def travelling_airtag(minutes: float = 30, seed: int = 7) -> list[dict[str, Any]]:
    """A separated AirTag: one random static address and one key for the whole capture."""
    rng = random.Random(seed)
    key = bytes(rng.randrange(256) for _ in range(22))
    addr = address(0b11, rng)
    return list(
        capture(
            "tag",
            lambda t: {
                "address": addr,
                "address_type": "random_static",
                "manufacturer_data": {APPLE: findmy_separated(key)},
            },
            minutes=minutes,
            rng=rng,
        )
    )


def rotating_phone(
    minutes: float = 30, rotate_s: float = 13 * 60, seed: int = 3
) -> list[dict[str, Any]]:
    """An iPhone whose resolvable private address changes every ``rotate_s`` seconds."""
    rng = random.Random(seed)
    addresses: dict[int, str] = {}

    def make(t: float) -> dict[str, Any]:
        slot = int(t // rotate_s)
        if slot not in addresses:
            addresses[slot] = address(0b01, rng)
        return {
            "address": addresses[slot],
            "address_type": "random_private_resolvable",
            "manufacturer_data": {APPLE: nearby_info_iphone(rng)},
        }

    return list(capture("phone", make, minutes=minutes, rng=rng))


SHARED_BLE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "ble"


def shared_ble_or_skip() -> Path:
    """The real-device BLE fixtures; missing under CI is a failure, not a skip."""
    if (
        not (SHARED_BLE / "observations.jsonl").is_file()
        or not (SHARED_BLE / "truth.jsonl").is_file()
    ):
        if os.environ.get("CI"):
            pytest.fail("CI has ../shared beside the clone; ../shared/fixtures/ble is missing")
        pytest.skip("../shared/fixtures/ble is not available")
    return SHARED_BLE
