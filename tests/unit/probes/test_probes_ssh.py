"""SSH probes: identification and KEXINIT parsing on recorded bytes, the policy judgement,
scripted servers on 127.0.0.1, a local asyncssh server for the auth probe, (the lab
camera's dropbear: tests/lab/test_probes_ssh_lab.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml
from iotrate.probes import ssh
from iotrate.probes.base import Policy, ProbeContext, ProbeFailed, make_finding

from iotrate.models import Device, Finding, Service

SCHEME = Path(__file__).resolve().parents[3] / "rating_schema" / "iotrate-2026.1.yaml"

# What Debian 12's dropbear 2022.83 (the lab camera) sent: identification line, then KEXINIT.
DROPBEAR_HELLO = bytes.fromhex(
    "5353482d322e302d64726f70626561725f323032322e38330d0a000001fc0714418b3a62580e07f1b6461245"
    "acd8f358000000d8637572766532353531392d7368613235362c637572766532353531392d73686132353640"
    "6c69627373682e6f72672c656364682d736861322d6e697374703532312c656364682d736861322d6e697374"
    "703338342c656364682d736861322d6e697374703235362c6469666669652d68656c6c6d616e2d67726f7570"
    "31342d7368613235362c6469666669652d68656c6c6d616e2d67726f757031342d736861312c6b6578677565"
    "737332406d6174742e7563632e61736e2e61752c6b65782d7374726963742d732d763030406f70656e737368"
    "2e636f6d000000207373682d656432353531392c7273612d736861322d3235362c7373682d72736100000033"
    "63686163686132302d706f6c7931333035406f70656e7373682e636f6d2c6165733132382d6374722c616573"
    "3235362d6374720000003363686163686132302d706f6c7931333035406f70656e7373682e636f6d2c616573"
    "3132382d6374722c6165733235362d63747200000017686d61632d736861312c686d61632d736861322d3235"
    "3600000017686d61632d736861312c686d61632d736861322d323536000000157a6c6962406f70656e737368"
    "2e636f6d2c6e6f6e65000000157a6c6962406f70656e7373682e636f6d2c6e6f6e6500000000000000000000"
    "000000e72be58f0c0587"
)


def _split(hello: bytes) -> tuple[bytes, bytes]:
    line, _, rest = hello.partition(b"\n")
    return line + b"\n", rest


def kexinit(**lists: list[str]) -> bytes:
    """Build a KEXINIT payload; unspecified lists get modern defaults."""
    order = ["kex", "host_key", "c2s", "s2c", "mac_c2s", "mac_s2c", "cmp", "cmp2", "l1", "l2"]
    defaults = {
        "kex": ["curve25519-sha256", "kex-strict-s-v00@openssh.com"],
        "host_key": ["ssh-ed25519"],
        "c2s": ["aes128-ctr"],
        "s2c": ["aes128-ctr"],
        "mac_c2s": ["hmac-sha2-256-etm@openssh.com"],
        "mac_s2c": ["hmac-sha2-256-etm@openssh.com"],
        "cmp": ["none"],
        "cmp2": ["none"],
        "l1": [],
        "l2": [],
    }
    defaults.update(lists)
    out = b"\x14" + bytes(16)
    for key in order:
        raw = ",".join(defaults[key]).encode()
        out += len(raw).to_bytes(4, "big") + raw
    return out + b"\x00" + bytes(4)


def packet(payload: bytes) -> bytes:
    pad = 8 - (len(payload) + 5) % 8 + 4
    body = bytes([pad]) + payload + bytes(pad)
    return len(body).to_bytes(4, "big") + body


# --------------------------------------------------------------------------- parsing


def test_recorded_dropbear_hello() -> None:
    line, rest = _split(DROPBEAR_HELLO)
    ident = ssh.parse_ident(line)
    assert (ident.proto, ident.software, ident.comments) == ("2.0", "dropbear_2022.83", None)
    payload, tail = ssh.parse_packet(rest)
    assert tail == b""
    k = ssh.parse_kexinit(payload)
    assert k.kex[0] == "curve25519-sha256" and k.strict_kex
    assert k.host_key == ("ssh-ed25519", "rsa-sha2-256", "ssh-rsa")
    assert k.cipher_s2c == ("chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr")
    assert k.mac_s2c == ("hmac-sha1", "hmac-sha2-256")
    assert k.compression_s2c == ("zlib@openssh.com", "none")


def test_identification_with_distribution_comment() -> None:
    ident = ssh.parse_ident(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    assert (ident.software, ident.comments) == ("OpenSSH_9.2p1", "Debian-2+deb12u3")
    with pytest.raises(ssh.SshProtocolError):
        ssh.parse_ident(b"HTTP/1.0 200 OK\r\n")


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x15" + bytes(40), kexinit()[:30], b"\x14" + bytes(16) + b"\xff\xff\xff\xff"],
)
def test_malformed_kexinit_is_a_protocol_error(payload: bytes) -> None:
    with pytest.raises(ssh.SshProtocolError):
        ssh.parse_kexinit(payload)


def test_malformed_packets() -> None:
    with pytest.raises(ssh.SshProtocolError):
        ssh.parse_packet(b"\x00\x00\x00")
    with pytest.raises(ssh.SshProtocolError):
        ssh.parse_packet(b"\x7f\xff\xff\xff\x04abcd")


# --------------------------------------------------------------------------- judgement


def test_dropbear_is_judged_warn_with_named_reasons() -> None:
    line, rest = _split(DROPBEAR_HELLO)
    k = ssh.parse_kexinit(ssh.parse_packet(rest)[0])
    judged = ssh.judge(ssh.parse_ident(line), k)
    bad = {j.name: j for j in judged if j.verdict in ("warn", "fail")}
    assert set(bad) == {"diffie-hellman-group14-sha1", "ssh-rsa", "hmac-sha1"}
    assert "SHA-1" in bad["ssh-rsa"].reason
    assert ssh.worst(judged) == "warn"
    assert "kexguess2@matt.ucc.asn.au" not in {j.name for j in judged}  # a marker, not an algorithm


def test_fail_wins_over_warn_and_unknown_is_a_warning() -> None:
    ident = ssh.parse_ident(b"SSH-2.0-GoodSSH_1.0\r\n")
    k = ssh.parse_kexinit(
        kexinit(c2s=["aes128-ctr", "3des-cbc"], s2c=["aes128-ctr"], mac_s2c=["hmac-foo@example"])
    )
    judged = {j.name: j for j in ssh.judge(ident, k)}
    assert judged["3des-cbc"].verdict == "fail"
    assert (judged["hmac-foo@example"].verdict, judged["hmac-foo@example"].reason) == (
        "warn",
        "unknown to iotrate's policy",
    )
    assert ssh.worst(list(judged.values())) == "fail"


def test_terrapin_without_strict_kex_and_ssh1() -> None:
    k = ssh.parse_kexinit(kexinit(kex=["curve25519-sha256"], c2s=["chacha20-poly1305@openssh.com"]))
    names = {j.name for j in ssh.judge(ssh.parse_ident(b"SSH-2.0-x\r\n"), k)}
    assert "terrapin" in names
    old = ssh.judge(ssh.parse_ident(b"SSH-1.99-OldSSH\r\n"), k)
    assert any(j.kind == "protocol" and j.verdict == "fail" for j in old)
    only1 = ssh.judge(ssh.parse_ident(b"SSH-1.5-Ancient\r\n"), None)
    assert [j.reason for j in only1] == ["speaks only SSH protocol 1"]


def test_modern_server_has_no_weak_finding() -> None:
    ident = ssh.parse_ident(b"SSH-2.0-OpenSSH_9.9\r\n")
    found = ssh.algorithm_findings(ident, ssh.parse_kexinit(kexinit()), [], 22, "ssh.algorithms")
    assert [f.check for f in found] == ["ssh.summary"]
    assert found[0].evidence[0].data["strict_kex"] is True


def test_cert_host_key_types_are_judged_as_their_base_type() -> None:
    k = ssh.parse_kexinit(kexinit(host_key=["ssh-rsa-cert-v01@openssh.com", "ssh-ed25519"]))
    judged = {j.name: j.verdict for j in ssh.judge(ssh.parse_ident(b"SSH-2.0-x\r\n"), k)}
    assert judged["ssh-rsa-cert-v01@openssh.com"] == "warn"


# --------------------------------------------------------------------------- scripted servers

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler, probe: Callable[[int], Awaitable[Any]]) -> Any:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await probe(port)
    finally:
        server.close()
        await server.wait_closed()


def _ctx(port: int) -> ProbeContext:
    svc = Service(port=port, protocol="ssh")
    dev = Device(id="127.0.0.1", address="127.0.0.1", services=[svc])
    return ProbeContext(address="127.0.0.1", device=dev, service=svc, policy=Policy.SAFE, timeout=2)


def test_scripted_server_with_prelude_lines() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, rest = _split(DROPBEAR_HELLO)
        writer.write(b"Welcome to the camera\r\n" + line)
        await reader.readline()  # our identification comes before the server's KEXINIT
        writer.write(rest)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    found = asyncio.run(_serve(handler, lambda port: ssh.SshAlgorithmsProbe().run(_ctx(port))))
    by = {f.check: f for f in found}
    assert by["ssh.algorithms.weak"].evidence[0].data["worst"] == "warn"
    summary = by["ssh.summary"].evidence[0].data
    assert summary["prelude"] == ["Welcome to the camera"]
    assert summary["software"] == "dropbear_2022.83"


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"HTTP/1.0 400 Bad Request\r\n\r\n", "closed the connection|no SSH identification"),
        (b"SSH-2.0-x\r\n" + b"\x00\x10\x00\x00garbage", "implausible"),
        (b"", "no SSH identification or KEXINIT within"),
    ],
)
def test_garbage_or_silence_is_a_failed_outcome(reply: bytes, match: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply)
        await writer.drain()
        if reply.startswith(b"HTTP"):
            writer.close()
            return
        await asyncio.sleep(3)
        writer.close()

    with pytest.raises(ProbeFailed, match=match):
        asyncio.run(_serve(handler, lambda port: ssh.SshAlgorithmsProbe().run(_ctx(port))))


def test_auth_probe_against_a_local_asyncssh_server_sends_no_credential() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    passwords_tried: list[str] = []

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            passwords_tried.append(password)
            return False

    async def main() -> list[Finding]:
        server = await asyncssh.create_server(Server, "127.0.0.1", 0, server_host_keys=[key])
        port = server.sockets[0].getsockname()[1]
        try:
            return await ssh.SshAuthProbe().run(_ctx(port))
        finally:
            server.close()
            await server.wait_closed()

    found = {f.check: f for f in asyncio.run(main())}
    assert passwords_tried == []
    assert found["ssh.password-auth"].evidence[0].data["password"] is True
    assert found["ssh.password-auth"].confidence.value == "confirmed"
    summary = found["ssh.summary"].evidence[0].data
    assert summary["host_key_sha256"] == key.get_fingerprint("sha256")
    assert summary["host_key_type"] == "ssh-ed25519"


def test_correlate_shared_host_key() -> None:
    def summary(fp: str) -> Finding:
        return make_finding("ssh.summary", "s", 22, {"host_key_sha256": fp}, probe="ssh.auth")

    devices = [
        Device(id="cam1", address="10.0.0.1", findings=[summary("SHA256:same")]),
        Device(id="cam2", address="10.0.0.2", findings=[summary("SHA256:same")]),
        Device(id="nas", address="10.0.0.3", findings=[summary("SHA256:other")]),
    ]
    found = ssh.SshAuthProbe.correlate(devices)
    assert sorted(found) == ["cam1", "cam2"]
    assert found["cam1"][0].check == "ssh.hostkey.shared"
    assert found["cam1"][0].evidence[0].data["shared_with"] == ["cam2"]


def test_checks_are_in_the_rating_scheme() -> None:
    scheme = {c["id"]: c for c in yaml.safe_load(SCHEME.read_text())["checks"]}
    checks = set(ssh.SshAlgorithmsProbe.checks) | set(ssh.SshAuthProbe.checks)
    assert checks == {c for c in scheme if c.startswith("ssh.")}


def test_policy_table_is_valid() -> None:
    table = ssh.policy()
    assert {"kex", "host_key", "cipher", "mac", "markers"} <= set(table)
    assert table["host_key"]["ssh-dss"]["verdict"] == "fail"
