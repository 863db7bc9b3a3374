"""Syslog framing: TCP streams cut anywhere, both RFC 6587 framings, datagrams with one or many lines."""

from __future__ import annotations

import pytest

from ingestion.syslog_framing import MAX_MESSAGE_BYTES, StreamFramer, message_lines

LINE = ('127.0.0.1:59732 [25/Nov/2026:16:33:09.074] fe_httplog be/s1 0/0/0/1/1 200 142 - - ---- '
        '1/1/0/0/0 0/0 "GET /api/items?id=1 HTTP/1.1"')
RFC3164 = "<134>Nov 25 16:33:09 haproxy[14155]: " + LINE
RFC5424 = "<134>1 2026-11-25T16:33:09.074Z lb1 haproxy 14155 - - " + LINE


def octet(message: str | bytes) -> bytes:
    body = message.encode() if isinstance(message, str) else message
    return str(len(body)).encode() + b" " + body


def frame_all(packets: list[bytes], max_message: int = MAX_MESSAGE_BYTES) -> tuple[list[bytes], StreamFramer]:
    framer = StreamFramer(max_message=max_message)
    out: list[bytes] = []
    for packet in packets:
        out += framer.feed(packet)
    out += framer.finish()
    return out, framer


def cuts(data: bytes, *at: int) -> list[bytes]:
    edges = [0, *at, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


CASES = [
    pytest.param([RFC3164.encode() + b"\n" + RFC5424.encode() + b"\n"], [RFC3164, RFC5424], False,
                 id="newline-two-messages-one-packet"),
    pytest.param(cuts(f"{RFC3164}\n{RFC3164}\n".encode(), 5, 60, len(RFC3164), len(RFC3164) + 1),
                 [RFC3164, RFC3164], False, id="newline-cut-mid-message-and-at-delimiter"),
    pytest.param([f"{LINE}\n{LINE}\n".encode()], [LINE, LINE], False,
                 id="newline-bare-line-starting-with-digits"),
    pytest.param(cuts(f"{LINE}\n".encode(), 1, 3), [LINE], False,
                 id="newline-bare-line-first-bytes-alone"),
    pytest.param([f"{RFC3164}\r\n{RFC5424}\r\n".encode()], [RFC3164, RFC5424], False, id="newline-crlf"),
    pytest.param(cuts(f"{RFC3164}\r\n{RFC3164}\r\n".encode(), len(RFC3164) + 1), [RFC3164, RFC3164], False,
                 id="newline-crlf-cut-between-cr-and-lf"),
    pytest.param([f"{RFC3164}\n\n\n{RFC3164}".encode()], [RFC3164, RFC3164], False,
                 id="newline-blank-lines-and-unterminated-last"),
    pytest.param([octet(RFC3164) + octet(RFC5424)], [RFC3164, RFC5424], True, id="octet-two-frames-one-packet"),
    pytest.param(cuts(octet(RFC3164) + octet(RFC5424), 1, 2, 4, 100, len(octet(RFC3164)) + 2),
                 [RFC3164, RFC5424], True, id="octet-cut-inside-count-and-body"),
    pytest.param([octet("<134>first line\nsecond line\n") + octet(RFC3164)],
                 ["<134>first line\nsecond line\n", RFC3164], True, id="octet-message-containing-newlines"),
    pytest.param([octet(RFC3164) + b"\n" + octet(RFC3164) + b"\r\n"], [RFC3164, RFC3164], True,
                 id="octet-with-stray-newlines-between-frames"),
    pytest.param([octet(RFC3164) + b"garbage here\n" + octet(RFC5424)], [RFC3164, "garbage here", RFC5424], True,
                 id="octet-garbage-handed-on-and-resynchronised"),
    pytest.param([octet(RFC3164) + b"12x4 nope\n" + octet(RFC3164)], [RFC3164, "12x4 nope", RFC3164], True,
                 id="octet-garbage-that-starts-with-digits"),
    pytest.param([octet(RFC3164)[:-10]], [octet(RFC3164)[:-10].decode()], True,
                 id="octet-frame-cut-by-close-handed-on"),
]


@pytest.mark.parametrize(("packets", "expected", "octet_counted"), CASES)
def test_stream_framing(packets: list[bytes], expected: list[str], octet_counted: bool) -> None:
    messages, framer = frame_all(packets)
    assert [m.decode() for m in messages] == expected
    assert framer.octet_counted is octet_counted
    assert framer.oversize == 0


@pytest.mark.parametrize("packets", [
    pytest.param(lambda data: [data], id="whole"),
    pytest.param(lambda data: [data[i:i + 1] for i in range(len(data))], id="byte-by-byte"),
    pytest.param(lambda data: [data[i:i + 7] for i in range(0, len(data), 7)], id="seven-byte-packets"),
])
@pytest.mark.parametrize("frame", [pytest.param(lambda m: m.encode() + b"\n", id="newline"),
                                   pytest.param(octet, id="octet")])
def test_any_packet_boundary_gives_the_same_messages(packets, frame) -> None:
    sent = [RFC3164, RFC5424, LINE, "<13>1 - - - - - - short"]
    data = b"".join(frame(m) for m in sent)
    messages, _ = frame_all(packets(data))
    assert [m.decode() for m in messages] == sent


@pytest.mark.parametrize(("packets", "expected"), [
    pytest.param(lambda big: [big + b"\n" + RFC3164.encode() + b"\n"], [RFC3164], id="newline-in-one-packet"),
    pytest.param(lambda big: cuts(big + b"\n" + RFC3164.encode() + b"\n", 100, 150, len(big) - 3),
                 [RFC3164], id="newline-over-several-packets"),
    pytest.param(lambda big: [octet(big) + octet(RFC3164)], [RFC3164], id="octet-in-one-packet"),
    pytest.param(lambda big: cuts(octet(big) + octet(RFC3164), 3, 200, len(big)), [RFC3164], id="octet-skipped-as-it-arrives"),
])
def test_oversize_message_is_dropped_counted_and_the_next_one_kept(packets, expected) -> None:
    big = b"<134>" + b"x" * 300
    messages, framer = frame_all(packets(big), max_message=256)
    assert [m.decode() for m in messages] == expected
    assert framer.oversize == 1


def test_buffer_stays_bounded_when_a_sender_never_ends_its_message() -> None:
    framer = StreamFramer(max_message=1024)
    for _ in range(100):
        assert framer.feed(b"a" * 500) == []
        assert len(framer._buffer) <= 1024 + 500
    assert framer.feed(b"\n" + RFC3164.encode() + b"\n") == [RFC3164.encode()]
    assert framer.oversize == 1


def test_octet_count_waits_for_its_space_but_not_forever() -> None:
    framer = StreamFramer()
    assert framer.feed(b"12") == []
    assert framer.octet_counted is None
    assert framer.feed(b"345678901234 not a count\n") == [b"12345678901234 not a count"]
    assert framer.octet_counted is False


@pytest.mark.parametrize(("datagram", "lines"), [
    pytest.param(RFC3164.encode(), [RFC3164], id="haproxy-one-line"),
    pytest.param(RFC5424.encode() + b"\n", [RFC5424], id="trailing-newline"),
    pytest.param(RFC3164.encode() + b"\r\n", [RFC3164], id="trailing-crlf"),
    pytest.param(RFC3164.encode() + b"\0", [RFC3164], id="trailing-nul"),
    pytest.param(f"{LINE}\n{LINE}\r\n\n{LINE}".encode(), [LINE, LINE, LINE], id="several-lines"),
    pytest.param(b"\n \n", [], id="blank"),
    pytest.param(b"<134>caf\xc3\xa9 \xff", ["<134>café \ufffd"], id="invalid-utf8-replaced"),
])
def test_message_lines(datagram: bytes, lines: list[str]) -> None:
    assert message_lines(datagram) == lines
