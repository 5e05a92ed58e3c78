"""A claim: one piece of evidence voting for one value of one attribute.

Every matcher (fingerprint rules, Recog, Home Assistant's matchers, the OUI registry, keyword
and brand lexicons) produces claims; only :mod:`iotrate.identify.combine` turns them into a
conclusion. Keeping the vote separate from the verdict is what lets all evidence of a device
be weighed together, and lets every conclusion show what it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Attribute = Literal["category", "vendor", "model", "firmware"]
ATTRIBUTES: tuple[Attribute, ...] = ("category", "vendor", "model", "firmware")

# The category words, the same in output, reports and the fixtures' truth.
CATEGORIES: tuple[str, ...] = (
    "tv",
    "streamer",
    "speaker",
    "camera",
    "doorbell",
    "plug",
    "switch",
    "bulb",
    "hub",
    "thermostat",
    "appliance",
    "vacuum",
    "sensor",
    "lock",
    "watch",
    "fitness-band",
    "tracker",
    "phone",
    "tablet",
    "headphones",
    "toothbrush",
    "printer",
    "router",
    "nas",
    "media-server",
    "console",
    "computer",
    "other",
)

# Near-synonyms: evidence for one supports the other rather than contradicting it (a set-top
# box and a TV, a smart plug and an in-wall switch, a NAS and a media server).
CATEGORY_FAMILIES: dict[str, str] = {
    "tv": "tv",
    "streamer": "tv",
    "plug": "plug",
    "switch": "plug",
    "nas": "nas",
    "media-server": "nas",
    # Other recordings' truth labels (the BLE fixtures) use "thermometer" for what iotrate
    # calls a sensor.
    "thermometer": "sensor",
}


def family(category: str) -> str:
    return CATEGORY_FAMILIES.get(category, category)


@dataclass(frozen=True)
class Claim:
    """``attribute = value`` with ``weight`` (0..1), because ``field`` held ``observed``."""

    attribute: Attribute
    value: str
    weight: float
    rule: str
    source: str  # the observation kind: ssdp, mdns, http, banner, mac, dhcp, ble
    field: str
    observed: str
    record: str = ""  # which record (one UPnP device, one DNS-SD service...) it came from
