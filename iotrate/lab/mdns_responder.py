"""The speaker's mDNS/DNS-SD responder: python-zeroconf bound to the speaker's one address.

python-zeroconf rather than avahi because avahi-daemon wants a system D-Bus and its own
/run/avahi-daemon per namespace; zeroconf is already an iotrate dependency and answers queries,
probes and announces the same way. The services, TXT records and host name come from a JSON file
that the lab writes from ``devices.yaml``.

Writes the ``--ready`` file once every service is registered (probing done), so the lab does not
report itself up while a query could still go unanswered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from pathlib import Path
from typing import Any

from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf


def service_infos(config: dict[str, Any], address: str) -> list[ServiceInfo]:
    host = f"{config['hostname']}.local."
    return [
        ServiceInfo(
            type_=svc["type"],
            name=f"{svc['instance']}.{svc['type']}",
            addresses=[socket.inet_aton(address)],
            port=int(svc["port"]),
            properties={str(k): str(v) for k, v in svc["txt"].items()},
            server=host,
        )
        for svc in config["services"]
    ]


async def serve(address: str, config: dict[str, Any], ready: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    azc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    try:
        # Probing takes about a second per service; the services probe side by side.
        announcing = await asyncio.gather(
            *(azc.async_register_service(info) for info in service_infos(config, address))
        )
        await asyncio.to_thread(ready.touch)
        await stop.wait()
        for task in announcing:
            if isinstance(task, asyncio.Future):
                task.cancel()
        await azc.async_unregister_all_services()
    finally:
        await azc.async_close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--ready", required=True, type=Path)
    args = parser.parse_args()
    config = json.loads(args.config.read_text(encoding="utf-8"))
    asyncio.run(serve(args.address, config, args.ready))


if __name__ == "__main__":
    main()
