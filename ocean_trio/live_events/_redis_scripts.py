"""The ``redis`` journal's Lua scripts: each is one atomic step of the journal in Redis.

Redis runs a script alone, so what a script checks still holds when it writes; a script
that fails midway keeps its earlier writes, so each one checks everything before its
first write, and the append stores the event before it remembers the delivery id (a
failed append must never make a retry look like a duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import attrs
import coredis

from ._redis_entries import GROUP, RedisKeys

# KEYS: pending counter, seq counter, shard stream, [dedup key]
# ARGV: max pending, dedup window (ms), trace id, field/value pairs of the entry...
_APPEND = """
local pending = tonumber(redis.call('GET', KEYS[1]) or '0')
if pending >= tonumber(ARGV[1]) then
  return {'full', pending}
end
if #KEYS == 4 then
  local first = redis.call('GET', KEYS[4])
  if first then
    return {'duplicate', first}
  end
end
local seq = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[3], '*', 'seq', seq, unpack(ARGV, 4))
if #KEYS == 4 then
  redis.call('SET', KEYS[4], ARGV[3], 'NX', 'PX', ARGV[2])
end
redis.call('INCR', KEYS[1])
return {'ok', seq, id, pending + 1}
"""

# KEYS: pending counter, dead-letter stream, then the stream of each completion
# ARGV: group, now, then per completion: entry id, status, '+error' or '-', attempts
# An entry someone else completed already (XDEL finds nothing) is not counted twice and
# not dead-lettered twice. XACK through pcall: a stream recreated without its group (Redis
# lost its data) must not wedge the completions behind it.
_COMPLETE = """
local removed = 0
for i = 3, #KEYS do
  local at = 3 + (i - 3) * 4
  local id, status, err, attempts = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if status == 'dead' then
    local found = redis.call('XRANGE', KEYS[i], id, id)
    if #found == 1 then
      local fields = found[1][2]
      table.insert(fields, 'status')
      table.insert(fields, status)
      if string.sub(err, 1, 1) == '+' then
        table.insert(fields, 'error')
        table.insert(fields, string.sub(err, 2))
      end
      table.insert(fields, 'attempts')
      table.insert(fields, attempts)
      table.insert(fields, 'updated_at')
      table.insert(fields, ARGV[2])
      redis.call('XADD', KEYS[2], '*', unpack(fields))
    end
  end
  redis.pcall('XACK', KEYS[i], ARGV[1], id)
  if redis.call('XDEL', KEYS[i], id) == 1 then
    redis.call('DECR', KEYS[1])
    removed = removed + 1
  end
end
return {removed, tonumber(redis.call('GET', KEYS[1]) or '0')}
"""

# KEYS: dead-letter stream, seq counter, pending counter, then the shard stream of each
# ARGV: the dead-letter ids, one per shard stream; returns the new seq of each (0: gone)
_REPLAY = """
local seqs = {}
for i = 4, #KEYS do
  local id = ARGV[i - 3]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 1 then
    local fields = found[1][2]
    local seq = redis.call('INCR', KEYS[2])
    local out = {'seq', seq}
    for f = 1, #fields, 2 do
      local name = fields[f]
      if name ~= 'seq' and name ~= 'status' and name ~= 'error' and name ~= 'attempts'
          and name ~= 'updated_at' then
        table.insert(out, name)
        table.insert(out, fields[f + 1])
      end
    end
    redis.call('XADD', KEYS[i], '*', unpack(out))
    redis.call('XDEL', KEYS[1], id)
    redis.call('INCR', KEYS[3])
    table.insert(seqs, seq)
  else
    table.insert(seqs, 0)
  end
end
return seqs
"""

# KEYS: the dead-letter stream
_PURGE_DEAD = """
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
"""

# KEYS: the instances sorted set; ARGV: instance id, ttl (ms). Scores are Redis's clock,
# so instances never compare their own clocks. Returns how many instances are live.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: lease keys held; ARGV: instance id, lease (ms). 1 per lease still ours (renewed).
_RENEW = """
local kept = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
"""

# KEYS: candidate lease keys, in preference order; ARGV: instance id, lease (ms), how many.
# A lease already ours (a restart under the same id) counts as taken. Returns key indexes.
_ACQUIRE = """
local taken = {}
local want = tonumber(ARGV[3])
for i = 1, #KEYS do
  if #taken >= want then break end
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    table.insert(taken, i)
  elseif not holder then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    table.insert(taken, i)
  end
