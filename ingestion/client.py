"""The Redis clients the store and the readers work with: one server (or a Sentinel's master) or a Cluster."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from typing_extensions import TypeAliasType

# Both answer the same commands; they differ in what one script or one transaction may touch
# (a Cluster: keys of one hash slot) and in what a non-transactional pipeline costs (a Cluster:
# one round trip per node).
RedisClient = TypeAliasType("RedisClient", Redis | RedisCluster)


def is_cluster(redis: RedisClient) -> bool:
    return isinstance(redis, RedisCluster)
