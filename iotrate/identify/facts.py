"""Observations become *records*: flat maps of named fields that fingerprints match against.

Fingerprints never look at raw JSON, XML or headers; they name fields such as
``ssdp.manufacturer``, ``mdns.txt.md`` or ``http.json.product_type``. That keeps the rule files
declarative and lets one rule serve every way a fact can arrive (an SSDP description fetched by
the scanner and the same XML found in an HTTP body give the same ``ssdp.*`` fields).

A record is one coherent unit: one UPnP device element, one DNS-SD service, one HTTP response.
Rules with several conditions must satisfy them all inside one record, so a TXT key of one
service is never paired with the service type of another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET

from iotrate.ble.adv import advert_from_observation, decode
from iotrate.identify.observations import (
    BannerObservation,
    BleObservation,
    DhcpObservation,
    HttpObservation,
    MacObservation,
    MdnsObservation,
    Observation,
    SsdpObservation,
)

MAX_FIELDS = 1500
MAX_VALUES_PER_FIELD = 64
MAX_DEPTH = 12
MAX_BODY = 256 * 1024


@dataclass
class Record:
    """Named facts from one coherent part of one observation."""

    kind: str
    label: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    uid: str = ""  # unique within one device, set by records_for

    def add(self, name: str, value: object) -> None:
        if value is None:
            return
        text = value if isinstance(value, str) else str(value)
        text = text.strip()
        if not text and not name.startswith(("mdns.txt.", "http.json.", "banner.json.")):
            return
        values = self.fields.get(name)
        if values is None:
            if len(self.fields) >= MAX_FIELDS:
                return
            self.fields[name] = [text]
        elif len(values) < MAX_VALUES_PER_FIELD and text not in values:
            values.append(text)

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


def _snake(name: str) -> str:
    """``modelName`` -> ``model_name``, ``X_DLNADOC`` -> ``x_dlnadoc``: stable field names."""
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^0-9a-zA-Z_.@-]+", "_", s).lower().strip("_")


def _local(tag: object) -> str:
    text = tag if isinstance(tag, str) else ""
    return text.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def parse_xml(text: str) -> Element | None:
    """Parse device-supplied XML safely (no entities, no DTDs); ``None`` when it is not XML."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith("<"):
        return None
    try:
        root: Element = SafeET.fromstring(stripped.encode("utf-8", "replace"))
    except Exception:
        return None
    return root


# --- UPnP device descriptions -------------------------------------------------------------

_FIRMWARE_TAGS = {
    "firmwareversion",
    "firmware_version",
    "softwareversion",
    "software_version",
    "swversion",
    "fwversion",
    "displayversion",
    "x_firmwareversion",
    "x_softwareversion",
}
_STANDARD_TAGS = {
    "devicetype": "device_type",
    "friendlyname": "friendly_name",
    "manufacturer": "manufacturer",
    "manufacturerurl": "manufacturer_url",
    "modelname": "model_name",
    "modelnumber": "model_number",
    "modeldescription": "model_description",
    "modelurl": "model_url",
    "serialnumber": "serial_number",
    "udn": "udn",
    "upc": "upc",
    "presentationurl": "presentation_url",
}
_SSDP_HEADERS = {"server": "server", "st": "st", "nt": "nt", "usn": "usn", "location": "location"}


def _device_records_from_tree(root: Element, label: str) -> list[Record]:
    """One record per ``<device>`` element, the root device first."""
    top = None
    for el in root.iter():
        if _local(el.tag) == "device":
            top = el
            break
    if top is None:
        return []
    records: list[Record] = []
    all_devices: list[str] = []
    all_services: list[str] = []

    def visit(dev: Element, depth: int) -> None:
        if depth > MAX_DEPTH or len(records) > 32:
            return
        rec = Record("ssdp", f"{label} device {len(records)}")
        records.append(rec)
        children = _read_device_element(dev, rec, all_services)
        dtype = rec.first("ssdp.device_type")
        if dtype:
            all_devices.append(dtype)
        for c in children:
            visit(c, depth + 1)

    visit(top, 0)
    _mark_root(records, label, all_devices, all_services)
    return records


