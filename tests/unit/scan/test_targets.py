"""Target parsing and the refusals that keep iotrate off networks that are not the user's.

None of these tests opens a socket: refusals must happen before any packet exists. The CLI
tests at the end run ``iotrate scan`` inside an empty network namespace and count its packets."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.executables import IOTRATE
from support.hosts import lo_tx_packets

from iotrate.errors import TargetRefused, UsageError
from iotrate.models import TargetKind
from iotrate.targets import (
    ALLOW_LIST_ENV,
    DEFAULT_MAX_HOSTS,
    allow_list_from_env,
    load_allow_list,
    resolve_targets,
)


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"resolver must not be called for {name}")


@pytest.mark.parametrize(
    "spec",
    ["8.8.8.0/24", "8.8.8.8", "1.1.1.1-1.1.1.5", "2001:4860:4860::8888", "172.32.0.1"],
)
def test_public_targets_are_refused(spec: str) -> None:
    with pytest.raises(TargetRefused, match="public"):
        resolve_targets([spec], resolver=no_dns)


def test_public_allowed_with_opt_in() -> None:
    ts = resolve_targets(["8.8.8.8"], allow_public=True, resolver=no_dns)
    assert ts.hosts() == ["8.8.8.8"]


@pytest.mark.parametrize("spec", ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/21", "fd00::/64"])
def test_ranges_larger_than_a_22_are_refused(spec: str) -> None:
    with pytest.raises(TargetRefused, match="more than 1024"):
        resolve_targets([spec], resolver=no_dns)


def test_max_hosts_opt_in_allows_a_bigger_range() -> None:
    ts = resolve_targets(["10.0.0.0/21"], max_hosts=2046, resolver=no_dns)
    assert ts.size == 2046
    assert len(ts.hosts()) == 2046


def test_a_22_is_the_default_limit() -> None:
    ts = resolve_targets(["10.1.0.0/22"], resolver=no_dns)
    assert ts.size == DEFAULT_MAX_HOSTS - 2
    with pytest.raises(TargetRefused):
        resolve_targets(["10.1.0.0/22", "10.2.0.0/24"], resolver=no_dns)


def test_network_straddling_public_space_is_refused() -> None:
    # 172.31.255.0/23 would be 172.31.254.0/23 (private); 172.31.255.0-172.32.0.255 straddles.
    with pytest.raises(TargetRefused, match="public"):
        resolve_targets(["172.31.255.0-172.32.0.10"], resolver=no_dns)


def test_forms_expand_to_hosts() -> None:
    ts = resolve_targets(
        ["10.0.0.0/30", "10.0.1.5-7", "10.0.2.1-10.0.2.2", "127.0.0.1"], resolver=no_dns
    )
    kinds = [t.kind for t in ts.targets]
    assert kinds == [TargetKind.NETWORK, TargetKind.RANGE, TargetKind.RANGE, TargetKind.ADDRESS]
    assert ts.hosts() == [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.1.5",
        "10.0.1.6",
        "10.0.1.7",
        "10.0.2.1",
        "10.0.2.2",
        "127.0.0.1",
    ]


def test_hostname_resolves_then_is_vetted() -> None:
    ts = resolve_targets(["camera.local"], resolver=lambda n: ["192.168.1.20"])
    assert ts.hosts() == ["192.168.1.20"]
    with pytest.raises(TargetRefused, match="public"):
        resolve_targets(["evil.example"], resolver=lambda n: ["93.184.216.34"])


@pytest.mark.parametrize("spec", ["", "10.0.0.300", "10.0.0.9-3", "not a host!", "10.0.0.0/33"])
def test_malformed_targets_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        resolve_targets([spec], resolver=lambda n: [])


@pytest.mark.parametrize("spec", ["224.0.0.251", "0.0.0.0", "255.255.255.255"])
def test_special_addresses_are_refused(spec: str) -> None:
    with pytest.raises(TargetRefused):
        resolve_targets([spec], resolver=no_dns)


def test_duplicates_are_scanned_once() -> None:
    ts = resolve_targets(["10.0.0.1", "10.0.0.0/30"], resolver=no_dns)
    assert ts.hosts() == ["10.0.0.1", "10.0.0.2"]


def test_excluded_hosts_are_never_listed() -> None:
    ts = resolve_targets(["10.0.0.0/29"], exclude=["10.0.0.2", "10.0.0.4/31"], resolver=no_dns)
    assert ts.hosts() == ["10.0.0.1", "10.0.0.3", "10.0.0.6"]
    with pytest.raises(UsageError, match="invalid --exclude"):
        resolve_targets(["10.0.0.1"], exclude=["nope"], resolver=no_dns)


# -- the lab allow-list ---------------------------------------------------------------------------


def allow_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "allow.txt"
    path.write_text(text, encoding="utf-8")
    return path


LAB_LIST = """# DUT network of lab 3 (public space, ours)
81.2.69.0/25   # bench A
81.2.69.128/25
10.20.0.5

