"""An Android Debug Bridge endpoint on TCP 5555 that skips authentication, like a TV left open.

Why emulated: Debian ships no ``adbd`` (it is part of Android, not of a Linux distribution), and
the weakness worth testing is a protocol fact, not a code path: a device that answers the host's
``CNXN`` with its own ``CNXN`` (carrying the ``device::`` banner) instead of an ``AUTH`` challenge
lets anyone on the LAN open a shell. That handshake is what a scanner observes and what this
program reproduces, byte for byte in the format of adb's ``protocol.txt``.

Opened streams get a canned, harmless answer: ``shell:id`` and ``shell:getprop`` reply like an
Android shell would, everything else is closed. Nothing typed is ever run.

Run it with the venv's interpreter: ``python -m iotrate.lab.adb_emulator --address A --banner B``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct

A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_VERSION = 0x01000000  # the checksummed version: old hosts and new ones both accept it
MAX_PAYLOAD = 256 * 1024
HEADER = struct.Struct("<6I")


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return HEADER.pack(command, arg0, arg1, len(data), checksum(data), command ^ 0xFFFFFFFF) + data


def canned_reply(service: str, props: dict[str, str]) -> bytes | None:
    """What a read-only Android shell would print; ``None`` means refuse the stream."""
    if service in ("shell:id", "shell,v2,raw:id"):
        return b"uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),3003(inet)\n"
    if service.startswith("shell:getprop") or service.startswith("shell,v2,raw:getprop"):
        wanted = service.split("getprop", 1)[1].strip()
        if wanted:
            return (props.get(wanted, "") + "\n").encode()
        return "".join(f"[{k}]: [{v}]\n" for k, v in sorted(props.items())).encode()
    return None


class Session:
    def __init__(self, banner: bytes, props: dict[str, str]) -> None:
        self.banner = banner
        self.props = props
        self.next_local = 1

    def answer(self, command: int, arg0: int, payload: bytes) -> list[bytes]:
        if command == A_CNXN:
            # The weakness: a device that enforces auth would send A_AUTH (type 1, a token) here.
            return [message(A_CNXN, A_VERSION, MAX_PAYLOAD, self.banner)]
        if command == A_OPEN:
            service = payload.rstrip(b"\0").decode("utf-8", "replace")
            reply = canned_reply(service, self.props)
            if reply is None:
                return [message(A_CLSE, 0, arg0)]
            local, self.next_local = self.next_local, self.next_local + 1
            return [
                message(A_OKAY, local, arg0),
                message(A_WRTE, local, arg0, reply),
                message(A_CLSE, local, arg0),
            ]
        return []  # OKAY/CLSE/WRTE from the host need no answer here


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
) -> None:
    try:
        while True:
            header = await reader.readexactly(HEADER.size)
            command, arg0, _arg1, length, _check, magic = HEADER.unpack(header)
            if magic != command ^ 0xFFFFFFFF or length > MAX_PAYLOAD:
                break
            payload = await reader.readexactly(length) if length else b""
            for out in session.answer(command, arg0, payload):
                writer.write(out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def parse_banner(banner: str) -> dict[str, str]:
    _, _, props = banner.partition("::")
    pairs = (item.split("=", 1) for item in props.split(";") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("ro.")}


async def serve(address: str, port: int, banner: str) -> None:
    props = parse_banner(banner)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, Session(banner.encode(), props)), address, port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--banner", required=True, help="device::ro.product.name=…;features=…")
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.port, args.banner))


if __name__ == "__main__":
    main()