end
return taken
"""

# KEYS: lease keys; ARGV: instance id. Deletes those still ours; the instance leaves the set
# when KEYS[1] is the instances set (ARGV[2] == 'leave').
_RELEASE = """
local first = 1
if ARGV[2] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  first = 2
end
local released = 0
for i = first, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
"""


@attrs.frozen
class Completion:
    """A finished entry to acknowledge (and dead-letter when ``status`` is ``dead``)."""

    shard: int
    entry_id: bytes
    status: str
    error: str | None
    attempts: int


@attrs.frozen
class AppendResult:
    """What the append script did: ``ok`` (stored as ``seq``), ``full`` or ``duplicate``."""

    outcome: str
    seq: int = 0
    pending: int = 0
    first_trace_id: str = ""


class RedisScripts:
    """The journal's scripts bound to one client and one key namespace."""

    def __init__(self, client: coredis.Redis[bytes], keys: RedisKeys) -> None:
        self._keys = keys
        self._append = client.register_script(_APPEND)
        self._complete = client.register_script(_COMPLETE)
        self._replay = client.register_script(_REPLAY)
        self._purge_dead = client.register_script(_PURGE_DEAD)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._renew = client.register_script(_RENEW)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def append(
        self,
        shard: int,
        fields: Sequence[str | bytes],
        *,
        trace_id: str,
        dedup_key: str | None,
        max_pending: int,
        window_ms: int,
    ) -> AppendResult:
        keys = [self._keys.pending, self._keys.seq, self._keys.stream(shard)]
        if dedup_key is not None:
            keys.append(dedup_key)
        reply = cast(
            list[Any],
            await self._append(keys=keys, args=[max_pending, window_ms, trace_id, *fields]),
        )
        outcome = reply[0].decode()
        if outcome == "ok":
            return AppendResult("ok", seq=int(reply[1]), pending=int(reply[3]))
        if outcome == "full":
            return AppendResult("full", pending=int(reply[1]))
        return AppendResult("duplicate", first_trace_id=reply[1].decode())

    async def complete(self, completions: Sequence[Completion], now: float) -> int:
        """Acknowledge ``completions`` in one script; returns the pending counter after it."""
        keys = [self._keys.pending, self._keys.dead]
        args: list[str | bytes | int] = [GROUP, repr(now)]
        for done in completions:
            keys.append(self._keys.stream(done.shard))
            error = "-" if done.error is None else "+" + done.error
            args += [done.entry_id, done.status, error, done.attempts]
        reply = cast(list[Any], await self._complete(keys=keys, args=args))
        return int(reply[1])

    async def replay(self, moves: Sequence[tuple[bytes, int]]) -> list[int]:
        """Move dead letters ``(id, shard)`` back to their shard's tail; their new seqs (0: gone)."""
        keys = [self._keys.dead, self._keys.seq, self._keys.pending]
        keys += [self._keys.stream(shard) for _, shard in moves]
        reply = cast(list[Any], await self._replay(keys=keys, args=[i for i, _ in moves]))
        return [int(seq) for seq in reply]

    async def purge_dead(self) -> int:
        return int(cast(int, await self._purge_dead(keys=[self._keys.dead], args=[])))

    async def heartbeat(self, instance_id: str, ttl_ms: int) -> int:
        """Mark ``instance_id`` live for ``ttl_ms``; returns how many instances are live."""
        reply: Any = await self._heartbeat(keys=[self._keys.instances], args=[instance_id, ttl_ms])
        return int(cast(int, reply))

    async def renew(self, instance_id: str, shards: Sequence[int], ttl_ms: int) -> list[bool]:
        """Extend the leases of ``shards`` still held by ``instance_id``; which were."""
        keys = [self._keys.lease(shard) for shard in shards]
        reply = cast(list[Any], await self._renew(keys=keys, args=[instance_id, ttl_ms]))
        return [bool(kept) for kept in reply]

    async def acquire(
        self, instance_id: str, candidates: Sequence[int], want: int, ttl_ms: int
    ) -> list[int]:
        """Take up to ``want`` free leases among ``candidates``, in order; the shards taken."""
        keys = [self._keys.lease(shard) for shard in candidates]
        reply = cast(list[Any], await self._acquire(keys=keys, args=[instance_id, ttl_ms, want]))
        return [candidates[int(index) - 1] for index in reply]

    async def release(self, instance_id: str, shards: Sequence[int], *, leave: bool) -> int:
        """Give up the leases of ``shards`` (and, with ``leave``, the instance's heartbeat)."""
        keys = [self._keys.lease(shard) for shard in shards]
        if leave:
            keys.insert(0, self._keys.instances)
        reply: Any = await self._release(
            keys=keys, args=[instance_id, "leave" if leave else "stay"]
        )
        return int(cast(int, reply))
