"""Renaming the keys written before they had hash tags, so an upgraded Redis keeps its data.

A Redis Cluster runs a transaction or a script only on keys of one hash slot; the keys that go
together carry one `{tag}`: `{ic:incidents}` (records, pointers, index, summaries, checks due),
`{ic:alerts}` (the alert stream, its consumer group, its dead letters), `{ic:notify}` (the
outbox and what was delivered), and the minute or day of a metric key. On one Redis, names
written before that are renamed at start, each in one script, so several processes starting
together rename each key once; a key found under both names (a process of the older version
was still writing) is merged into the new one.
"""

from __future__ import annotations

import logging

from ingestion import RedisClient, tagged_metric_name

from ..retry import REDIS_UNAVAILABLE, retrying

log = logging.getLogger(__name__)

# KEYS: old, new. ARGV[1]: 'add' (counters: sum fields) or 'keep' (records: the new name's values win).
# Answers 0 (nothing to do), 1 (renamed), 2 (merged), -1 (both are streams: left for an operator).
_RENAME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return 1
end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= redis.call('TYPE', KEYS[2])['ok'] or kind == 'stream' then return -1 end
if kind == 'hash' then
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    if ARGV[1] == 'add' then
      redis.pcall('HINCRBY', KEYS[2], fields[i], fields[i + 1])
    else
      redis.call('HSETNX', KEYS[2], fields[i], fields[i + 1])
    end
  end
elseif kind == 'zset' then
  local ttl = redis.call('PTTL', KEYS[2])
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'AGGREGATE', 'MAX')
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
elseif kind == 'set' then
  redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
end
redis.call('DEL', KEYS[1])
return 2
"""

_FAMILIES = (
    # (old prefix, new prefix): a name that starts with the old one keeps the rest.
    ("ic:incidents:", "{ic:incidents}:"),
    ("ic:incident:", "{ic:incidents}:incident:"),
    ("ic:incident-key:", "{ic:incidents}:incident-key:"),
    ("ic:incident-group:", "{ic:incidents}:incident-group:"),
    ("ic:alerts:", "{ic:alerts}:"),
    ("ic:notify:", "{ic:notify}:"),
)


def current_name(old: str) -> tuple[str, str] | None:
    """The name a key written before hash tags has now, and how to merge it ('add' or 'keep'); None if it is current."""
    if old == "ic:alerts":
        return "{ic:alerts}", "keep"
    for prefix, tagged in _FAMILIES:
        if old.startswith(prefix):
            return tagged + old[len(prefix):], "keep"
    metric = tagged_metric_name(old)
    return (metric, "add") if metric is not None else None


async def tag_key_names(redis: RedisClient, *, batch: int = 1000) -> int:
    """Rename every key that still has its name from before hash tags; answers how many were moved."""
    moved = 0
    async for name in redis.scan_iter(match="ic:*", count=batch):
        target = current_name(name)
        if target is None:
            continue
        new, mode = target
        outcome = await redis.eval(_RENAME, 2, name, new, mode)
        if outcome == -1:
            log.warning("key %s exists under its new name %s as well; left as it is", name, new)
        elif outcome:
            moved += 1
    if moved:
        log.info("renamed keys written before hash tags", extra={"keys": moved})
    return moved


async def tag_key_names_when_reachable(redis: RedisClient) -> None:
    """`tag_key_names`, waiting for Redis as long as it takes."""
    async for attempt in retrying(REDIS_UNAVAILABLE, what="renaming the keys named before hash tags",
                                  first=0.5, cap=30):
        with attempt:
            await tag_key_names(redis)
