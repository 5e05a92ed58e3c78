"""Certificates and keys made fresh at every ``lab_up`` with the ``openssl`` command.

Fresh, because a private key committed to the repository would be a shared key across every
copy of the lab, and because the "current" plug certificate must be current on the day it is
used. The hub's expired certificate needs explicit past dates, which OpenSSL 3.0's ``req`` cannot
set (``-not_before`` arrived in 3.4), so it is issued through ``openssl ca -selfsign``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iotrate.lab.netns import run

# A config of our own so the system's openssl.cnf adds no surprise extensions or limits.
_REQ_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
"""

_CA_CONF = """\
[ca]
default_ca = lab
[lab]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
organizationName = optional
"""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _req_conf(directory: Path) -> Path:
    conf = directory / "req.cnf"
    if not conf.exists():
        conf.write_text(_REQ_CONF, encoding="ascii")
    return conf


def make_ca(directory: Path) -> KeyPair:
    """The lab's own CA; an EC key because it is instant to generate."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / "lab-ca.crt", directory / "lab-ca.key")
    run(
        [
            "openssl", "req", "-x509", "-config", str(_req_conf(directory)),
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "3650",
            "-subj", "/CN=iotrate reference lab CA/O=iotrate lab",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )  # fmt: skip
    return pair


def make_leaf(directory: Path, name: str, subject: str, address: str, ca: KeyPair) -> KeyPair:
    """A current RSA-2048 server certificate signed by the lab CA, valid for the host's IP."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    run(
        [
            "openssl", "req", "-x509", "-config", str(_req_conf(directory)),
            "-newkey", "rsa:2048", "-nodes", "-keyout", str(pair.key), "-out", str(pair.cert),
            "-CA", str(ca.cert), "-CAkey", str(ca.key), "-days", "397", "-subj", subject,
            "-addext", f"subjectAltName=IP:{address}",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
            "-addext", "extendedKeyUsage=serverAuth",
        ]
    )  # fmt: skip
    return pair


def make_self_signed(directory: Path, name: str, subject: str, days: int) -> KeyPair:
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    run(
        [
            "openssl", "req", "-x509", "-config", str(_req_conf(directory)),
            "-newkey", "rsa:2048", "-nodes", "-keyout", str(pair.key), "-out", str(pair.cert),
            "-days", str(days), "-subj", subject,
        ]
    )  # fmt: skip
    return pair


def make_expired(
    directory: Path, name: str, subject: str, bits: int, not_before: str, not_after: str
) -> KeyPair:
    """A self-signed certificate with dates in the past (``YYYYMMDDHHMMSSZ``)."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    work = directory / f"{name}-ca"
    work.mkdir(parents=True, exist_ok=True)
    (work / "index.txt").write_text("", encoding="ascii")
    (work / "serial").write_text("1000\n", encoding="ascii")
    conf = work / "ca.cnf"
    conf.write_text(_CA_CONF.format(dir=work), encoding="ascii")
    csr = work / f"{name}.csr"
    run(
        [
            "openssl", "req", "-new", "-config", str(_req_conf(directory)),
            "-newkey", f"rsa:{bits}", "-nodes", "-keyout", str(pair.key), "-out", str(csr),
            "-subj", subject,
        ]
    )  # fmt: skip
    run(
        [
            "openssl", "ca", "-batch", "-config", str(conf), "-selfsign", "-notext",
            "-keyfile", str(pair.key), "-in", str(csr), "-out", str(pair.cert),
            "-startdate", not_before, "-enddate", not_after,
        ]
    )  # fmt: skip
    return pair
