"""The service as its own process, `incident-copilot serve`, for tests that kill or flood it (no tests here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 30.0
STOP_SECONDS = 10.0


class ServiceProcess:
    """One `incident-copilot serve` on a free loopback port, configured only by `settings` (env names).

    Its output goes to a file in `workdir`, shown when it fails to start.
    """

    def __init__(self, workdir: Path, settings: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.postmortem_dir = workdir / "post-mortems"
        self.settings = {
            "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_FORMAT": "text", "LOG_TIMEZONE": "UTC",
            "DATA_DIR": str(workdir / "var"), "POSTMORTEM_DIR": str(self.postmortem_dir), "SYSLOG_PORT": "0",
            **settings,
        }
        self.log_path = workdir / f"service-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self, *, timeout: float = 10, headers: Mapping[str, str] | None = None) -> ClientSession:
        """A client of its HTTP API, each request bounded by `timeout` seconds."""
        return ClientSession(base_url=self.url, timeout=ClientTimeout(total=timeout), headers=headers)

    async def start(self) -> None:
        """Start it and wait until `/health` answers 200."""
        # The `_no_ambient_config` fixture has removed the service's settings from os.environ, and the
        # working directory has no `.env`: the settings above are all the process sees.
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, **self.settings}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve"], cwd=self.workdir,
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        async with ClientSession(timeout=ClientTimeout(total=2)) as http:
            while not await self._healthy(http):
                if self.process.poll() is not None:
                    raise AssertionError(f"the service exited with {self.process.returncode}:\n{self.output()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"the service did not answer within {START_SECONDS} s:\n{self.output()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost machine would: no shutdown, nothing finished or released."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(STOP_SECONDS)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    async def _healthy(self, http: ClientSession) -> bool:
        try:
            async with http.get(f"{self.url}/health") as response:
                return response.status == 200
        except (ClientError, OSError, TimeoutError):
            return False