"""


def test_allow_list_file_is_read_with_comments(tmp_path: Path) -> None:
    allow = load_allow_list(allow_file(tmp_path, LAB_LIST))
    assert [str(n) for n in allow.networks] == [
        "81.2.69.0/25",
        "81.2.69.128/25",
        "10.20.0.5/32",
    ]
    assert allow.source.endswith("allow.txt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/24\nnot-an-address\n", "line 2: not an address"),
        ("0.0.0.0/0\n", "wider than /8"),
        ("2000::/3\n", "wider than /32"),
        ("# only a comment\n\n", "lists no address"),
    ],
)
def test_a_bad_allow_list_stops_the_scan(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_allow_list(allow_file(tmp_path, text))


def test_a_missing_allow_list_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the allow-list"):
        load_allow_list(tmp_path / "nope.txt")


def test_public_space_inside_the_allow_list_needs_no_opt_in(tmp_path: Path) -> None:
    allow = load_allow_list(allow_file(tmp_path, LAB_LIST))
    with pytest.raises(TargetRefused, match="public"):  # public indeed: refused without the list
        resolve_targets(["81.2.69.0/24"], resolver=no_dns)
    # A /24 covered by two /25s, an address and a range inside it.
    ts = resolve_targets(
        ["81.2.69.0/24", "81.2.69.7", "81.2.69.120-81.2.69.130", "10.20.0.5"],
        allow_list=allow,
        resolver=no_dns,
    )
    assert len(ts.hosts()) == 254 + 1
    ts = resolve_targets(["dut.lab"], allow_list=allow, resolver=lambda n: ["81.2.69.9"])
    assert ts.hosts() == ["81.2.69.9"]


@pytest.mark.parametrize(
    "spec", ["81.2.68.0/23", "10.20.0.4/31", "10.20.0.6", "192.168.1.1", "8.8.8.8"]
)
def test_targets_outside_the_allow_list_are_refused(tmp_path: Path, spec: str) -> None:
    allow = load_allow_list(allow_file(tmp_path, LAB_LIST))
    with pytest.raises(TargetRefused, match="not inside the allow-list"):
        resolve_targets([spec], allow_list=allow, allow_public=True, resolver=no_dns)


def test_the_allow_list_does_not_lift_the_other_rules(tmp_path: Path) -> None:
    allow = load_allow_list(allow_file(tmp_path, "10.0.0.0/8\n224.0.0.0/8\n"))
    with pytest.raises(TargetRefused, match="more than 1024"):
        resolve_targets(["10.0.0.0/16"], allow_list=allow, resolver=no_dns)
    with pytest.raises(TargetRefused, match="multicast"):
        resolve_targets(["224.0.0.251"], allow_list=allow, resolver=no_dns)
    with pytest.raises(TargetRefused, match=r"\(81\.2\.69\.9 is not\)"):
        resolve_targets(["dut.lab"], allow_list=allow, resolver=lambda n: ["81.2.69.9"])


def test_allow_list_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_LIST_ENV, raising=False)
    assert allow_list_from_env() is None
    monkeypatch.setenv(ALLOW_LIST_ENV, str(allow_file(tmp_path, LAB_LIST)))
    allow = allow_list_from_env()
    assert allow is not None and len(allow.networks) == 3


# -- the refusal comes before any packet: the CLI in an empty network namespace ---------------


def _scan_in(ns: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        ["ip", "netns", "exec", ns, IOTRATE, "scan", *args, "--no-history"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_cli_refuses_outside_the_allow_list_before_any_packet(
    empty_netns: str, tmp_path: Path
) -> None:
    path = allow_file(tmp_path, LAB_LIST)
    before = lo_tx_packets(empty_netns)
    res = _scan_in(empty_netns, "10.9.9.0/24", "--allow-list", str(path))
    assert res.returncode == 2, res.stderr
    assert f"refusing 10.9.9.0/24: not inside the allow-list {path}" in res.stderr
    env = {**os.environ, ALLOW_LIST_ENV: str(path)}  # the standing rule of a lab machine
    res = _scan_in(empty_netns, "127.0.0.1", env=env)
    assert res.returncode == 2 and "not inside the allow-list" in res.stderr, res.stderr
    bad = _scan_in(empty_netns, "10.20.0.5", "--allow-list", str(tmp_path / "missing.txt"))
    assert bad.returncode == 2 and "cannot read the allow-list" in bad.stderr
    assert "Traceback" not in res.stderr + bad.stderr
    assert lo_tx_packets(empty_netns) == before


def test_cli_scans_public_space_the_allow_list_approves(empty_netns: str, tmp_path: Path) -> None:
    """No --allow-public needed; the namespace has no route, so nothing can leave it."""
    path = allow_file(tmp_path, LAB_LIST)
    res = _scan_in(empty_netns, "81.2.69.7", "--allow-list", str(path), "--ports", "80", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["devices"] == []
    assert "refusing" not in res.stderr
