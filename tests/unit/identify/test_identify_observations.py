"""Observation input: the JSONL format, leniency about absent keys, strictness about types."""

from __future__ import annotations

import json

import pytest
from support.identify import OBSERVATIONS, shared_or_skip

from iotrate.identify import ObservationError, parse_observation, read_observations
from iotrate.identify.observations import (
    MAX_DOCUMENT,
    BannerObservation,
    DhcpObservation,
    HttpObservation,
    MacObservation,
    MdnsObservation,
    SsdpObservation,
)


def test_every_kind_parses_in_the_documented_shape() -> None:
    lines = [
        {"device": "d", "kind": "ssdp", "headers": {"SERVER": "x"}, "description_xml": "<root/>"},
        {"device": "d", "kind": "mdns", "service_type": "_ipp._tcp.local.", "name": "P",
         "port": 631, "properties": {"ty": "HP"}},
        {"device": "d", "kind": "http", "port": 80, "path": "/", "headers": {}, "title": "t",
         "body": "b"},
        {"device": "d", "kind": "banner", "port": 22, "protocol": "ssh", "banner": "SSH-2.0-x"},
        {"device": "d", "kind": "mac", "mac": "aa:bb:cc:dd:ee:ff"},
        {"device": "d", "kind": "dhcp", "hostname": "h", "vendor_class": "v", "options": {}},
    ]  # fmt: skip
    res = read_observations(json.dumps(x) for x in lines)
    assert not res.errors and not res.warnings
    types = [type(o) for o in res.observations]
    assert types == [
        SsdpObservation,
        MdnsObservation,
        HttpObservation,
        BannerObservation,
        MacObservation,
        DhcpObservation,
    ]


def test_keys_a_kind_does_not_need_may_be_absent_or_null() -> None:
    obs = parse_observation(
        {"device": "d", "kind": "http", "port": None, "headers": None, "title": None}
    )
    assert isinstance(obs, HttpObservation)
    assert obs.port is None and obs.headers == {} and obs.body is None
    assert parse_observation({"device": "d", "kind": "ssdp"}) is not None


def test_scalars_are_coerced_but_wrong_shapes_are_errors() -> None:
    obs = parse_observation(
        {"device": 7, "kind": "mdns", "port": "5353", "properties": {"a": None, "b": 1, "c": True}}
    )
    assert isinstance(obs, MdnsObservation)
    assert obs.device == "7" and obs.port == 5353
    assert obs.properties == {"a": "", "b": "1", "c": "true"}
    with pytest.raises(ObservationError):
        parse_observation({"device": "d", "kind": "http", "port": 70000})
    with pytest.raises(ObservationError):
        parse_observation({"device": "d", "kind": "mdns", "properties": ["x"]})
    with pytest.raises(ObservationError):
        parse_observation({"device": "d", "kind": "mac", "mac": "not a mac"})


def test_device_supplied_strings_are_capped() -> None:
    obs = parse_observation({"device": "d", "kind": "http", "body": "x" * (MAX_DOCUMENT + 10)})
    assert isinstance(obs, HttpObservation) and obs.body is not None
    assert len(obs.body) == MAX_DOCUMENT


def test_malformed_lines_name_their_line_and_the_rest_is_read() -> None:
    lines = [
        '{"device": "a", "kind": "mac", "mac": "aa:bb:cc:dd:ee:ff"}',
        "{not json",
        "",
        '["a list"]',
        '{"kind": "mac", "mac": "aa:bb:cc:dd:ee:ff"}',
        '{"device": "b", "kind": 5}',
        '{"device": "c", "kind": "banner", "port": -1}',
        '{"device": "d", "kind": "dhcp", "hostname": "ok"}',
    ]
    res = read_observations(lines)
    assert [o.device for o in res.observations] == ["a", "d"]
    assert [e.line for e in res.errors] == [2, 4, 5, 6, 7]
    assert "line 2" in str(res.errors[0]) and "JSON" in str(res.errors[0])
    assert "missing 'device'" in str(res.errors[2])


def test_unknown_kinds_are_ignored_with_one_warning_each() -> None:
    lines = [
        '{"device": "a", "kind": "thread", "data": "x"}',
        '{"device": "b", "kind": "thread"}',
        '{"device": "c", "kind": "zigbee"}',
        '{"device": "d", "kind": "mac", "mac": "aabbccddeeff"}',
    ]
    res = read_observations(lines)
    assert len(res.observations) == 1 and not res.errors
    assert len(res.warnings) == 2
    assert "line 1" in res.warnings[0] and "thread" in res.warnings[0]
    assert "zigbee" in res.warnings[1]


def test_the_shared_fixtures_read_without_errors() -> None:
    shared_or_skip()
    with OBSERVATIONS.open(encoding="utf-8") as fh:
        res = read_observations(fh)
    assert not res.errors, res.errors[:3]
    assert len({o.device for o in res.observations}) >= 50
