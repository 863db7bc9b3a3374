"""What every Redis Stream with a consumer group here needs before it is read."""

from __future__ import annotations

from ingestion import RedisClient
from redis.exceptions import ResponseError


async def ensure_group(redis: RedisClient, key: str, group: str) -> None:
    """Create the consumer group (from the start of the stream, so nothing stored earlier is skipped)."""
    try:
        await redis.xgroup_create(key, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
