"""Fuzzing the parsers that read what a device sends: none may raise anything but its module's
own error, and none may hand back unbounded or unprintable text.

A device is the least trustworthy input a scanner has (the hostile lab, docs/lab.md "Hostile
devices", shows real sockets doing this); a parser that raises something unexpected turns one
device's garbage into a crashed probe or a lost result. SSDP messages, banners and page titles
are fuzzed in test_discovery.py and test_portscan.py; this file covers the rest.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iotrate.probes._clients.io import parse_xml as probe_parse_xml
from iotrate.probes._clients.rtsp import parse_challenge, parse_reply
from iotrate.probes.base import ProbeFailed

from iotrate.discovery.mdns import MAX_PROPS, _decode_props
from iotrate.identify.facts import parse_xml, upnp_records
from iotrate.lab.hostile_devices import BILLION_LAUGHS, XXE

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE_XML = [
    BILLION_LAUGHS.decode(),
    XXE.decode(),
    '<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://198.51.100.7/x.dtd"><r/>',
    "<a>" * 5000 + "</a>" * 5000,
    "<root><device><friendlyName>\x1b[2J<script>",
    "<root xmlns:a='urn:x'><a:device><a:modelName>M</a:modelName></a:device></root>",
    "<" * 1000,
]
xml_tags = st.sampled_from(
    ["root", "device", "friendlyName", "manufacturer", "modelName", "UDN", "deviceList", "x:y"]
)


@st.composite
def xmlish(draw: st.DrawFn) -> str:
    """Text shaped like a device description, so the fuzzer gets past the first '<'."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        tag = draw(xml_tags)
        parts.append(
            draw(
                st.sampled_from(
                    [f"<{tag}>", f"</{tag}>", f"<{tag}/>", "&amp;", "&bogus;", "<!--", "]]>"]
                )
            )
        )
        parts.append(draw(st.text(max_size=20)))
    return "".join(parts)


xml_text = st.one_of(st.text(max_size=300), xmlish(), st.sampled_from(HOSTILE_XML))


@FUZZ
@given(xml_text)
def test_description_xml_parse_never_raises(text: str) -> None:
    parse_xml(text)  # returns an element or None, never raises
    records = upnp_records(text, "fuzz")
    assert isinstance(records, list)
    for rec in records:
        for values in rec.fields.values():
            assert all("root:x:0:0" not in v for v in values)
            assert all("lollol" not in v for v in values)


@FUZZ
@given(st.one_of(xml_text.map(lambda t: t.encode("utf-8", "replace")), st.binary(max_size=300)))
def test_probe_xml_parser_raises_only_probe_failed(data: bytes) -> None:
    try:
        root = probe_parse_xml(data)
    except ProbeFailed:
        return
    assert root.tag is not None


def test_probe_xml_parser_refuses_entities_and_size() -> None:
    for doc in (BILLION_LAUGHS, XXE):
        try:
            probe_parse_xml(doc)
        except ProbeFailed as exc:
            assert "DTD" in str(exc)
        else:
            raise AssertionError("a DTD was accepted")
    try:
        probe_parse_xml(b"<r>" + b"A" * 300_000 + b"</r>")
    except ProbeFailed as exc:
        assert "larger than" in str(exc)
    else:
        raise AssertionError("the size cap did not hold")


@FUZZ
@given(st.dictionaries(st.binary(max_size=300), st.none() | st.binary(max_size=2000), max_size=80))
def test_mdns_txt_decoding_is_printable_and_bounded(raw: dict[bytes, bytes | None]) -> None:
    props = _decode_props(raw)
    assert len(props) <= MAX_PROPS
    for key, value in props.items():
        assert isinstance(key, str) and isinstance(value, str)
        assert len(key) <= 64 * 4 and len(value) <= 512 * 4  # \xNN escapes may quadruple
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in key + value)


rtsp_like = st.one_of(
    st.binary(max_size=400),
    st.builds(
        lambda status, head, body: b"RTSP/1.0 " + status + b"\r\n" + head + b"\r\n\r\n" + body,
        st.binary(max_size=20),
        st.binary(max_size=200),
        st.binary(max_size=50),
    ),
)


@FUZZ
@given(rtsp_like)
def test_rtsp_reply_parser_raises_only_probe_failed(data: bytes) -> None:
    try:
        reply = parse_reply(data)
    except ProbeFailed:
        return
    assert 0 <= reply.status <= 999


@FUZZ
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(
            st.sampled_from(['Digest realm="x"', "Basic", 'nonce="', ",", " ", "digest", '="']),
            max_size=20,
        ).map("".join),
    )
)
def test_http_and_rtsp_auth_challenges_never_raise(header: str) -> None:
    scheme, params = parse_challenge(header)
    assert scheme in ("", "basic", "digest")
    assert isinstance(params, dict)
