"""Syslog transport framing: from datagrams and TCP byte streams to log lines. Pure: no sockets.

UDP carries one message per datagram (RFC 5426); HAProxy ends each with a newline.
TCP carries either octet-counted frames, ``<len> <msg>`` (RFC 6587 3.4.1, rsyslog's
and syslog-ng's RFC 5425-style output), or messages ended by a newline (RFC 6587
3.4.2, what HAProxy 2.6's log rings send). A sender uses one method for the whole
connection, so `StreamFramer` decides once, from the first bytes, and keeps to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Far above any HAProxy line (its `len` defaults to 1024) yet small enough that a
# sender that never ends its message cannot grow a connection's buffer without end.
MAX_MESSAGE_BYTES = 64 * 1024

# An octet count longer than this many digits is not one we would accept anyway.
_MAX_COUNT_DIGITS = 10
_DIGITS = frozenset(b"0123456789")
# Bytes some senders put between octet-counted frames; never the start of a frame.
_BETWEEN_FRAMES = frozenset(b"\r\n\0 ")


def message_lines(message: bytes) -> list[str]:
    """The log lines in one syslog message (a datagram or a TCP frame); blank lines are left out."""
    text = message.decode("utf-8", "replace")
    if "\n" not in text:  # HAProxy sends one line per message: keep that path short
        text = text.rstrip("\r\0")
        return [text] if text and not text.isspace() else []
    lines = []
    for line in text.split("\n"):
        line = line.rstrip("\r\0")
        if line and not line.isspace():
            lines.append(line)
    return lines


@dataclass(slots=True)
class StreamFramer:
    """Splits one TCP connection's bytes into syslog messages; feed it each read, in order.

    >>> framer = StreamFramer()
    >>> framer.feed(b"11 <134>hello!5 <1")
    [b'<134>hello!']
    >>> framer.feed(b"34>x")
    [b'<134>x']
    """

    max_message: int = MAX_MESSAGE_BYTES
    octet_counted: bool | None = None  # None until the first bytes have decided it
    oversize: int = 0  # messages discarded for exceeding max_message
    _buffer: bytearray = field(default_factory=bytearray)
    _skip_bytes: int = 0  # left of an oversize octet-counted frame, discarded as it arrives
    _skip_line: bool = False  # inside an oversize unframed message, discarded up to its newline

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        if self.octet_counted is None:
            self.octet_counted = _detect(self._buffer)
            if self.octet_counted is None:
                return []
        return self._octet_frames() if self.octet_counted else self._newline_frames()

    def finish(self) -> list[bytes]:
        """At the end of the stream: what is left, a last message its sender did not end.

        A frame cut short is handed on as it is, so the intake rejects it and counts it.
        """
        rest = bytes(self._buffer)
        self._buffer.clear()
        if self._skip_line or self._skip_bytes or not rest.strip(b"\r\n\0 "):
            return []
        return [rest.rstrip(b"\r")]

    def _newline_frames(self) -> list[bytes]:
        buf = self._buffer
        out: list[bytes] = []
        start = 0
        if self._skip_line:
            end = buf.find(b"\n")
            if end == -1:
                buf.clear()
                return out
            self._skip_line = False
            start = end + 1
        while (end := buf.find(b"\n", start)) != -1:
            self._emit(out, buf, start, end - 1 if end > start and buf[end - 1] == 13 else end)
            start = end + 1
        del buf[:start]
        if len(buf) > self.max_message:
            self._discard_line()
        return out

    def _octet_frames(self) -> list[bytes]:
        buf = self._buffer
        out: list[bytes] = []
        pos = 0
        size = len(buf)
        while pos < size:
            if self._skip_bytes:
                step = min(self._skip_bytes, size - pos)
                self._skip_bytes -= step
                pos += step
                continue
            if self._skip_line:
                end = buf.find(b"\n", pos)
                if end == -1:
                    pos = size
                    break
                self._skip_line = False
                pos = end + 1
                continue
            if buf[pos] in _BETWEEN_FRAMES:
                pos += 1
                continue
            space = buf.find(b" ", pos, pos + _MAX_COUNT_DIGITS + 1)
            count = buf[pos:space] if space != -1 else b""
            if count.isdigit() and count[0] != 48:
                length = int(count)
                body = space + 1
                if length > self.max_message:
                    self.oversize += 1
                    self._skip_bytes = length
                    pos = body
                elif size - body >= length:
                    out.append(bytes(buf[body:body + length]))
                    pos = body + length
                else:
                    break  # the rest of the frame is still on its way
            elif space == -1 and size - pos <= _MAX_COUNT_DIGITS and all(b in _DIGITS for b in buf[pos:]):
                break  # a count cut by the packet boundary
            else:
                # Out of step with the sender. Resynchronise at the next newline and pass
                # the skipped text on as a message, so the intake rejects it and counts it.
                end = buf.find(b"\n", pos)
                if end == -1:
                    if size - pos > self.max_message:
                        del buf[:pos]
                        self._discard_line()
                        return out
                    break
                self._emit(out, buf, pos, end)
                pos = end + 1
        del buf[:pos]
        return out

    def _emit(self, out: list[bytes], buf: bytearray, start: int, end: int) -> None:
        if end - start > self.max_message:
            self.oversize += 1
        elif end > start:
            out.append(bytes(buf[start:end]))

    def _discard_line(self) -> None:
        self.oversize += 1
        self._buffer.clear()
        self._skip_line = True


def _detect(buf: bytearray) -> bool | None:
    """True for octet counting, False for newline framing, None while the first bytes cannot tell.

    A digit first is the RFC 6587 hint, but a bare HAProxy line starts with a digit
    too (its client address), so the whole count up to its space is looked at.
    """
    if not buf:
        return None
    if buf[0] not in _DIGITS or buf[0] == 48:
        return False
    for byte in buf[:_MAX_COUNT_DIGITS + 1]:
        if byte == 32:
            return True
        if byte not in _DIGITS:
            return False
    return None if len(buf) <= _MAX_COUNT_DIGITS else False