def _read_device_element(dev: Element, rec: Record, all_services: list[str]) -> list[Element]:
    """Add one ``<device>`` element's own fields to ``rec``; return its embedded devices."""
    children: list[Element] = []
    for child in dev:
        name = _local(child.tag).lower()
        text = (child.text or "").strip()
        if name == "devicelist":
            children.extend(c for c in child if _local(c.tag) == "device")
        elif name == "servicelist":
            for svc in child:
                for part in svc:
                    if _local(part.tag).lower() == "servicetype" and part.text:
                        rec.add("ssdp.service_type", part.text)
                        all_services.append(part.text.strip())
        elif name in _STANDARD_TAGS:
            rec.add(f"ssdp.{_STANDARD_TAGS[name]}", text)
        elif name in _FIRMWARE_TAGS:
            rec.add("ssdp.firmware", text)
        elif name == "iconlist":
            continue
        elif text and len(child) == 0:
            rec.add(f"ssdp.x.{_snake(_local(child.tag))}", text)
    return children


def _mark_root(
    records: list[Record], label: str, all_devices: list[str], all_services: list[str]
) -> None:
    """The root record also answers for the whole tree: rules about "a device that has an
    embedded X" match it without pairing facts across records."""
    root_rec = records[0]
    root_rec.label = f"{label} root device"
    if (dtype := root_rec.first("ssdp.device_type")) is not None:
        root_rec.add("ssdp.root_device_type", dtype)
    root_rec.add("ssdp.root", "yes")
    for rec in records[1:]:
        rec.add("ssdp.embedded", "yes")
    for d in all_devices:
        root_rec.add("ssdp.any_device_type", d)
    for s in all_services:
        root_rec.add("ssdp.any_service_type", s)


_TAG_RE = re.compile(r"<\s*(?:[\w.-]+:)?(\w+)\s*>([^<]{0,2000})<\s*/", re.IGNORECASE)


def _device_records_fallback(text: str, label: str) -> list[Record]:
    """Broken descriptions are common (unescaped '&', truncated files); read them tag by tag.

    Each ``<device>`` opening starts a new record, which is how nearly every description is
    laid out (device fields come before its ``deviceList``).
    """
    chunks = re.split(r"<\s*(?:[\w.-]+:)?device\s*>", text, flags=re.IGNORECASE)[1:]
    records: list[Record] = []
    for i, chunk in enumerate(chunks[:32]):
        rec = Record("ssdp", f"{label} device {i} (lenient parse)")
        for m in _TAG_RE.finditer(chunk):
            name, value = m.group(1).lower(), m.group(2)
            if name == "servicetype":
                rec.add("ssdp.service_type", value)
            elif name in _STANDARD_TAGS:
                rec.add(f"ssdp.{_STANDARD_TAGS[name]}", value)
            elif name in _FIRMWARE_TAGS:
                rec.add("ssdp.firmware", value)
        if rec.fields:
            records.append(rec)
    if records:
        root = records[0]
        root.label = f"{label} root device (lenient parse)"
        if (dtype := root.first("ssdp.device_type")) is not None:
            root.add("ssdp.root_device_type", dtype)
        root.add("ssdp.root", "yes")
        for rec in records[1:]:
            rec.add("ssdp.embedded", "yes")
            for d in rec.fields.get("ssdp.device_type", []):
                root.add("ssdp.any_device_type", d)
            for s in rec.fields.get("ssdp.service_type", []):
                root.add("ssdp.any_service_type", s)
        for d in root.fields.get("ssdp.device_type", []):
            root.add("ssdp.any_device_type", d)
        for s in root.fields.get("ssdp.service_type", []):
            root.add("ssdp.any_service_type", s)
    return records


_UPNP_MARK = re.compile(r"urn:schemas-upnp-org:device-1-0|<(?:\w+:)?deviceType>\s*urn:", re.I)


def is_upnp_description(text: str) -> bool:
    """A UPnP device description (root namespace, or a deviceType that is a URN)."""
    return bool(_UPNP_MARK.search(text[:8000]))


def upnp_records(text: str, label: str) -> list[Record]:
    tree = parse_xml(text)
    if tree is not None:
        records = _device_records_from_tree(tree, label)
        if records:
            return records
    return _device_records_fallback(text, label)


