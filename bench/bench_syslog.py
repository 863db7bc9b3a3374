"""Syslog intake under load: HAProxy-shaped UDP datagrams at a steady rate into the running service.

    .venv/bin/python bench/bench_syslog.py [--rate 50000] [--seconds 10]

Starts a private redis-server and the service in this process (syslog on a free
loopback port), then a separate sender process that paces one line per datagram,
as HAProxy does. Prints lines sent and accepted, the loss, the rates reached, the
queue's and the kernel's drops, and the CPU each side used. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The service is imported only in the measuring process (see `run`): the sender
# process runs this file too, and should spend its CPU on sending alone.
sys.path.insert(0, str(ROOT))

BACKENDS = ("be_api", "be_web", "be_auth", "be_search", "be_static")
PATHS = tuple(f"/api/v1/{kind}/{n}" for kind in ("items", "users", "orders", "carts", "search") for n in range(10))
DRAIN_SECONDS = 30
# What a queued datagram of about 180 bytes costs against SO_RCVBUF on Linux loopback
# (measured: 8 MiB held 10,082 of them).
BYTES_PER_QUEUED_DATAGRAM = 832


def datagrams(now: float, variants: int = 1000) -> list[bytes]:
    """One second's worth of distinct lines, dated `now` in UTC, each in its own RFC 3164 datagram."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    header = f"<134>{moment:%b %d %H:%M:%S} haproxy[14155]: "
    second = moment.strftime("%d/%b/%Y:%H:%M:%S")
    out = []
    for i in range(variants):
        status = 503 if i % 97 == 0 else 404 if i % 23 == 0 else 200
        active = 2 + (i * 7919) % 400
        line = (f"10.{i % 7}.{i % 251}.{i % 13}:{20000 + i * 37 % 40000} [{second}.{i % 1000:03d}] "
                f"fe_http {BACKENDS[i % len(BACKENDS)]}/s{i % 4} 0/0/1/{active - 2}/{active} {status} "
                f"{200 + i % 5000} - - ---- {50 + i % 50}/{40 + i % 40}/{i % 30}/{i % 10}/0 0/0 "
                f'"GET {PATHS[i % len(PATHS)]}?page={i % 9} HTTP/1.1"')
        out.append((header + line + "\n").encode())
    return out


def send(port: int, rate: int, seconds: float) -> None:
    """The sender process: paced in 1 ms steps, one line per datagram; prints what it did as JSON."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = ("127.0.0.1", port)
    total = int(rate * seconds)
    sent = errors = 0
    print("ready", flush=True)
    start = time.perf_counter()
    current_second, batch = -1, []
    while sent < total:
        elapsed = time.perf_counter() - start
        due = min(total, int(elapsed * rate) + 1)
        now = time.time()
        if int(now) != current_second:
            current_second, batch = int(now), datagrams(now)
        while sent < due:
            try:
                sock.sendto(batch[sent % len(batch)], address)
            except OSError:
                errors += 1
            sent += 1
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    print(json.dumps({"sent": sent, "send_errors": errors, "seconds": elapsed, "cpu": time.process_time()}))


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    from receiver.embedded_redis import find_redis_server

    port = free_port()
    process = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.025)
    process.terminate()
    raise RuntimeError("redis-server did not start")


async def counters(session, base: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(f"{base}/prometheus/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "incident_copilot_ingest_lines_accepted_total" and labels.get("source") == "syslog":
                found["accepted"] = sample.value
            elif sample.name == "incident_copilot_ingest_lines_rejected_total" and labels.get("source") == "syslog":
                found["rejected"] = found.get("rejected", 0) + sample.value
            elif sample.name == "incident_copilot_syslog_dropped_lines_total":
                found["queue_drops"] = found.get("queue_drops", 0) + sample.value
            elif sample.name == "incident_copilot_syslog_kernel_drops":
                found["kernel_drops"] = sample.value
    return found


async def watch_stalls(stalls: list[float]) -> None:
    """The longest the loop went without running this task: what the socket must buffer meanwhile."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(0.005)
        stalls.append(loop.time() - before - 0.005)


