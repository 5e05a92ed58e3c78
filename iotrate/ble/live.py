"""The live scan: bleak's callbacks -> ``ble`` observation dicts, nothing more.

This is the only module that touches the radio. It turns each ``(BLEDevice,
AdvertisementData)`` bleak reports into the same JSON object a recording holds, validates it
with the observation reader, and hands it on; identification, the privacy checks and rating are
the replay pipeline (:mod:`iotrate.ble.devices`), so everything past this adapter is tested on
recordings. Scanning is passive where the platform allows it: nothing is sent to any device.

Whatever goes wrong with the platform (no adapter, no BlueZ, no D-Bus, no permission) becomes
one :class:`~iotrate.ble.errors.BleUnavailable` with a one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

from iotrate.ble.adv import advert_from_observation, decode
from iotrate.ble.errors import BleFormatError, BleUnavailable
from iotrate.ble.observe import classify_random, normalise_hex, normalise_uuid, observation_dict
from iotrate.identify.errors import ObservationError
from iotrate.identify.observations import BleObservation, parse_observation

KEEP_EVERY_S = 10.0  # an unchanged advertisement is recorded at most this often per device
MAX_OBSERVATIONS = 200_000  # bounded memory for a long --follow in a crowded place
START_TIMEOUT_S = 15.0
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


def address_type_of(address: str, details: Any) -> str:
    """BlueZ says public or random; the random kind is in the address's top two bits."""
    props = details.get("props", {}) if isinstance(details, dict) else {}
    kind = props.get("AddressType") if isinstance(props, dict) else None
    if kind == "public":
        return "public"
    if kind == "random" and _MAC.match(address):
        return classify_random(address)
    return "unknown"


def device_key(obs: dict[str, Any]) -> str:
    """What groups advertisements into one device: the identifier a tracker broadcasts when it
    has one (its address may rotate while the identifier stays), else the address."""
    try:
        decoded = decode(advert_from_observation(obs))
    except BleFormatError:
        decoded = None
    if decoded is not None:
        for signal in decoded.trackers:
            if signal.identifier:
                return f"ble:{signal.network}:{signal.identifier[:16]}"
    return f"ble:{obs['address']}"


def observation_from(device: Any, adv: Any, *, at: float) -> BleObservation:
    """One validated observation from bleak's ``BLEDevice`` and ``AdvertisementData``.

    Raises :class:`~iotrate.identify.errors.ObservationError` for what cannot be an
    advertisement (the platform should never report one, but a device chose these bytes).
    """
    address = str(getattr(device, "address", "") or "")
    try:
        raw = observation_dict(
            "",
            address=address or None,
            address_type=address_type_of(address, getattr(device, "details", None)),
            name=adv.local_name,
            rssi=adv.rssi,
            manufacturer_data={
                int(k): bytes.fromhex(normalise_hex(v)) for k, v in adv.manufacturer_data.items()
            },
            service_data={
                normalise_uuid(k): bytes.fromhex(normalise_hex(v))
                for k, v in adv.service_data.items()
            },
            service_uuids=list(adv.service_uuids),
            tx_power=adv.tx_power,
            time=round(max(0.0, at), 3),
        )
    except (BleFormatError, ValueError, TypeError, AttributeError) as exc:
        raise ObservationError(f"unusable advertisement from {address[:40]!r}: {exc}") from None
    raw["device"] = device_key(raw) if address else "ble:unknown"
    obs = parse_observation(raw)
    assert isinstance(obs, BleObservation)
    return obs


class Recorder:
    """Keeps what a long scan needs: every change, and an unchanged advertisement every
    :data:`KEEP_EVERY_S` seconds per device (enough for the time-based checks)."""

    def __init__(self, on_observation: Callable[[BleObservation], None] | None = None) -> None:
        self.observations: list[BleObservation] = []
        self.dropped = 0
        self._last: dict[str, tuple[float, str]] = {}
        self._on = on_observation

    def add(self, obs: BleObservation) -> bool:
        content = obs.model_dump_json(exclude={"time", "rssi"})
        last = self._last.get(obs.device)
        now = obs.time or 0.0
        if last is not None and last[1] == content and now - last[0] < KEEP_EVERY_S:
            return False
        if len(self.observations) >= MAX_OBSERVATIONS:
            self.dropped += 1
            return False
        self._last[obs.device] = (now, content)
        self.observations.append(obs)
        if self._on is not None:
            self._on(obs)
        return True


def _unavailable(exc: BaseException) -> BleUnavailable:
    if isinstance(exc, OSError):
        detail = f"could not reach BlueZ over D-Bus: {exc.strerror or exc}"
    elif isinstance(exc, asyncio.TimeoutError):
        detail = f"the adapter did not start scanning within {START_TIMEOUT_S:g} s"
    else:
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return BleUnavailable(f"no Bluetooth adapter/BlueZ found ({detail})")


async def scan(
    seconds: float, recorder: Recorder, on_start: Callable[[], None] | None = None
) -> Recorder:
    """Listen for ``seconds``; every advertisement goes through :func:`observation_from`.
    ``on_start`` runs once the adapter is listening (so a missing adapter prints one line)."""
    try:
        from bleak import BleakScanner
        from bleak.exc import BleakError
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise _unavailable(exc) from None
    start = time.monotonic()

    def callback(device: Any, adv: Any) -> None:
        with contextlib.suppress(ObservationError):
            recorder.add(observation_from(device, adv, at=time.monotonic() - start))

    try:
        scanner = BleakScanner(detection_callback=callback)
        await asyncio.wait_for(scanner.start(), START_TIMEOUT_S)
    except Exception as exc:
        raise _unavailable(exc) from None
    if on_start is not None:
        on_start()
    try:
        await asyncio.sleep(seconds)
    finally:
        with contextlib.suppress(BleakError, OSError, asyncio.TimeoutError, RuntimeError):
            await asyncio.wait_for(scanner.stop(), START_TIMEOUT_S)
    return recorder