# --- structured bodies ------------------------------------------------------------------------


def flatten_json(value: Any, prefix: str, rec: Record, depth: int = 0) -> None:
    """``{"a": {"B": 1}}`` -> ``prefix.a.b = "1"``; list items share their parent's name."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            flatten_json(v, f"{prefix}.{str(k).lower()[:64]}", rec, depth + 1)
    elif isinstance(value, list):
        for v in value[:64]:
            flatten_json(v, prefix, rec, depth + 1)
    elif isinstance(value, bool):
        rec.add(prefix, "true" if value else "false")
    elif value is None:
        rec.add(prefix, "")
    else:
        rec.add(prefix, str(value)[:1024])


def flatten_xml(root: Element, prefix: str, rec: Record) -> None:
    """Leaf elements by local name (``prefix.modelname``), attributes as ``tag.attr``."""
    rec.add(f"{prefix}_root", _snake(_local(root.tag)))
    count = 0
    for el in root.iter():
        count += 1
        if count > 4000:
            break
        name = _snake(_local(el.tag))
        for attr, val in list(el.attrib.items())[:16]:
            rec.add(f"{prefix}.{name}.{_snake(_local(attr))}", val)
        if len(el) == 0 and el.text and el.text.strip():
            rec.add(f"{prefix}.{name}", el.text)


def _parse_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


_TITLE_RE = re.compile(r"<title[^>]*>([^<]{1,300})</title>", re.IGNORECASE)


def is_json(text: str) -> bool:
    return _parse_json(text) is not None


def _add_structured(text: str, prefix: str, rec: Record) -> list[Record]:
    """JSON and XML bodies become fields; a UPnP description also yields ``ssdp.*`` records."""
    data = _parse_json(text)
    if data is not None:
        flatten_json(data, f"{prefix}.json", rec)
        return []
    if is_upnp_description(text):
        return upnp_records(text, f"{rec.label} description")
    tree = parse_xml(text)
    if tree is not None:
        flatten_xml(tree, f"{prefix}.xml", rec)
    elif text.lstrip().startswith("<"):
        _flatten_xml_lenient(text, f"{prefix}.xml", rec)
    return []


_ROOT_RE = re.compile(r"<([A-Za-z_][\w.:-]*)[\s>/]")
_LEAF_RE = re.compile(r"<([A-Za-z_][\w.:-]*)(?:\s[^<>]*)?>([^<>]{1,1024})</\1\s*>")


def _flatten_xml_lenient(text: str, prefix: str, rec: Record) -> None:
    """Truncated or sloppy XML (capped bodies, unescaped '&') still names its leaves."""
    body = re.sub(r"<\?.*?\?>|<!--.*?-->|<!\[CDATA\[|\]\]>", "", text[:MAX_BODY], flags=re.S)
    m = _ROOT_RE.search(body)
    if m is None:
        return
    rec.add(f"{prefix}_root", _snake(_local(m.group(1))))
    for leaf in _LEAF_RE.finditer(body):
        value = leaf.group(2).strip()
        if value:
            rec.add(f"{prefix}.{_snake(_local(leaf.group(1)))}", value)


# --- per kind ---------------------------------------------------------------------------------


def normalise_service_type(value: str) -> str:
    """``_airplay._tcp.local.`` -> ``_airplay._tcp`` (lower case, no domain)."""
    s = value.strip().lower().rstrip(".")
    if s.endswith(".local"):
        s = s[: -len(".local")]
    return s


def _instance_name(name: str, service_type: str | None) -> str:
    s = name.strip().rstrip(".")
    if s.endswith(".local"):
        s = s[: -len(".local")]
    if service_type and s.lower().endswith("." + service_type):
        s = s[: -(len(service_type) + 1)]
    return s


def normalise_mac(value: str) -> str | None:
    """Any of ``aa:bb:..``, ``AA-BB-..``, ``aabb..`` -> ``aa:bb:cc:dd:ee:ff``; ``None`` if not."""
    hexes = re.sub(r"[^0-9a-fA-F]", "", value)
    if len(hexes) != 12 or not re.fullmatch(r"[\s:.-]*(?:[0-9a-fA-F]{2}[\s:.-]*){6}", value):
        return None
    h = hexes.lower()
    return ":".join(h[i : i + 2] for i in range(0, 12, 2))


def _ssdp(obs: SsdpObservation) -> list[Record]:
    headers = Record("ssdp", "ssdp headers")
    for k, v in obs.headers.items():
        key = k.strip().lower()
        headers.add(f"ssdp.header.{_snake(key)}", v)
        if key in _SSDP_HEADERS:
            headers.add(f"ssdp.{_SSDP_HEADERS[key]}", v)
    records: list[Record] = []
    if obs.description_xml:
        records = upnp_records(obs.description_xml, "ssdp")
    if records:
        for name, values in headers.fields.items():
            for v in values:
                records[0].add(name, v)
        return records
    return [headers] if headers.fields else []


def _mdns(obs: MdnsObservation) -> list[Record]:
    stype = normalise_service_type(obs.service_type) if obs.service_type else None
    rec = Record("mdns", f"mdns {stype or '?'}")
    if stype:
        rec.add("mdns.service_type", stype)
    if obs.name:
        name = _instance_name(obs.name, stype)
        rec.add("mdns.name", name)
        # Avahi names _workstation instances "host [aa:bb:cc:dd:ee:ff]": the host's own MAC.
        if m := re.search(r"\[((?:[0-9a-f]{2}:){5}[0-9a-f]{2})\]\s*$", name, re.IGNORECASE):
            rec.add("mdns.mac", m.group(1))
    if obs.port is not None:
        rec.add("mdns.port", obs.port)
    for k, v in obs.properties.items():
        rec.add(f"mdns.txt.{k.strip().lower()}", v)
    return [rec]


def _http(obs: HttpObservation) -> list[Record]:
    where = f":{obs.port}" if obs.port is not None else ""
    rec = Record("http", f"http {where}{obs.path or ''}".strip())
    if obs.port is not None:
        rec.add("http.port", obs.port)
    if obs.path:
        rec.add("http.path", obs.path)
    for k, v in obs.headers.items():
        key = _snake(k.strip().lower())
        rec.add(f"http.header.{key}", v)
        if key == "server":
            rec.add("http.server", v)
        elif key == "www-authenticate":
            rec.add("http.www_authenticate", v)
    title = obs.title
    if not title and obs.body:
        m = _TITLE_RE.search(obs.body[:65536])
        title = m.group(1) if m else None
    if title:
        rec.add("http.title", " ".join(title.split()))
    extra: list[Record] = []
    if obs.body:
        rec.add("http.body", obs.body[:8192])
        extra = _add_structured(obs.body, "http", rec)
    return [rec, *extra]


_KV_RE = re.compile(r"([\w.\-]{1,64})=([^;\r\n]{0,256})")


def _banner(obs: BannerObservation) -> list[Record]:
    proto = (obs.protocol or "").strip().lower()
    where = f":{obs.port}" if obs.port is not None else ""
    rec = Record("banner", f"banner {proto or '?'}{where}")
    if obs.port is not None:
        rec.add("banner.port", obs.port)
    if proto:
        rec.add("banner.protocol", proto)
    text = obs.banner or ""
    if not text.strip():
        return [rec]
    # A JSON answer is structured data, not prose: its keys ("motion", "relay_state") would
    # read as category words, so only its fields are kept (banner.json.*), plus the raw text.
    structured = is_json(text)
    rec.add("banner.raw" if structured else "banner.text", text[:8192])
    first = text.strip().splitlines()[0] if text.strip() else ""
    if m := re.match(r"SSH-\d+(?:\.\d+)?-(.*)", first):
        rec.add("banner.ssh_software", m.group(1))
    if proto == "ftp" or re.match(r"220[ -]", first):
        rec.add("banner.ftp", re.sub(r"^220[ -]", "", first))
    for line in text.splitlines()[:64]:
        if m := re.match(r"\s*server:\s*(.+)", line, re.IGNORECASE):
            rec.add("banner.server", m.group(1))
    if proto == "adb" or "device::" in text[:200] or "::ro." in text[:200]:
        for key, value in _KV_RE.findall(text.split("::", 1)[-1]):
            rec.add(f"banner.kv.{key.lower()}", value)
    if proto in {"tls", "ssl", "x509"} and "CN=" in text:
        rec.add("banner.x509", first)
    extra = _add_structured(text, "banner", rec)
    return [rec, *extra]


def _mac(obs: MacObservation) -> list[Record]:
    rec = Record("mac", "mac")
    mac = normalise_mac(obs.mac or "")
    if mac:
        rec.add("mac.address", mac)
    return [rec] if rec.fields else []


def _dhcp(obs: DhcpObservation) -> list[Record]:
    rec = Record("dhcp", "dhcp")
    rec.add("dhcp.hostname", obs.hostname)
    rec.add("dhcp.vendor_class", obs.vendor_class)
    for k, v in obs.options.items():
        rec.add(f"dhcp.option.{_snake(k)}", v)
    return [rec] if rec.fields else []


def _ble(obs: BleObservation) -> list[Record]:
    """One advertisement is one record: its facts come from the documented payload layouts
    (:mod:`iotrate.ble.adv`); a public address also names its IEEE registrant."""
    advert = advert_from_observation(obs)
    # Records with the same frame shape (which company ids and service-data UUIDs, named or
    # not) share one uid, so a sensor's hundred readings are one witness for its maker, not a
    # hundred (identification counts each record once per conclusion).
    shape = ",".join(
        [*sorted(obs.manufacturer_data), *sorted(obs.service_data), "name" if obs.name else ""]
    )
    rec = Record("ble", f"ble advertisement [{shape[:200]}]")
    for name, value in decode(advert).facts:
        rec.add(name, value)
    if obs.address_type == "public" and obs.address and normalise_mac(obs.address):
        from iotrate.identify.oui import lookup

        entry = lookup(obs.address)
        if entry is not None:
            rec.add("ble.oui_organisation", entry.organisation)
    return [rec]


def ble_content_key(obs: BleObservation) -> str:
    """What makes two advertisements different evidence: not their time or signal strength.
    A thirty-minute capture repeats one advertisement thousands of times; it is one witness."""
    return json.dumps(
        [
            obs.address,
            obs.address_type,
            obs.name,
            obs.manufacturer_data,
            obs.service_data,
            obs.service_uuids,
            obs.tx_power,
        ],
        sort_keys=True,
    )


MAX_BLE_RECORDS = 64

_EXTRACTORS: dict[str, Callable[[Any], list[Record]]] = {
    "ssdp": _ssdp,
    "mdns": _mdns,
    "http": _http,
    "banner": _banner,
    "mac": _mac,
    "dhcp": _dhcp,
    "ble": _ble,
}


def records_for(observations: Iterable[Observation]) -> list[Record]:
    """All records of one device's observations, in observation order."""
    out: list[Record] = []
    seen_ble: set[str] = set()
    for obs in observations:
        if isinstance(obs, BleObservation):
            key = ble_content_key(obs)
            if key in seen_ble or len(seen_ble) >= MAX_BLE_RECORDS:
                continue
            seen_ble.add(key)
        out.extend(_EXTRACTORS[obs.kind](obs))
    for i, rec in enumerate(out):
        rec.uid = rec.label if rec.kind == "ble" else f"{i}:{rec.label}"
    return out


_MAC_KEY = re.compile(
    r"(?:^|[._-])(mac|macaddress|mac_address|wifi-mac|wifi_mac|ethernet-mac|eth_mac|"
    r"deviceid|sta_mac|wifi_mac_addr)$",
    re.IGNORECASE,
)


def embedded_macs(records: Iterable[Record]) -> list[tuple[str, str]]:
    """MAC addresses a device reports about itself inside its answers: (mac, field name)."""
    found: list[tuple[str, str]] = []
    for rec in records:
        for name, values in rec.fields.items():
            if name.startswith(("mac.", "device.")) or not _MAC_KEY.search(name):
                continue
            for v in values:
                mac = normalise_mac(v)
                if mac and (mac, name) not in found:
                    found.append((mac, name))
    return found
