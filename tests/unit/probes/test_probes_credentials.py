"""Default-credential probes: the list and its order, each protocol against a scripted
loopback server (success, rejection, lockout, garbage, tarpit); the planted lab defaults:
tests/lab/test_probes_credentials_lab.py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from iotrate.probes import _login, ftp, http, mqtt, rtsp, snmp, ssh, telnet
from iotrate.probes._clients import credlist
from iotrate.probes.base import AttemptBudget, Policy, Probe
from support.probes import (
    basic_route,
    device,
    digest_route,
    ftp_server,
    garbage,
    http_server,
    mqtt_broker,
    rtsp_server,
    snmp_agent,
    tarpit,
    tcp_fake,
    telnet_server,
    udp_fake,
)

from iotrate.models import Confidence, Device, OutcomeStatus, ProbeOutcome
from iotrate.probing import ProbeRunner, RunnerOptions


def probe_once(probe: type[Probe], dev: Device, policy: Policy = Policy.DEFAULT) -> Device:
    async def go() -> Device:
        (d,) = await ProbeRunner([probe], RunnerOptions(policy=policy)).run([dev])
        return d

    return asyncio.run(go())


def only(d: Device) -> ProbeOutcome:
    (o,) = [o for o in d.outcomes if o.port]
    return o


# ----------------------------------------------------------------------------- the list


def test_list_has_a_source_for_every_entry_and_mirai_is_universal() -> None:
    entries = credlist.load()
    assert len(entries) > 3000
    assert all(e.sources and e.id for e in entries)
    mirai = [e for e in entries if "mirai" in e.sources]
    assert len({(e.username, e.password) for e in mirai}) >= 60
    assert all(e.universal for e in mirai)
    assert not any(e.universal for e in entries if "mirai" not in e.sources)


def test_order_shell_by_mirai_weight_and_vendor_first() -> None:
    generic = [(c.username, c.password) for c in credlist.candidates("telnet")]
    assert generic[:3] == [("root", "xc3511"), ("root", "vizxv"), ("root", "admin")]
    hik = credlist.candidates("ssh", "Hangzhou Hikvision Digital Technology", "camera")
    assert (hik[0].username, hik[0].password, hik[0].vendor_match) == ("admin", "12345", True)
    # Mirai's top tier (weight >= 4) fits in the shell budget even after the vendor's pair.
    top = [(c.username, c.password) for c in hik[: _login.SHELL_BUDGET.max_attempts]]
    assert ("root", "12345") in top


def test_order_web_by_prevalence_and_snmp_communities() -> None:
    web = credlist.candidates("http")
    assert (web[0].username, web[0].password, web[0].universal) == ("admin", "admin", True)
    snmp = [c.password for c in credlist.candidates("snmp")[:2]]
    assert set(snmp) == {"public", "private"}
    assert all(c.username == "" for c in credlist.candidates("snmp"))


def test_redaction_keeps_first_character_and_fixed_mask() -> None:
    assert credlist.redact("xc3511") == "x***"
    assert credlist.redact("a") == "a***"
    assert credlist.redact("") == "(empty)"


# ---------------------------------------------------------------------------- telnet


class Telnet(telnet.TelnetDefaultPassword):
    step_timeout = 0.4
    timeout = 8.0


def test_telnet_finds_root_admin_and_redacts_it() -> None:
    async def go() -> tuple[Device, list[tuple[str, str]]]:
        async with tcp_fake(telnet_server(("root", "admin"))) as srv:
            (d,) = await ProbeRunner([Telnet]).run([device((srv.port, "tcp", "telnet"))])
            return d, srv.logins

    d, logins = asyncio.run(go())
    assert logins == [("root", "xc3511"), ("root", "vizxv"), ("root", "admin")]
    (f,) = d.findings
    data = f.evidence[0].data
    assert f.check == "cred.default-password" and f.severity.value == "critical"
    assert data["protocol"] == "telnet" and data["username"] == "root"
    assert data["universal"] is True and "mirai" in data["lists"]
    assert data["password"] == "a***"
    assert "admin" not in json.dumps(f.model_dump(mode="json")).replace('"admin"', "")
    assert only(d).attempts == 3


def test_telnet_stops_at_a_lockout_message_and_respects_the_budget() -> None:
    class Small(Telnet):
        budget = AttemptBudget(max_attempts=5, delay_s=0.0)

    async def go(handler: Any) -> tuple[Device, int]:
        async with tcp_fake(handler) as srv:
            (d,) = await ProbeRunner([Small]).run([device((srv.port, "tcp", "telnet"))])
            return d, len(srv.logins)

    # A lockout message or a spent budget ends the walk untested: the check stays unknown.
    d, tried = asyncio.run(go(telnet_server(None, lockout=2)))
    assert tried == 2 and d.findings == [] and only(d).status is OutcomeStatus.FAILED
    assert "not tested: stopped on a lockout" in (only(d).reason or "")
    d, tried = asyncio.run(go(telnet_server(None)))
    assert tried == 5 and only(d).attempts == 5 and only(d).status is OutcomeStatus.FAILED
    assert "budget was spent; 5 of 16 planned" in (only(d).reason or "")


def test_a_walk_through_the_whole_plan_is_tested_and_says_what_it_tried() -> None:
    class Roomy(Telnet):
        budget = AttemptBudget(max_attempts=40, delay_s=0.0)

    async def go() -> tuple[Device, int]:
        async with tcp_fake(telnet_server(None)) as srv:
            (d,) = await ProbeRunner([Roomy]).run([device((srv.port, "tcp", "telnet"))])
            return d, len(srv.logins)

    d, tried = asyncio.run(go())
    assert tried == 16 and only(d).status is OutcomeStatus.RAN and d.findings == []
    assert (only(d).reason or "").startswith("no known default among 16 tried (0 of the vendor")
    assert "mirai" in (only(d).reason or "")


def test_a_vendor_default_listed_for_another_protocol_is_tried_first() -> None:
    """Zyxel's admin/Zyxel*2012* is listed for ssh, telnet and ftp only; on a Zyxel device's
    web login it comes first, on anyone else's it is not tried."""
    pair = ("admin", "Zyxel*2012*")
    rows = [e for e in credlist.load() if (e.username, e.password) == pair]
    assert rows and all(e.protocols and "http" not in e.protocols for e in rows)
    zyxel = [(c.username, c.password) for c in credlist.candidates("http", "Zyxel Communications")]
    assert zyxel[0] == pair or pair in zyxel[:3]
    assert pair not in [(c.username, c.password) for c in credlist.candidates("http", "Acme")]
    assert pair not in [(c.username, c.password) for c in credlist.candidates("snmp", "Zyxel")]


