"""Per-device configuration: the files each daemon reads and the command line that starts it.

Every value that a test or a doc checks (credentials, banners, names) comes from
``devices.yaml``; this module only turns those values into each daemon's own config syntax.
Daemons run in the foreground, are started through ``ip netns exec`` and a small wrapper that
gives each device its own host name (a UTS namespace), and every wrapper execs, so the PID we
record is the daemon's.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotrate.errors import LabError
from iotrate.lab import certs
from iotrate.lab.netns import run, write_etc
from iotrate.lab.table import LabDevice

DEBIAN_PYTHON = "/usr/bin/python3"
_HERE = Path(__file__).resolve().parent

# The login shell of every lab account that has a password. It prints a BusyBox banner and a
# prompt and reads lines into a variable it never uses: a login "works" but runs nothing.
FAKE_SHELL = """\
#!/bin/sh
# iotrate lab fake shell: looks like BusyBox ash, discards every line, never runs anything.
trap '' INT QUIT TSTP
printf '\\n\\nBusyBox v1.19.4 (2015-03-27 10:34:32 CST) built-in shell (ash)\\n'
printf "Enter 'help' for a list of built-in commands.\\n\\n"
while printf '# '; IFS= read -r line; do :; done
exit 0
"""

# Gives the daemon its device's host name (login prompts, SNMP sysName) and then execs it.
_HOSTNAME_WRAPPER = 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"'


@dataclass(frozen=True)
class Launch:
    """One daemon to start: where, how, and what proves it is ready besides its ports."""

    device: str
    daemon: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_file: Path | None = None


@dataclass(frozen=True)
class Plan:
    """What a device needs: daemons to start, then commands to run once they listen."""

    launches: list[Launch]
    after_ready: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    tmp: Path
    tools: dict[str, str]
    busybox: Path
    ca: certs.KeyPair
    addresses: dict[str, str]
    fake_shell: Path

    def workdir(self, device: LabDevice) -> Path:
        path = self.tmp / device.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def address(self, device: LabDevice) -> str:
        return self.addresses[device.name]

    def launch(
        self,
        device: LabDevice,
        daemon: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        ready_file: Path | None = None,
    ) -> Launch:
        hostname = str(device.settings.get("hostname", device.name))
        full = [
            self.tools["ip"], "netns", "exec", device.namespace,
            self.tools["unshare"], "--uts", "--", "/bin/sh", "-c", _HOSTNAME_WRAPPER, hostname,
            *argv,
        ]  # fmt: skip
        return Launch(device.name, daemon, full, env or {}, ready_file)


def _setting(device: LabDevice, key: str) -> Any:
    try:
        return device.settings[key]
    except KeyError:
        raise LabError(f"devices.yaml: {device.name} lacks settings.{key}") from None


def _credential(device: LabDevice, service: str) -> tuple[str, str]:
    """``(username, secret)``; an SNMP community is a secret without a user name."""
    for cred in device.credentials:
        if cred.service == service and cred.password is not None:
            return cred.username or "", cred.password
    raise LabError(f"devices.yaml: {device.name} lacks a {service} credential")


def _tcp_port(device: LabDevice, daemon: str) -> int:
    for spec in device.ports_of(daemon):
        if spec.transport == "tcp":
            return spec.port
    raise LabError(f"devices.yaml: {device.name}/{daemon} has no TCP port")


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _accounts(ctx: Context, device: LabDevice, user: str, password: str) -> None:
    """Per-namespace /etc/{passwd,shadow,group,shells,motd}: one login, into the fake shell.

    System accounts are kept (daemons such as mosquitto drop privileges to theirs) but locked and
    given nologin; the login user is the only one with a password and a valid shell.
    """
    shell = ctx.fake_shell
    salt = secrets.token_hex(8)
    hashed = run([ctx.tools["openssl"], "passwd", "-6", "-salt", salt, password]).strip()
    passwd = [f"{user}:x:0:0:{user}:/root:{shell}"]
    shadow = [f"{user}:{hashed}:19000:0:99999:7:::"]
    for line in Path("/etc/passwd").read_text(encoding="utf-8").splitlines():
        parts = line.split(":")
        if len(parts) != 7 or parts[0] == user or int(parts[2]) == 0:
            continue
        if int(parts[2]) < 1000 or int(parts[2]) == 65534:
            parts[6] = "/usr/sbin/nologin"
            passwd.append(":".join(parts))
            shadow.append(f"{parts[0]}:*:19000:0:99999:7:::")
    groups = [
        line
        for line in Path("/etc/group").read_text(encoding="utf-8").splitlines()
        if line.count(":") == 3
        and (int(line.split(":")[2]) < 1000 or line.split(":")[2] == "65534")
    ]
    write_etc(
        device.namespace,
        {
            "passwd": "\n".join(passwd) + "\n",
            "shadow": "\n".join(shadow) + "\n",
            "group": "\n".join(groups) + "\n",
            "shells": f"{shell}\n",
            "motd": "",
        },
    )


def _lighttpd_conf(
    directory: Path, address: str, port: int, tag: str, body: list[str], modules: list[str]
) -> Path:
    mods = ", ".join(f'"{m}"' for m in modules)
    lines = [
        f"server.modules = ({mods})",
        f'server.document-root = "{directory / "www"}"',
        f'server.bind = "{address}"',
        f"server.port = {port}",
        f'server.tag = "{tag}"',
        f'server.upload-dirs = ("{directory}")',
        'index-file.names = ("index.html")',
        'mimetype.assign = ("eureka_info" => "application/json", '
        '"/info" => "application/x-apple-binary-plist", ".html" => "text/html", '
        '".json" => "application/json", ".png" => "image/png")',
        *body,
    ]
    return _write(directory / "lighttpd.conf", "\n".join(lines) + "\n")


def _lighttpd(ctx: Context, device: LabDevice, conf: Path) -> Launch:
    return ctx.launch(device, "lighttpd", [ctx.tools["lighttpd"], "-D", "-f", str(conf)])


def _tv(ctx: Context, dev: LabDevice) -> Plan:
    addr = ctx.address(dev)
    banner = (
        f"device::ro.product.name={_setting(dev, 'adb_product_name')};"
        f"ro.product.model={_setting(dev, 'adb_product_model')};"
        f"ro.product.device={_setting(dev, 'adb_product_device')};"
        f"features={_setting(dev, 'adb_features')}"
    )
    renderer = [
        ctx.tools["gmediarender"], "-I", "eth0", "-p", str(_tcp_port(dev, "gmediarender")),
        "-f", str(_setting(dev, "friendly_name")), "-u", str(_setting(dev, "uuid")),
        "--gstout-audiosink=fakesink", "--gstout-videosink=fakesink",
    ]  # fmt: skip
    adb = [
        sys.executable, "-m", "iotrate.lab.adb_emulator", "--address", addr,
        "--port", str(_tcp_port(dev, "adb-emulator")), "--banner", banner,
    ]  # fmt: skip
    return Plan([ctx.launch(dev, "gmediarender", renderer), ctx.launch(dev, "adb-emulator", adb)])


def _fridge(ctx: Context, dev: LabDevice) -> Plan:
    addr, work = ctx.address(dev), ctx.workdir(dev)
    _accounts(ctx, dev, *_credential(dev, "telnet"))
    issue = _write(work / "issue.net", "\nLG Smart Refrigerator\n\n")
    # BusyBox's own login, as on the real thing: no PAM, so no host motd scripts run at login.
    login = work / "login"
    login.symlink_to(ctx.busybox)
    web_user, web_password = _credential(dev, "http-basic")
    users = _write(work / "lighttpd.users", f"{web_user}:{web_password}\n", 0o600)
    _write(work / "www" / "index.html", _page("LG SmartThinQ", "Refrigerator status"))
    auth = [
        'auth.backend = "plain"',
        f'auth.backend.plain.userfile = "{users}"',
        f'auth.require = ("/" => ("method" => "basic", "realm" => "{_setting(dev, "http_realm")}",'
        ' "require" => "valid-user"))',
    ]
    web = _lighttpd_conf(
        work, addr, 80, _setting(dev, "http_server_tag"), auth, ["mod_auth", "mod_authn_file"]
    )
    mqtt = _write(
        work / "mosquitto.conf",
        f"listener 1883 {addr}\nallow_anonymous true\npersistence false\nlog_dest stdout\n",
    )
    telnetd = [
        str(ctx.busybox), "telnetd", "-F", "-b", f"{addr}:23", "-l", str(login), "-f", str(issue),
    ]  # fmt: skip
    publish = [
        [
            ctx.tools["ip"], "netns", "exec", dev.namespace, ctx.tools["mosquitto_pub"],
            "-h", addr, "-p", "1883", "-q", "1", "-r", "-t", topic, "-m", str(value),
        ]
        for topic, value in dict(_setting(dev, "mqtt_retained")).items()
    ]  # fmt: skip
    return Plan(
        [
            ctx.launch(dev, "telnetd", telnetd),
            _lighttpd(ctx, dev, web),
            ctx.launch(dev, "mosquitto", [ctx.tools["mosquitto"], "-c", str(mqtt)]),
        ],
        after_ready=publish,
    )


def _camera(ctx: Context, dev: LabDevice) -> Plan:
    addr, work = ctx.address(dev), ctx.workdir(dev)
    _accounts(ctx, dev, *_credential(dev, "ssh"))
    hostkey = work / "dropbear_ed25519_host_key"
    run([ctx.tools["dropbearkey"], "-t", "ed25519", "-f", str(hostkey)])
    _write(work / "www" / "index.html", _page("Login", "Network Camera: please log in"))
    web = _lighttpd_conf(work, addr, 80, _setting(dev, "http_server_tag"), [], [])
    sshd = [
        ctx.tools["dropbear"], "-F", "-E", "-p", f"{addr}:22", "-r", str(hostkey),
        "-P", str(work / "dropbear.pid"),
    ]  # fmt: skip
    rtsp = [
        DEBIAN_PYTHON, str(_HERE / "rtsp_server.py"), "--address", addr,
        "--port", str(_tcp_port(dev, "rtsp-server")), "--path", str(_setting(dev, "rtsp_path")),
    ]  # fmt: skip
    # Anonymous FTP, read-only, as cameras offer for their recordings; vsftpd wants a root-owned
    # anonymous root and an empty root-owned secure_chroot_dir.
    ftp_root, empty = work / "ftp", work / "ftp-empty"
    (ftp_root / "recordings").mkdir(parents=True, exist_ok=True)
    empty.mkdir(exist_ok=True)
    for d in (ftp_root, ftp_root / "recordings", empty):
        d.chmod(0o755)
    _write(ftp_root / "recordings" / "20260101-000000.txt", "motion event\n")
    ftp_conf = _write(
        work / "vsftpd.conf",
        "\n".join(
            [
                "listen=YES",
                "listen_ipv6=NO",
                f"listen_address={addr}",
                f"listen_port={_tcp_port(dev, 'vsftpd')}",
                "background=NO",
                "anonymous_enable=YES",
                "local_enable=NO",
                "write_enable=NO",
                f"anon_root={ftp_root}",
                f"secure_chroot_dir={empty}",
                "seccomp_sandbox=NO",
                "xferlog_enable=NO",
                f"ftpd_banner={_setting(dev, 'ftp_banner')}",
                "",
            ]
        ),
    )
    return Plan(
        [
            ctx.launch(dev, "dropbear", sshd),
            ctx.launch(dev, "rtsp-server", rtsp),
            _lighttpd(ctx, dev, web),
            ctx.launch(dev, "vsftpd", [ctx.tools["vsftpd"], str(ftp_conf)]),
        ]
    )


def _hub(ctx: Context, dev: LabDevice) -> Plan:
    addr, work = ctx.address(dev), ctx.workdir(dev)
    pair = certs.make_expired(
        work,
        "hub",
        _setting(dev, "tls_subject"),
        1024,
        _setting(dev, "cert_not_before"),
        _setting(dev, "cert_not_after"),
    )
    _, community = _credential(dev, "snmp")
    snmp_dir = work / "snmp"
    snmp_dir.mkdir(exist_ok=True)
    conf = _write(
        work / "snmpd.conf",
        f"agentAddress udp:{addr}:161\n"
        f"rocommunity {community} default\n"
        # sysContact is left out of the file: snmpd makes a configured value read-only, and
        # the write community must really write (svc.snmp.write sets it back unchanged).
        f"rwcommunity {_setting(dev, 'snmp_write_community')} default .1.3.6.1.2.1.1\n"
        f"sysDescr {_setting(dev, 'snmp_sys_descr')}\n"
        f"sysName {_setting(dev, 'hostname')}\n"
        "sysLocation Living room\n"
        "sysServices 72\n",
    )
    tls = [
        ctx.tools["openssl"], "s_server", "-accept", f"{addr}:443",
        "-cert", str(pair.cert), "-key", str(pair.key),
        "-cipher", "ALL:@SECLEVEL=0", "-min_protocol", "TLSv1", "-max_protocol", "TLSv1.2",
        "-www", "-quiet",
    ]  # fmt: skip
    # -I -smux: without it snmpd also opens TCP 199, which the device table does not list.
    snmpd = [
        ctx.tools["snmpd"], "-f", "-Lo", "-C", "-c", str(conf), "-I", "-smux",
        "-p", str(work / "snmpd.pid"),
    ]  # fmt: skip
    env = {"SNMP_PERSISTENT_DIR": str(snmp_dir), "MIBS": ""}
    return Plan(
        [
            ctx.launch(dev, "s_server", tls),
            ctx.launch(dev, "snmpd", snmpd, env=env),
            _web_ui(ctx, dev),
        ]
    )


def _web_ui(ctx: Context, dev: LabDevice) -> Launch:
    """The device's web admin UI with a form login (iotrate/lab/web_ui.py)."""
    user, password = _credential(dev, "http-form")
    argv = [
        sys.executable, "-m", "iotrate.lab.web_ui", "--address", ctx.address(dev),
        "--port", str(_tcp_port(dev, "web-ui")), "--user", user, "--password", password,
        "--title", str(_setting(dev, "web_title")), "--lockout", str(_setting(dev, "web_lockout")),
    ]  # fmt: skip
    return ctx.launch(dev, "web-ui", argv)


