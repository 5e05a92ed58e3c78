"""Fleet messages, signed commands, the agent's spool and broker URLs: no servers needed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.storage import HOSTILE, device, finding, result

from iotrate.errors import UsageError
from iotrate.fleet import commands
from iotrate.fleet.agent import parse_duration
from iotrate.fleet.broker import parse_broker
from iotrate.fleet.messages import (
    DeviceMessage,
    EndMessage,
    MessageRejected,
    StartMessage,
    decode,
    device_segment,
    encode,
    json_schema,
    topic_for,
    validator,
)
from iotrate.fleet.spool import Spool
from iotrate.models import ToolInfo, utcnow

ENV = {"site": "shop-7", "scan_id": "5c0ffee0-0000-4000-8000-000000000001", "agent_id": "a1"}


def messages() -> list[StartMessage | DeviceMessage | EndMessage]:
    d = device("192.0.2.3", "aa:bb:cc:00:00:03", name=HOSTILE, findings=(finding("x", 80),))
    r = result(ENV["scan_id"], d)
    now = utcnow()
    return [
        StartMessage(
            **ENV,
            sent_at=now,
            seq=1,
            started_at=r.started_at,
            policy="default",
            targets=r.targets,
            tool=ToolInfo(),
            options={"ports": "iot"},
        ),
        DeviceMessage(**ENV, sent_at=now, seq=2, device=d),
        EndMessage(
            **ENV,
            sent_at=now,
            seq=3,
            status="complete",
            result=r.model_copy(update={"devices": []}),
            addresses=[d.address],
        ),
    ]


def test_topics_and_round_trip() -> None:
    start, dev, end = messages()
    assert topic_for(start) == f"iotrate/v1/shop-7/{ENV['scan_id']}/start"
    assert topic_for(dev) == f"iotrate/v1/shop-7/{ENV['scan_id']}/device/aa:bb:cc:00:00:03"
    assert topic_for(end) == f"iotrate/v1/shop-7/{ENV['scan_id']}/end"
    for m in (start, dev, end):
        payload = encode(m)
        assert json.loads(payload)["schema"] == "iotrate.fleet/1"
        assert decode(topic_for(m), payload) == m
    # Wildcards and separators in a device id never reach the topic tree.
    assert device_segment("a/b+#c d") == "a_b__c_d"


def reject(topic: str, payload: bytes | dict[str, Any], match: str, **kw: Any) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(MessageRejected, match=match):
        decode(topic, raw, **kw)


def test_bad_foreign_and_oversized_messages_are_rejected_with_a_reason() -> None:
    _start, dev, end = messages()
    t = topic_for(dev)
    good = json.loads(encode(dev))
    reject(t, encode(dev), "limit", max_bytes=100)
    reject(t, b"\xff\xfe not json", "not JSON")
    reject(t, b"[" * 100_000 + b"]" * 100_000, "not JSON")  # nesting bomb
    reject(t, {**good, "schema": "someone.else/3"}, "not a iotrate.fleet/1")
    reject(t, {**good, "kind": "exec"}, "unknown message kind")
    reject(t, {**good, "site": "a/b"}, "schema: at site")
    reject(t, {**good, "extra": 1}, "schema")
    reject(t, {**good, "device": {**good["device"], "services": [{"port": 70000}]}}, "invalid")
    reject(t.replace("shop-7", "shop-8"), good, "topic does not match")
    reject(t.replace("aa:bb", "aa:bc"), good, "topic does not match")
    reject("iotrate/v1/shop-7/x/y/z/w", good, "not an iotrate/v1 result topic")
    reject("other/tree", good, "not an iotrate/v1")
    bad_end = json.loads(encode(end))
    bad_end["result"]["scan_id"] = "another"
    reject(topic_for(end), bad_end, "result's scan id")
    fat_end = json.loads(encode(end))
    fat_end["result"]["devices"] = [good["device"]]
    reject(topic_for(end), fat_end, "carries no devices")


def test_the_fast_check_and_the_full_json_schema_agree() -> None:
    """The collector checks a message with the strict models the schema is made from, and
    only a refused one against the envelope's JSON Schema (to say why): both must judge like
    the full schema does."""
    full = validator()
    start, dev, end = messages()
    samples: list[tuple[str, dict[str, Any]]] = [
        (topic_for(m), json.loads(encode(m))) for m in (start, dev, end)
    ]
    d = json.loads(encode(dev))
    for bad_device in (
        {**d["device"], "services": [{"port": -1}]},
        {**d["device"], "findings": [{"check": "x", "severity": "apocalyptic", "title": "t"}]},
        {**d["device"], "rating": {"grade": "Z"}},
        {**d["device"], "unknown_field": True},
        {k: v for k, v in d["device"].items() if k != "address"},
    ):
        samples.append((topic_for(dev), {**d, "device": bad_device}))
    # The envelope, which the strict models now check alone on the fast path: every way it
    # can be wrong, including the values a lax check would coerce.
    for bad_envelope in (
        {**d, "seq": "2"},
        {**d, "seq": -1},
        {**d, "seq": 2.5},
        {**d, "seq": True},
        {**d, "sent_at": 1_700_000_000},
        {**d, "site": "a/b"},
        {**d, "site": ""},
        {**d, "scan_id": "x" * 129},
        {**d, "agent_id": None},
        {**d, "extra": 1},
        {**d, "schema": "iotrate.fleet/2"},
        {**d, "kind": "start"},
        {k: v for k, v in d.items() if k != "agent_id"},
        {k: v for k, v in d.items() if k != "device"},
        {**d, "device": [d["device"]]},
        {**d, "device": {**d["device"], "services": [{"port": "80", "transport": "tcp"}]}},
    ):
        samples.append((topic_for(dev), bad_envelope))
    e = json.loads(encode(end))
    samples.append((topic_for(end), {**e, "status": "exploded"}))
    samples.append((topic_for(end), {**e, "addresses": "192.0.2.3"}))
    samples.append((topic_for(end), {**e, "result": {**e["result"], "devices": "all"}}))
    verdicts = []
    for topic, data in samples:
        try:
            decode(topic, json.dumps(data).encode())
            fast = True
        except MessageRejected:
            fast = False
        verdicts.append((fast, full.is_valid(data)))
    assert [f for f, _ in verdicts] == [s for _, s in verdicts]
    # Stricter than the schema where jsonschema leaves a "format" unchecked (no RFC 3339
    # checker installed): a date that is no date never gets in.
    reject(topic_for(dev), {**d, "sent_at": "yesterday"}, "invalid")
    assert verdicts[:3] == [(True, True)] * 3 and not any(f for f, _ in verdicts[3:])
    assert json_schema()["$id"].endswith("fleet-message-1.json")


# -- commands ---------------------------------------------------------------------------------

KEY = b"0123456789abcdef-shared-secret"


def test_a_signed_command_is_accepted_once() -> None:
    seen: set[str] = set()

    def first(nonce: str, now: float, window: float) -> bool:
        new = nonce not in seen
        seen.add(nonce)
        return new

    payload = commands.sign(KEY, "shop-7", "scan-now")
    assert commands.verify(KEY, "shop-7", payload, first) == "scan-now"
    with pytest.raises(commands.CommandRejected, match="replayed"):
        commands.verify(KEY, "shop-7", payload, first)


def test_forged_stale_foreign_and_unknown_commands_are_rejected() -> None:
    def ok(*_: Any) -> bool:
        return True

    def rejected(payload: bytes, match: str, site: str = "shop-7", **kw: Any) -> None:
        with pytest.raises(commands.CommandRejected, match=match):
            commands.verify(KEY, site, payload, ok, **kw)

    good = commands.sign(KEY, "shop-7", "scan-now")
    rejected(commands.sign(b"another key of enough length", "shop-7", "scan-now"), "signature")
    data = json.loads(good)
    rejected(json.dumps({**data, "command": "rm -rf /"}).encode(), "signature")  # tampered
    rejected(json.dumps({**data, "mac": 5}).encode(), "signature")
    rejected(good, "another site", site="shop-8")
    old = commands.sign(KEY, "shop-7", "scan-now", now=1_000_000.0)
    rejected(old, "expired")
    rejected(good, "expired", now=json.loads(good)["issued_at"] - 3600)  # from the future
    rejected(b"{" * 5000, "too large")
    rejected(b"not json", "not JSON")
    rejected(json.dumps({"command": "scan-now"}).encode(), "not a command")
    # Correctly signed, but not a command an agent runs.
    fields = {k: v for k, v in data.items() if k != "mac"}
    fields["command"] = "shell"
    forged = {**fields, "mac": commands._mac(KEY, fields)}
    rejected(json.dumps(forged).encode(), "unknown command")
    with pytest.raises(UsageError):
        commands.sign(KEY, "shop-7", "shell")


def test_command_keys_must_be_long_enough(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("abc\n")
    (tmp_path / "good").write_text("q" * 44 + "\n")
    with pytest.raises(UsageError, match="shorter"):
        commands.load_key(tmp_path / "short")
    assert commands.load_key(tmp_path / "good") == b"q" * 44
    with pytest.raises(UsageError):
        commands.load_key(tmp_path / "missing")


# -- spool, URLs, durations -------------------------------------------------------------------


def test_spool_keeps_messages_in_order_until_acknowledged_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    s = Spool(path)

    def make(i: int) -> Callable[[int], tuple[str, bytes]]:
        return lambda seq: (f"t/{i}", f"payload {seq}".encode())

    seqs = [s.put(make(i)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    s.done(2)
    s.set("agent_id", "a1")
    s.close()
    s = Spool(path)
    assert [(q, t) for q, t, _ in s.pending(0, 10)] == [
        (1, "t/0"),
        (3, "t/2"),
        (4, "t/3"),
        (5, "t/4"),
    ]
    assert s.pending(3, 1) == [(4, "t/3", b"payload 4")]
    assert s.count() == 4 and s.get("agent_id") == "a1"
    for q in (1, 3, 4, 5):
        s.done(q)
    assert s.put(lambda seq: ("t", b"x")) == 6  # numbers are never reused
    assert s.first_use_of_nonce("n1", 100.0, 300) and not s.first_use_of_nonce("n1", 101.0, 300)
    assert s.first_use_of_nonce("n1", 10_000.0, 300)  # long expired, forgotten
    s.close()


def test_broker_urls(tmp_path: Path) -> None:
    b = parse_broker("mqtts://agent:s%40cret@broker.example")
    assert (b.scheme, b.host, b.port, b.username, b.password) == (
        "mqtts",
        "broker.example",
        8883,
        "agent",
        "s@cret",
    )
    assert "s@cret" not in str(b) and str(b) == "mqtts://agent@broker.example:8883"
    assert parse_broker("mqtt://127.0.0.1").port == 1883
    assert parse_broker("unix:///run/m.sock").host == "/run/m.sock"
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    assert parse_broker("mqtt://u@h", password_file=pw).password == "from-file"
    for bad, kw in (
        ("http://h", {}),
        ("mqtt://h:99999", {}),
        ("mqtt://", {}),
        ("mqtt://h/path", {}),
        ("mqtt://h", {"ca": pw}),
        ("mqtts://h", {"cert": pw}),
        ("mqtts://h", {"ca": tmp_path / "nope"}),
    ):
        with pytest.raises(UsageError):
            parse_broker(bad, **kw)


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("15m") == 900
    assert parse_duration("1h") == 3600 and parse_duration("2d") == 172800
    assert parse_duration("45") == 45
    for bad in ("5s", "soon", "-1h", "1w"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert timedelta(seconds=parse_duration("1.5h")) == timedelta(minutes=90)