@pytest.mark.parametrize("handler", [tarpit, garbage(b"\x00\x01\x02 nonsense \xff")])
def test_telnet_tarpit_or_garbage_fails_within_timeout(handler: Any) -> None:
    async def go() -> Device:
        async with tcp_fake(handler) as srv:
            (d,) = await ProbeRunner([Telnet]).run([device((srv.port, "tcp", "telnet"))])
            return d

    start = time.monotonic()
    d = asyncio.run(go())
    assert only(d).status is OutcomeStatus.FAILED and time.monotonic() - start < 4


def test_telnet_without_login_is_not_a_password_finding() -> None:
    async def go() -> Device:
        async with tcp_fake(telnet_server(None, shell_without_login=True)) as srv:
            (d,) = await ProbeRunner([Telnet]).run([device((srv.port, "tcp", "telnet"))])
            return d

    assert only(asyncio.run(go())).status is OutcomeStatus.NOT_APPLICABLE


# ------------------------------------------------------------------------------- HTTP


@pytest.mark.parametrize("route", [basic_route, digest_route])
def test_http_basic_and_digest(route: Any) -> None:
    async def go() -> tuple[Device, int]:
        async with tcp_fake(http_server(route(("admin", "admin")))) as srv:
            (d,) = await ProbeRunner([http.HttpDefaultPassword]).run(
                [device((srv.port, "tcp", "http"))]
            )
            return d, len(srv.logins)

    d, tried = asyncio.run(go())
    (f,) = d.findings
    scheme = "basic" if route is basic_route else "digest"
    assert f.evidence[0].data["protocol"] == f"http-{scheme}"
    assert f.evidence[0].data["password"] == "a***" and tried == 1


def test_http_budget_is_shared_with_rtsp_on_the_web_account() -> None:
    fast = AttemptBudget(max_attempts=_login.WEB_BUDGET.max_attempts, delay_s=0.0)

    class Http(http.HttpDefaultPassword):
        budget = fast

    class Rtsp(rtsp.RtspDefaultPassword):
        budget = fast

    async def go() -> tuple[Device, int, int]:
        async with (
            tcp_fake(http_server(basic_route(("nobody", "x")))) as web,
            tcp_fake(rtsp_server({"/": "auth"})) as cam,
        ):
            dev = device((web.port, "tcp", "http"), (cam.port, "tcp", "rtsp"))
            (d,) = await ProbeRunner([Http, Rtsp]).run([dev])
            return d, len(web.logins), len(cam.logins)

    # Both walks complete within the shared budget: each surface's plan (6 general pairs)
    d, web, cam = asyncio.run(go())
    assert web == cam == _login.TIERS["http"] == 6
    assert d.findings == [] and sum(o.attempts or 0 for o in d.outcomes) == 12
    assert {o.status for o in d.outcomes if o.port} == {OutcomeStatus.RAN}
    # ... and a budget smaller than the two plans leaves one of them untested, never passed
    fast = AttemptBudget(max_attempts=8, delay_s=0.0)
    Http.budget = Rtsp.budget = fast
    d, web, cam = asyncio.run(go())
    assert web + cam == 8
    assert OutcomeStatus.FAILED in {o.status for o in d.outcomes if o.port}


