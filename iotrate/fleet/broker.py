"""Connecting to the MQTT broker: URL, TLS, credentials, and a paho client set up the same way
for the agent, the collector and ``iotrate agent-command``.

``mqtt://`` is plain TCP (1883), ``mqtts://`` TLS (8883) verified against the system's CAs or
``--ca``, with an optional client certificate; ``unix:///path`` is a local Unix socket (mosquitto
``listener 0 /path``), which lets an agent inside a network namespace reach a broker on the same
machine without any network route between the two. MQTT 5 throughout.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iotrate.errors import UsageError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in; the password is never part of ``str()``."""

    scheme: str  # mqtt, mqtts or unix
    host: str  # host name, or the socket path for unix
    port: int
    username: str | None = None
    password: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.host}"
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def parse_broker(
    url: str,
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    password_file: Path | None = None,
) -> Broker:
    """``mqtt[s]://[user[:password]@]host[:port]`` or ``unix:///path``; a password in a file
    (``--password-file``) keeps it out of the process list."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid broker URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "unix"):
        raise UsageError(f"the broker URL must start mqtt://, mqtts:// or unix://, got {url!r}")
    if parts.path not in ("", "/") and scheme != "unix":
        raise UsageError("the broker URL takes no path")
    if (cert is None) != (key is None):
        raise UsageError("--cert and --key go together")
    if scheme != "mqtts" and (ca or cert):
        raise UsageError("--ca, --cert and --key need an mqtts:// broker")
    for f in (ca, cert, key, password_file):
        if f is not None and not f.is_file():
            raise UsageError(f"no such file: {f}")
    password = unquote(parts.password) if parts.password is not None else None
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").strip()
    if scheme == "unix":
        if not parts.path:
            raise UsageError("a unix broker URL needs the socket path: unix:///run/mosquitto.sock")
        return Broker("unix", parts.path, 0)
    if not parts.hostname:
        raise UsageError(f"the broker URL has no host: {url!r}")
    return Broker(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=password,
        ca=ca,
        cert=cert,
        key=key,
    )


def make_client(broker: Broker, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client for ``broker``, not yet connected; TLS and login set up, reconnects
    backing off from 1 to 30 seconds."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        transport="unix" if broker.scheme == "unix" else "tcp",
        manual_ack=manual_ack,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.scheme == "mqtts":
        context = ssl.create_default_context(cafile=os.fspath(broker.ca) if broker.ca else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if broker.cert is not None and broker.key is not None:
            context.load_cert_chain(os.fspath(broker.cert), os.fspath(broker.key))
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Our callbacks catch their own exceptions (iotrate.fleet.callbacks); this is the net
    # under them, so none can end paho's network thread.
    client.suppress_exceptions = True
    return client


def connect_properties(
    *, session_expiry: int | None = None, receive_maximum: int | None = None,
    maximum_packet_size: int | None = None,
) -> Properties:  # fmt: skip
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry is not None:
        props.SessionExpiryInterval = session_expiry
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    if maximum_packet_size is not None:
        props.MaximumPacketSize = maximum_packet_size
    return props


def connect_async(
    client: mqtt.Client,
    broker: Broker,
    *,
    clean_start: bool = True,
    properties: Properties | None = None,
    keepalive: int = 30,
) -> None:
    """Start connecting in the background; paho's network thread (``loop_start``) keeps
    reconnecting for as long as the client runs, broker down or not."""
    client.connect_async(
        broker.host,
        broker.port or 1883,
        keepalive=keepalive,
        clean_start=clean_start,
        properties=properties,
    )
