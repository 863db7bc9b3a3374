"""Request bodies sent compressed: `Content-Encoding: gzip` or `deflate`, decoded here with a bound.

The HTTP server leaves bodies as they arrive (`auto_decompress=False`), so that every encoding
error is an answer this service chooses: `415` naming the accepted encodings for one it does
not decode, `400` for bytes that are not what their label says, `413` once the decoded body
outgrows the limit (a small bomb never inflates past it).
"""

from __future__ import annotations

import zlib

from .errors import ApiError, BodyTooLarge, UnsupportedMediaType

ACCEPTED_ENCODINGS = ("gzip", "deflate", "identity")
_ALIASES = {"x-gzip": "gzip"}


class InvalidEncoding(ApiError):
    status = 400
    error = "invalid_content_encoding"


class BodyDecoder:
    """Inflates one body chunk by chunk, refusing more than `limit` decoded bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self._limit = limit
        self._decoded = 0
        self._started = False
        self._inflate = _inflater(encoding, b"")

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        if not self._started:
            self._started = True
            self._inflate = _inflater(self.encoding, chunk)
        out = bytearray()
        while chunk:
            room = self._limit - self._decoded
            try:
                part = self._inflate.decompress(chunk, room + 1)
            except zlib.error:
                raise InvalidEncoding(f"the body is not valid {self.encoding} data") from None
            self._decoded += len(part)
            if self._decoded > self._limit:
                raise BodyTooLarge(f"body larger than {self._limit} bytes once decoded")
            out += part
            chunk = self._inflate.unused_data if self._inflate.eof else b""
            if chunk:  # gzip allows several members one after the other
                if self.encoding != "gzip":
                    raise InvalidEncoding(f"data after the end of the {self.encoding} stream")
                self._inflate = _inflater(self.encoding, chunk)
        return bytes(out)

    def finish(self) -> None:
        """Refuse a stream that stops before its end (an empty body is allowed)."""
        if self._started and not self._inflate.eof:
            raise InvalidEncoding(f"the {self.encoding} stream is truncated")


def body_decoder(header: str | None, limit: int) -> BodyDecoder | None:
    """The decoder a `Content-Encoding` asks for; None for none (or identity); 415 for any other."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [_ALIASES.get(c, c) for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in ACCEPTED_ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {header!r} is not supported; send one of {', '.join(ACCEPTED_ENCODINGS)}",
            error="unsupported_content_encoding")
    return BodyDecoder(codings[0], limit)


def _inflater(encoding: str, first: bytes):
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # `deflate` is the zlib format (RFC 9110), though some clients send raw deflate: the header tells.
    zlib_header = bool(first) and first[0] & 0x0F == 8
    return zlib.decompressobj(zlib.MAX_WBITS if zlib_header or not first else -zlib.MAX_WBITS)
