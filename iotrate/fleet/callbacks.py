"""Callbacks that cannot die.

paho runs our callbacks on its network thread and, unless told otherwise, lets an exception
from one end that thread: the client then stops reading, acknowledging and publishing, while
the process looks alive. Whatever arrives on the broker is someone else's data (a publisher
without the command key, a compromised agent), so every callback and command handler of the
agent and the collector is wrapped: an exception is logged with its traceback, and the thread
goes on with the next packet.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


def guarded(log: logging.Logger, what: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Decorate a callback so that an exception in it is logged (as ``what`` failing) and
    swallowed; the callback returns nothing, so there is nothing else to lose."""

    def wrap(fn: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                fn(*args, **kwargs)
            except Exception:
                log.exception("%s failed; carrying on", what)

        return call

    return wrap
