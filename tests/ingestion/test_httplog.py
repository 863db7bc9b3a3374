from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingestion import Batch, TimeBounds, add_text_lines
from ingestion.buckets import OTHER
from ingestion.httplog import parse_httplog_line
from ingestion.records import LogRecord, RejectedLine
from ingestion.simulate import format_httplog_line

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")

# Lines as HAProxy 2.6 writes them with the default `option httplog`.
OK = (
    '127.0.0.1:59732 [25/Nov/2026:16:33:09.074] fe_httplog be/s1 0/0/0/1/1 200 142 - - ---- '
    '1/1/0/0/0 0/0 "GET /api/items?id=1 HTTP/1.1"'
)
REFUSED = (
    '127.0.0.1:59740 [25/Nov/2026:16:33:12.100] fe_httplog be/s1 0/0/-1/-1/3005 503 217 - - SC-- '
    '1/1/0/0/3 0/0 "GET /x HTTP/1.1"'
)
OK_TS = datetime(2026, 11, 25, 16, 33, 9, 74000, tzinfo=UTC).timestamp()


def ts(*args: int, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def swap(line: str, old: str, new: str) -> str:
    assert old in line
    return line.replace(old, new, 1)


PARSED = [
    pytest.param(
        OK,
        dict(
            ts=OK_TS, client_ip="127.0.0.1", frontend="fe_httplog", backend="be", server="s1",
            method="GET", path="/api/items?id=1", status=200, bytes_read=142,
            time_request=0, time_queue=0, time_connect=0, time_response=1, time_active=1,
            termination_state="----", actconn=1, feconn=1, beconn=0, srv_conn=0, retries=0,
            srv_queue=0, backend_queue=0,
        ),
        id="real line",
    ),
    pytest.param(
        REFUSED,
        dict(
            ts=ts(2026, 11, 25, 16, 33, 12, 100000), status=503, bytes_read=217,
            time_connect=-1, time_response=-1, time_active=3005, termination_state="SC--",
            retries=3, path="/x",
        ),
        id="real line, connection refused",
    ),
    # Syslog wrappings: the header's own date is ignored.
    pytest.param(
        "<134>Nov 25 16:33:09 haproxy[14155]: " + OK,
        dict(ts=OK_TS, client_ip="127.0.0.1", path="/api/items?id=1"),
        id="rfc3164",
    ),
    pytest.param("<134>Nov 25 16:33:09 haproxy: " + OK, dict(ts=OK_TS, status=200), id="rfc3164 no pid"),
    pytest.param(
        "<134>Dec  1 01:02:03 lb-1.example.net haproxy[14155]: " + OK,
        dict(ts=OK_TS, status=200),
        id="rfc3164 with hostname, old date",
    ),
    pytest.param(
        "Nov 25 16:33:09 lb1 haproxy[14155]: " + OK, dict(ts=OK_TS, status=200), id="rsyslog file"
    ),
    pytest.param(
        "2026-11-25T16:33:09.075123+00:00 lb1 haproxy[14155]: " + OK,
        dict(ts=OK_TS, status=200),
        id="rsyslog file, iso date",
    ),
    pytest.param(
        "<134>1 2026-11-25T16:33:12.844762+00:00 - haproxy 14155 - - " + OK,
        dict(ts=OK_TS, backend="be", path="/api/items?id=1"),
        id="rfc5424",
    ),
    pytest.param(
        '<134>1 2026-11-25T16:33:12.844762+00:00 lb1 haproxy 14155 - [meta seq="1"][x@1 a="b\\]c"] '
        + OK,
        dict(ts=OK_TS, status=200),
        id="rfc5424 hostname, structured data",
    ),
    pytest.param(
        "<134>1 2026-11-25T16:33:12.844762+00:00 lb1 haproxy 14155 - - \ufeff" + OK,
        dict(ts=OK_TS, status=200),
        id="rfc5424 bom",
    ),
    pytest.param(
        "\ufeff<134>1 2026-11-25T16:33:12Z lb1 haproxy - - - " + OK,
        dict(ts=OK_TS, status=200),
        id="bom before rfc5424",
    ),
    # Fields HAProxy writes differently in particular situations.
    pytest.param(
        swap(swap(OK, "0/0/0/1/1 200 142", "0/0/0/-1/+5 200 +0"), "1/1/0/0/0", "1/1/0/0/+1"),
        dict(time_response=-1, time_active=5, bytes_read=0, retries=1),
        id="logasap and redispatch marks",
    ),
    pytest.param(
        '127.0.0.1:59750 [25/Nov/2026:16:33:14.200] fe_httplog fe_httplog/<NOSRV> -1/-1/-1/-1/0 '
        '400 187 - - PR-- 1/1/0/0/0 0/0 "<BADREQ>"',
        dict(
            server="<NOSRV>", backend="fe_httplog", method="-", path="-", status=400,
            time_request=-1, time_queue=-1, time_connect=-1, termination_state="PR--",
        ),
        id="bad request",
    ),
    pytest.param(
        '127.0.0.1:59751 [25/Nov/2026:16:33:14.300] fe_httplog be/<NOSRV> -1/-1/-1/-1/10 -1 0 - - '
        'CR-- 1/1/0/0/0 0/0 "<BADREQ>"',
        dict(status=-1, bytes_read=0, termination_state="CR--", method="-", path="-"),
        id="client aborted, status -1",
    ),
    pytest.param(swap(OK, "127.0.0.1:59732", "::1:5432"), dict(client_ip="::1"), id="ipv6 bare"),
    pytest.param(
        swap(OK, "127.0.0.1:59732", "[2001:db8::1]:5432"), dict(client_ip="2001:db8::1"), id="ipv6 brackets"
    ),
    pytest.param(
        swap(OK, "127.0.0.1:59732", "::ffff:10.0.0.1:443"),
        dict(client_ip="::ffff:10.0.0.1"),
        id="ipv4-mapped",
    ),
    pytest.param(
        swap(OK, ' "GET', ' {www.example.com|Mozilla/5.0 (X11; Linux x86_64)} "GET'),
        dict(method="GET", path="/api/items?id=1"),
        id="request headers captured",
    ),
    pytest.param(
        swap(OK, ' "GET', ' {www.example.com|curl/8.5} {text/html|} "GET'),
        dict(method="GET", path="/api/items?id=1"),
        id="request and response headers captured",
    ),
    pytest.param(swap(OK, ' "GET', ' {} "GET'), dict(path="/api/items?id=1"), id="empty capture"),
    pytest.param(
        OK.split('"')[0] + '"GET /api/search?q=' + "a" * 900,
        dict(method="GET", path="/api/search?q=" + "a" * 900, status=200),
        id="request cut at the length limit",
    ),
    pytest.param(
        OK.split('"')[0] + "{www.example.com|Mozilla/5.0 " + "x" * 900,
        dict(method="-", path="-", status=200, time_active=1),
        id="cut inside captured headers",
    ),
    pytest.param(
        swap(OK, "GET /api/items?id=1 HTTP/1.1", "GET /"), dict(method="GET", path="/"), id="no http version"
    ),
    pytest.param(OK + "\r\n", dict(path="/api/items?id=1", status=200), id="crlf"),
    pytest.param(OK + "\n", dict(path="/api/items?id=1"), id="newline"),
    pytest.param(
        swap(OK, "fe_httplog be/s1", "fe_https~ be-api.v2_eu:west/api-1.dc_2"),
        dict(frontend="fe_https~", backend="be-api.v2_eu:west", server="api-1.dc_2"),
        id="ssl frontend, names with punctuation",
    ),
    pytest.param(
        swap(OK, "GET /api/items?id=1", "GET http://shop.example.com/cart/7?x=1"),
        dict(path="/cart/7?x=1"),
        id="absolute uri",
    ),
    pytest.param(
        swap(OK, "GET /api/items?id=1", "GET https://shop.example.com:8443"),
        dict(path="/"),
        id="absolute uri without path",
    ),
    pytest.param(
        swap(OK, "GET /api/items?id=1", "GET http://shop.example.com?q=1"),
        dict(path="/?q=1"),
        id="absolute uri, query without path",
    ),
    pytest.param(
        swap(OK, "GET /api/items?id=1", "CONNECT shop.example.com:443"),
        dict(method="CONNECT", path="shop.example.com:443"),
        id="connect",
    ),
    pytest.param(
        swap(OK, "GET /api/items?id=1", "OPTIONS *"), dict(method="OPTIONS", path="*"), id="options *"
    ),
]


@pytest.mark.parametrize(("line", "expected"), PARSED)
def test_parses_the_fields_a_user_sees(line: str, expected: dict[str, object]) -> None:
    record = parse_httplog_line(line, UTC)
    assert {field: getattr(record, field) for field in expected} == expected


@pytest.mark.parametrize(
    ("stamp", "tz", "expected"),
    [
        pytest.param("25/Nov/2026:17:33:09.074", PARIS, OK_TS, id="paris winter"),
        pytest.param("01/Jul/2026:12:00:00.000", PARIS, ts(2026, 7, 1, 10), id="paris summer"),
        pytest.param(
            "25/Nov/2026:16:33:09.074", timezone(timedelta(hours=-5)), OK_TS + 5 * 3600, id="fixed offset"
        ),
        pytest.param("31/Dec/2026:23:59:59.999", UTC, ts(2027, 1, 1) - 0.001, id="year end"),
    ],
)
def test_reads_the_accept_date_in_the_haproxy_hosts_zone(stamp: str, tz, expected: float) -> None:
    line = swap(OK, "25/Nov/2026:16:33:09.074", stamp)
    assert parse_httplog_line(line, tz).ts == pytest.approx(expected, abs=1e-6)


def test_same_date_in_two_zones_gives_two_instants() -> None:
    # Guards the per-second date cache: it must not hand one zone's answer to another.
    assert parse_httplog_line(OK, UTC).ts - parse_httplog_line(OK, PARIS).ts == 3600


def test_lines_of_consecutive_seconds_keep_their_order() -> None:
    stamps = [f"25/Nov/2026:16:33:{s:02d}.{ms:03d}" for s in range(58, 60) for ms in (0, 999)]
    stamps += ["25/Nov/2026:16:34:00.000"]
    times = [parse_httplog_line(swap(OK, "25/Nov/2026:16:33:09.074", s), UTC).ts for s in stamps]
    assert times == sorted(times) and len(set(times)) == len(times)


TRUNCATED_BEFORE_STATUS = OK[: OK.index(" 200 ")]
REJECTED = [
    pytest.param("", "empty line", id="empty"),
    pytest.param("\r\n", "empty line", id="blank"),
    pytest.param('{"status": 200, "path": "/x"}', "looks like JSON", id="json"),
    pytest.param(
        "hello world", "expected 'client_ip:port' at the start of the line, got 'hello'", id="garbage"
    ),
    pytest.param(
        "<133>Nov 25 16:33:00 haproxy[14155]: Proxy fe_httplog started.",
        "expected 'client_ip:port' at the start of the line, got 'Proxy'",
        id="haproxy notice",
    ),
    pytest.param(
        TRUNCATED_BEFORE_STATUS,
        "line ends before the status code (cut short?)",
        id="truncated before status",
    ),
    pytest.param(
        "127.0.0.1:59732 fe_httplog be/s1 0/0/0/1/1 200",
        "not an HAProxy httplog line: expected '[date]' after the client address, got 'fe_httplog'",
        id="no date",
    ),
    pytest.param(
        swap(OK, "[25/Nov/2026:16:33:09.074]", "[2026-11-25T16:33:09]"),
        "bad accept date '[2026-11-25T16:33:09]'",
        id="iso date",
    ),
    pytest.param(
        swap(OK, "25/Nov/", "32/Nov/"), "bad accept date '32/Nov/2026:16:33:09'", id="impossible date"
    ),
    pytest.param(swap(OK, "0/0/0/1/1", "0/x/1"), "bad timer field '0/x/1'", id="bad timers"),
    pytest.param(swap(OK, " 200 ", " 2xx "), "bad status code '2xx'", id="bad status"),
    pytest.param(swap(OK, "1/1/0/0/0", "1/1/0"), "bad connection counts '1/1/0'", id="bad counters"),
    pytest.param(swap(OK, "----", "--"), "bad termination state", id="short termination state"),
    pytest.param(
        '127.0.0.1:59732 [25/Nov/2026:16:33:09.074] fe_tcp be/s1 0/0/5 142 -- 1/1/1/1/0 0/0',
        "HAProxy tcplog line",
        id="tcplog",
    ),
    pytest.param(
        swap(OK, '"GET /api/items?id=1 HTTP/1.1"', "GET /"), "expected the quoted request", id="unquoted"
    ),
]


@pytest.mark.parametrize(("line", "reason"), REJECTED)
def test_rejects_with_a_reason_that_names_the_problem(line: str, reason: str) -> None:
    with pytest.raises(RejectedLine) as rejected:
        parse_httplog_line(line, UTC)
    assert reason in rejected.value.reason
    assert rejected.value.code == "parse_error"


def test_rejection_reason_stays_short_for_a_huge_line() -> None:
    with pytest.raises(RejectedLine) as rejected:
        parse_httplog_line("x" * 100_000, UTC)
    assert len(rejected.value.reason) < 200


@given(st.integers(min_value=0, max_value=len(OK) - 1))
def test_a_line_cut_inside_the_request_is_kept_and_earlier_is_rejected(cut: int) -> None:
    if cut > OK.index('"'):
        assert parse_httplog_line(OK[:cut], UTC).status == 200
    else:
        with pytest.raises(RejectedLine):
            parse_httplog_line(OK[:cut], UTC)


# Numbers HAProxy could not have written: each line is rejected alone, its reason naming the field.
TWENTY_DIGITS = "18446744073709551615"
OUT_OF_BOUNDS = [
    pytest.param(swap(OK, "0/0/0/1/1", f"0/0/0/1/{TWENTY_DIGITS}"), "Ta (time_active) 18446744073709551615",
                 id="20-digit Ta"),
    pytest.param(swap(OK, "0/0/0/1/1", "0/0/0/1/9223372036854775807"), "Ta (time_active)", id="Ta 2^63-1"),
    pytest.param(swap(OK, "0/0/0/1/1", "0/0/0/1/86400000"), "a timer is -1 or 0 to 86399999 ms", id="Ta a day"),
    pytest.param(swap(OK, "0/0/0/1/1", "0/-2/0/1/1"), "Tw (time_queue) -2", id="Tw below -1"),
    pytest.param(swap(OK, "0/0/0/1/1", f"{TWENTY_DIGITS}/0/0/1/1"), "TR (time_request)", id="20-digit TR"),
    pytest.param(swap(OK, " 200 142 ", f" 200 {TWENTY_DIGITS} "), "byte count 18446744073709551615",
                 id="20-digit byte count"),
    pytest.param(swap(OK, " 200 142 ", " 700 142 "), "status 700 is out of range", id="status 700"),
    pytest.param(swap(OK, " 200 142 ", " 42 142 "), "status 42 is out of range", id="status 42"),
    pytest.param(swap(OK, " 200 142 ", " -2 142 "), "status -2", id="status -2"),
    pytest.param(swap(OK, " 200 142 ", f" {'9' * 1000} 142 "), "status 999999999999999999999999…",
                 id="1000-digit status"),
    pytest.param(swap(OK, " 200 142 ", f" {'9' * 5000} 142 "), "thousands of digits", id="5000-digit status"),
    pytest.param(swap(OK, "1/1/0/0/0", f"1/1/0/0/{TWENTY_DIGITS}"), "retries 18446744073709551615",
                 id="20-digit retries"),
    pytest.param(swap(OK, "0/0 \"GET", f"0/{TWENTY_DIGITS} \"GET"), "backend_queue", id="20-digit queue"),
    pytest.param(swap(OK, " ---- ", " s1-- "), "termination state 's1--' is not one HAProxy writes",
                 id="digit in termination state"),
    pytest.param(swap(OK, " ---- ", " sH-\u00e9 "), "termination state", id="accent in termination state"),
]
BOUNDS_NOW = TimeBounds(now=OK_TS, retention_seconds=3600, skew_seconds=300)


def ingest(*lines: str) -> Batch:
    batch = Batch()
    add_text_lines(batch, lines, tz=UTC, bounds=BOUNDS_NOW)
    return batch


@pytest.mark.parametrize(("line", "reason"), OUT_OF_BOUNDS)
def test_a_number_haproxy_could_not_write_rejects_its_line_alone(line: str, reason: str) -> None:
    batch = ingest(OK, line, REFUSED)
    assert (batch.accepted, batch.rejected, dict(batch.reasons)) == (2, 1, {"out_of_range": 1})
    assert batch.errors[0].line == 2
    assert reason in batch.errors[0].reason
    assert len(batch.errors[0].reason) < 200


# What HAProxy does write at the edges of each range: all of it counted.
WITHIN_BOUNDS = [
    pytest.param(swap(OK, "0/0/0/1/1", "86399999/0/0/1/86399999"), id="timers just under a day"),
    pytest.param(swap(OK, "0/0/0/1/1", "-1/-1/-1/-1/-1"), id="no timer at all"),
    pytest.param(swap(OK, " 200 142 ", " 599 9007199254740991 "), id="status 599, 2^53-1 bytes"),
    pytest.param(swap(OK, " 200 142 ", " 100 0 "), id="status 100"),
    pytest.param(swap(swap(OK, " 200 142 ", " 0 0 "), " ---- ", " CR-- "), id="status 0"),
    pytest.param(swap(OK, "1/1/0/0/0", "2147483647/1/0/0/+3"), id="counts up to 2^31-1"),
    pytest.param(swap(OK, " ---- ", " sHNI "), id="cookie flags"),
]


@pytest.mark.parametrize("line", WITHIN_BOUNDS)
def test_the_edges_of_each_range_are_accepted(line: str) -> None:
    assert ingest(line).accepted == 1


def test_a_termination_state_haproxy_does_not_list_is_counted_as_other() -> None:
    batch = ingest(swap(OK, " ---- ", " XZ-- "), swap(OK, " ---- ", " sH-- "), OK)
    assert batch.accepted == 3
    (bucket,) = batch.buckets.values()
    assert dict(bucket.backends["be"].terms) == {OTHER: 1, "sH": 1, "--": 1}


@given(st.text(max_size=300))
def test_any_text_is_parsed_or_rejected(text: str) -> None:
    try:
        parse_httplog_line(text, UTC)
    except RejectedLine:
        pass


NAME = st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)
COUNT = st.integers(min_value=0, max_value=100_000)
TIMER = st.integers(min_value=-1, max_value=10_000_000)
RECORDS = st.builds(
    LogRecord,
    # Milliseconds, as HAProxy writes them, from 1971 to 2100.
    ts=st.integers(min_value=31_536_000_000, max_value=4_102_444_800_000).map(lambda ms: ms / 1000),
    client_ip=st.ip_addresses().map(str),
    frontend=st.tuples(NAME, st.sampled_from(["", "~"])).map("".join),
    backend=NAME,
    server=NAME | st.just("<NOSRV>"),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.from_regex(r"/[A-Za-z0-9/._~%!$&'()*+,;=:@?-]{0,80}", fullmatch=True),
    status=st.integers(min_value=-1, max_value=599),
    bytes_read=COUNT,
    time_request=TIMER,
    time_queue=TIMER,
    time_connect=TIMER,
    time_response=TIMER,
    time_active=TIMER,
    termination_state=st.from_regex(r"[-A-Za-z]{4}", fullmatch=True),
    actconn=COUNT,
    feconn=COUNT,
    beconn=COUNT,
    srv_conn=COUNT,
    retries=st.integers(min_value=0, max_value=10),
    srv_queue=COUNT,
    backend_queue=COUNT,
)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])


@given(RECORDS, ZONES, st.integers(min_value=1, max_value=65535))
def test_formatting_then_parsing_gives_the_record_back(record: LogRecord, tz, port: int) -> None:
    line = format_httplog_line(record, tz, client_port=port)
    assert parse_httplog_line(line, tz) == record


def test_formats_exactly_as_haproxy_does() -> None:
    assert format_httplog_line(parse_httplog_line(OK, UTC), UTC, client_port=59732) == OK
    assert format_httplog_line(parse_httplog_line(REFUSED, UTC), UTC, client_port=59740) == REFUSED