def test_http_without_a_challenge_is_not_applicable() -> None:
    from support.probes import http_response

    async def go() -> Device:
        route = lambda *a: http_response(200, b"<html>hello</html>")  # noqa: E731
        async with tcp_fake(http_server(route)) as srv:
            (d,) = await ProbeRunner([http.HttpDefaultPassword]).run(
                [device((srv.port, "tcp", "http"))]
            )
            return d

    assert only(asyncio.run(go())).status is OutcomeStatus.NOT_APPLICABLE


# -------------------------------------------------------------------------- FTP / MQTT


def test_ftp_anonymous_and_default() -> None:
    async def go() -> Device:
        async with tcp_fake(ftp_server(("admin", "admin"), anonymous=True)) as srv:
            (d,) = await ProbeRunner([ftp.FtpDefaultPassword]).run(
                [device((srv.port, "tcp", "ftp"))]
            )
            return d

    d = asyncio.run(go())
    assert sorted(f.check for f in d.findings) == ["cred.default-password", "svc.ftp.anonymous"]


def test_mqtt_anonymous_and_default_and_any_password() -> None:
    class Mqtt(mqtt.MqttLogin):
        timeout = 2.0  # half-second steps

    async def go(handler: Any) -> Device:
        async with tcp_fake(handler) as srv:
            (d,) = await ProbeRunner([Mqtt]).run([device((srv.port, "tcp", "mqtt"))])
            return d

    anon = asyncio.run(go(mqtt_broker(None, anonymous=True)))
    assert [f.check for f in anon.findings] == ["svc.mqtt.anonymous"]
    default = asyncio.run(go(mqtt_broker(("admin", "admin"))))
    (f,) = default.findings
    assert f.check == "cred.default-password" and f.evidence[0].data["protocol"] == "mqtt"
    assert only(default).attempts == 3  # anonymous, admin/admin, then the random canary
    closed = asyncio.run(go(garbage(b"")))
    assert only(closed).status is OutcomeStatus.FAILED


# -------------------------------------------------------------------------- RTSP / SNMP


def test_rtsp_digest_of_a_protected_stream() -> None:
    async def go(paths: dict[str, str]) -> Device:
        async with tcp_fake(rtsp_server(paths, ("admin", "admin"))) as srv:
            (d,) = await ProbeRunner([rtsp.RtspDefaultPassword]).run(
                [device((srv.port, "tcp", "rtsp"))]
            )
            return d

    d = asyncio.run(go({"/Streaming/Channels/101": "auth"}))
    (f,) = d.findings
    assert f.evidence[0].data["path"] == "/Streaming/Channels/101"
    assert only(asyncio.run(go({"/live": "open"}))).status is OutcomeStatus.NOT_APPLICABLE


class SnmpCreds(snmp.SnmpCommunities):
    timeout = 12.0  # 1 s steps: the fake answers at once, silence costs one step


def snmp_creds(
    read: set[str], policy: Policy = Policy.DEFAULT, vendor: str | None = None
) -> tuple[Device, list[Any]]:
    async def go() -> tuple[Device, list[Any]]:
        async with udp_fake(snmp_agent(read)) as agent:
            dev = device((agent.port, "udp", "snmp"))
            if vendor:
                dev = dev.model_copy(update={"vendor": vendor})
            (d,) = await ProbeRunner([SnmpCreds], RunnerOptions(policy=policy)).run([dev])
            return d, agent.logins

    return asyncio.run(go())


def test_snmp_default_communities_are_universal_default_credentials() -> None:
    """public and private answering: two universal default credentials (the scheme's G cap
    matches ``universal: true``), private also readable, and private, by convention the write
    community, is probable write access without a single SET."""
    d, logins = snmp_creds({"public", "private"})
    creds = {f.evidence[0].data["username"]: f for f in d.findings
             if f.check == "cred.default-password"}  # fmt: skip
    assert set(creds) == {"public", "private"}
    for f in creds.values():
        assert f.evidence[0].data["protocol"] == "snmp" and f.evidence[0].data["universal"]
    readable = [f.evidence[0].data["community"] for f in d.findings
                if f.check == "svc.snmp.readable"]  # fmt: skip
    assert readable == ["private"]  # public: the passive probe's finding
    (w,) = [f for f in d.findings if f.check == "svc.snmp.writable"]
    assert w.confidence is Confidence.PROBABLE and w.evidence[0].data["community"] == "private"
    assert not [x for x in logins if x[0] == "set"]
    assert logins[:2] == [("get", "public"), ("get", "private")]


