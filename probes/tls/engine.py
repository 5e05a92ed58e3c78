"""The sslyze boundary: one sslyze scan per port, shared by the two TLS probes, run in a worker
thread with a deadline (sslyze is synchronous and keeps its own threads), paced by the scan's
rate limit, and turned into a :class:`~iotrate.probes.tls.model.TlsScan`.

Per-server concurrency is 1 because small TLS stacks (and ``openssl s_server``) serve one
connection at a time and time out anything queued behind a burst."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from iotrate.ratelimit import throttle_sync

from .._clients.io import open_tcp, write
from ..base import NotApplicable, ProbeFailed
from .model import (
    AcceptedSuite,
    TlsScan,
    cert_facts,
)

# sslyze's bundled trust stores hold a few old roots that newer cryptography warns about; the
# warning says nothing about the device under test.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")


# --------------------------------------------------------------------------- sslyze boundary

_CIPHER_COMMANDS = {
    "SSLv2": "ssl_2_0_cipher_suites",
    "SSLv3": "ssl_3_0_cipher_suites",
    "TLSv1.0": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}
CONFIG_COMMANDS = (*_CIPHER_COMMANDS.values(), "certificate_info", "elliptic_curves")
VULN_COMMANDS = (
    "heartbleed",
    "robot",
    "openssl_ccs_injection",
    "session_renegotiation",
    "tls_compression",
)

NETWORK_TIMEOUT_S = 5.0
# How long a port may take to answer a ClientHello with anything (a ServerHello, an alert, a
# reset) before the port is judged not to do TLS. A stack that stalls this long would fail each
# of sslyze's connection attempts on its network timeout instead, about 55 s in all.
HANDSHAKE_PRECHECK_S = 5.0
PER_SERVER_CONNECTIONS = 1
_SSLYZE_IMPORT = threading.Lock()
_CACHE_TTL_S = 120.0


class _NoTls(Exception):
    """The port did not complete a TLS (or STARTTLS) handshake with sslyze."""

    def __init__(self, reason: str, starttls_refused: bool = False) -> None:
        super().__init__(reason)
        self.starttls_refused = starttls_refused


def _client_hello() -> bytes:
    """A real ClientHello from the ssl module, offering everything down to the oldest version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


async def handshake_precheck(address: str, port: int, deadline: float) -> None:
    """Fail fast when the port takes a ClientHello and never answers (a tarpit, a hung stack).

    Any answer — a ServerHello, an alert, garbage, a reset, a close — passes: judging it is
    sslyze's job. Only silence fails, after ``deadline``, instead of costing each of sslyze's
    connection attempts its own timeout."""
    conn = await open_tcp(address, port, deadline)
    try:
        await write(conn, _client_hello(), deadline)
        try:
            await asyncio.wait_for(conn.reader.read(1), deadline)
        except TimeoutError:
            raise ProbeFailed(f"no TLS handshake within {deadline:g} s") from None
        except OSError:
            return
    finally:
        await conn.close()


def _pace_sslyze() -> None:
    """Route sslyze's sockets through the scan's per-host rate limit (once per process).

    sslyze opens every connection in ``tls_connection._open_socket``, from its own worker
    threads; wrapping that one function paces its few hundred handshakes per port."""
    from sslyze.connection_helpers import tls_connection

    opener = tls_connection._open_socket
    if getattr(opener, "_iotrate_paced", False):
        return

    def paced(server_location: Any, network_timeout: int) -> Any:
        throttle_sync(server_location.ip_address or server_location.hostname)
        return opener(server_location, network_timeout)

    paced._iotrate_paced = True  # type: ignore[attr-defined]
    tls_connection._open_socket = paced


def _run_sslyze(address: str, port: int, starttls: str | None) -> TlsScan:
    """Run one sslyze scan (blocking; call from a worker thread)."""
    # Submodule imports: the package's re-exports are invisible to a strict type checker.
    # Two worker threads importing sslyze at once see a partly initialised module (a circular
    # import inside sslyze), so the first import is serialised.
    with _SSLYZE_IMPORT:
        from sslyze.connection_helpers.opportunistic_tls_helpers import (
            ProtocolWithOpportunisticTlsEnum,
        )
        from sslyze.plugins.scan_commands import ScanCommand
        from sslyze.scanner.models import ServerScanRequest, ServerScanStatusEnum
        from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum  # noqa: F401
        from sslyze.scanner.scanner import Scanner
        from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

        _pace_sslyze()
    location = ServerNetworkLocation(hostname=address, port=port, ip_address=address)
    config = ServerNetworkConfiguration(
        tls_server_name_indication=address,
        tls_opportunistic_encryption=(
            ProtocolWithOpportunisticTlsEnum[starttls] if starttls else None
        ),
        network_timeout=int(NETWORK_TIMEOUT_S),
        network_max_retries=1,
    )
    commands = {ScanCommand(c) for c in (*CONFIG_COMMANDS, *VULN_COMMANDS)}
    scanner = Scanner(
        per_server_concurrent_connections_limit=PER_SERVER_CONNECTIONS,
        concurrent_server_scans_limit=1,
    )
    scanner.queue_scans(
        [ServerScanRequest(server_location=location, network_configuration=config,
                           scan_commands=commands)]
    )  # fmt: skip
    # Drain the generator: sslyze's producer thread waits for its end-of-results sentinel to
    # be consumed, so stopping after the first result would leak that thread (and the scan's
    # memory) once per port.
    results = list(scanner.get_results())
    result = results[0]
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        trace = result.connectivity_error_trace
        kind = trace.exc_type.__name__ if trace is not None and trace.exc_type else "error"
        message = str(trace) if trace is not None else "no connectivity"
        raise _NoTls(
            f"{kind}: {message}",
            starttls_refused=kind == "ServerRejectedOpportunisticTlsNegotiation",
        )
    return _to_scan(result.scan_result, address, port, starttls)


