"""Parse one line of HAProxy's default ``option httplog`` format into a `LogRecord`.

The format (HAProxy 2.6)::

    %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
    %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r

The line may arrive bare (``log ... format raw``) or wrapped in an RFC 3164 or
RFC 5424 syslog header; the header's date is ignored because the accept date
inside the line (``[25/Nov/2026:16:33:09.074]``) is when the request started,
written in the HAProxy host's local time.

Every line is read by one precompiled regular expression (one for bare lines,
one for wrapped lines). Only a line they reject is walked field by field, to
say which field is wrong.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from ingestion.records import LogRecord, RejectedLine

# What syslog daemons put before the message. RFC 5424 allows a BOM before the
# message; some senders also put one before the whole packet.
_RFC5424_HEADER = r"\ufeff?<\d{1,3}>1 \S+ \S+ \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+) \ufeff?"
# RFC 3164 as sent on the wire, or as written to a file by rsyslog (which drops
# the priority and may use an ISO date): `<134>Nov 25 16:33:09 lb1 haproxy[14155]: `.
_RFC3164_HEADER = (
    r"(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) "
    r"(?:\S+ )?[^\s\[:]+(?:\[\d+\])?: "
)
_SYSLOG_HEADER = f"(?:{_RFC5424_HEADER}|{_RFC3164_HEADER})"

# HAProxy escapes '"' in the request and '{', '|', '}' in captured headers, so
# neither can end a field early. A line HAProxy cut at its length limit has no
# closing quote, or stops inside a captured-header block.
_HTTPLOG_BODY = (
    r"(?:\[([^\]\s]*)\]|(\S+)):\d+ "  # %ci:%cp; IPv6 is written bare or in brackets
    r"\[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d)\.(\d{3})\] "  # %tr
    r"(\S+) ([^\s/]+)/(\S+) "  # %ft %b/%s
    r"(-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) "  # %TR/%Tw/%Tc/%Tr/%Ta
    r"(-?\d+) \+?(\d+) \S+ \S+ (\S{4}) "  # %ST %B %CC %CS %tsc
    r"(\d+)/(\d+)/(\d+)/(\d+)/\+?(\d+) (\d+)/(\d+) "  # %ac/%fc/%bc/%sc/%rc %sq/%bq
    r"(?:\{[^}]*\} ){0,2}"  # %hr %hs, only when captures are configured
    r'(?:"([^"\r\n]*)|\{[^}]*$)'  # %{+Q}r
)
# Two expressions rather than one with an optional header: trying the header
# first costs a quarter of the match time on every bare line.
_BARE_LINE = re.compile(_HTTPLOG_BODY)
_SYSLOG_LINE = re.compile(_SYSLOG_HEADER + _HTTPLOG_BODY)
_SYSLOG_PREFIX = re.compile(_SYSLOG_HEADER)

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}

# Epoch milliseconds of each accept date to the second, per zone. Consecutive
# lines share their second, so converting a local date is paid once per second
# of log, not once per line. Kept in integer milliseconds so that adding the
# line's milliseconds and dividing once gives the same float whatever the
# cache's state.
_SECOND_CACHE: dict[tzinfo, dict[str, int]] = {}
_SECOND_CACHE_SIZE = 4096


def parse_httplog_line(line: str, tz: tzinfo) -> LogRecord:
    """Parse one httplog line, reading its accept date in ``tz``.

    >>> from datetime import timezone
    >>> r = parse_httplog_line('127.0.0.1:59732 [25/Nov/2026:16:33:09.074] fe be/s1 '
    ...     '0/0/0/1/1 200 142 - - ---- 1/1/0/0/0 0/0 "GET /api/items?id=1 HTTP/1.1"',
    ...     timezone.utc)
    >>> r.backend, r.server, r.status, r.path, r.time_active
    ('be', 's1', 200, '/api/items?id=1', 1)

    Raises `RejectedLine` (code ``parse_error``) naming the field that is wrong.
    """
    if line[:1] == "<":
        header = _SYSLOG_PREFIX.match(line)
        body = line[header.end():] if header else line
    else:
        body = line
    record = _split_fields(body, tz)
    if record is not None:
        return record
    m = _BARE_LINE.match(line) or _SYSLOG_LINE.match(line)
    if m is None:
        raise RejectedLine(_diagnose(line))
    (
        client_ip6, client_ip, stamp, millis, frontend, backend, server,
        tr, tw, tc, tresp, ta, status, bytes_read, termination,
        actconn, feconn, beconn, srv_conn, retries, srv_queue, backend_queue,
        request,
    ) = m.groups()  # fmt: skip

    epoch_ms = _cached_epoch_ms(stamp, tz)

    method, path = _method_and_path(request)  # request is None when cut inside captured headers

    try:
        return LogRecord(
            (epoch_ms + int(millis)) / 1000,
            client_ip6 or client_ip,
            frontend,
            backend,
            server,
            method,
            path,
            int(status),
            int(bytes_read),
            int(tr),
            int(tw),
            int(tc),
            int(tresp),
            int(ta),
            termination,
            int(actconn),
            int(feconn),
            int(beconn),
            int(srv_conn),
            int(retries),
            int(srv_queue),
            int(backend_queue),
        )
    except ValueError:  # an int of thousands of digits, which Python will not read
        raise RejectedLine("a number in the line is thousands of digits long", "out_of_range") from None


def _method_and_path(request: str | None) -> tuple[str, str]:
    if not request or request == "<BADREQ>":
        return "-", "-"
    method, _, target = request.partition(" ")
    path = target.partition(" ")[0]
    if not path:
        return method, "-"
    if path[0] != "/" and "://" in path:
        return method, _origin_form(path)
    return method, path


def _cached_epoch_ms(stamp: str, tz: tzinfo) -> int:
    seconds = _SECOND_CACHE.get(tz)
    if seconds is None:
        seconds = _SECOND_CACHE[tz] = {}
    epoch_ms = seconds.get(stamp)
    if epoch_ms is None:
        epoch_ms = _epoch_ms(stamp, tz)
        if len(seconds) >= _SECOND_CACHE_SIZE:
            seconds.clear()
        seconds[stamp] = epoch_ms
    return epoch_ms


def _split_fields(body: str, tz: tzinfo) -> LogRecord | None:
    """The common line (no captured headers) split on spaces: about half the regex's cost.

    Returns None for anything unusual; the regular expression then parses or explains it.
    """
    parts = body.split(" ", 12)
    if len(parts) != 13:
        return None
    client, date, frontend, backend_server, timers, status, size, _, _, termination, conns, queues, request = parts
    if len(date) != 26 or date[0] != "[" or date[21] != "." or date[25] != "]" or request[:1] != '"':
        return None
    backend, _, server = backend_server.partition("/")
    ip, _, port = client.rpartition(":")
    t = timers.split("/")
    c = conns.split("/")
    q = queues.split("/")
    if not (backend and server and ip and port.isdigit() and len(t) == 5 and len(c) == 5 and len(q) == 2
            and len(termination) == 4 and size[-1:].isdigit()):
        return None
    if ip[0] == "[":
        ip = ip[1:-1]
    try:
        epoch_ms = _cached_epoch_ms(date[1:21], tz) + int(date[22:25])
        numbers = (int(status), int(size), int(t[0]), int(t[1]), int(t[2]), int(t[3]), int(t[4]),
                   int(c[0]), int(c[1]), int(c[2]), int(c[3]), int(c[4]), int(q[0]), int(q[1]))
    except (ValueError, RejectedLine):
        return None
    request = request[1:]
    if request[-1:] == '"':
        request = request[:-1]
    elif request[-1:] in ("\n", "\r"):
        request = request.rstrip("\r\n")
        if request[-1:] == '"':
            request = request[:-1]
    method, path = _method_and_path(request)
    st, sz, tr, tw, tc, tresp, ta, ac, fc, bc, sc, rc, sq, bq = numbers
    return LogRecord(epoch_ms / 1000, ip, frontend, backend, server, method, path, st, sz, tr, tw, tc, tresp, ta,
                     termination, ac, fc, bc, sc, rc, sq, bq)


def _epoch_ms(stamp: str, tz: tzinfo) -> int:
    """`25/Nov/2026:16:33:09` in ``tz`` as epoch milliseconds."""
    try:
        local = datetime(
            int(stamp[7:11]),
            _MONTHS[stamp[3:6]],
            int(stamp[0:2]),
            int(stamp[12:14]),
            int(stamp[15:17]),
            int(stamp[18:20]),
            tzinfo=tz,
        )
    except (KeyError, ValueError):
        raise RejectedLine(
            f"bad accept date '{stamp}': expected a real date as dd/Mon/yyyy:HH:MM:SS"
        ) from None
    return int(local.timestamp()) * 1000


def _origin_form(uri: str) -> str:
    """`http://host/x?y` → `/x?y`: an absolute request target reduced to its path."""
    after_scheme = uri.find("://") + 3
    for i in range(after_scheme, len(uri)):
        if uri[i] == "/":
            return uri[i:]
        if uri[i] in "?#":
            return "/" + uri[i:]
    return "/"


# The fields of the format in order, for explaining a rejected line: what the
# field is, its pattern, what it should look like. A field ends at a space, or
# at the end of a line that was cut short.
_END = "(?: |$)"
_FIELDS = tuple(
    (name, re.compile(pattern), shape)
    for name, pattern, shape in (
        ("client address", r"(?:\[[^\]\s]*\]|\S+):\d+" + _END, "'client_ip:port'"),
        ("accept date", r"\[[^\]]*\]" + _END, "'[date]'"),
        ("frontend", r"\S+" + _END, "a frontend name"),
        ("backend/server", r"[^\s/]+/\S+" + _END, "'backend/server'"),
        ("timer field", r"-?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+" + _END, "TR/Tw/Tc/Tr/Ta, e.g. 0/0/1/12/13"),
        ("status code", r"-?\d+" + _END, "an HTTP status such as 200"),
        ("byte count", r"\+?\d+" + _END, "the bytes sent to the client"),
        ("request cookie", r"\S+" + _END, "'-' or a cookie"),
        ("response cookie", r"\S+" + _END, "'-' or a cookie"),
        ("termination state", r"\S{4}" + _END, "four characters such as '----' or 'sH--'"),
        ("connection counts", r"\d+/\d+/\d+/\d+/\+?\d+" + _END, "actconn/feconn/beconn/srv_conn/retries"),
        ("queue counts", r"\d+/\d+" + _END, "srv_queue/backend_queue"),
        ("captured headers", r"(?:\{[^}]*\}" + _END + "){0,2}", "'{...}'"),
        ("request", '"', 'the quoted request, e.g. "GET / HTTP/1.1"'),
    )
)
_ACCEPT_DATE = re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\]")
_TCPLOG_TIMERS = re.compile(r"-?\d+/-?\d+/\+?-?\d+" + _END)


def _diagnose(line: str) -> str:
    """Say why ``line`` is not an httplog line, naming the first field that is wrong."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return "empty line"
    if text.lstrip("\ufeff ").startswith("{"):
        return (
            "not an HAProxy httplog line: it looks like JSON; "
            "send the lines HAProxy writes with 'option httplog'"
        )
    header = _SYSLOG_PREFIX.match(text)
    pos = header.end() if header else 0
    where = "at the start of the line"
    for name, pattern, shape in _FIELDS:
        if pos >= len(text):
            return f"line ends before the {name} (cut short?): expected {shape} {where}"
        field = pattern.match(text, pos)
        if field is None:
            if name == "timer field" and _TCPLOG_TIMERS.match(text, pos):
                return (
                    "an HAProxy tcplog line, not httplog: it has Tw/Tc/Tt timers and no "
                    "HTTP status; use 'option httplog' on HTTP frontends"
                )
            token = _excerpt(text[pos:].partition(" ")[0])
            if name in _LAYOUT_FIELDS:
                return f"not an HAProxy httplog line: expected {shape} {where}, got '{token}'"
            return f"bad {name} '{token}': expected {shape}"
        if name == "accept date" and _ACCEPT_DATE.match(text, pos) is None:
            stamp = _excerpt(text[pos:].partition("]")[0] + "]")
            return f"bad accept date '{stamp}': expected [dd/Mon/yyyy:HH:MM:SS.mmm]"
        if field.end() > pos:
            pos = field.end()
            where = f"after the {name}"
    return "not an HAProxy httplog line"


# Fields whose absence means the line has another layout altogether, rather
# than one bad value.
_LAYOUT_FIELDS = frozenset({"client address", "accept date", "backend/server", "request"})


def _excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