def _router(ctx: Context, dev: LabDevice) -> Plan:
    return Plan([_web_ui(ctx, dev)])


def _speaker(ctx: Context, dev: LabDevice) -> Plan:
    addr, work = ctx.address(dev), ctx.workdir(dev)
    ports = {p.service: p.port for p in dev.ports}
    cast_id = str(_setting(dev, "cast_id"))
    udn = f"{cast_id[:8]}-{cast_id[8:12]}-{cast_id[12:16]}-{cast_id[16:20]}-{cast_id[20:]}"
    name = str(_setting(dev, "friendly_name"))
    airplay_tag = str(_setting(dev, "airplay_server_tag"))
    mac = dev.mac.upper()
    tls = certs.make_self_signed(work, "cast", f"/CN={cast_id}", 2)
    eureka = {
        "build_version": dev.firmware,
        "cast_build_revision": dev.firmware,
        "name": name,
        "mac_address": mac,
        "ip_address": addr,
        "ssdp_udn": udn,
        "uptime": 86400.5,
        "version": 12,
        "device_info": {"manufacturer": dev.vendor, "product_name": "google_home_mini"},
    }
    _write(work / "www" / "setup" / "eureka_info", json.dumps(eureka, indent=1) + "\n")
    _write(work / "www" / "index.html", "")
    airplay_root = work / "airplay"
    _write(airplay_root / "info", "")
    _write(airplay_root / "index.html", "")
    sockets = [
        f'$SERVER["socket"] == "{addr}:{ports["cast-tls"]}" {{',
        f'  ssl.engine = "enable"\n  ssl.pemfile = "{tls.cert}"\n  ssl.privkey = "{tls.key}"',
        "}",
        f'$SERVER["socket"] == "{addr}:{ports["airplay"]}" {{',
        f'  server.tag = "{airplay_tag}"\n  server.document-root = "{airplay_root}"',
        "}",
    ]
    web = _lighttpd_conf(work, addr, ports["http"], "", sockets, ["mod_openssl"])
    cast_txt = {
        "id": cast_id,
        "cd": _setting(dev, "cast_cd"),
        "rm": "",
        "ve": "05",
        "md": dev.model,
        "ic": "/setup/icon.png",
        "fn": name,
        "ca": "199172",
        "st": "0",
        "bs": "FA8FCA" + mac.replace(":", "")[6:],
        "nf": "1",
        "rs": "",
    }
    airplay_txt = {
        "deviceid": mac,
        "features": "0x445F8A00,0x1C340",
        "flags": "0x4",
        "model": dev.model.replace(" ", ""),
        "manufacturer": dev.vendor,
        "srcvers": airplay_tag.split("/", 1)[1],
        "protovers": "1.1",
        "acl": "0",
        "pi": udn,
        "vv": "2",
    }
    services = [
        {
            "type": "_googlecast._tcp.local.",
            "instance": f"{dev.model.replace(' ', '-')}-{cast_id}",
            "port": ports["cast-tls"],
            "txt": cast_txt,
        },
        {
            "type": "_airplay._tcp.local.",
            "instance": name,
            "port": ports["airplay"],
            "txt": airplay_txt,
        },
    ]
    mdns_conf = _write(
        work / "mdns.json", json.dumps({"hostname": cast_id, "services": services}, indent=1)
    )
    ready = work / "mdns.ready"
    mdns = [
        sys.executable, "-m", "iotrate.lab.mdns_responder", "--address", addr,
        "--config", str(mdns_conf), "--ready", str(ready),
    ]  # fmt: skip
    return Plan(
        [ctx.launch(dev, "mdns-responder", mdns, ready_file=ready), _lighttpd(ctx, dev, web)]
    )


