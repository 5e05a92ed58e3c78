"""Bring the lab up, report on it and tear it down, keeping a state file as the single record.

The state file names everything the lab made: namespaces, the temporary folder, and each daemon
as PID plus start time. Teardown trusts it only as far as it can check it (a PID whose start time
changed is someone else's), and does not need it at all to clean up after a crash: every
``iotr-*`` namespace and whatever runs inside one belongs to the lab by construction.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from iotrate.errors import LabError
from iotrate.lab import certs, host, netns, procs, scale, services
from iotrate.lab.table import (
    BRIDGE_NS,
    INSTANCE,
    SCANNER_NS,
    DeviceTable,
    device_rows,
    host_address,
    load_table,
    resolve_subnet,
)

STATE_DIR = Path(f"/run/iotrate-lab{'-' + INSTANCE if INSTANCE else ''}")
STATE_FILE = STATE_DIR / "state.json"
_LOCK_FILE = STATE_DIR / "lock"
PROFILES = ("reference", "hostile", "scale")
READY_TIMEOUT = 20.0
TEMP_PREFIX = f"iotrate-lab{INSTANCE}-"


@contextmanager
def _locked() -> Iterator[None]:
    """One lab operation at a time, so two ``lab up`` calls cannot build over each other."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with _LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_state() -> dict[str, Any] | None:
    try:
        data = json.loads(STATE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    tmp.replace(STATE_FILE)


def _tracked(state: dict[str, Any]) -> list[procs.Tracked]:
    return [procs.Tracked.from_json(p) for p in state.get("processes", [])]


def _profile(state: dict[str, Any] | None) -> str:
    """The running lab's profile; an unreadable one falls back to the reference table."""
    profile = state.get("profile") if state else None
    return profile if profile in PROFILES else "reference"


def _problems(state: dict[str, Any]) -> list[str]:
    """Why a recorded lab is not whole; an empty list means it runs as built."""
    problems = []
    if not state.get("complete"):
        problems.append("lab_up did not finish")
    present = set(netns.lab_namespaces())
    problems += [
        f"namespace {ns} is missing" for ns in state.get("namespaces", []) if ns not in present
    ]
    problems += [
        f"{t.device}/{t.daemon} (pid {t.pid}) is not running"
        for t in _tracked(state)
        if not procs.is_alive(t.pid, t.start_time)
    ]
    return problems


# ---------------------------------------------------------------------------------------------
# status


def _status(state: dict[str, Any] | None, net: ipaddress.IPv4Network) -> dict[str, Any]:
    if _profile(state) == "scale":
        return _scale_status(state, net)
    table = load_table(_profile(state))
    problems = _problems(state) if state is not None else []
    running = state is not None and not problems
    daemons: dict[str, list[dict[str, Any]]] = {}
    for t in _tracked(state) if state else []:
        daemons.setdefault(t.device, []).append(
            {"name": t.daemon, "pid": t.pid, "alive": procs.is_alive(t.pid, t.start_time)}
        )
    devices = []
    for row in device_rows(net, table.profile):
        declared = [{"name": d["name"], "pid": None, "alive": False} for d in row["daemons"]]
        row["daemon_packages"] = row.pop("daemons")
        row["daemons"] = daemons.get(row["name"], declared)
        devices.append(row)
    status: dict[str, Any] = {
        "running": running,
        "profile": state.get("profile", table.profile) if state else table.profile,
        "subnet": str(net),
        "scanner": {
            "namespace": SCANNER_NS,
            "address": host_address(net, table.scanner.host),
            "mac": table.scanner.mac,
        },
        "bridge_namespace": BRIDGE_NS,
        "ca_cert": state.get("ca_cert") if state else None,
        "temp_dir": state.get("temp_dir") if state else None,
        "state_file": str(STATE_FILE),
        "devices": devices,
    }
    if problems:
        status["problems"] = problems
    return status


def _scale_status(state: dict[str, Any] | None, net: ipaddress.IPv4Network) -> dict[str, Any]:
    """The scale profile has no device table file: its rows come from ``scale.plan``."""
    assert state is not None
    problems = _problems(state)
    size = state.get("scale", {})
    status: dict[str, Any] = {
        "running": not problems,
        "profile": "scale",
        "subnet": str(net),
        "bridge_namespace": BRIDGE_NS,
        "ca_cert": None,
        "temp_dir": state.get("temp_dir"),
        "state_file": str(STATE_FILE),
        "daemons": [
            {"name": t.daemon, "pid": t.pid, "alive": procs.is_alive(t.pid, t.start_time)}
            for t in _tracked(state)
        ],
        **scale.status_fields(net, int(size.get("hosts", 0)), str(size.get("link", "routed"))),
    }
    if problems:
        status["problems"] = problems
    return status


def lab_status() -> dict[str, Any]:
    state = _read_state()
    net = resolve_subnet(state["subnet"] if state else None)
    return _status(state, net)


def device_table() -> list[dict[str, Any]]:
    """The device table with addresses placed in the running lab's subnet, else the default."""
    state = _read_state()
    if state is not None and _profile(state) == "scale":
        status = _scale_status(state, resolve_subnet(state["subnet"]))
        rows: list[dict[str, Any]] = status["devices"]
        return rows
    return device_rows(resolve_subnet(state["subnet"] if state else None), _profile(state))


# ---------------------------------------------------------------------------------------------
# teardown


def _temp_dirs(state: dict[str, Any] | None) -> list[Path]:
    """The recorded temp dir, and any a crashed ``lab_up`` left before it could record one.

    Only one lab exists at a time (``lab_up`` holds the lock and tears down first), so every
    root-owned ``iotrate-lab-*`` folder in the temp dir is a leftover of ours.
    """
    found = [Path(state["temp_dir"])] if state and state.get("temp_dir") else []
    found += [
        p
        for p in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")
        if p.is_dir() and not p.is_symlink() and p.stat().st_uid == 0
    ]
    return [p for p in dict.fromkeys(found) if p.name.startswith(TEMP_PREFIX)]


def _teardown(state: dict[str, Any] | None) -> None:
    if state is not None:
        procs.stop(_tracked(state))
    # Whatever still runs in a lab namespace: children the state never knew (login sessions),
    # or every daemon when the state file is gone.
    namespaces = netns.lab_namespaces()
    leftovers = [pid for ns in namespaces for pid in netns.namespace_pids(ns)]
    if leftovers:
        procs.kill_pids(leftovers)
    for ns in namespaces:
        netns.destroy(ns)
    for stale in netns.stale_etc_dirs():
        shutil.rmtree(stale, ignore_errors=True)
    netns.remove_etc_root_if_empty()
    for work in _temp_dirs(state):
        shutil.rmtree(work, ignore_errors=True)
    STATE_FILE.unlink(missing_ok=True)
    left = netns.lab_namespaces()
    if left:
        raise LabError(f"could not delete lab namespaces: {' '.join(left)}")


def lab_down() -> None:
    host.require_root_on_linux()
    with _locked():
        _teardown(_read_state())
        _LOCK_FILE.unlink(missing_ok=True)
    try:
        STATE_DIR.rmdir()
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# bring-up


def listening_ports(namespace: str) -> set[tuple[str, int]]:
    """``(transport, port)`` of every listening TCP and bound UDP socket reachable in ``namespace``.

    Sockets bound to loopback are left out: a daemon's internal wake-up socket on 127.0.0.1 is
    not a port any other host can reach.
    """
    out = netns.run(["ss", "-N", namespace, "-H", "-l", "-n", "-t", "-u"])
    found = set()
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 5 or ":" not in cols[4]:
            continue
        address, port = cols[4].rsplit(":", 1)
        if address.startswith("127.") or address == "[::1]":
            continue
        found.add((cols[0], int(port)))
    return found


def _wait_ready(
    table: DeviceTable,
    plans: dict[str, services.Plan],
    started: dict[tuple[str, str], tuple[procs.Tracked, subprocess.Popen[bytes]]],
) -> None:
    want = {d.namespace: {(p.transport.value, p.port) for p in d.ports} for d in table.devices}
    ready_files = [ln.ready_file for p in plans.values() for ln in p.launches if ln.ready_file]
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        for (device, daemon), (tracked, proc) in started.items():
            if proc.poll() is not None:
                tail = Path(tracked.log).read_text(errors="replace").strip().splitlines()[-3:]
                raise LabError(
                    f"{device}/{daemon} exited with {proc.returncode}: {' | '.join(tail)}"
                )
        missing = {ns: ports - listening_ports(ns) for ns, ports in want.items()}
        missing = {ns: ports for ns, ports in missing.items() if ports}
        unready = [str(f) for f in ready_files if not f.exists()]
        if not missing and not unready:
            return
        if time.monotonic() > deadline:
            what = [f"{ns} {t}/{p}" for ns, ports in missing.items() for t, p in sorted(ports)]
            raise LabError(
                f"lab daemons not ready in {READY_TIMEOUT:.0f}s: {', '.join(what + unready)}"
            )
        time.sleep(0.05)


def _build(
    net: ipaddress.IPv4Network, profile: str, size: int = 0, link: str = "auto"
) -> dict[str, Any]:
    if profile == "scale":
        work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        record: dict[str, Any] = {"profile": profile, "subnet": str(net), "temp_dir": str(work)}
        record |= {"started_at": time.time(), "complete": False, "processes": []}
        return scale.build(net, size, link, work, record, _write_state, READY_TIMEOUT)
    table = load_table(profile)
    tools = host.find_tools()
    busybox = host.busybox_with_telnetd()
    temp_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    scanner = netns.Host(
        "scan", SCANNER_NS, host_address(net, table.scanner.host), table.scanner.mac
    )
    hosts = [scanner] + [
        netns.Host(d.name, d.namespace, host_address(net, d.host), d.mac) for d in table.devices
    ]
    state: dict[str, Any] = {
        "profile": profile,
        "subnet": str(net),
        "namespaces": [BRIDGE_NS, *(h.namespace for h in hosts)],
        "temp_dir": str(temp_dir),
        "started_at": time.time(),
        "complete": False,
        "processes": [],
    }
    # Recorded before anything exists, so a crash from here on is cleaned up by lab_down.
    _write_state(state)
    netns.build(net, hosts)
    if profile == "hostile":
        # The outside address is on-link for the scanner, so a scanner that wrongly follows a
        # redirect or LOCATION there shows on the bridge (an ARP request) instead of failing
        # unseen on "no route"; nothing answers it and the bridge leads nowhere.
        route = ["route", "add", f"{services.OUTSIDE_ADDRESS}/32", "dev", "eth0"]
        netns.run(["ip", "-n", SCANNER_NS, *route])
    ca = certs.make_ca(temp_dir / "ca")
    state["ca_cert"] = str(ca.cert)
    fake_shell = temp_dir / "bin" / "sh"
    fake_shell.parent.mkdir()
    fake_shell.write_text(services.FAKE_SHELL, encoding="utf-8")
    fake_shell.chmod(0o755)
    ctx = services.Context(
        tmp=temp_dir,
        tools=tools,
        busybox=busybox,
        ca=ca,
        addresses={h.name: h.address for h in hosts},
        fake_shell=fake_shell,
    )
    with ThreadPoolExecutor(max_workers=len(table.devices)) as pool:
        plans = dict(
            zip(
                [d.name for d in table.devices],
                pool.map(lambda d: services.plan(ctx, d), table.devices),
                strict=True,
            )
        )
    logs = temp_dir / "logs"
    logs.mkdir()
    started: dict[tuple[str, str], tuple[procs.Tracked, subprocess.Popen[bytes]]] = {}
    for plan in plans.values():
        for launch in plan.launches:
            log = logs / f"{launch.device}-{launch.daemon}.log"
            env = {**os.environ, **launch.env}
            tracked, proc = procs.spawn(launch.device, launch.daemon, launch.argv, log, env)
            started[(launch.device, launch.daemon)] = (tracked, proc)
            # Recorded one by one, so even a SIGKILL mid-way leaves every PID on file.
            state["processes"].append(tracked.to_json())
            _write_state(state)
    _wait_ready(table, plans, started)
    for plan in plans.values():
        for argv in plan.after_ready:
            netns.run(argv)
    state["complete"] = True
    state["ready_at"] = time.time()
    _write_state(state)
    return state


def lab_up(
    subnet: str | None = None,
    profile: str = "reference",
    hosts: int | None = None,
    link: str = "auto",
) -> dict[str, Any]:
    if profile not in PROFILES:
        raise LabError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if profile != "scale" and (hosts is not None or link != "auto"):
        raise LabError("--hosts and --link belong to the scale profile")
    net = resolve_subnet(subnet)
    count = hosts or scale.DEFAULT_HOSTS
    if profile == "scale":
        scale.check_size(net, count)
        link = scale.choose_link(count, link)
    size: dict[str, Any] = {"hosts": count, "link": link}
    host.require_root_on_linux()
    with _locked():
        state = _read_state()
        if state is not None and not _problems(state):
            if state.get("subnet") != str(net) and subnet is not None:
                raise LabError(
                    f"the lab already runs on {state['subnet']}; run `iotrate lab down` first"
                )
            if state.get("profile") != profile:
                raise LabError(
                    f"the lab already runs profile {state.get('profile')}; "
                    "run `iotrate lab down` first"
                )
            if profile == "scale" and state.get("scale") != size and hosts is not None:
                raise LabError(
                    f"the scale lab already runs {state.get('scale')}; run `iotrate lab down` first"
                )
            return _status(state, resolve_subnet(state["subnet"]))
        if state is not None or netns.lab_namespaces() or netns.stale_etc_dirs():
            _teardown(state)  # half-up or crashed: start clean
        try:
            state = _build(net, profile, count, link)
        except BaseException as exc:
            try:
                _teardown(_read_state())
            except LabError:
                pass
            if isinstance(exc, LabError):
                raise
            if isinstance(exc, Exception):
                raise LabError(f"lab_up failed: {exc}") from exc
            raise
        return _status(state, net)


def lab_exec(cmd: list[str]) -> int:
    """Run ``cmd`` inside the scanner namespace: the only place lab traffic may come from."""
    host.require_root_on_linux()
    if not cmd:
        raise LabError("lab exec needs a command")
    if SCANNER_NS not in netns.lab_namespaces():
        raise LabError("the lab is not running; run `iotrate lab up` first")
    try:
        return subprocess.call(["ip", "netns", "exec", SCANNER_NS, *cmd])
    except OSError as exc:
        raise LabError(f"lab exec: {exc}") from exc
