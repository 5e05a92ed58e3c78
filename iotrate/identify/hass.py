"""Home Assistant's discovery matchers as fingerprint rules.

Home Assistant's integrations declare which mDNS services, SSDP descriptions, DHCP hostnames
and MAC prefixes belong to them (``homeassistant/generated/*.py``, copied as JSON into
``data/hass``). Thousands of users' devices keep those matchers right, so a match is good
evidence that the device belongs to that integration's maker. An integration is not a vendor
or a category, though: ``data/identify/hass.yaml`` says, for each integration, which vendor and
category it implies (or none, for protocol integrations such as ``dlna_dmr`` or ``upnp``).

The matchers become ordinary :class:`~iotrate.identify.rules.Rule` objects, so they are
weighed with everything else rather than deciding alone.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from iotrate.identify.claims import CATEGORIES, Attribute
from iotrate.identify.datafiles import data_bytes, load_yaml, require_float, require_mapping
from iotrate.identify.errors import FingerprintDataError
from iotrate.identify.rules import Matcher, Rule

_SSDP_FIELDS = {
    "manufacturer": ("ssdp.manufacturer",),
    "deviceType": ("ssdp.device_type",),
    "modelName": ("ssdp.model_name",),
    "modelDescription": ("ssdp.model_description",),
    "manufacturerURL": ("ssdp.manufacturer_url",),
    "st": ("ssdp.st", "ssdp.device_type", "ssdp.service_type"),
    "nt": ("ssdp.nt", "ssdp.device_type", "ssdp.service_type"),
}


@dataclass(frozen=True)
class Integration:
    vendor: str | None
    category: str | None


def _glob(pattern: str, anchored: bool = True) -> re.Pattern[str]:
    """Home Assistant matches with fnmatch on lower-cased values."""
    body = fnmatch.translate(pattern.lower())  # ends with \Z, anchored at the start by match
    return re.compile(("^" if anchored else "") + body, re.IGNORECASE)


def _load_json(name: str) -> dict[str, Any]:
    try:
        data = json.loads(data_bytes("hass", name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FingerprintDataError(f"data/hass/{name}: {exc}") from exc
    return require_mapping(data, f"data/hass/{name}")


def _then(integration: Integration) -> tuple[tuple[Attribute, str], ...]:
    out: list[tuple[Attribute, str]] = []
    if integration.vendor:
        out.append(("vendor", integration.vendor))
    if integration.category:
        out.append(("category", integration.category))
    return tuple(out)


def _integrations(doc: dict[str, Any]) -> dict[str, Integration]:
    table: dict[str, Integration] = {}
    for domain, entry in require_mapping(doc.get("integrations"), "hass.yaml").items():
        e = require_mapping(entry or {}, f"hass.yaml {domain}")
        cat = e.get("category")
        if cat is not None and cat not in CATEGORIES:
            raise FingerprintDataError(f"hass.yaml {domain}: unknown category {cat!r}")
        table[str(domain)] = Integration(
            str(e["vendor"]) if e.get("vendor") else None, str(cat) if cat else None
        )
    return table


class _Rules:
    """The rules made so far, and how a matcher of an integration becomes one."""

    def __init__(self, doc: dict[str, Any]) -> None:
        w_vendor = require_float(doc.get("vendor_weight"), "hass.yaml", 0.6)
        w_category = require_float(doc.get("category_weight"), "hass.yaml", 0.45)
        self.table = _integrations(doc)
        self.weights: tuple[tuple[Attribute, float], ...] = (
            ("vendor", w_vendor),
            ("category", w_category),
            ("model", 0.3),
            ("firmware", 0.3),
        )
        # A MAC prefix alone is thin evidence of what a device is (makers use one block for
        # many products), so those matchers vote for a category below the "other" threshold.
        self.mac_only_weights: tuple[tuple[Attribute, float], ...] = (
            ("vendor", w_vendor),
            ("category", min(w_category, 0.3)),
            ("model", 0.3),
            ("firmware", 0.3),
        )
        self.rules: list[Rule] = []

    def add(self, rid: str, domain: str, matchers: list[Matcher], mac_only: bool = False) -> None:
        integ = self.table.get(domain)
        if integ is None:
            return  # an integration we have not classified says nothing we can use
        then = _then(integ)
        if then and matchers:
            w = self.mac_only_weights if mac_only else self.weights
            self.rules.append(Rule(rid, tuple(matchers), then, w, note=f"HA {domain}"))


def _zeroconf_rules(out: _Rules) -> None:
    zc = _load_json("ha_zeroconf.json")
    for stype, entries in require_mapping(zc.get("ZEROCONF"), "ha_zeroconf").items():
        norm = stype.lower().rstrip(".").removesuffix(".local")
        for i, m in enumerate(entries):
            matchers = [Matcher(("mdns.service_type",), re.compile(f"^{re.escape(norm)}$"), False)]
            if isinstance(m.get("name"), str):
                matchers.append(Matcher(("mdns.name",), _glob(m["name"]), False))
            for key, val in (m.get("properties") or {}).items():
                matchers.append(Matcher((f"mdns.txt.{key.lower()}",), _glob(str(val)), False))
            out.add(f"hass:zeroconf:{m['domain']}:{norm}:{i}", m["domain"], matchers)
    for model, m in require_mapping(zc.get("HOMEKIT"), "ha_zeroconf HOMEKIT").items():
        # HomeKit model prefixes: HA matches the start of the TXT "md" value.
        matchers = [
            Matcher(("mdns.service_type",), re.compile(r"^_hap\._(tcp|udp)$"), False),
            Matcher(("mdns.txt.md",), _glob(model + "*"), False),
        ]
        out.add(f"hass:homekit:{m['domain']}:{model}", m["domain"], matchers)


def _ssdp_rules(out: _Rules) -> None:
    ssdp = _load_json("ha_ssdp.json")
    # Home Assistant matches the root device's description (and the SSDP headers), never
    # an embedded device's: a TV's embedded MediaServer does not make it a dlna_dms device.
    root_only = Matcher(("ssdp.root",), re.compile("^yes$"), False)
    for domain, entries in require_mapping(ssdp.get("SSDP"), "ha_ssdp").items():
        for i, m in enumerate(entries):
            matchers = [root_only]
            for key, val in m.items():
                fields = _SSDP_FIELDS.get(key)
                if fields is None:
                    matchers = []
                    break
                matchers.insert(0, Matcher(fields, _glob(str(val)), False))
            out.add(f"hass:ssdp:{domain}:{i}", domain, matchers)


def _dhcp_rules(out: _Rules) -> None:
    dhcp = _load_json("ha_dhcp.json")
    for i, m in enumerate(dhcp.get("DHCP") or []):
        matchers = []
        if isinstance(m.get("hostname"), str):
            matchers.append(Matcher(("dhcp.hostname",), _glob(m["hostname"]), False))
        if isinstance(m.get("macaddress"), str):
            # With a hostname, both must hold in the DHCP request; alone, the device's MAC.
            field = "dhcp.mac_hex" if isinstance(m.get("hostname"), str) else "device.mac_hex"
            matchers.append(Matcher((field,), _glob(m["macaddress"]), False))
        mac_only = not isinstance(m.get("hostname"), str)
        out.add(f"hass:dhcp:{m.get('domain')}:{i}", str(m.get("domain")), matchers, mac_only)


_SIG_BASE = re.compile(r"^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$")


def _uuid_pattern(uuid: str) -> re.Pattern[str]:
    """BLE facts name SIG-based UUIDs by their 16 bits ("fe95"), others in full."""
    u = uuid.lower()
    short = _SIG_BASE.match(u)
    return re.compile(f"^{re.escape(short.group(1) if short else u)}$")


def _bluetooth_matchers(m: dict[str, Any]) -> list[Matcher]:
    """One Home Assistant Bluetooth matcher as field matchers on one advertisement's facts."""
    matchers: list[Matcher] = []
    if isinstance(m.get("local_name"), str):
        matchers.append(Matcher(("ble.name",), _glob(m["local_name"]), False))
    if isinstance(m.get("service_uuid"), str):
        matchers.append(Matcher(("ble.uuid",), _uuid_pattern(m["service_uuid"]), False))
    if isinstance(m.get("service_data_uuid"), str):
        matchers.append(Matcher(("ble.svc_uuid",), _uuid_pattern(m["service_data_uuid"]), False))
    cid = m.get("manufacturer_id")
    if isinstance(cid, int) and not isinstance(cid, bool):
        matchers.append(Matcher(("ble.company",), re.compile(f"^{cid}$"), False))
        start = m.get("manufacturer_data_start")
        if isinstance(start, list) and all(isinstance(b, int) and 0 <= b < 256 for b in start):
            prefix = bytes(start).hex()
            matchers.append(Matcher((f"ble.mfr.{cid:04x}",), re.compile(f"^{prefix}"), False))
    return matchers


def _bluetooth_rules(out: _Rules) -> None:
    doc = _load_json("ha_bluetooth.json")
    entries = doc.get("BLUETOOTH")
    if not isinstance(entries, list):
        raise FingerprintDataError("data/hass/ha_bluetooth.json: BLUETOOTH is not a list")
    for i, m in enumerate(entries):
        if isinstance(m, dict) and isinstance(m.get("domain"), str):
            out.add(f"hass:bluetooth:{m['domain']}:{i}", m["domain"], _bluetooth_matchers(m))


@lru_cache(maxsize=1)
def hass_rules() -> list[Rule]:
    doc = require_mapping(load_yaml("hass.yaml"), "hass.yaml")
    out = _Rules(doc)
    _zeroconf_rules(out)
    _ssdp_rules(out)
    _dhcp_rules(out)
    _bluetooth_rules(out)
    return out.rules
