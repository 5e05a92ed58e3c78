"""The reference lab: real daemons answer from the scanner's namespace as devices.yaml says.

Every network probe runs inside ``iotr-scan``, never in the root namespace: the ``seen`` fixture
re-runs this file there (``ip netns exec iotr-scan python tests/lab/test_lab.py JOBS``), which runs
all probes side by side once and prints their results as JSON; the tests then assert on them.
The lifecycle tests at the end take the lab down and bring it back, so the session fixture still
holds for whatever runs after them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from iotrate.lab import core, procs
from iotrate.lab.table import NS_PREFIX, SCANNER_NS, load_table, resolve_subnet

TABLE = load_table()
DEVICES = {d.name: d for d in TABLE.devices}
FAKE_BANNER = "BusyBox v1.19.4"

# ---------------------------------------------------------------------------------------------
# probes: run inside the scanner namespace, print JSON


def probe_connect(targets: list[list[Any]]) -> dict[str, str]:
    result = {}
    for host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=3):
                result[f"{host}:{port}"] = "open"
        except OSError as exc:
            result[f"{host}:{port}"] = errno.errorcode.get(exc.errno or 0, str(exc))
    return result


def probe_unreachable(host: str, port: int) -> dict[str, Any]:
    start = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=5).close()
        outcome = "connected"
    except OSError as exc:
        outcome = errno.errorcode.get(exc.errno or 0, str(exc))
    return {"outcome": outcome, "seconds": time.monotonic() - start}


def probe_banner(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=3) as sock:
        return sock.recv(256).decode("latin-1")


def probe_http(host: str, port: int, path: str, user: str = "", password: str = "") -> Any:
    import base64
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=5)
    headers = {}
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return {
        "status": resp.status,
        "headers": {k.lower(): v for k, v in resp.getheaders()},
        "body": resp.read().decode("utf-8", "replace"),
    }


def _telnet_read(sock: socket.socket, token: bytes, timeout: float = 6) -> bytes:
    """Read until ``token``, refusing every telnet option the server proposes."""
    buf = b""
    end = time.monotonic() + timeout
    while token not in buf and time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        if not data:
            break
        i = 0
        while i < len(data):
            if data[i] == 255 and i + 2 < len(data) and data[i + 1] in (251, 252, 253, 254):
                refuse = 252 if data[i + 1] in (253, 254) else 254  # WONT to DO, DONT to WILL
                sock.sendall(bytes([255, refuse, data[i + 2]]))
                i += 3
            elif data[i] == 255 and i + 1 < len(data):
                i += 2
            else:
                buf += data[i : i + 1]
                i += 1
    return buf


def probe_telnet(host: str, user: str, password: str) -> dict[str, str]:
    with socket.create_connection((host, 23), timeout=5) as sock:
        prompt = _telnet_read(sock, b"login: ")
        sock.sendall(user.encode() + b"\r\n")
        _telnet_read(sock, b"Password: ")
        sock.sendall(password.encode() + b"\r\n")
        after = _telnet_read(sock, b"# " if password else b"login: ")
        sock.sendall(b"id\r\n")
        echo = _telnet_read(sock, b"# ", 1)
    return {
        "prompt": prompt.decode("latin-1"),
        "after": after.decode("latin-1"),
        "echo": echo.decode("latin-1"),
    }


def probe_adb(host: str, port: int) -> dict[str, Any]:
    cnxn = 0x4E584E43
    payload = b"host::features=shell_v2,cmd\0"
    header = struct.pack("<6I", cnxn, 0x01000001, 1 << 20, len(payload), 0, cnxn ^ 0xFFFFFFFF)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(header + payload)
        command, version, _, length, _, magic = struct.unpack(
            "<6I", sock.recv(24, socket.MSG_WAITALL)
        )
        banner = sock.recv(length, socket.MSG_WAITALL)
    return {
        "command": command.to_bytes(4, "little").decode("latin-1"),
        "magic_ok": magic == command ^ 0xFFFFFFFF,
        "version": version,
        "banner": banner.decode("utf-8", "replace"),
    }


def probe_rtsp(host: str, port: int, path: str) -> dict[str, str]:
    url = f"rtsp://{host}:{port}{path}"
    replies = {}
    with socket.create_connection((host, port), timeout=8) as sock:
        for seq, method in enumerate(("OPTIONS", "DESCRIBE"), 1):
            request = f"{method} {url} RTSP/1.0\r\nCSeq: {seq}\r\nAccept: application/sdp\r\n"
            sock.sendall(request.encode() + b"\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            while len(body) < length:
                body += sock.recv(4096)
            replies[method] = (head + b"\r\n\r\n" + body).decode("utf-8", "replace")
    return replies


def probe_ssdp(search_target: str) -> list[dict[str, Any]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    msg = (
        'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
        f"MX: 1\r\nST: {search_target}\r\n\r\n"
    )
    sock.sendto(msg.encode(), ("239.255.255.250", 1900))
    replies = []
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        try:
            data, (addr, _) = sock.recvfrom(4096)
        except TimeoutError:
            continue
        lines = data.decode("utf-8", "replace").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:]) if k
        }
        replies.append({"from": addr, "status": lines[0], "headers": headers})
        if replies:
            break
    return replies


def probe_mdns(service_type: str) -> dict[str, Any]:
    """A one-shot (legacy unicast) DNS-SD query sent to 224.0.0.251, as RFC 6762 §6.7 allows."""
    from zeroconf import DNSIncoming, DNSPointer, DNSService, DNSText

    qname = b"".join(bytes([len(p)]) + p.encode() for p in service_type.strip(".").split("."))
    query = struct.pack(">6H", 0x1A2B, 0, 1, 0, 0, 0) + qname + b"\0" + struct.pack(">HH", 12, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3)
    sock.sendto(query, ("224.0.0.251", 5353))
    data, (addr, _) = sock.recvfrom(9000)
    out: dict[str, Any] = {"from": addr, "ptr": [], "srv": [], "txt": {}, "a": []}
    for rec in DNSIncoming(data).answers():
        if isinstance(rec, DNSPointer):
            out["ptr"].append(rec.alias)
        elif isinstance(rec, DNSService):
            out["srv"].append([rec.name, rec.server, rec.port])
        elif isinstance(rec, DNSText):
            raw, pos = rec.text, 0
            while pos < len(raw):
                item = raw[pos + 1 : pos + 1 + raw[pos]].decode()
                key, _, value = item.partition("=")
                out["txt"][key] = value
                pos += 1 + raw[pos]
        elif rec.type == 1:
            out["a"].append(socket.inet_ntoa(rec.address))  # type: ignore[attr-defined]
    return out


def probe_run(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """A client tool (openssl, dbclient, mosquitto_sub, snmpget) run from the scanner."""
    done = subprocess.run(
        argv,
        input="",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def run_jobs(jobs: dict[str, list[Any]]) -> dict[str, Any]:
    """Run every ``[probe, *args]`` job side by side; a failure is recorded, not raised."""

    def one(job: list[Any]) -> dict[str, Any]:
        try:
            return {"ok": globals()[f"probe_{job[0]}"](*job[1:])}
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        return dict(zip(jobs, pool.map(one, jobs.values()), strict=True))


# ---------------------------------------------------------------------------------------------
# helpers


def addr(name: str) -> str:
    return str(resolve_subnet(core.lab_status()["subnet"]).network_address + DEVICES[name].host)


def cred(name: str, service: str) -> tuple[str, str]:
    c = next(c for c in DEVICES[name].credentials if c.service == service)
    return c.username or "", c.password or ""


def jobs(lab: dict[str, Any], home: str) -> dict[str, list[Any]]:
    """Every probe of the lab tests, keyed by what the tests look up."""
    ip = {d["name"]: d["address"] for d in lab["devices"]}
    tv, fridge, camera, hub, speaker, plug = (
        ip[n] for n in ("tv", "fridge", "camera", "hub", "speaker", "plug")
    )
    ssh = ["dbclient", "-y", "-y", "-T", f"{cred('camera', 'ssh')[0]}@{camera}", "id"]
    strict = ["-CAfile", lab["ca_cert"], "-verify_return_error", "-verify_ip", plug]
    weak = ["-cipher", "ALL:@SECLEVEL=0"]

    def tls(host: str, *args: str) -> list[Any]:
        return ["run", ["openssl", "s_client", "-connect", f"{host}:443", *args]]

    retained = DEVICES["fridge"].settings["mqtt_retained"]
    mqtt = ["mosquitto_sub", "-h", fridge, "-t", "fridge/#", "-v", "-W", "5", "-C"]
    mqtt.append(str(len(retained)))
    snmp = ["snmpget", "-v2c", "-c", cred("hub", "snmp")[1], "-Oqv", "-t", "2", "-r", "1"]
    return {
        **{
            f"connect-{n}": ["connect", [[ip[n], p.port] for p in d.ports if p.transport == "tcp"]]
            for n, d in DEVICES.items()
        },
        "unreachable": ["unreachable", "192.0.2.1", 80],  # TEST-NET-1: never routed anywhere
        "ssh-banner": ["banner", camera, 22],
        "ssh-good": ["run", ssh, {"HOME": home, "DROPBEAR_PASSWORD": cred("camera", "ssh")[1]}],
        "ssh-bad": ["run", ssh, {"HOME": home, "DROPBEAR_PASSWORD": "wrong"}],
        "telnet-good": ["telnet", fridge, *cred("fridge", "telnet")],
        "telnet-bad": ["telnet", fridge, cred("fridge", "telnet")[0], ""],
        "web-anon": ["http", fridge, 80, "/"],
        "web-good": ["http", fridge, 80, "/", *cred("fridge", "http-basic")],
        "web-bad": ["http", fridge, 80, "/", "admin", "wrong"],
        "mqtt": ["run", mqtt],
        "snmp": ["run", [*snmp, hub, "1.3.6.1.2.1.1.1.0"], {"SNMP_PERSISTENT_DIR": home}],
        "hub-tls1": tls(hub, "-tls1", *weak, "-showcerts"),
        "hub-tls1_1": tls(hub, "-tls1_1", *weak),
        "plug-tls1": tls(plug, "-tls1", *weak),
        "plug-tls1_1": tls(plug, "-tls1_1", *weak),
        "plug-tls1_2": tls(plug, "-tls1_2", *strict),
        "plug-tls1_3": tls(plug, "-tls1_3", *strict),
        "adb": ["adb", tv, 5555],
        "ssdp": ["ssdp", "urn:schemas-upnp-org:device:MediaRenderer:1"],
        "upnp-description": ["http", tv, 49494, "/description.xml"],
        "rtsp": ["rtsp", camera, 554, DEVICES["camera"].settings["rtsp_path"]],
        "camera-web": ["http", camera, 80, "/"],
        "mdns-cast": ["mdns", "_googlecast._tcp.local."],
        "mdns-airplay": ["mdns", "_airplay._tcp.local."],
        "eureka": ["http", speaker, 8008, "/setup/eureka_info"],
        "airplay": ["http", speaker, 7000, "/info"],
    }


@pytest.fixture(scope="module")
def seen(lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the scanner namespace sees, probed once for all the tests below."""
    todo = jobs(lab, str(tmp_path_factory.mktemp("scanner-home")))
    done = subprocess.run(
        ["ip", "netns", "exec", SCANNER_NS, sys.executable, __file__, json.dumps(todo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def ok(seen: dict[str, Any], key: str) -> Any:
    """The result of one probe; a probe that raised fails the test that needs it."""
    assert "error" not in seen[key], f"{key}: {seen[key].get('error')}"
    return seen[key]["ok"]


# ---------------------------------------------------------------------------------------------
# the lab, seen from the scanner namespace


@pytest.mark.lab
def test_status_is_json_and_every_daemon_alive(lab: dict[str, Any]) -> None:
    status = core.lab_status()
    json.dumps(status)
    assert status["running"] is True
    assert status["scanner"]["namespace"] == SCANNER_NS
    assert Path(status["ca_cert"]).is_file()
    assert [d["name"] for d in status["devices"]] == list(DEVICES)
    for dev in status["devices"]:
        assert dev["daemons"] and all(d["alive"] for d in dev["daemons"]), dev["name"]
    assert [d["address"] for d in core.device_table()] == [d["address"] for d in status["devices"]]


@pytest.mark.lab
def test_no_namespace_has_a_way_out(lab: dict[str, Any], seen: dict[str, Any]) -> None:
    for ns in core.netns.lab_namespaces():
        routes = subprocess.run(
            ["ip", "-n", ns, "route", "show", "default"], capture_output=True, text=True, check=True
        )
        assert routes.stdout.strip() == "", ns
    out = ok(seen, "unreachable")
    assert out["outcome"] == "ENETUNREACH" and out["seconds"] < 1


@pytest.mark.lab
def test_lab_exec_runs_in_the_scanner_namespace(lab: dict[str, Any]) -> None:
    assert (
        core.lab_exec(["sh", "-c", f"ip -4 addr show eth0 | grep -q {lab['scanner']['address']}/"])
        == 0
    )
    assert core.lab_exec(["sh", "-c", "exit 3"]) == 3


@pytest.mark.lab
@pytest.mark.parametrize("name", list(DEVICES))
def test_declared_tcp_ports_accept(seen: dict[str, Any], name: str) -> None:
    assert set(ok(seen, f"connect-{name}").values()) == {"open"}


@pytest.mark.lab
@pytest.mark.parametrize("name", list(DEVICES))
def test_nothing_listens_beyond_the_table(lab: dict[str, Any], name: str) -> None:
    dev = DEVICES[name]
    declared = {(p.transport.value, p.port) for p in dev.ports}
    actual = core.listening_ports(dev.namespace)
    assert declared <= actual
    # Only short-lived client sockets (ephemeral range) may come and go besides the table.
    assert all(port >= 32768 for _, port in actual - declared), actual - declared


@pytest.mark.lab
def test_plug_listens_on_443_only(lab: dict[str, Any]) -> None:
    assert core.listening_ports(DEVICES["plug"].namespace) == {("tcp", 443)}


@pytest.mark.lab
def test_camera_ssh_is_dropbear_with_default_root_password(seen: dict[str, Any]) -> None:
    assert ok(seen, "ssh-banner").startswith("SSH-2.0-dropbear")
    good, bad = ok(seen, "ssh-good"), ok(seen, "ssh-bad")
    assert FAKE_BANNER in good["stdout"] and "uid=" not in good["stdout"]
    assert bad["rc"] != 0 and FAKE_BANNER not in bad["stdout"]


@pytest.mark.lab
def test_fridge_telnet_default_login_reaches_the_fake_shell(seen: dict[str, Any]) -> None:
    good = ok(seen, "telnet-good")
    assert good["prompt"].endswith("login: ")
    assert FAKE_BANNER in good["after"] and good["after"].endswith("# ")
    assert "uid=" not in good["echo"]  # typed commands are never run
    assert "Login incorrect" in ok(seen, "telnet-bad")["after"]


@pytest.mark.lab
def test_fridge_web_asks_basic_auth_and_takes_the_default(seen: dict[str, Any]) -> None:
    anonymous = ok(seen, "web-anon")
    assert anonymous["status"] == 401
    assert anonymous["headers"]["www-authenticate"].startswith("Basic")
    assert anonymous["headers"]["server"] == DEVICES["fridge"].settings["http_server_tag"]
    assert ok(seen, "web-good")["status"] == 200
    assert ok(seen, "web-bad")["status"] == 401


@pytest.mark.lab
def test_fridge_mqtt_is_anonymous_with_retained_topics(seen: dict[str, Any]) -> None:
    out = ok(seen, "mqtt")
    assert out["rc"] == 0, out["stderr"]
    got = dict(line.split(" ", 1) for line in out["stdout"].splitlines())
    assert got == {k: str(v) for k, v in DEVICES["fridge"].settings["mqtt_retained"].items()}


@pytest.mark.lab
def test_hub_snmp_public_returns_sysdescr(seen: dict[str, Any]) -> None:
    out = ok(seen, "snmp")
    assert out["rc"] == 0, out["stderr"]
    assert DEVICES["hub"].settings["snmp_sys_descr"] in out["stdout"]


@pytest.mark.lab
def test_hub_speaks_tls10_with_an_expired_1024_bit_certificate(seen: dict[str, Any]) -> None:
    tls1, tls1_1 = ok(seen, "hub-tls1"), ok(seen, "hub-tls1_1")
    assert tls1["rc"] == 0 and "Protocol  : TLSv1\n" in tls1["stdout"]
    assert tls1_1["rc"] == 0 and "Protocol  : TLSv1.1\n" in tls1_1["stdout"]
    assert "certificate has expired" in tls1["stdout"] + tls1["stderr"]
    assert "Server public key is 1024 bit" in tls1["stdout"]
    cert = tls1["stdout"][tls1["stdout"].index("-----BEGIN CERTIFICATE-----") :]
    # Local file work, no network: fine outside the scanner namespace.
    check = subprocess.run(
        ["openssl", "x509", "-noout", "-checkend", "0"], input=cert, capture_output=True, text=True
    )
    assert check.returncode == 1  # "will expire" within 0 s: it already has


@pytest.mark.lab
def test_plug_refuses_old_tls_and_verifies_against_the_lab_ca(seen: dict[str, Any]) -> None:
    for old in ("plug-tls1", "plug-tls1_1"):
        out = ok(seen, old)
        assert out["rc"] != 0 and "Cipher is (NONE)" in out["stdout"], old
    modern = ok(seen, "plug-tls1_3")
    assert modern["rc"] == 0, modern["stderr"]
    assert "TLSv1.3" in modern["stdout"] and "Verify return code: 0 (ok)" in modern["stdout"]
    assert "Server public key is 2048 bit" in modern["stdout"]
    assert ok(seen, "plug-tls1_2")["rc"] == 0


@pytest.mark.lab
def test_tv_adb_answers_cnxn_without_auth(seen: dict[str, Any]) -> None:
    out = ok(seen, "adb")
    assert out["command"] == "CNXN" and out["magic_ok"]
    assert out["banner"].startswith("device::")
    model = DEVICES["tv"].settings["adb_product_model"]
    assert f"ro.product.model={model};" in out["banner"]


@pytest.mark.lab
def test_tv_answers_ssdp_msearch_with_libupnp(lab: dict[str, Any], seen: dict[str, Any]) -> None:
    host = addr("tv")
    replies = ok(seen, "ssdp")
    assert replies and replies[0]["from"] == host
    headers = replies[0]["headers"]
    assert "Portable SDK for UPnP devices/1.8.4" in headers["server"]
    assert headers["location"] == f"http://{host}:49494/description.xml"
    body, settings = ok(seen, "upnp-description")["body"], DEVICES["tv"].settings
    assert settings["friendly_name"] in body and settings["uuid"] in body


@pytest.mark.lab
def test_camera_rtsp_streams_without_login(seen: dict[str, Any]) -> None:
    out = ok(seen, "rtsp")
    assert out["OPTIONS"].startswith("RTSP/1.0 200 OK") and "DESCRIBE" in out["OPTIONS"]
    assert out["DESCRIBE"].startswith("RTSP/1.0 200 OK")
    assert "application/sdp" in out["DESCRIBE"] and "m=video" in out["DESCRIBE"]


@pytest.mark.lab
def test_camera_web_has_an_old_embedded_banner(seen: dict[str, Any]) -> None:
    out = ok(seen, "camera-web")
    assert out["status"] == 200
    assert out["headers"]["server"] == DEVICES["camera"].settings["http_server_tag"]


@pytest.mark.lab
def test_speaker_answers_mdns_for_cast_and_airplay(
    lab: dict[str, Any], seen: dict[str, Any]
) -> None:
    host, dev = addr("speaker"), DEVICES["speaker"]
    cast = ok(seen, "mdns-cast")
    assert cast["from"] == host and host in cast["a"]
    assert cast["txt"]["md"] == dev.model and cast["txt"]["fn"] == dev.settings["friendly_name"]
    assert {"id", "cd", "rm", "ve", "ic", "ca", "st", "bs", "nf", "rs"} <= set(cast["txt"])
    assert [s[2] for s in cast["srv"]] == [8009]
    airplay = ok(seen, "mdns-airplay")
    assert airplay["txt"]["deviceid"] == dev.mac.upper()
    assert [s[2] for s in airplay["srv"]] == [7000]


@pytest.mark.lab
def test_speaker_serves_eureka_info_and_airplay(seen: dict[str, Any]) -> None:
    settings = DEVICES["speaker"].settings
    eureka = ok(seen, "eureka")
    assert eureka["status"] == 200
    assert json.loads(eureka["body"])["name"] == settings["friendly_name"]
    assert ok(seen, "airplay")["headers"]["server"] == settings["airplay_server_tag"]


# ---------------------------------------------------------------------------------------------
# lifecycle: these run last and leave the lab up again for whatever follows


def _pids(status: dict[str, Any]) -> dict[str, int]:
    return {f"{d['name']}/{x['name']}": x["pid"] for d in status["devices"] for x in d["daemons"]}


def _assert_clean(tracked: list[procs.Tracked], temp_dir: str) -> None:
    assert core.netns.lab_namespaces() == []
    assert not list(Path("/etc/netns").glob(f"{NS_PREFIX}*"))  # this instance only
    assert not [t for t in tracked if procs.is_alive(t.pid, t.start_time)]
    assert not core.STATE_FILE.exists() and not Path(temp_dir).exists()


def _recorded() -> tuple[list[procs.Tracked], str]:
    state = json.loads(core.STATE_FILE.read_text())
    return [procs.Tracked.from_json(p) for p in state["processes"]], state["temp_dir"]


@pytest.mark.lab
def test_lab_up_twice_is_idempotent(lab: dict[str, Any]) -> None:
    first = core.lab_up()
    again = core.lab_up()
    assert _pids(first) == _pids(again) == _pids(core.lab_status())


@pytest.mark.lab
def test_half_up_lab_is_rebuilt(lab: dict[str, Any]) -> None:
    before = core.lab_status()
    victim = before["devices"][0]["daemons"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 3
    while core.lab_status()["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert core.lab_status()["running"] is False
    after = core.lab_up()
    assert after["running"] is True
    assert all(x["alive"] for d in after["devices"] for x in d["daemons"])


@pytest.mark.lab
def test_lab_down_leaves_nothing(lab: dict[str, Any]) -> None:
    tracked, temp_dir = _recorded()
    try:
        core.lab_down()
        _assert_clean(tracked, temp_dir)
        assert core.lab_status()["running"] is False
    finally:
        core.lab_up()


@pytest.mark.lab
def test_lab_down_after_a_crash_without_state(lab: dict[str, Any]) -> None:
    tracked, temp_dir = _recorded()
    core.STATE_FILE.unlink()  # as if lab_up's process had died before writing it
    try:
        core.lab_down()
        _assert_clean(tracked, temp_dir)
    finally:
        core.lab_up()


if __name__ == "__main__":
    # Invoked by the ``seen`` fixture inside the scanner namespace: JOBS in, results out.
    print(json.dumps(run_jobs(json.loads(sys.argv[1]))))
