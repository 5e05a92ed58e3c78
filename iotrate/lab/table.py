"""The lab's device table, loaded from ``devices.yaml`` and checked when it is read.

The table is data so that tests, docs and benchmarks read the same facts the lab is built from:
a port listed here is one the lab verifies is really open, and a credential listed here is the
one the daemon is configured with.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from iotrate.errors import LabError
from iotrate.models import Grade, Transport

DEFAULT_SUBNET = "10.231.47.0/24"
SUBNET_ENV = "IOTRATE_LAB_SUBNET"
INSTANCE_ENV = "IOTRATE_LAB_INSTANCE"
#: Several labs can run side by side (e.g. two test runs) when each sets its own short
#: instance name; each instance has its own namespaces, state and temp dirs (pick a subnet too).
INSTANCE = os.environ.get(INSTANCE_ENV, "")
if not re.fullmatch(r"[a-z0-9]{0,4}", INSTANCE):
    raise LabError(f"{INSTANCE_ENV} must be 0-4 lower-case letters or digits, got {INSTANCE!r}")
NS_PREFIX = f"iotr{INSTANCE}-"
BRIDGE_NS = f"{NS_PREFIX}br"
SCANNER_NS = f"{NS_PREFIX}scan"

_MAC_PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PortSpec(_Row):
    port: int = Field(ge=1, le=65535)
    transport: Transport
    daemon: str
    service: str


class DaemonSpec(_Row):
    name: str
    package: str | None = Field(description="Debian package of the real daemon; null if ours.")
    emulated: bool = False


class Credential(_Row):
    service: str
    port: int = Field(ge=1, le=65535)
    username: str | None
    password: str | None


class Weakness(_Row):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    text: str


class LabDevice(_Row):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{0,9}$", description="Also the namespace suffix.")
    host: int = Field(ge=3, le=250, description="Host offset inside the lab subnet.")
    mac: str = Field(pattern=_MAC_PATTERN)
    category: str
    vendor: str
    model: str
    firmware: str | None = None
    declaration: str | None = Field(default=None, description="Path relative to the package.")
    daemons: list[DaemonSpec]
    ports: list[PortSpec]
    credentials: list[Credential]
    settings: dict[str, Any]
    weaknesses: list[Weakness]
    expected_grade: Grade

    @property
    def namespace(self) -> str:
        return f"{NS_PREFIX}{self.name}"

    @model_validator(mode="after")
    def _ports_name_daemons(self) -> LabDevice:
        names = {d.name for d in self.daemons}
        stray = sorted({p.daemon for p in self.ports} - names)
        if stray:
            raise ValueError(f"ports name undeclared daemons: {', '.join(stray)}")
        return self

    def ports_of(self, daemon: str) -> list[PortSpec]:
        return [p for p in self.ports if p.daemon == daemon]


class Scanner(_Row):
    host: int = Field(ge=1, le=250)
    mac: str = Field(pattern=_MAC_PATTERN)


class DeviceTable(_Row):
    schema_: int = Field(alias="schema")
    profile: str
    subnet: str
    scanner: Scanner
    devices: list[LabDevice]

    @model_validator(mode="after")
    def _unique(self) -> DeviceTable:
        for attr in ("name", "host", "mac"):
            values = [getattr(d, attr) for d in self.devices]
            if len(values) != len(set(values)):
                raise ValueError(f"device {attr}s are not unique")
        if self.scanner.host in {d.host for d in self.devices}:
            raise ValueError("the scanner's host offset is taken by a device")
        return self

    def device(self, name: str) -> LabDevice:
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise LabError(f"no lab device named {name!r}")


#: Each profile's device table; the hostile one holds devices that attack the scanner.
PROFILE_FILES = {"reference": "devices.yaml", "hostile": "hostile.yaml"}


@cache
def load_table(profile: str = "reference") -> DeviceTable:
    """Read once per process: the file ships inside the package and does not change."""
    try:
        name = PROFILE_FILES[profile]
    except KeyError:
        raise LabError(f"unknown profile {profile!r}; known: {', '.join(PROFILE_FILES)}") from None
    text = resources.files("iotrate.lab").joinpath(name).read_text(encoding="utf-8")
    try:
        return DeviceTable.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise LabError(f"iotrate/lab/{name} is invalid: {exc}") from exc


def load_declaration(device: LabDevice) -> dict[str, Any] | None:
    if device.declaration is None:
        return None
    path = resources.files("iotrate.lab").joinpath(device.declaration)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise LabError(f"declaration {device.declaration} is not a mapping")
    # YAML dates become strings so the status stays JSON-able.
    normalized: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return normalized


def resolve_subnet(subnet: str | None) -> ipaddress.IPv4Network:
    """Refuse anything but a private IPv4 range, so a typo cannot make the lab shadow the Internet.

    The namespaces have no route out either way; this keeps addresses in reports unambiguous.
    """
    spec = subnet or os.environ.get(SUBNET_ENV) or load_table().subnet
    try:
        net = ipaddress.ip_network(spec, strict=False)
    except ValueError as exc:
        raise LabError(f"lab subnet {spec!r} is not a network: {exc}") from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise LabError(f"lab subnet {spec} is not IPv4")
    if not net.is_private or net.is_loopback or net.is_link_local or net.prefixlen > 24:
        raise LabError(f"lab subnet {spec} must be a private IPv4 network of /24 or larger")
    return net


def host_address(net: ipaddress.IPv4Network, offset: int) -> str:
    return str(net.network_address + offset)


def device_rows(net: ipaddress.IPv4Network, profile: str = "reference") -> list[dict[str, Any]]:
    """The table as plain JSON-able dicts, with addresses placed in ``net``."""
    table = load_table(profile)
    rows = []
    for dev in table.devices:
        row = dev.model_dump(mode="json")
        row["namespace"] = dev.namespace
        row["address"] = host_address(net, dev.host)
        row["declaration_data"] = load_declaration(dev)
        rows.append(row)
    return rows
