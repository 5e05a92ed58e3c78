"""Web form logins against the lab's web UIs (iotrate/lab/web_ui.py in the devices' own
namespaces): the router's Zyxel factory account, listed for ssh/telnet/ftp only, found on its
web form; the hub's account, which locks after 5 failures, left "not tested" with the owner
still able to log in (the loopback twin: unit/probes/test_probes_web_form.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iotrate.models import Device, OutcomeStatus, Service

LAB_RUN = """
import asyncio, json, urllib.parse, urllib.request
from http.cookiejar import CookieJar
from iotrate.models import Device
from iotrate.probes import registry
from iotrate.probes.http import find_login_form
from iotrate.probing import ProbeRunner, RunnerOptions
devices = [Device.model_validate(d) for d in json.loads({devices!r})]
probes = [p for p in registry(include_plugins=False).probes if p.id.startswith("cred.http")]
out = asyncio.run(ProbeRunner(probes, RunnerOptions()).run(devices))

def owner_login(address, user, password):
    base = f"http://{{address}}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(base + "/", timeout=5).read().decode()
    form = find_login_form(page, base + "/")
    body = urllib.parse.urlencode(form.data(user, password)).encode()
    landed = opener.open(form.action, data=body, timeout=5).read().decode()
    return "Status" in landed

owner = {{d.id: owner_login(d.address, *{owners!r}[d.id]) for d in out}}
print(json.dumps({{"devices": [d.model_dump(mode="json") for d in out], "owner": owner}}))
"""


@pytest.mark.lab
def test_lab_web_form_logins(lab: dict[str, Any], in_scanner: Any) -> None:
    by_name = {d["name"]: d for d in lab["devices"]}
    # As discovery and identification report them: the MAC registry's maker name, port 80.
    vendors = {"router": "Zyxel Communications Corporation", "hub": "Tuya Smart Inc."}
    devices = [
        Device(id=n, address=by_name[n]["address"], addresses=[by_name[n]["address"]],
               vendor=v, services=[Service(port=80, protocol="http")])
        .model_dump(mode="json")
        for n, v in vendors.items()
    ]  # fmt: skip

    def owner(name: str) -> tuple[str, str]:
        creds = by_name[name]["credentials"]
        return next((c["username"], c["password"]) for c in creds if c["service"] == "http-form")

    owners = {n: owner(n) for n in vendors}
    code = LAB_RUN.format(devices=json.dumps(devices), owners=owners)
    res = in_scanner(code, timeout=180)
    found = {d["id"]: Device.model_validate(d) for d in res["devices"]}

    router = found["router"]
    (f,) = [f for f in router.findings if f.check == "cred.default-password"]
    data = f.evidence[0].data
    assert (data["protocol"], data["username"]) == ("http-form", "admin")
    assert data["vendor_specific"] is True and data["hidden_fields"] == ["csrf_token"]
    assert all(e.split(":")[0] in ("routersploit", "defaultcreds") for e in data["entries"])

    hub = found["hub"]
    (form,) = [o for o in hub.outcomes if o.probe == "cred.http-form"]
    assert form.status is OutcomeStatus.FAILED and "not tested" in (form.reason or "")
    assert "remain" in (form.reason or "")
    assert not [f for f in hub.findings if f.check == "cred.default-password"]
    assert res["owner"] == {"router": True, "hub": True}  # nobody locked out
