"""The Redis client the settings ask for: one server, a Sentinel-watched master, or a Redis Cluster."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ingestion import RedisClient
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ..settings import Settings

# The same limits for every kind of client: a connection is made within 2 s or not at all, an
# answer comes within 5 s, and an idle connection is checked before it is used again.
_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 5, "health_check_interval": 10}


def connect(url: str, *, max_connections: int = 256) -> Redis:
    """A client whose pool makes callers wait for a connection rather than fail past its size."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=5, decode_responses=True,
                                           retry_on_timeout=False, **_TIMEOUTS)
    return Redis.from_pool(pool)


def connect_configured(settings: Settings, url: str | None = None) -> RedisClient:
    """A client for the Redis of the settings (`url` stands in for REDIS_URL: the embedded one's)."""
    url = url or settings.redis_url
    if settings.redis_sentinels:
        return _sentinel_master(settings, url)
    if url is None:
        raise ValueError("no Redis to connect to: set REDIS_URL, or REDIS_SENTINELS and REDIS_SENTINEL_MASTER")
    if settings.redis_cluster:
        return _cluster(url)
    return connect(url)


class _ClusterConnection(Connection):
    """A connection to a node of a Cluster whose write fails as the ConnectionError it is when the
    client closed the connection meanwhile, as it does to every connection of a master that went
    away (the write would otherwise fail with an AttributeError from inside the client)."""

    async def send_packed_command(self, command, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except (AttributeError, TypeError) as exc:
            if self.is_connected:
                raise
            raise RedisConnectionError("the connection was closed while a command was written") from exc


def _cluster(url: str) -> RedisCluster:
    # A master that stops makes its slots fail soon (a 503 to the caller, who retries) rather than
    # after the client's default ten rounds of rediscovering the cluster.
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)
    client = RedisCluster.from_url(url, decode_responses=True, max_connections=256, retry=retry, **_TIMEOUTS)
    # The client takes no connection class; every node it makes from here on reads this one.
    client.connection_kwargs["connection_class"] = _ClusterConnection
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = _ClusterConnection
    return client


def _sentinel_master(settings: Settings, url: str | None) -> Redis:
    """The master the Sentinels name now, found again after each failover. REDIS_URL, if set, lends its
    password and database; the Sentinels themselves are asked without a password."""
    auth: dict = {}
    if url:
        parts = urlsplit(url)
        if parts.username:
            auth["username"] = unquote(parts.username)
        if parts.password:
            auth["password"] = unquote(parts.password)
        if parts.path.strip("/").isdigit():
            auth["db"] = int(parts.path.strip("/"))
    sentinel = Sentinel(settings.sentinels, sentinel_kwargs={"socket_connect_timeout": 2, "socket_timeout": 5},
                        decode_responses=True, **_TIMEOUTS, **auth)
    return sentinel.master_for(settings.redis_sentinel_master, max_connections=256)
