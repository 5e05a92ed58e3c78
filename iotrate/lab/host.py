"""What the lab needs from the machine, checked before anything is built.

Every missing piece is reported with the Debian package that provides it, so the fix is one
``apt-get install`` (the list is in ``scripts/lab-packages.txt``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from iotrate.errors import LabError

CACHE_DIR = Path("/var/cache/iotrate-lab")

# Commands looked up on PATH plus the sbin folders, which a root shell's PATH may lack.
_COMMANDS: dict[str, str] = {
    "ip": "iproute2",
    "ss": "iproute2",
    "unshare": "util-linux",
    "openssl": "openssl",
    "dropbear": "dropbear-bin",
    "dropbearkey": "dropbear-bin",
    "lighttpd": "lighttpd",
    "mosquitto": "mosquitto",
    "mosquitto_pub": "mosquitto-clients",
    "snmpd": "snmpd",
    "gmediarender": "gmediarender",
    "vsftpd": "vsftpd",
}

# Files (globs, for the multiarch folder) that no command stands for.
_FILES: dict[str, str] = {
    "/usr/bin/python3": "python3",
    "/usr/lib/python3/dist-packages/gi/__init__.py": "python3-gi",
    "/usr/lib/*/girepository-1.0/GstRtspServer-1.0.typelib": "gir1.2-gst-rtsp-server-1.0",
    "/usr/lib/*/gstreamer-1.0/libgstvideotestsrc.so": "gstreamer1.0-plugins-base",
    "/usr/lib/*/gstreamer-1.0/libgstjpeg.so": "gstreamer1.0-plugins-good",
    "/usr/lib/*/gstreamer-1.0/libgstrtp.so": "gstreamer1.0-plugins-good",
    "/usr/lib/lighttpd/mod_openssl.so": "lighttpd-mod-openssl",
}


def require_root_on_linux() -> None:
    if not sys.platform.startswith("linux"):
        raise LabError("the lab needs Linux (network namespaces)")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces); run it with sudo")


def find_tools() -> dict[str, str]:
    """Absolute paths of the lab's commands; raises naming the first missing package."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    tools: dict[str, str] = {}
    missing: list[str] = []
    for cmd, package in _COMMANDS.items():
        found = shutil.which(cmd, path=search)
        if found is None:
            missing.append(package)
        else:
            tools[cmd] = found
    for pattern, package in _FILES.items():
        if not glob.glob(pattern):
            missing.append(package)
    if missing:
        names = " ".join(sorted(set(missing)))
        raise LabError(f"the lab needs Debian package(s) not installed: {names}")
    return tools


def _has_telnetd(binary: Path) -> bool:
    if not binary.is_file():
        return False
    try:
        done = subprocess.run(
            [str(binary), "--list"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return False
    return "telnetd" in done.stdout.split()


def _download_busybox(target: Path) -> None:
    """Unpack busybox-static's binary without installing the package.

    Installing busybox-static would replace the system's busybox (the packages conflict), so the
    lab takes the binary out of the .deb into its cache instead.
    """
    with tempfile.TemporaryDirectory(prefix="iotrate-busybox-") as work:
        subprocess.run(
            ["apt-get", "download", "-q", "busybox-static"],
            cwd=work, capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        (deb,) = Path(work).glob("busybox-static_*.deb")
        subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(Path(work) / "x")],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(work) / "x" / "bin" / "busybox", target)
        target.chmod(0o755)


def busybox_with_telnetd() -> Path:
    """Debian's default busybox lacks telnetd; the static build has it."""
    cached = CACHE_DIR / "busybox"
    if _has_telnetd(cached):
        return cached
    try:
        _download_busybox(cached)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    if _has_telnetd(cached):
        return cached
    for fallback in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if _has_telnetd(fallback):
            return fallback
    raise LabError(
        "no busybox with telnetd: the lab fetches busybox-static with "
        f"`apt-get download busybox-static` into {CACHE_DIR}, and that failed"
    )
