"""MQTT probe: a scripted broker on 127.0.0.1 (accepting, refusing, garbage, silent) (the lab
fridge's mosquitto: tests/lab/test_probes_mqtt_lab.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from iotrate.probes import mqtt
from iotrate.probes.base import Policy, ProbeContext, ProbeFailed

from iotrate.models import Device, Finding, Service

SCHEME = Path(__file__).resolve().parents[3] / "rating_schema" / "iotrate-2026.1.yaml"
RETAINED = {
    "home/kitchen/temperature": b"21.5",
    "home/door": b"closed",
    "home/fw_version": b"1.2.3",
    "$SYS/broker/version": b"mosquitto version 1.4.14",
    "$SYS/broker/uptime": b"100 seconds",
}


def _remaining(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n % 128, n // 128
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _publish(topic: str, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    return b"\x31" + _remaining(len(body)) + body  # PUBLISH, QoS 0, retained


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    mult, length = 1, 0
    while True:
        b = (await reader.readexactly(1))[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, await reader.readexactly(length)


def broker(return_code: int = 0, publish: dict[str, bytes] | None = None) -> Any:
    """A tiny MQTT 3.1.1 broker: CONNACK with ``return_code``, SUBACK, then retained PUBLISHes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                kind, body = await _read_packet(reader)
                if kind >> 4 == 1:  # CONNECT
                    writer.write(bytes([0x20, 2, 0, return_code]))
                    if return_code:
                        await writer.drain()
                        break
                elif kind >> 4 == 8:  # SUBSCRIBE
                    pid = body[:2]
                    writer.write(b"\x90\x04" + pid + b"\x00\x00")
                    for topic, payload in (publish or RETAINED).items():
                        writer.write(_publish(topic, payload))
                elif kind >> 4 == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind >> 4 == 14:  # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return handler


async def _serve(handler: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _run(handler: Any, timeout: float = 10) -> list[Finding]:
    async def main() -> list[Finding]:
        server, port = await _serve(handler)
        svc = Service(port=port, protocol="mqtt", tls=False)
        dev = Device(id="127.0.0.1", address="127.0.0.1", services=[svc])
        ctx = ProbeContext(
            address="127.0.0.1", device=dev, service=svc, policy=Policy.SAFE, timeout=timeout
        )
        try:
            return await mqtt.MqttProbe().run(ctx)
        finally:
            server.close()

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def short_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "LISTEN_S", 0.5)


def test_anonymous_broker_exposes_topics_and_sys() -> None:
    found = {f.check: f for f in _run(broker())}
    sys_data = found["mqtt.sys-exposed"].evidence[0].data
    assert sys_data["broker_version"] == "mosquitto version 1.4.14"
    assert sys_data["sys_topics"] == 2
    summary = found["mqtt.summary"].evidence[0].data
    assert summary["anonymous"] is True
    assert summary["topics"] == ["home/door", "home/fw_version", "home/kitchen/temperature"]
    assert summary["samples"]["home/kitchen/temperature"] == "21.… (4 bytes)"
    assert summary["samples"]["home/door"] == "clo… (6 bytes)"
    assert summary["version_topics"] == {"home/fw_version": "1.2.3"}
    assert summary["tls_on_8883"] is False
    assert "closed" not in json.dumps(summary)  # no payload kept beyond the sample
    assert all(f.confidence.value == "confirmed" for f in found.values())


def test_refused_anonymous_connect_reports_nothing_exposed() -> None:
    found = _run(broker(return_code=5))
    assert [f.check for f in found] == ["mqtt.summary"]
    assert found[0].evidence[0].data["anonymous"] is False


def test_broker_without_sys_topics() -> None:
    found = _run(broker(publish={"a/b": b"1"}))
    assert [f.check for f in found] == ["mqtt.summary"]


def test_garbage_is_a_failed_outcome() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-dropbear_2022.83\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    with pytest.raises(ProbeFailed):
        _run(handler)


def test_silent_server_fails_within_its_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)
        writer.close()

    started = time.monotonic()
    with pytest.raises(ProbeFailed, match=r"CONNACK|did not finish"):
        _run(handler, timeout=3)
    assert time.monotonic() - started < 8


def test_redaction() -> None:
    assert mqtt.redact(b"4.2") == "4.2"
    assert mqtt.redact(b"secret-token-value") == "sec… (18 bytes)"
    assert mqtt.redact(b"\x1b[31mred") == "\\x1… (8 bytes)"


def test_checks_are_in_the_rating_scheme() -> None:
    scheme = {c["id"]: c for c in yaml.safe_load(SCHEME.read_text())["checks"]}
    assert set(mqtt.MqttProbe.checks) <= set(scheme)
    assert scheme["mqtt.sys-exposed"]["severity"] == "low"
    assert scheme[mqtt.SUMMARY_CHECK]["severity"] == "info"
    assert scheme[mqtt.SUMMARY_CHECK]["weight"] == 0
