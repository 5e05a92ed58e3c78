"""Assemble the identification evaluation corpus from public test captures.

The corpus is kept apart from rule writing: no rule in ``iotrate/data/identify/`` was written
while looking at these devices, and the shared fixtures' sources are not reused file for file.
It reads bare git mirrors of the source repositories (``git clone --bare``), so the numbers can
be rebuilt from the commits named in ``benchmarks/data/identify-eval/SOURCES.md``::

    python scripts/build_identify_eval.py MIRRORS_DIR [HASS_FILES]

MIRRORS_DIR holds ``<owner>+<name>/repo`` bare clones; HASS_FILES holds the few Home Assistant
test fixtures listed in ``HASS`` as ``<commit>/<path>`` (home-assistant/core is too big to
clone for eight files). Each source is written to its own
``<source>.observations.jsonl`` / ``<source>.truth.jsonl`` pair.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "identify-eval"

# Files of these repositories that the shared fixtures already use: never in the corpus.
USED_BY_FIXTURES = {
    "tests/xml/AVC-X3700H-Deviceinfo-8080.xml",
    "tests/xml/DRA-N4-Deviceinfo.xml",
    "tests/xml/NR1609-Deviceinfo-8080.xml",
    "miniupnpc/testdesc/linksys_WAG200G_desc.xml",
}
BLE_LIBS = {
    # library: (vendor its devices are made by, category)
    "govee-ble": ("Govee", "sensor"),
    "inkbird-ble": ("Inkbird", "sensor"),
    "thermopro-ble": ("ThermoPro", "sensor"),
    "sensorpush-ble": ("SensorPush", "sensor"),
}
PER_SOURCE_MAX = 60
MAX_ENTRIES = 32  # iotrate refuses more manufacturer/service data entries (docs/bluetooth.md)
CONSTRUCTORS = {"BluetoothServiceInfo", "make_bluetooth_service_info"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def denon(mirrors: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """denonavr's recorded /goform/Deviceinfo.xml answers; BrandCode 0 Denon, 1 Marantz."""
    repo = mirrors / "ol-iver+denonavr" / "repo"
    commit = head(repo)
    obs, truth = [], []
    for path in git(repo, "ls-tree", "-r", "--name-only", "HEAD", "tests/xml").split():
        if "Deviceinfo" not in path or path in USED_BY_FIXTURES:
            continue
        body = git(repo, "show", f"HEAD:{path}")
        brand = re.search(r"<BrandCode>(\d)</BrandCode>", body)
        model = re.search(r"<ModelName>\*?([^<]+)</ModelName>", body)
        if not brand or brand.group(1) not in "01":
            continue
        dev = "eval-denonavr-" + Path(path).stem.lower()
        port = 8080 if "8080" in path else 80
        obs.append(
            {
                "device": dev,
                "kind": "http",
                "port": port,
                "path": "/goform/Deviceinfo.xml",
                "headers": {},
                "title": "",
                "body": body,
            }
        )
        truth.append(
            {
                "device": dev,
                "category": "speaker",
                "vendor": "Denon" if brand.group(1) == "0" else "Marantz",
                "model": model.group(1) if model else None,
                "source": f"ol-iver/denonavr/{path}@{commit}",
            }
        )
    return obs, truth


