"""Local-subnet auto-detection, fed fake interface tables: the real network is never read."""

from __future__ import annotations

import ipaddress

import pytest

from iotrate.errors import UsageError
from iotrate.netinfo import subnet_from_tables

ADDRS = [
    {
        "ifname": "lo",
        "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}],
    },
    {
        "ifname": "wlan0",
        "addr_info": [
            {"family": "inet", "local": "192.168.1.37", "prefixlen": 24, "scope": "global"}
        ],
    },
    {
        "ifname": "eth1",
        "addr_info": [{"family": "inet", "local": "10.9.8.7", "prefixlen": 16, "scope": "global"}],
    },
]


def test_picks_default_route_interface() -> None:
    routes = [{"dst": "default", "gateway": "192.168.1.1", "dev": "wlan0", "metric": 600}]
    assert subnet_from_tables(routes, ADDRS) == ("wlan0", ipaddress.IPv4Network("192.168.1.0/24"))


def test_lowest_metric_wins() -> None:
    routes = [
        {"dst": "default", "dev": "wlan0", "metric": 600},
        {"dst": "default", "dev": "eth1", "metric": 100},
    ]
    assert subnet_from_tables(routes, ADDRS)[1] == ipaddress.IPv4Network("10.9.0.0/16")


def test_no_default_route_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no default route"):
        subnet_from_tables([], ADDRS)


def test_interface_without_ipv4() -> None:
    with pytest.raises(UsageError, match="no IPv4"):
        subnet_from_tables([{"dst": "default", "dev": "ppp0"}], ADDRS)