def test_snmp_write_community_left_to_the_write_probe_under_intrusive() -> None:
    d, _ = snmp_creds({"private"}, Policy.INTRUSIVE)
    assert "svc.snmp.writable" not in {f.check for f in d.findings}
    assert "cred.default-password" in {f.check for f in d.findings}


def test_snmp_vendor_community_not_universal_and_nothing_is_a_pass() -> None:
    apc = next(e for e in credlist.load() if e.vendor == "apc" and "snmp" in e.protocols)
    d, logins = snmp_creds({apc.password}, vendor="APC")
    (f,) = [f for f in d.findings if f.check == "cred.default-password"]
    assert f.evidence[0].data["universal"] is False and f.evidence[0].data["vendor_specific"]
    assert logins[4] == ("get", apc.password)  # right after public and private (v2c, v1)
    d, _ = snmp_creds(set())
    assert d.findings == [] and only(d).status is OutcomeStatus.RAN


def test_safe_policy_skips_every_credential_probe() -> None:
    probes = [
        telnet.TelnetDefaultPassword, ssh.SshDefaultPassword, http.HttpDefaultPassword,
        ftp.FtpDefaultPassword, mqtt.MqttLogin, rtsp.RtspDefaultPassword, snmp.SnmpCommunities,
    ]  # fmt: skip

    async def go() -> tuple[Device, int, int]:
        async with (
            tcp_fake(http_server(basic_route(("admin", "admin")))) as web,
            tcp_fake(rtsp_server({"/": "auth"}, ("admin", "admin"))) as cam,
        ):
            dev = device(
                (23, "tcp", "telnet"), (22, "tcp", "ssh"), (web.port, "tcp", "http"),
                (21, "tcp", "ftp"), (1883, "tcp", "mqtt"), (cam.port, "tcp", "rtsp"),
                (161, "udp", "snmp"),
            )  # fmt: skip
            (d,) = await ProbeRunner(probes, RunnerOptions(policy=Policy.SAFE)).run([dev])
            return d, len(web.logins), len(cam.logins)

    d, web, cam = asyncio.run(go())
    assert {o.status for o in d.outcomes} == {OutcomeStatus.SKIPPED_BY_POLICY}
    assert len(d.outcomes) == len(probes) and web == cam == 0


def test_safe_policy_says_not_applicable_where_nothing_asks_for_a_password() -> None:
    """The passive precheck: an HTTP port without a challenge or an RTSP server whose streams
    are open has no default password to test, so --safe leaves the check out, not unknown."""
    from support.probes import http_response

    async def go() -> Device:
        page = http_server(lambda *a: http_response(200, b"<html>hi</html>"))
        async with tcp_fake(page) as web, tcp_fake(rtsp_server({"/live": "open"})) as cam:
            dev = device((web.port, "tcp", "http"), (cam.port, "tcp", "rtsp"))
            probes = [http.HttpDefaultPassword, rtsp.RtspDefaultPassword]
            (d,) = await ProbeRunner(probes, RunnerOptions(policy=Policy.SAFE)).run([dev])
            return d

    d = asyncio.run(go())
    assert {o.status for o in d.outcomes} == {OutcomeStatus.NOT_APPLICABLE}


# -------------------------------------------------------------------------------- SSH


def test_ssh_password_found_and_key_only_is_not_applicable() -> None:
    import asyncssh

    async def go(accept: bool) -> Device:
        key = asyncssh.generate_private_key("ssh-ed25519")

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return accept

            def validate_password(self, username: str, password: str) -> bool:
                return (username, password) == ("root", "admin")

        server = await asyncssh.create_server(Server, "127.0.0.1", 0, server_host_keys=[key])
        port = server.sockets[0].getsockname()[1]
        try:
            (d,) = await ProbeRunner([ssh.SshDefaultPassword]).run([device((port, "tcp", "ssh"))])
        finally:
            server.close()
        return d

    d = asyncio.run(go(True))
    (f,) = d.findings
    assert f.evidence[0].data["username"] == "root" and f.evidence[0].data["universal"] is True
    assert only(d).attempts == 3
    assert only(asyncio.run(go(False))).status is OutcomeStatus.NOT_APPLICABLE