async def run(rate: int, seconds: float, receive_buffer: int | None) -> None:
    from aiohttp import ClientSession, web

    from receiver.app import create_app
    from receiver.appkeys import SYSLOG, SYSLOG_LIMITS
    from receiver.settings import Settings
    from receiver.intake import SyslogLimits

    limits = SyslogLimits() if receive_buffer is None else SyslogLimits(receive_buffer_bytes=receive_buffer)
    directory = Path(tempfile.mkdtemp(prefix="ic-bench-syslog-"))
    redis_process, redis_url = start_redis(directory)
    syslog_port, http_port = free_port(), free_port()
    settings = Settings(_env_file=None, redis_url=redis_url, syslog_port=syslog_port, log_timezone="UTC",
                        data_dir=directory, host="127.0.0.1", port=http_port, log_level="WARNING")
    app = create_app(settings)
    app[SYSLOG_LIMITS] = limits
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    base = f"http://127.0.0.1:{http_port}"
    try:
        await web.TCPSite(runner, "127.0.0.1", http_port).start()
        listener = runner.app[SYSLOG]
        granted = listener.receive_buffer_bytes
        sender = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--send", str(syslog_port), "--rate", str(rate), "--seconds", str(seconds),
            stdout=asyncio.subprocess.PIPE)
        await sender.stdout.readline()  # "ready": measure from the first datagram, not the start-up
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        deepest = 0
        stalls: list[float] = []
        watcher = asyncio.create_task(watch_stalls(stalls))
        while sender.returncode is None:
            deepest = max(deepest, listener.held)
            try:
                await asyncio.wait_for(sender.wait(), 0.1)
            except TimeoutError:
                pass
        report = json.loads((await sender.stdout.read()).decode())
        sent_at = time.perf_counter()
        while listener.held and time.perf_counter() - sent_at < DRAIN_SECONDS:
            await asyncio.sleep(0.02)
        drained_at = time.perf_counter()
        cpu = time.process_time() - cpu_start
        watcher.cancel()
        async with ClientSession() as session:
            figures = await counters(session, base)
            async with session.get(f"{base}/metrics/overview", params={"window": "15"}) as response:
                overview = await response.json()
    finally:
        await runner.cleanup()
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)

    sent = report["sent"]
    accepted = int(figures.get("accepted", 0))
    wall = drained_at - wall_start
    print(f"target              {rate:,} lines/s for {seconds:g} s, one line per UDP datagram, loopback;"
          f" receive buffer asked {limits.receive_buffer_bytes:,} bytes")
    print(f"lines sent          {sent:,} in {report['seconds']:.2f} s = {sent / report['seconds']:,.0f} lines/s"
          f" (send errors {report['send_errors']})")
    print(f"lines accepted      {accepted:,} (rejected {int(figures.get('rejected', 0)):,};"
          f" overview total_requests {overview['total_requests']:,})")
    print(f"loss                {sent - accepted:,} = {100 * (sent - accepted) / sent:.3f} %")
    print(f"  queue drops       {int(figures.get('queue_drops', 0)):,}")
    print(f"  kernel drops      {figures.get('kernel_drops', float('nan')):,.0f}")
    print(f"ingest rate         {accepted / wall:,.0f} lines/s, first datagram to last line written"
          f" ({drained_at - sent_at:.2f} s after the last datagram; deepest queue {deepest:,} lines)")
    stalls.sort()
    held = granted // BYTES_PER_QUEUED_DATAGRAM
    print(f"loop stalls         longest {stalls[-1] * 1000:.0f} ms, p99 {stalls[int(len(stalls) * 0.99)] * 1000:.1f} ms"
          f" (the {granted:,}-byte receive buffer holds about {held:,} datagrams, {held / rate * 1000:.0f} ms"
          f" at this rate)")
    print(f"service cpu         {cpu:.2f} s over {wall:.2f} s = {cpu / wall:.0%} of a core"
          f" (sender {report['cpu']:.2f} s; {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50_000, help="lines (datagrams) a second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--receive-buffer", type=int, metavar="BYTES",
                        help="SO_RCVBUF asked for the UDP socket; default the service's (Linux caps it at"
                             " net.core.rmem_max)")
    parser.add_argument("--send", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(args.send, args.rate, args.seconds)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    asyncio.run(run(args.rate, args.seconds, args.receive_buffer))


if __name__ == "__main__":
    main()
