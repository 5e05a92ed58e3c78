"""Whatever a device sends or a recording holds, identification answers or raises its own error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotrate.identify import (
    Identifier,
    IdentifyError,
    parse_observation,
    read_observations,
)
from iotrate.identify.claims import CATEGORIES

KINDS = ["ssdp", "mdns", "http", "banner", "mac", "dhcp", "ble", "other"]
KEYS = [
    "headers", "description_xml", "service_type", "name", "port", "properties", "path",
    "title", "body", "protocol", "banner", "mac", "hostname", "vendor_class", "options",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.text(max_size=60),
    st.sampled_from(
        [
            "<root><device><deviceType>urn:x</deviceType>",
            '{"a": {"b": [1, "SMART.IPCAMERA"]}}',
            "<?xml version='1.0'?><device-info><is-tv>true</is-tv></device-info>",
            "SSH-2.0-dropbear_2019.78",
            "aa:bb:cc:dd:ee:ff",
            "_googlecast._tcp.local.",
            "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
            "(" * 50,
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
observation = st.fixed_dictionaries(
    {
        "device": st.one_of(st.text(max_size=8), st.integers(), st.none()),
        "kind": st.one_of(st.sampled_from(KINDS), values),
    },
    optional={k: values for k in KEYS},
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(observation, min_size=1, max_size=6))
def test_arbitrary_observations_never_crash(objs: list[dict[str, Any]]) -> None:
    parsed = []
    for obj in objs:
        try:
            obs = parse_observation(obj)
        except IdentifyError:
            continue
        if obs is not None:
            parsed.append(obs)
    ident = Identifier()
    for obs in parsed:
        try:
            result = ident.identify_device(
                obs.device, [o for o in parsed if o.device == obs.device]
            )
        except IdentifyError:
            continue
        assert result.category in CATEGORIES
        assert 0.0 <= result.confidence <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=8))
def test_arbitrary_lines_never_crash_the_reader(lines: list[str]) -> None:
    res = read_observations(lines)
    assert len(res.observations) + len(res.errors) <= len(lines)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=10), values, max_size=6))
def test_arbitrary_json_bodies_and_banners(body: dict[str, Any]) -> None:
    text = json.dumps(body, default=str)
    res = read_observations(
        [
            json.dumps({"device": "d", "kind": "http", "port": 80, "path": "/", "body": text}),
            json.dumps({"device": "d", "kind": "banner", "port": 1, "banner": text}),
        ]
    )
    try:
        Identifier().identify_device("d", res.observations)
    except IdentifyError:
        pass