def miniupnp(mirrors: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    repo = mirrors / "miniupnp+miniupnp" / "repo"
    commit = head(repo)
    obs, truth = [], []
    for path in git(repo, "ls-tree", "-r", "--name-only", "HEAD", "miniupnpc/testdesc").split():
        if not path.endswith(".xml") or path in USED_BY_FIXTURES:
            continue
        xml = git(repo, "show", f"HEAD:{path}")
        maker = re.search(r"<manufacturer>([^<]+)</manufacturer>", xml)
        dev = "eval-miniupnp-" + Path(path).stem.lower()
        obs.append({"device": dev, "kind": "ssdp", "headers": {}, "description_xml": xml})
        truth.append(
            {
                "device": dev,
                "category": "router",
                "vendor": maker.group(1) if maker else None,
                "model": None,
                "source": f"miniupnp/miniupnp/{path}@{commit}",
            }
        )
    return obs, truth


WEMO = {
    # pywemo's VCR recording -> (category, model) by the product the recording is of
    "tests.ouimeaux_device.test_dimmer/WEMO_WW_2.00.20110904.PVT-RTOS-DimmerV2.yaml": (
        "switch", "WeMo Dimmer V2"),
    "tests.ouimeaux_device.test_dimmer/WeMo_WW_2.00.11453.PVT-OWRT-Dimmer.yaml": (
        "switch", "WeMo Dimmer"),
    "tests.ouimeaux_device.test_humidifier/WeMo_WW_2.00.11423.PVT-OWRT-Smart.yaml": (
        "appliance", "WeMo Smart Humidifier"),
    "tests.ouimeaux_device.test_insight/WeMo_WW_2.00.11408.PVT-OWRT-Insight.yaml": (
        "plug", "WeMo Insight"),
}  # fmt: skip
ROKU = ("device-info-3500x.xml", "device-info-7820x.xml", "device-info-d803x.xml")


def wemo(mirrors: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """pywemo's recorded /setup.xml answers of WeMo products the fixtures do not use."""
    repo = mirrors / "pywemo+pywemo" / "repo"
    commit = head(repo)
    obs, truth = [], []
    for name, (category, model) in WEMO.items():
        path = f"tests/vcr/{name}"
        cassette = yaml.safe_load(git(repo, "show", f"HEAD:{path}"))
        for act in cassette["interactions"]:
            if act["request"]["uri"].endswith("/setup.xml"):
                dev = "eval-pywemo-" + Path(name).stem.lower()
                xml = act["response"]["body"]["string"]
                obs.append({"device": dev, "kind": "ssdp", "headers": {}, "description_xml": xml})
                truth.append(
                    {
                        "device": dev,
                        "category": category,
                        "vendor": "Belkin",
                        "model": model,
                        "source": f"pywemo/pywemo/{path}@{commit}",
                    }
                )
                break
    return obs, truth


def roku(mirrors: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """python-rokuecp's recorded /query/device-info answers; the maker is vendor-name."""
    repo = mirrors / "ctalkington+python-rokuecp" / "repo"
    commit = head(repo)
    obs, truth = [], []
    for name in ROKU:
        path = f"tests/fixtures/{name}"
        body = git(repo, "show", f"HEAD:{path}")
        vendor = re.search(r"<vendor-name>([^<]+)</vendor-name>", body)
        is_tv = "<is-tv>true</is-tv>" in body
        dev = "eval-rokuecp-" + Path(name).stem.lower()
        obs.append(
            {
                "device": dev,
                "kind": "http",
                "port": 8060,
                "path": "/query/device-info",
                "headers": {},
                "body": body,
            }
        )
        truth.append(
            {
                "device": dev,
                "category": "tv" if is_tv else "streamer",
                "vendor": vendor.group(1).strip(" .") if vendor else None,
                "model": None,
                "source": f"ctalkington/python-rokuecp/{path}@{commit}",
            }
        )
    return obs, truth


# Home Assistant's recorded answers of local device APIs (tests/components/*/fixtures), each
# with the documented endpoint it answers and the product the integration's test describes.
HASS = [
    # (path, commit, port, endpoint, category, vendor, model)
    ("tests/components/elgato/fixtures/key-light/info.json",
     "d7a464884993b08569bd25180db7ca99336139e7", 9123, "/elgato/accessory-info",
     "bulb", "Elgato", "Key Light"),
    ("tests/components/elgato/fixtures/light-strip/info.json",
     "d7a464884993b08569bd25180db7ca99336139e7", 9123, "/elgato/accessory-info",
     "bulb", "Elgato", "Light Strip"),
    ("tests/components/elgato/fixtures/key-light-mini/info.json",
     "a5c8209270205b905bb35a9082c39708b0d5f52f", 9123, "/elgato/accessory-info",
     "bulb", "Elgato", "Key Light Mini"),
    ("tests/components/homewizard/fixtures/HWE-KWH1/device.json",
     "bc178324bf0db769c468c6e10a970410d3e5afd1", 80, "/api", "sensor", "HomeWizard",
     "kWh meter (HWE-KWH1)"),
    ("tests/components/homewizard/fixtures/HWE-WTR/device.json",
     "8a8e5264b901a2a3ca1375c75a2bb6b2b165c774", 80, "/api", "sensor", "HomeWizard",
     "Watermeter (HWE-WTR)"),
    ("tests/components/homewizard/fixtures/SDM230/device.json",
     "06ec8a9dd93e4dd64e43a01095c341cfa9e14c84", 80, "/api", "sensor", "HomeWizard",
     "kWh meter (SDM230-wifi)"),
    ("tests/components/airgradient/fixtures/current_measures_indoor.json",
     "c3562c57c51051e2cab96491e06f445bfb734233", 80, "/measures/current", "sensor",
     "AirGradient", "ONE (I-9PSL)"),
    ("tests/components/nam/fixtures/nam_data.json",
     "3e9d584903d022074aedb1111c181960fba94c1b", 80, "/data.json", "sensor", "Nettigo",
     "Air Monitor"),
]  # fmt: skip


def hass(files: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Home Assistant test fixtures, read from ``FILES/<commit>/<path>`` (each file as
    ``git show <commit>:<path>`` of home-assistant/core gives it)."""
    obs, truth = [], []
    for path, commit, port, endpoint, category, vendor, model in HASS:
        body = (files / commit / path).read_text(encoding="utf-8")
        json.loads(body)  # a recorded JSON answer, or the file is not what was meant
        product = Path(path).parent.name
        dev = (
            f"eval-hass-{path.split('/')[2]}-"
            + (Path(path).stem if product == "fixtures" else product).lower()
        )
        obs.append(
            {
                "device": dev,
                "kind": "http",
                "port": port,
                "path": endpoint,
                "headers": {"Content-Type": "application/json"},
                "title": "",
                "body": body,
            }
        )
        truth.append(
            {
                "device": dev,
                "category": category,
                "vendor": vendor,
                "model": model,
                "source": f"home-assistant/core/{path}@{commit}",
            }
        )
    return obs, truth


def _literal(node: ast.AST) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _row(kw: dict[str | None, object]) -> dict[str, object] | None:
    """One advertisement in iotrate's ``ble`` observation format, or None if it has nothing."""
    md, sd = kw.get("manufacturer_data") or {}, kw.get("service_data") or {}
    if not isinstance(md, dict) or not isinstance(sd, dict):
        return None
    address, rssi, uuids = kw.get("address"), kw.get("rssi"), kw.get("service_uuids")
    row: dict[str, object] = {
        "kind": "ble",
        "address": address if isinstance(address, str) else None,
        "address_type": "unknown",
        "name": kw.get("name") or None,
        "rssi": rssi if isinstance(rssi, int) else None,
        "manufacturer_data": {
            str(k): v.hex() for k, v in md.items() if isinstance(k, int) and isinstance(v, bytes)
        },
        "service_data": {str(k): v.hex() for k, v in sd.items() if isinstance(v, bytes)},
        "service_uuids": [u for u in uuids or [] if isinstance(u, str)]
        if isinstance(uuids, list)
        else [],
        "tx_power": None,
        "time": 0.0,
    }
    if not (row["manufacturer_data"] or row["service_data"] or row["name"]):
        return None
    if len(md) > MAX_ENTRIES or len(sd) > MAX_ENTRIES:
        return None  # a parser's stress input, beyond what one advertisement can carry
    return row


def ble_lib(mirrors: Path, lib: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Every literal ``BluetoothServiceInfo(...)`` in a Bluetooth-Devices parser's tests."""
    repo = mirrors / f"Bluetooth-Devices+{lib}" / "repo"
    commit = head(repo)
    vendor, category = BLE_LIBS[lib]
    obs: list[dict[str, object]] = []
    truth: list[dict[str, object]] = []
    seen: set[str] = set()
    for path in git(repo, "ls-tree", "-r", "--name-only", "HEAD", "tests").split():
        if not path.endswith(".py"):
            continue
        tree = ast.parse(git(repo, "show", f"HEAD:{path}"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or getattr(node.func, "id", "") not in CONSTRUCTORS:
                continue
            kw = {k.arg: _literal(k.value) for k in node.keywords if k.arg}
            row = _row(kw)
            if row is None or "invalid" in str(row["name"]).lower():
                continue
            key = json.dumps([row[k] for k in ("name", "manufacturer_data", "service_data")])
            if key in seen:
                continue
            seen.add(key)
            dev = f"eval-{lib}-{len(seen)}"
            where = f"Bluetooth-Devices/{lib}/{path}@{commit}"
            obs.append({"device": dev, **row, "source": where})
            truth.append(
                {"device": dev, "category": category, "vendor": vendor, "model": row["name"],
                 "source": where}
            )  # fmt: skip
            if len(seen) >= PER_SOURCE_MAX:
                return obs, truth
    return obs, truth


def write(name: str, obs: list[dict[str, object]], truth: list[dict[str, object]]) -> None:
    if not obs:
        raise SystemExit(f"build_identify_eval: source {name} gave no devices")
    for suffix, rows in (("observations", obs), ("truth", truth)):
        with (OUT / f"{name}.{suffix}.jsonl").open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{name}: {len(truth)} devices")


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    mirrors = Path(argv[0])
    OUT.mkdir(parents=True, exist_ok=True)
    write("net-denonavr", *denon(mirrors))
    write("net-miniupnp", *miniupnp(mirrors))
    write("net-pywemo", *wemo(mirrors))
    write("net-rokuecp", *roku(mirrors))
    if len(argv) == 2:
        write("net-hass", *hass(Path(argv[1])))
    for lib in BLE_LIBS:
        if (mirrors / f"Bluetooth-Devices+{lib}").is_dir():
            write(f"ble-{lib.removesuffix('-ble')}", *ble_lib(mirrors, lib))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
