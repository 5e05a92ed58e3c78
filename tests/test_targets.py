"""Target parsing and the refusals that keep iotrate off networks that are not the user's.

None of these tests opens a socket: refusals must happen before any packet exists."""

from __future__ import annotations

import pytest

from iotrate.errors import TargetRefused, UsageError
from iotrate.models import TargetKind
from iotrate.targets import DEFAULT_MAX_HOSTS, resolve_targets


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
