"""The syslog listener: HAProxy sends its log lines over UDP or TCP; they join the same intake as `POST /logs`.

Sockets only frame and enqueue; one flusher task writes batches. The queue between
them is bounded, so a slow or unreachable Redis never stalls the sockets nor grows
memory without end: when it is full, new lines are dropped and counted in
`incident_copilot_syslog_dropped_lines_total{transport}`. Lines leave the queue only
once written, so a Redis outage shorter than the queue loses nothing. A batch Redis
answers with an error is dropped and counted there too: trying it again would get the
same answer, and its write being all or nothing, none of it was counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass

from ingestion import StreamFramer, message_lines
from redis.exceptions import RedisError

from ..retry import REDIS_UNAVAILABLE, retrying
from .line_queue import LineQueue
from .logs import LogIntake
from .metrics import IntakeMetrics

log = logging.getLogger(__name__)

# Redis away or refusing writes for now, or the socket to it failing (OSError covers
# asyncio's TimeoutError): the lines are kept and tried again.
_UNAVAILABLE = (*REDIS_UNAVAILABLE, OSError)
_FIRST_BACKOFF_SECONDS = 0.1
_MAX_DATAGRAM = 65535
_TCP_READ_BYTES = 64 * 1024
# Datagrams read per turn of the loop. The flusher parses 2,000 lines a turn (about
# 20 ms), in which 1,000 datagrams arrive at 50,000 lines/s: reading fewer than that
# a turn lets the kernel's backlog grow until it drops. 4,096 reads cost about 12 ms.
_DATAGRAMS_PER_WAKEUP = 4096
# Once the socket is empty, it is left alone this long so that the next wakeup finds
# many datagrams rather than one: a wakeup per datagram costs nearly as much as
# parsing its line. A millisecond at 50,000 lines/s is fifty datagrams; the receive
# buffer holds about ten thousand.
_READ_PAUSE_SECONDS = 0.001


DEFAULT_QUEUE_LINES = 200_000


@dataclass(frozen=True, slots=True)
class SyslogLimits:
    # Held in memory at most, about 250 bytes a line; beyond it new lines are dropped.
    # At 50,000 lines/s, the default 200,000 lines ride out a four-second Redis outage.
    queue_lines: int = DEFAULT_QUEUE_LINES
    batch_lines: int = 5_000  # a write starts as soon as this many lines wait...
    flush_seconds: float = 0.1  # ...and at the latest this long after the previous one
    # Absorbs arrivals while a batch is being parsed on the loop: 4 MiB holds about
    # 10,000 HAProxy lines, 200 ms at 50,000 lines/s. Linux caps it at net.core.rmem_max,
    # 208 KiB by default, which holds a tenth of that.
    receive_buffer_bytes: int = 4 * 1024 * 1024
    max_backoff_seconds: float = 5.0
    shutdown_seconds: float = 5.0
    # HAProxy reconnects when it next has a line to send; a silent peer only holds a slot.
    tcp_idle_seconds: float = 300.0
    tcp_max_connections: int = 256


class SyslogListener:
    """UDP and TCP sockets on one port, a bounded queue, and the flusher that empties it into the intake."""

    def __init__(self, intake: LogIntake, metrics: IntakeMetrics, limits: SyslogLimits = SyslogLimits()) -> None:
        self._intake = intake
        self._limits = limits
        self._queue = LineQueue(limits.queue_lines)
        self._dropped = {t: metrics.syslog_dropped.labels(t) for t in ("udp", "tcp")}
        self._wake = asyncio.Event()
        self._closing = False
        self._backing_off = False
        self._outage_since: float | None = None
        self._dropping_since_full = 0
        self._udp: socket.socket | None = None
        self._resume_reading: asyncio.TimerHandle | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._flusher: asyncio.Task | None = None
        self.addresses: list[str] = []

    @property
    def held(self) -> int:
        """Lines received and not yet written."""
        return self._queue.held

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen on host:port; with `reuse_port`, share it with other processes' listeners (SO_REUSEPORT)."""
        try:
            self._udp = await _udp_socket(host, port, self._limits.receive_buffer_bytes, reuse_port=reuse_port)
            self._tcp = await asyncio.start_server(self._serve_connection, host, port, reuse_port=reuse_port or None)
            # Needs a loop with add_reader: asyncio's default on Unix, and uvloop.
            asyncio.get_running_loop().add_reader(self._udp.fileno(), self._on_readable)
        except BaseException:
            self._close_udp()
            if self._tcp is not None:
                self._tcp.close()
            raise
        self.addresses = [f"udp://{_show(self._udp.getsockname())}"]
        self.addresses += [f"tcp://{_show(s.getsockname())}" for s in self._tcp.sockets]
        self._flusher = asyncio.create_task(self._flush_forever(), name="syslog-flusher")
        self._flusher.add_done_callback(_report_crash)

    @property
    def receive_buffer_bytes(self) -> int:
        """What the kernel granted the UDP socket (Linux: twice what it counts against the limit)."""
        return self._udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) if self._udp is not None else 0

    def kernel_drops(self) -> float:
        """Datagrams the kernel discarded because the receive buffer was full (Linux)."""
        if self._udp is None or self._udp.fileno() == -1:
            return float("nan")
        drops = read_udp_drops(self._udp.family, os.fstat(self._udp.fileno()).st_ino)
        return float("nan") if drops is None else float(drops)

    async def close(self) -> None:
        """Stop accepting, write what is held (within `shutdown_seconds`), count the rest as dropped."""
        if self._udp is not None:
            if self._resume_reading is not None:
                self._resume_reading.cancel()
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._read_datagrams(limit=self._limits.queue_lines)  # what the kernel already holds
            self._close_udp()
        if self._tcp is not None:
            self._tcp.close()
            connections = list(self._connections)
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await self._tcp.wait_closed()
        if self._flusher is not None:
            self._closing = True
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flusher, self._limits.shutdown_seconds)
        lost = self._queue.clear()
        self._count_dropped(lost)
        if lost:
            log.warning("syslog lines not written before shutdown", extra={"lines": sum(lost.values())})

    # Receiving

    def _on_readable(self) -> None:
        if self._read_datagrams(_DATAGRAMS_PER_WAKEUP):
            return  # more are waiting: read on at the loop's next turn
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._udp.fileno())
        self._resume_reading = loop.call_later(_READ_PAUSE_SECONDS, self._resume)

    def _resume(self) -> None:
        self._resume_reading = None
        asyncio.get_running_loop().add_reader(self._udp.fileno(), self._on_readable)

    def _read_datagrams(self, limit: int) -> bool:
        """Read until the socket is empty or `limit` datagrams; True when it may hold more."""
        # One recv per datagram in a loop, rather than asyncio's DatagramProtocol,
        # which polls once per datagram: about a fifth of the CPU at 50,000 lines/s.
        recv = self._udp.recv
        for _ in range(limit):
            try:
                data = recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:  # an error queued on the socket: pause, then read on
                log.debug("syslog udp receive failed", extra={"error": str(exc)})
                return False
            lines = message_lines(data)
            if lines:
                self._enqueue(lines, "udp")
        return True

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self._limits.tcp_max_connections:
            log.warning("syslog tcp connection refused: at the limit",
                        extra={"limit": self._limits.tcp_max_connections})
            writer.close()
            return
        task = asyncio.current_task()
        self._connections.add(task)
        framer = StreamFramer()
        counted = 0
        try:
            while data := await self._read_or_idle(reader):
                self._enqueue_messages(framer.feed(data), "tcp")
                if framer.oversize > counted:
                    counted = self._count_oversize(framer, counted)
            self._enqueue_messages(framer.finish(), "tcp")
        except ConnectionError:  # the sender went away; what it sent before is kept
            pass
        finally:
            self._count_oversize(framer, counted)
            self._connections.discard(task)
            writer.close()

    async def _read_or_idle(self, reader: asyncio.StreamReader) -> bytes:
        """The next bytes, or none (the connection is over) after `tcp_idle_seconds` of silence."""
        try:
            async with asyncio.timeout(self._limits.tcp_idle_seconds):
                return await reader.read(_TCP_READ_BYTES)
        except TimeoutError:
            return b""

    def _enqueue_messages(self, messages: list[bytes], transport: str) -> None:
        lines: list[str] = []
        for message in messages:
            lines.extend(message_lines(message))
        if lines:
            self._enqueue(lines, transport)

    def _enqueue(self, lines: list[str], transport: str) -> None:
        dropped = self._queue.offer(lines, transport)
        if dropped:
            self._dropped[transport].inc(dropped)
            if not self._dropping_since_full:
                log.warning("syslog queue full: dropping new lines until it drains",
                            extra={"queue_lines": self._limits.queue_lines})
            self._dropping_since_full += dropped
        if self._queue.held >= self._limits.batch_lines and not self._backing_off:
            self._wake.set()

    def _count_oversize(self, framer: StreamFramer, counted: int) -> int:
        if framer.oversize > counted:
            self._dropped["tcp"].inc(framer.oversize - counted)
            log.warning("syslog messages over the size limit dropped",
                        extra={"messages": framer.oversize - counted, "limit_bytes": framer.max_message})
        return framer.oversize

    def _count_dropped(self, lines: Counter) -> None:
        for transport, count in lines.items():
            self._dropped[transport].inc(count)

    def _close_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()

    # Writing

    async def _flush_forever(self) -> None:
        # The outage is logged once by `_write_held`, not at every try.
        write = retrying(_UNAVAILABLE, what=None, first=_FIRST_BACKOFF_SECONDS,
                         cap=self._limits.max_backoff_seconds, until=lambda: self._closing, sleep=self._back_off)
        while not self._closing:
            await self._pause(self._limits.flush_seconds)
            with contextlib.suppress(*_UNAVAILABLE):  # closing while Redis is away: the lines stay held
                await write(self._write_held)
        with contextlib.suppress(*_UNAVAILABLE):
            await self._write_held()  # what arrived since the last write

    async def _back_off(self, seconds: float) -> None:
        self._backing_off = True
        try:
            await self._pause(seconds)
        finally:
            self._backing_off = False

    async def _pause(self, seconds: float) -> None:
        if self._queue.held >= self._limits.batch_lines and not self._backing_off:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _write_held(self) -> None:
        """Write everything held, batch by batch; raises while Redis is unavailable."""
        while self._queue.held:
            lines = self._queue.peek(self._limits.batch_lines)
            try:
                await self._intake.text(lines, source="syslog")
            except _UNAVAILABLE as exc:
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning("redis unavailable: holding syslog lines and retrying",
                                extra={"error": str(exc), "held": self._queue.held})
                raise
            except RedisError as exc:  # an answer, not an outage: trying again would get it again
                log.error("redis refused a syslog batch; its lines are dropped, none of them counted",
                          extra={"error": str(exc), "lines": len(lines)})
                self._count_dropped(self._queue.commit(len(lines)))
                continue
            except Exception:  # a batch that fails for any other reason would fail forever
                log.exception("syslog batch could not be ingested; its lines are dropped")
                self._count_dropped(self._queue.commit(len(lines)))
                continue
            self._queue.commit(len(lines))
            self._recovered()

    def _recovered(self) -> None:
        if self._outage_since is not None:
            log.info("redis reachable again: writing held syslog lines",
                     extra={"outage_seconds": round(time.monotonic() - self._outage_since, 1),
                            "held": self._queue.held})
            self._outage_since = None
        if self._dropping_since_full and self._queue.held < self._queue.capacity:
            log.warning("syslog queue accepting lines again", extra={"dropped": self._dropping_since_full})
            self._dropping_since_full = 0


async def _udp_socket(host: str, port: int, receive_buffer: int, *, reuse_port: bool = False) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < receive_buffer:  # Linux reports twice what it grants
        log.warning("syslog udp receive buffer smaller than asked; raise net.core.rmem_max",
                    extra={"asked": receive_buffer, "granted": granted})
    return sock


def read_udp_drops(family: int, inode: int) -> int | None:
    """The `drops` column of /proc/net/udp(6) for the socket with this inode; None where there is none."""
    path = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
    try:
        with open(path, encoding="ascii") as table:
            return udp_drops(table.read(), inode)
    except OSError:
        return None


def udp_drops(table: str, inode: int) -> int | None:
    wanted = str(inode)
    for row in table.splitlines()[1:]:
        fields = row.split()
        if len(fields) >= 13 and fields[9] == wanted:
            return int(fields[12])
    return None


def _show(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("syslog flusher stopped", exc_info=task.exception())
