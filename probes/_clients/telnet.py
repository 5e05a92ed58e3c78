"""A minimal telnet client for probes: option negotiation, prompts, one login at a time.

Why not telnetlib: it is deprecated (removed in Python 3.13) and blocking. Devices need little:
refuse every option except the server echoing and suppressing go-ahead (what a plain client
accepts), strip negotiation from the text, and recognise the three prompts a device shows —
login, password, shell. Everything the device sends is capped and read against a deadline.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from enum import StrEnum

from iotrate.net import Connection

from ..base import NotApplicable, ProbeFailed
from .io import open_tcp, write

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA = 1, 3
TEXT_CAP = 16 * 1024

LOGIN_PROMPT = re.compile(r"(?i)(login|user\s?name|user(\s?id)?)\s*:\s*$")
PASSWORD_PROMPT = re.compile(r"(?i)pass(word|code|wd)?\s*:\s*$")
# A shell prompt: the last line is short and ends with #, $, > or % (BusyBox "# ",
# "root@cam:~# ", "[admin@router] > ").
SHELL_PROMPT = re.compile(r"(?:^|\n)[^\n]{0,60}[#$>%]\s*$")
LOCKOUT = re.compile(r"(?i)(locked|too many|try again later|temporarily (disabled|blocked))")


class LoginResult(StrEnum):
    SHELL = "shell"  # a shell prompt after the password: the login worked
    REJECTED = "rejected"  # login or password prompt again, or an error message
    LOCKED = "locked"  # the device says it locked the account or the address
    UNCLEAR = "unclear"  # neither within the deadline


@dataclass
class TelnetSession:
    """One telnet connection with negotiation handled and the text seen so far."""

    conn: Connection
    answered: set[tuple[int, int]]
    closed: bool = False

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> TelnetSession:
        return cls(await open_tcp(host, port, timeout), set())

    async def close(self) -> None:
        self.closed = True
        await self.conn.close()

    def _negotiate(self, data: bytes, replies: bytearray) -> bytes:
        """Strip IAC sequences from ``data``, queueing our answers to them in ``replies``."""
        text = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b != IAC:
                if b != 0:  # telnet's "\r\0" is a bare carriage return
                    text.append(b)
                i += 1
                continue
            if i + 1 >= len(data):
                break
            cmd = data[i + 1]
            if cmd == IAC:
                text.append(IAC)
                i += 2
            elif cmd in (DO, DONT, WILL, WONT) and i + 2 < len(data):
                opt = data[i + 2]
                if (cmd, opt) not in self.answered:
                    self.answered.add((cmd, opt))
                    if cmd == WILL:
                        replies += bytes([IAC, DO if opt in (ECHO, SGA) else DONT, opt])
                    elif cmd == DO:
                        replies += bytes([IAC, WONT, opt])
                i += 3
            elif cmd == SB:
                end = data.find(bytes([IAC, SE]), i + 2)
                i = len(data) if end < 0 else end + 2
            else:
                i += 2
        return bytes(text)

    async def read_until(self, patterns: list[re.Pattern[str]], timeout: float) -> str:
        """Text (negotiation removed) until one pattern matches its end, the peer closes, or
        ``timeout`` passes; returns what was read either way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        text = ""
        while len(text) < TEXT_CAP:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(self.conn.reader.read(4096), left)
            except (TimeoutError, OSError):
                break
            if not chunk:
                self.closed = True
                break
            replies = bytearray()
            text += self._negotiate(chunk, replies).decode("utf-8", errors="replace")
            if replies:
                await write(self.conn, bytes(replies))
            tail = text.replace("\r", "")[-200:]
            if any(p.search(tail) for p in patterns):
                break
        return text.replace("\r", "")

    async def send_line(self, line: str) -> None:
        data = line.encode("utf-8", errors="replace").replace(bytes([IAC]), bytes([IAC, IAC]))
        await write(self.conn, data + b"\r\n")


def ends_with(pattern: re.Pattern[str], text: str) -> bool:
    """Whether the text seen so far ends with a prompt matching ``pattern``."""
    return bool(text.strip()) and bool(pattern.search(text[-200:]))


class TelnetLogin:
    """Tries one credential pair after another, reusing the connection while the device keeps
    asking (BusyBox login asks three times, then hangs up) and reconnecting when it does not."""

    def __init__(self, host: str, port: int, step_timeout: float) -> None:
        self.host, self.port, self.step = host, port, step_timeout
        self.session: TelnetSession | None = None
        self.waiting_for: str | None = None  # "login", "password" or None (unknown: reconnect)
        self.transcript = ""

    async def _fresh(self) -> TelnetSession:
        if self.session is not None:
            await self.session.close()
        self.session = await TelnetSession.open(self.host, self.port, self.step)
        text = await self.session.read_until([LOGIN_PROMPT, PASSWORD_PROMPT], self.step)
        self.transcript = text
        self.waiting_for = self._prompt(text)
        if self.waiting_for is None:
            if ends_with(SHELL_PROMPT, text):
                # A shell without a login is auth.none.admin (the services probe), not a
                # default password: say so rather than "try" passwords nobody asks for.
                raise NotApplicable("telnet opens a shell without asking for a password")
            raise ProbeFailed(f"telnet {self.port}: no login prompt within {self.step:g}s")
        return self.session

    @staticmethod
    def _prompt(text: str) -> str | None:
        if ends_with(LOGIN_PROMPT, text):
            return "login"
        if ends_with(PASSWORD_PROMPT, text):
            return "password"  # password-only devices never ask for a user name
        return None

    async def start(self) -> None:
        """Connect and wait for the first prompt, before any attempt is counted."""
        await self._fresh()

    async def attempt(self, username: str, password: str) -> LoginResult:
        session = self.session
        if session is None or session.closed or self.waiting_for is None:
            session = await self._fresh()
        if self.waiting_for == "login":
            await session.send_line(username)
            text = await session.read_until([PASSWORD_PROMPT, SHELL_PROMPT], self.step)
            if not ends_with(PASSWORD_PROMPT, text):
                self.waiting_for = None
                return LoginResult.SHELL if ends_with(SHELL_PROMPT, text) else LoginResult.UNCLEAR
        await session.send_line(password)
        # BusyBox login waits 3 s before saying "Login incorrect": the step covers it.
        text = await session.read_until([LOGIN_PROMPT, PASSWORD_PROMPT, SHELL_PROMPT], self.step)
        self.transcript = text
        self.waiting_for = None if session.closed else self._prompt(text)
        if LOCKOUT.search(text):
            return LoginResult.LOCKED
        if self.waiting_for is not None or session.closed:
            return LoginResult.REJECTED
        if ends_with(SHELL_PROMPT, text):
            return LoginResult.SHELL
        return LoginResult.UNCLEAR

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
