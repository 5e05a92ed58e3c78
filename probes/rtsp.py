"""RTSP: does a known stream path play without a password (PASSIVE: DESCRIBE only), and does a
factory password open a protected one (LOGIN, on the device's shared "web" account budget)?"""

from __future__ import annotations

from iotrate.models import Finding
from iotrate.net import printable

from ._clients import rtsp
from ._clients.credlist import Candidate
from ._login import (
    CHECK,
    WEB_BUDGET,
    Attempt,
    candidates_for,
    cred_finding,
    walk,
)
from .base import (
    Intrusiveness,
    NotApplicable,
    Probe,
    ProbeContext,
    ProbeFailed,
    make_finding,
    service_port,
)

# ----------------------------------------------------------------------------------- RTSP


def _sdp_media(body: str) -> list[str]:
    return sorted({line[2:].split()[0] for line in body.splitlines() if line.startswith("m=")})


class RtspUnauthenticated(Probe):
    id = "svc.rtsp"
    title = "RTSP stream without a password"
    protocols = frozenset({"rtsp"})
    ports = frozenset({554, 8554})
    timeout = 30.0
    checks = ("svc.rtsp.unauthenticated",)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(3.0, ctx.timeout / 6)
        protected = []
        for path in rtsp.STREAM_PATHS:
            reply, _uri = await rtsp.describe(ctx.address, port, path, step)
            if reply.status == 401:
                protected.append(path)
            elif reply.status == 200 and (
                "m=" in reply.body or "sdp" in reply.header("content-type")
            ):
                media = _sdp_media(reply.body)
                server = printable(reply.header("server"), 80)
                return [
                    make_finding(
                        "svc.rtsp.unauthenticated",
                        f"RTSP DESCRIBE {path} on port {port} answered 200 with a stream "
                        f"description ({', '.join(media) or 'no media lines'}) and no login",
                        port,
                        {"path": path, "media": media, "server": server},
                    )
                ]
        if protected:
            return []  # streams exist and ask for a password
        raise ProbeFailed(
            f"none of {len(rtsp.STREAM_PATHS)} known stream paths exists on port {port}: "
            "cannot tell whether its streams need a password"
        )


# ----------------------------------------------------------------------------------- RTSP


class RtspDefaultPassword(Probe):
    id = "cred.rtsp"
    title = "Default passwords for RTSP streams"
    protocols = frozenset({"rtsp"})
    ports = frozenset({554, 8554})
    intrusiveness = Intrusiveness.LOGIN
    timeout = 60.0
    checks = (CHECK,)
    budget = WEB_BUDGET
    budget_group = "web"

    async def _protected(self, ctx: ProbeContext) -> tuple[str, str, dict[str, str]]:
        """The first known stream path that asks for a password, and its challenge."""
        port, step = service_port(ctx), min(5.0, ctx.timeout / 6)
        open_path = None
        for path in rtsp.STREAM_PATHS:
            reply, _uri = await rtsp.describe(ctx.address, port, path, step)
            if reply.status == 401:
                scheme, params = rtsp.parse_challenge(reply.header("www-authenticate"))
                if scheme:
                    return path, scheme, params
            elif reply.status == 200 and open_path is None:
                open_path = path
        raise NotApplicable(
            f"stream {open_path} plays without a password"
            if open_path
            else "no known stream path asks for a password"
        )

    async def precheck(self, ctx: ProbeContext) -> None:
        await self._protected(ctx)

    async def run(self, ctx: ProbeContext) -> list[Finding]:
        port = service_port(ctx)
        step = min(5.0, ctx.timeout / 6)
        protected = await self._protected(ctx)
        path, scheme, params = protected

        async def attempt(c: Candidate) -> Attempt:
            nonlocal params
            netloc = f"[{ctx.address}]" if ":" in ctx.address else ctx.address
            uri = f"rtsp://{netloc}:{port}{path}"
            header = rtsp.authorization(scheme, params, "DESCRIBE", uri, c.username, c.password)
            reply, _ = await rtsp.describe(ctx.address, port, path, step, header)
            if reply.status == 200:
                return Attempt.OK
            if reply.status == 401:
                # Digest nonces may be single-use: take the fresh challenge for the next try.
                fresh = rtsp.parse_challenge(reply.header("www-authenticate"))
                if fresh[0] == scheme:
                    params = fresh[1]
                return Attempt.REJECTED
            return Attempt.STOP

        found, _why = await walk(ctx.login_gate(), candidates_for(ctx, "rtsp"), attempt)
        if found is None:
            return []
        return [
            cred_finding(
                "rtsp",
                port,
                found,
                f"DESCRIBE {path} answered 200 with {scheme} credentials",
                {"auth": scheme, "path": path},
            )
        ]
