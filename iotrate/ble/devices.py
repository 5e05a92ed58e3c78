"""A Bluetooth capture -> rated devices: the one pipeline behind replay and ``iotrate ble scan``.

Observations are grouped by their ``device`` key (the live adapter keys by address, or by the
tracker identifier when one is broadcast), identified with the same engine and data as IP
devices, checked with :mod:`iotrate.ble.privacy` over the whole capture's time span and rated
with the current scheme. The result is an ordinary :class:`~iotrate.models.ScanResult` whose
devices have ``transport: bluetooth``, so reports, labels, history and ``iotrate rate`` treat
them like any other device.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from iotrate.ble.privacy import Capture, assess
from iotrate.declarations import Declaration
from iotrate.identify.engine import Identifier, group_by_device
from iotrate.identify.errors import IdentifyError
from iotrate.identify.observations import BleObservation, Observation
from iotrate.models import BluetoothInfo, Device, Identity, ScanResult
from iotrate.net import printable
from iotrate.rating import rate_result
from iotrate.rating_schema.loader import load_scheme
from iotrate.rating_schema.model import Scheme

DISCOVERY_MODE = "ble-passive"
MAX_NAMES = 8


def _device(
    key: str,
    observations: Sequence[BleObservation],
    identity: Identity,
    capture: Capture,
    scheme: Scheme,
) -> Device:
    findings, outcomes = assess(observations, capture, category=identity.category, scheme=scheme)
    addresses: list[str] = []
    names: list[str] = []
    for obs in observations:
        if obs.address and obs.address not in addresses:
            addresses.append(obs.address)
        if obs.name:
            shown = printable(obs.name, 128)
            if shown and shown not in names and len(names) < MAX_NAMES:
                names.append(shown)
    last = observations[-1]
    address = last.address or (addresses[-1] if addresses else key)
    times = [o.time for o in observations if o.time is not None]
    rssis = [o.rssi for o in observations if o.rssi is not None]
    public = last.address_type == "public" and ":" in address
    return Device(
        id=key,
        transport="bluetooth",
        address=address,
        addresses=addresses,
        mac=address if public else None,
        vendor=identity.vendor,
        model=identity.model,
        category=identity.category,
        firmware=identity.firmware,
        names=names,
        sources=["ble"],
        findings=findings,
        outcomes=outcomes,
        identity=identity,
        bluetooth=BluetoothInfo(
            address_type=last.address_type,
            first_seen=min(times) if times else None,
            last_seen=max(times) if times else None,
            sightings=len(observations),
            rssi_max=max(rssis) if rssis else None,
        ),
    )


def ble_devices(
    observations: Iterable[Observation],
    *,
    scheme: Scheme | None = None,
    identifier: Identifier | None = None,
) -> list[Device]:
    """Unrated devices (identity, findings, outcomes) from a capture's ``ble`` observations."""
    scheme = scheme or load_scheme()
    ble = [o for o in observations if isinstance(o, BleObservation)]
    capture = Capture.of(ble)
    ident = identifier or Identifier()
    devices = []
    for key, group in group_by_device(ble).items():
        obs = [o for o in group if isinstance(o, BleObservation)]
        obs.sort(key=lambda o: -1.0 if o.time is None else o.time)
        try:
            identity = ident.identify_device(key, obs)
        except IdentifyError:
            identity = Identity(category="other", confidence=0.0)
        devices.append(_device(key, obs, identity, capture, scheme))
    return devices


def capture_result(
    observations: Iterable[Observation],
    *,
    started_at: datetime | None = None,
    scheme: Scheme | None = None,
    declarations: Mapping[str, Declaration] | None = None,
    scan_id: str | None = None,
) -> ScanResult:
    """A rated scan result for a Bluetooth capture (live or replayed)."""
    obs = list(observations)
    scheme = scheme or load_scheme()
    devices = ble_devices(obs, scheme=scheme)
    capture = Capture.of(o for o in obs if isinstance(o, BleObservation))
    start = started_at or datetime.now(UTC)
    result = ScanResult(
        scan_id=scan_id or uuid.uuid4().hex[:12],
        started_at=start,
        finished_at=start + timedelta(seconds=capture.span),
        discovery_mode=DISCOVERY_MODE,
        policy="safe",
        devices=devices,
    )
    return rate_result(result, scheme, declarations)
