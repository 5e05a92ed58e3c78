"""The camera's RTSP server: GStreamer's gst-rtsp-server serving a test pattern, no login.

Debian ships no standalone RTSP daemon, but gst-rtsp-server is the library many camera firmwares
build on, so OPTIONS, DESCRIBE and SETUP get a real server's answers. A small MJPEG test pattern
keeps the CPU cost negligible and needs only plugins-base and plugins-good.

This file runs under Debian's ``/usr/bin/python3`` (``python3-gi``), not the venv, and so imports
nothing from iotrate.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=smpte "
    "! video/x-raw,format=I420,width=320,height=240,framerate=5/1 "
    "! jpegenc quality=50 ! rtpjpegpay name=pay0 pt=26 )"
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=554)
    parser.add_argument("--path", default="/Streaming/Channels/101")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
