"""A real three-master Redis Cluster on loopback, and a Redis with a Sentinel watching it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis as redis_sync
from redis.crc import key_slot

from .redis_server import DURABLE, free_port, wait_for_ping

BUS_OFFSET = 10000  # a cluster node also listens on its port + 10000 (the cluster bus)


def free_cluster_port() -> int:
    """A free port whose cluster-bus port is free as well."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNode:
    """One master of the cluster; stopping and starting it again keeps its port and nodes.conf."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_cluster_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
             "--save", "", *DURABLE],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_ping(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class RedisClusterServers:
    """Three masters, no replicas: every slot has one home, so a stopped master makes its slots unavailable."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.nodes = [ClusterNode(binary, directory / f"node-{i}") for i in range(3)]

    @property
    def url(self) -> str:
        """A seed node: the client learns the rest of the cluster from it."""
        return f"redis://{self.nodes[0].address}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or str(Path(self.binary).with_name("redis-cli"))
        subprocess.run([cli, "--cluster", "create", *(n.address for n in self.nodes), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        self.wait_ok()

    def states(self) -> list[str]:
        """The cluster's state as each running node sees it: `ok`, or `fail` once it declared a master down."""
        states = []
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                info = redis_sync.Redis(port=node.port).execute_command("CLUSTER INFO")
            except redis_sync.ConnectionError:
                states.append("unreachable")
                continue
            states.append(info.get("cluster_state", "?") if isinstance(info, dict) else "?")
        return states

    def wait_ok(self) -> None:
        """Until every node says the cluster is ok (all slots served)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(node.process is not None for node in self.nodes) and set(self.states()) == {"ok"}:
                return
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not become ok")

    def node_for(self, key: str) -> ClusterNode:
        """The master that serves `key`'s hash slot."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if node.process is None:
                continue
            for start, end, (_host, port, *_rest), *_replicas in redis_sync.Redis(port=node.port).execute_command(
                    "CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no master serves slot {slot}")

    def key_counts(self) -> list[int]:
        """How many keys each master holds."""
        return [redis_sync.Redis(port=node.port).dbsize() for node in self.nodes]

    def flush(self) -> None:
        for node in self.nodes:
            redis_sync.Redis(port=node.port).flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelServers:
    """A master and one Sentinel that watches it under `master_name` (quorum 1)."""

    def __init__(self, binary: str, directory: Path, master_name: str = "copilot") -> None:
        self.binary = binary
        self.directory = directory
        self.master_name = master_name
        self.master_port = free_port()
        self.sentinel_port = free_port()
        self.processes: list[subprocess.Popen] = []

    @property
    def sentinels(self) -> str:
        return f"127.0.0.1:{self.sentinel_port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.processes.append(subprocess.Popen(
            [self.binary, "--port", str(self.master_port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_ping(self.master_port)
        config = self.directory / "sentinel.conf"  # Sentinel rewrites its file: it must be its own
        config.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\n"
                          f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 1\n")
        self.processes.append(subprocess.Popen([self.binary, str(config), "--sentinel"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_ping(self.sentinel_port)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        self.processes.clear()

