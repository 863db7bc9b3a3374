"""Reduce request paths to routes, so that per-path signals stay a bounded set.

`/api/users/3f2b…/orders/981?page=2` and `/api/users/77ac…/orders/12` are the same
route to whoever reads a dashboard: `/api/users/{id}/orders/{id}`.
"""

from __future__ import annotations

import re
from functools import lru_cache

ID_PLACEHOLDER = "{id}"
# Routes become parts of Redis field names, where control characters are separators.
_NO_CONTROL = dict.fromkeys(range(32), " ")
MAX_ROUTE_LENGTH = 200

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Hex ids need a digit, so that words spelt only with the letters a-f
# (`deadbeef`, `accede`) stay.
_HEX_ID = re.compile(r"(?=[a-fA-F]*\d)[0-9a-fA-F]{8,}")
# Session ids, signed tokens, base64url keys: long, and with a digit somewhere.
_OPAQUE_TOKEN = re.compile(r"(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{24,}")


def normalise_path(path: str) -> str:
    """The route of a request path: no query or fragment, ids folded to ``{id}``.

    >>> normalise_path("/api/users/550e8400-e29b-41d4-a716-446655440000/orders/17?page=2")
    '/api/users/{id}/orders/{id}'
    >>> normalise_path("/static//app.js/")
    '/static/app.js'
    """
    # Cut the query before the cache, so that `/items?id=1` and `/items?id=2`
    # share one entry.
    return _route(path.partition("?")[0].partition("#")[0])


@lru_cache(maxsize=65536)
def _route(path: str) -> str:
    if path == "-" or not path:
        return "-"  # HAProxy's mark for a request it could not parse
    if path[0] != "/":
        scheme = path.find("://")
        if scheme < 0:
            return path[:MAX_ROUTE_LENGTH]  # `*` or a CONNECT authority: not a path
        host_end = path.find("/", scheme + 3)
        path = path[host_end:] if host_end >= 0 else "/"
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if _DIGIT.search(path):  # every id has a digit; most paths without one are already routes
        path = _ID_SEGMENT.sub(ID_PLACEHOLDER, path)
    if len(path) > 1 and path[-1] == "/":
        path = path[:-1]
    path = path[:MAX_ROUTE_LENGTH]
    return path if path.isprintable() else path.translate(_NO_CONTROL)


_SLASHES = re.compile(r"/{2,}")
_DIGIT = re.compile(r"\d")
# One pass over the path: a whole segment that is a number, a UUID, a hex id or an opaque token.
# Ids other than numbers are at least 8 characters: the lookahead skips short segments early.
_ID_SEGMENT = re.compile(
    r"(?<=/)(?:\d+(?=/|$)|(?=[^/]{8})(?:"
    + "|".join((_UUID.pattern, _HEX_ID.pattern, _OPAQUE_TOKEN.pattern))
    + r")(?=/|$))"
)