def _plug(ctx: Context, dev: LabDevice) -> Plan:
    addr, work = ctx.address(dev), ctx.workdir(dev)
    pair = certs.make_leaf(work, "plug", _setting(dev, "tls_subject"), addr, ctx.ca)
    _write(work / "www" / "index.html", "")
    tls = [
        'ssl.engine = "enable"',
        f'ssl.pemfile = "{pair.cert}"',
        f'ssl.privkey = "{pair.key}"',
        'ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "TLSv1.2", '
        '"CipherString" => "ECDHE+AESGCM:ECDHE+CHACHA20", "Options" => "ServerPreference")',
    ]
    web = _lighttpd_conf(work, addr, 443, "", tls, ["mod_openssl"])
    return Plan([_lighttpd(ctx, dev, web)])


def _page(title: str, heading: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
        f"<body><h1>{heading}</h1></body></html>\n"
    )


BUILDERS: dict[str, Callable[[Context, LabDevice], Plan]] = {
    "tv": _tv,
    "fridge": _fridge,
    "camera": _camera,
    "hub": _hub,
    "speaker": _speaker,
    "plug": _plug,
    "router": _router,
}


#: Where the hostile devices point redirects and SSDP LOCATIONs that leave the targets: a
#: documentation address (RFC 5737) that no lab namespace has a route to, so a scanner that
#: followed one would fail with "unreachable", and the traffic test would see it try.
OUTSIDE_ADDRESS = "198.51.100.7"


def _hostile(ctx: Context, dev: LabDevice) -> Plan:
    behaviours = _setting(dev, "behaviours")
    argv = [
        sys.executable, "-m", "iotrate.lab.hostile_devices", "--address", ctx.address(dev),
        "--outside", OUTSIDE_ADDRESS, *(f"{k}={v}" for k, v in behaviours.items()),
    ]  # fmt: skip
    return Plan([ctx.launch(dev, "hostile", argv)])


def plan(ctx: Context, device: LabDevice) -> Plan:
    if [d.name for d in device.daemons] == ["hostile"]:
        return _hostile(ctx, device)
    try:
        builder = BUILDERS[device.name]
    except KeyError:
        raise LabError(f"no configuration builder for lab device {device.name!r}") from None
    return builder(ctx, device)