def _accepted_suites(attempt: Callable[[str], Any]) -> list[AcceptedSuite]:
    suites: list[AcceptedSuite] = []
    for proto, cmd in _CIPHER_COMMANDS.items():
        r = attempt(cmd)
        if r is None:
            continue
        for acc in r.accepted_cipher_suites:
            eph = acc.ephemeral_key
            eph_type = None
            if eph is not None:
                eph_type = "DH" if eph.type_name == "DH" else "ECDH"
            suites.append(
                AcceptedSuite(
                    name=acc.cipher_suite.name,
                    protocol=proto,
                    key_size=acc.cipher_suite.key_size,
                    anonymous=acc.cipher_suite.is_anonymous,
                    ephemeral_type=eph_type,
                    ephemeral_bits=eph.size if eph is not None else None,
                )
            )
    return suites


def _to_scan(res: Any, address: str, port: int, starttls: str | None) -> TlsScan:
    """iotrate's summary of sslyze's result; a command that did not complete is recorded in
    ``errors`` and its fields stay None (not measured, never "not vulnerable")."""
    from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum

    errors: dict[str, str] = {}

    def attempt(name: str) -> Any:
        att = getattr(res, name)
        if att.status != ScanCommandAttemptStatusEnum.COMPLETED or att.result is None:
            reason = att.error_reason.value if att.error_reason is not None else "not completed"
            errors[name] = reason
            return None
        return att.result

    suites = _accepted_suites(attempt)
    certificate = None
    trusted = None
    info = attempt("certificate_info")
    if info is not None and info.certificate_deployments:
        deployment = info.certificate_deployments[0]
        chain = deployment.received_certificate_chain
        if chain:
            certificate = cert_facts(chain[0])
        trusted = any(r.was_validation_successful for r in deployment.path_validation_results)
    curves_result = attempt("elliptic_curves")
    curves = tuple(c.name for c in curves_result.supported_curves or []) if curves_result else ()
    hb = attempt("heartbleed")
    robot = attempt("robot")
    robot_value = robot.robot_result.value if robot is not None else None
    if robot_value == "UNKNOWN_INCONSISTENT_RESULTS":
        errors["robot"] = "inconsistent results"
    ccs = attempt("openssl_ccs_injection")
    reneg = attempt("session_renegotiation")
    comp = attempt("tls_compression")
    return TlsScan(
        address=address,
        port=port,
        suites=tuple(suites),
        certificate=certificate,
        heartbleed=hb.is_vulnerable_to_heartbleed if hb is not None else None,
        robot=robot_value,
        ccs_injection=ccs.is_vulnerable_to_ccs_injection if ccs is not None else None,
        secure_renegotiation=reneg.supports_secure_renegotiation if reneg is not None else None,
        client_renegotiation_dos=(
            reneg.is_vulnerable_to_client_renegotiation_dos if reneg is not None else None
        ),
        compression=comp.supports_compression if comp is not None else None,
        curves=curves,
        errors=errors,
        starttls=starttls,
        publicly_trusted=trusted,
    )


async def _checked_scan(address: str, port: int, starttls: str | None) -> TlsScan:
    # STARTTLS ports speak their own protocol first; sslyze drives that dialogue itself.
    if starttls is None:
        await handshake_precheck(address, port, HANDSHAKE_PRECHECK_S)
    return await asyncio.to_thread(_run_sslyze, address, port, starttls)


# One scan per (event loop, address, port), shared by the probes of this module.
_scans: dict[tuple[int, str, int, str | None], tuple[float, asyncio.Task[TlsScan]]] = {}


async def shared_scan(address: str, port: int, starttls: str | None, timeout: float) -> TlsScan:
    """The port's sslyze scan, started by the first probe that asks and reused by the others
    for a couple of minutes; raises ProbeFailed or NotApplicable."""
    loop = asyncio.get_running_loop()
    now = time.monotonic()
    for key in [k for k, (t, _) in _scans.items() if now - t > _CACHE_TTL_S]:
        del _scans[key]
    key = (id(loop), address, port, starttls)
    entry = _scans.get(key)
    stale = entry is not None and (
        entry[1].get_loop() is not loop or (entry[1].done() and entry[1].cancelled())
    )
    if entry is None or stale:
        task = loop.create_task(_checked_scan(address, port, starttls))
        entry = (now, task)
        _scans[key] = entry
    try:
        return await asyncio.wait_for(asyncio.shield(entry[1]), timeout=timeout)
    except TimeoutError:
        raise ProbeFailed(f"sslyze did not finish within {timeout:g} s") from None
    except _NoTls as exc:
        if exc.starttls_refused:
            raise NotApplicable(f"STARTTLS ({starttls}) not offered: {exc}") from None
        raise ProbeFailed(f"no TLS handshake: {exc}") from None
    except OSError as exc:
        raise ProbeFailed(f"sslyze: {exc}") from None
