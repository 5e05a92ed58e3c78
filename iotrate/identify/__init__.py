"""Offline device identification: what each device is, how sure we are, and why.

Observations (SSDP, mDNS, HTTP, banners, MACs, DHCP; see :mod:`.observations`) are matched
against a declarative fingerprint database built from public data - Rapid7 Recog, Home
Assistant's discovery matchers, the IEEE OUI registry, UPnP and DNS-SD standards and vendors'
documented local APIs - and all evidence of a device is weighed together before concluding.
"""

from __future__ import annotations

from iotrate.identify.engine import Database, Identifier, group_by_device, identify
from iotrate.identify.errors import FingerprintDataError, IdentifyError, ObservationError
from iotrate.identify.observations import (
    Observation,
    ReadResult,
    parse_observation,
    read_observations,
)

__all__ = [
    "Database",
    "FingerprintDataError",
    "Identifier",
    "IdentifyError",
    "Observation",
    "ObservationError",
    "ReadResult",
    "group_by_device",
    "identify",
    "parse_observation",
    "read_observations",
]
