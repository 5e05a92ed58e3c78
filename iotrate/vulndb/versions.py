"""Version strings as the CVE records and banners write them, put in order.

Kept apart from the dataset so the lookup and the importer share one ordering and neither
depends on the other for it.
"""

from __future__ import annotations

import re

# Pre-release words sort before the release they lead to; any other letters (OpenSSL's 1.0.1g,
# OpenSSH's 9.3p2) sort after it.
_PRE = {"dev": 0, "alpha": 1, "beta": 2, "pre": 3, "rc": 4}


def version_key(version: str) -> tuple[tuple[int, ...], tuple[tuple[int, int, str], ...]]:
    """A sort key that orders dotted, YEAR.NN, letter-suffixed and rc versions correctly.

    The leading dotted numbers are the release (trailing zeros dropped, so 1.35 equals 1.35.0);
    what follows sorts before the release when it is a pre-release word (1.0.0rc1 < 1.0.0) and
    after it otherwise (OpenSSL's 1.0.1g > 1.0.1, OpenSSH's 9.3p2 > 9.3).
    """
    text = version.strip().lower()
    m = re.match(r"\d+(?:\.\d+)*", text)
    release = [int(x) for x in m.group(0).split(".")] if m else []
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    rest = re.findall(r"\d+|[a-z]+", text[m.end() if m else 0 :])
    if not rest:
        return tuple(release), ((1, 0, ""),)
    first, tail = rest[0], rest[1:]
    if first.isdigit():
        head = (2, int(first), "")
    elif first in _PRE:
        head = (0, _PRE[first], "")
    else:
        head = (2, 0, first)
    items = [head] + [(1, int(t), "") if t.isdigit() else (0, 0, t) for t in tail]
    return tuple(release), tuple(items)


def compare_versions(a: str, b: str) -> int:
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)
