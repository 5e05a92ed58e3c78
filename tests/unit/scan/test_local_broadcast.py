"""The broadcast (and network) address of a subnet this machine is on is refused like
255.255.255.255 (issue 17, finding 9): x.x.x.255 of a /24 reaches every host on it. Fed fake
interface tables, and the loopback /8 of the namespace the test runs in; nothing is sent."""

from __future__ import annotations

import ipaddress

import pytest

from iotrate.errors import TargetRefused
from iotrate.netinfo import broadcasts_from_table, local_broadcasts
from iotrate.targets import resolve_targets

TABLE = [
    {
        "ifname": "lo",
        "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}],
    },
    {
        "ifname": "wlan0",
        "addr_info": [
            {
                "family": "inet",
                "local": "192.168.1.37",
                "prefixlen": 24,
                "broadcast": "192.168.1.255",
            },
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
        ],
    },
    {
        "ifname": "ptp0",
        "addr_info": [{"family": "inet", "local": "10.9.8.7", "prefixlen": 31}],
    },
]
BROADCASTS = broadcasts_from_table(TABLE)


def no_dns(name: str) -> list[str]:
    raise AssertionError(f"resolver must not be called for {name}")


def test_the_table_gives_each_subnets_broadcast_and_network_address() -> None:
    assert {str(a) for a in BROADCASTS} == {
        "127.255.255.255",
        "127.0.0.0",
        "192.168.1.255",
        "192.168.1.0",
    }
    assert "192.168.1.0/24 on wlan0" in BROADCASTS[ipaddress.IPv4Address("192.168.1.255")]


@pytest.mark.parametrize(
    "spec", ["192.168.1.255", "192.168.1.0", "127.255.255.255", "192.168.1.254-255"]
)
def test_a_local_broadcast_target_is_refused(spec: str) -> None:
    with pytest.raises(TargetRefused, match=r"(broadcast|network) address"):
        resolve_targets([spec], resolver=no_dns, broadcasts=BROADCASTS)


def test_a_hostname_resolving_to_it_is_refused() -> None:
    with pytest.raises(TargetRefused, match=r"broadcast address of 192\.168\.1\.0/24"):
        resolve_targets(
            ["printer.lan"], resolver=lambda n: ["192.168.1.255"], broadcasts=BROADCASTS
        )


def test_a_wider_range_skips_it() -> None:
    ts = resolve_targets(["192.168.0.0/23"], resolver=no_dns, broadcasts=BROADCASTS)
    hosts = ts.hosts()
    assert "192.168.1.255" not in hosts and "192.168.1.0" not in hosts
    assert "192.168.0.255" in hosts and "192.168.1.1" in hosts
    ranged = resolve_targets(["192.168.1.200-255"], resolver=no_dns, broadcasts=BROADCASTS)
    assert ranged.hosts()[-1] == "192.168.1.254"


def test_other_addresses_still_pass() -> None:
    ts = resolve_targets(["192.168.2.255", "10.9.8.6"], resolver=no_dns, broadcasts=BROADCASTS)
    assert ts.hosts() == ["192.168.2.255", "10.9.8.6"]


def test_the_real_table_is_read_by_default() -> None:
    """This namespace's loopback is a /8 on ``lo``: its broadcast is refused without any table
    being passed, and 127.0.0.1 (what the tests scan) is not."""
    real = local_broadcasts()
    if ipaddress.IPv4Address("127.255.255.255") not in real:
        pytest.fail(f"no 127.0.0.1/8 on lo in this namespace: {sorted(map(str, real))}")
    with pytest.raises(TargetRefused, match=r"broadcast address of 127\.0\.0\.0/8 on lo"):
        resolve_targets(["127.255.255.255"], resolver=no_dns)
    assert resolve_targets(["127.0.0.1"], resolver=no_dns).hosts() == ["127.0.0.1"]
