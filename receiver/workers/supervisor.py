"""The parent of `serve --workers N`: starts the workers, restarts one that dies, stops them all on a signal.

The parent serves nothing itself. It starts the embedded Redis once when REDIS_URL is unset
(every worker is given its address), makes a fresh directory for prometheus-client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, set before a worker imports the library), and
runs N copies of `serve` that share the HTTP and syslog ports (SO_REUSEPORT: the kernel
spreads connections and datagrams over them). On SIGTERM or SIGINT it passes SIGTERM on,
waits for every worker to finish its graceful shutdown, then stops the embedded Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..embedded_redis import start_embedded_redis
from .plan import RestartBackoff

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class WorkerGroup:
    count: int
    command: Sequence[str]  # a worker's command line
    redis_url: str | None
    data_dir: Path
    stop_seconds: float = 30.0  # a worker still running this long after SIGTERM is killed
    backoff: RestartBackoff = field(default_factory=RestartBackoff)


def run(group: WorkerGroup) -> int:
    """Run the group until SIGTERM or SIGINT; 0 when every worker then stopped cleanly."""
    return asyncio.run(_supervise(group))


async def _supervise(group: WorkerGroup) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    env = dict(os.environ)
    embedded = None
    if not group.redis_url:
        embedded = await start_embedded_redis(group.data_dir)
        env["REDIS_URL"] = embedded.url
    metrics_dir = tempfile.mkdtemp(prefix="incident-copilot-metrics-")
    env[MULTIPROC_ENV] = metrics_dir
    try:
        slots = [asyncio.create_task(_keep_running(index, group, env, stopping)) for index in range(group.count)]
        log.info("workers started", extra={"workers": group.count, "pid": os.getpid()})
        codes = await asyncio.gather(*slots)
    finally:
        if embedded is not None:
            await embedded.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    # Killed by the SIGTERM itself: the worker was still starting (its handler not yet set), with nothing to lose.
    failed = [code for code in codes if code not in (0, -signal.SIGTERM)]
    if failed:
        log.warning("workers did not stop cleanly", extra={"exit_codes": codes})
    return 1 if failed else 0


async def _keep_running(index: int, group: WorkerGroup, env: dict[str, str], stopping: asyncio.Event) -> int:
    """One worker, restarted whenever it exits before the group stops; answers its exit code at the stop."""
    delay = 0.0
    while not stopping.is_set():
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(*group.command, env=env, start_new_session=True)
        exited = asyncio.create_task(process.wait())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            stop.cancel()
            return await _stop(process, exited, group.stop_seconds)
        stop.cancel()
        _forget(process.pid, env)
        ran = time.monotonic() - started
        delay = group.backoff.delay(delay, ran)
        log.warning("worker exited; restarting it",
                    extra={"worker": index, "pid": process.pid, "exit_code": process.returncode,
                           "ran_seconds": round(ran, 1), "restart_in_seconds": delay})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
    return 0


async def _stop(process: asyncio.subprocess.Process, exited: asyncio.Task, timeout: float) -> int:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), timeout)
    except TimeoutError:
        log.warning("worker did not stop in time; killed", extra={"pid": process.pid, "seconds": timeout})
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await exited
    return process.returncode if process.returncode is not None else 1


def _forget(pid: int, env: dict[str, str]) -> None:
    """A dead worker's live gauges leave the exposition; its counters stay in the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, env[MULTIPROC_ENV])


def worker_command(host: str, port: int) -> list[str]:
    """The command line of one worker: this program's `serve`, told it shares its ports."""
    return [sys.executable, "-m", "receiver.cli", "serve", "--host", host, "--port", str(port), "--in-group"]
