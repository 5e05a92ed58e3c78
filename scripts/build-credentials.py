#!/usr/bin/env python3
"""Build iotrate/data/credentials.csv from the public default-credential lists.

Usage: python scripts/build-credentials.py [SHARED_CREDENTIALS_DIR] > iotrate/data/credentials.csv

Inputs (see ../shared/data/README.md): the Mirai telnet list (weights from Mirai's scanner.c),
ihebski/DefaultCreds-cheat-sheet (MIT) and routersploit's creds modules (BSD). Only the facts are
kept: user name, password, which protocol and vendor they are listed for, and where they came
from. Rows for protocols iotrate does not log in to (databases, RDP, VNC, IPMI...) are dropped.
The output is sorted and deterministic so a rebuild shows a clean diff.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

# Hints found in parentheses in DefaultCreds' product column, mapped to our protocol names.
PROTOCOL_HINTS = {
    "web": "http",
    "snmp": "snmp",
    "telnet": "telnet",
    "ssh": "ssh",
    "ftp": "ftp",
}
CATEGORY_HINTS = {
    "ip-cam": "camera",
    "ip camera": "camera",
    "webcam": "camera",
    "camera": "camera",
    "printer": "printer",
    "phone": "phone",
    "ip phones": "phone",
}
# Hints that name a protocol iotrate never logs in to: such rows are dropped.
FOREIGN = {"mssql", "vnc", "rdp", "ipmi", "postgres", "db2", "smu", "oracle", "mysql"}
ROUTERSPLOIT_PROTOCOLS = {
    "ssh": "ssh",
    "telnet": "telnet",
    "ftp": "ftp",
    "webinterface_http_auth": "http",
}
FIELDS = [
    "id",
    "protocols",
    "username",
    "password",
    "vendor",
    "product",
    "category",
    "universal",
    "weight",
    "sources",
]


def norm_vendor(text: str) -> str:
    """Lower-case alphanumerics of the first word: 'TP-Link Router' -> 'tplink'."""
    words = text.strip().split()
    return re.sub(r"[^a-z0-9]", "", words[0].lower()) if words else ""


def blank(value: str) -> str:
    return "" if value.strip() == "<blank>" else value


def mirai(path: Path) -> list[dict[str, str]]:
    rows = []
    for n, r in enumerate(csv.DictReader(path.open(encoding="utf-8")), start=2):
        rows.append(
            {
                "id": f"mirai:{n}",
                "protocols": "",
                "username": r["username"],
                "password": r["password"],
                "vendor": "",
                "product": "",
                "category": "",
                "universal": "true",
                "weight": r["weight"],
                "sources": "mirai",
            }
        )
    return rows


def defaultcreds(path: Path) -> list[dict[str, str]]:
    rows = []
    for n, r in enumerate(csv.DictReader(path.open(encoding="utf-8")), start=2):
        product = r["productvendor"].strip()
        hints = [h.strip().lower() for h in re.findall(r"\(([^)]*)\)", product)]
        name = re.sub(r"\s*\([^)]*\)", "", product).strip()
        if any(h in FOREIGN for h in hints):
            continue
        protocols = sorted({PROTOCOL_HINTS[h] for h in hints if h in PROTOCOL_HINTS})
        category = next((CATEGORY_HINTS[h] for h in hints if h in CATEGORY_HINTS), "")
        vendor = norm_vendor(name)
        if name.lower().startswith(("ip camera", "ip-cam")):
            vendor, category = "", "camera"
        rows.append(
            {
                "id": f"defaultcreds:{n}",
                "protocols": " ".join(protocols),
                "username": blank(r["username"]),
                "password": blank(r["password"]),
                "vendor": vendor,
                "product": name,
                "category": category,
                "universal": "false",
                "weight": "0",
                "sources": "defaultcreds",
            }
        )
    return rows


def routersploit(path: Path) -> list[dict[str, str]]:
    rows = []
    for n, r in enumerate(csv.DictReader(path.open(encoding="utf-8")), start=2):
        protocol = ROUTERSPLOIT_PROTOCOLS.get(r["protocol"])
        if protocol is None:
            continue
        rows.append(
            {
                "id": f"routersploit:{n}",
                "protocols": protocol,
                "username": r["username"],
                "password": r["password"],
                "vendor": norm_vendor(r["vendor"].replace("_", "")),
                "product": r["vendor"],
                "category": r["category"],
                "universal": "false",
                "weight": "0",
                "sources": "routersploit",
            }
        )
    return rows


def merge(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per (protocols, user, password, vendor, category); sources and weight merged."""
    out: dict[tuple[str, ...], dict[str, str]] = {}
    for r in rows:
        key = (r["protocols"], r["username"], r["password"], r["vendor"], r["category"])
        if key not in out:
            out[key] = dict(r)
            continue
        have = out[key]
        srcs = sorted(set(have["sources"].split()) | set(r["sources"].split()))
        have["sources"] = " ".join(srcs)
        have["weight"] = str(max(int(have["weight"]), int(r["weight"])))
        if r["universal"] == "true":
            have["universal"] = "true"
    return sorted(
        out.values(),
        key=lambda r: (r["vendor"], r["protocols"], r["username"], r["password"], r["category"]),
    )


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/credentials")
    rows = merge(
        mirai(src / "mirai_telnet_credentials.csv")
        + routersploit(src / "routersploit_default_creds.csv")
        + defaultcreds(src / "defaultcreds_cheat_sheet.csv")
    )
    out = csv.DictWriter(sys.stdout, FIELDS, lineterminator="\n")
    sys.stdout.write(
        "# Default credentials for iotrate's login probes. Built by scripts/build-credentials.py\n"
        "# from the Mirai list (universal), DefaultCreds-cheat-sheet (MIT) and routersploit\n"
        "# (BSD); sources per row, details in iotrate/data/SOURCES.md. Do not edit by hand.\n"
    )
    out.writeheader()
    out.writerows(rows)


if __name__ == "__main__":
    main()
