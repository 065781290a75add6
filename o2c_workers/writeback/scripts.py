"""The outbox's Lua scripts: each accepts, claims or settles atomically, on the Redis clock.

A record waits in exactly one place: ``sfout:due`` (accepted, not yet claimed) or
``sfout:leased`` (claimed by one flusher until its lease runs out). Its fields are in its
hash (``keys.sfout_record``), built from the prefix here as ``o2c_workers.keys`` builds it.
"""

from __future__ import annotations

#: Redis time in whole milliseconds.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: Accept one record's fields: each replaces the pending value unless an older version
#: than the pending one's or the last sent one's; the first change makes the record due.
#: KEYS: record, sent, due, leased. ARGV: member, flush ms, context JSON, then per field:
#: name, value (JSON), stamp. Returns the count of fields taken.
ACCEPT = _NOW + """
local rec, sent = KEYS[1], KEYS[2]
local taken = 0
for i = 4, #ARGV, 3 do
  local name, value, stamp = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local pending = tonumber(redis.call('HGET', rec, 's:' .. name) or '-1')
  local last = tonumber(redis.call('HGET', sent, name) or '-1')
  if stamp >= pending and stamp >= last then
    if stamp > pending or redis.call('HGET', rec, 'f:' .. name) ~= value then
      redis.call('HSET', rec, 'f:' .. name, value, 's:' .. name, ARGV[i + 2])
      taken = taken + 1
    end
  end
end
if taken > 0 then
  redis.call('HINCRBY', rec, 'v', 1)
  redis.call('HSET', rec, 'ctx', ARGV[3])
  if not redis.call('ZSCORE', KEYS[4], ARGV[1]) then
    redis.call('ZADD', KEYS[3], 'NX', now + tonumber(ARGV[2]), ARGV[1])
  end
end
return taken
"""

#: Claim what is due: expired leases come back first; then, once the oldest waiting record
#: is due (or a full batch waits, or ``force``), up to ``limit`` records, oldest first,
#: each leased to ``owner`` with its version noted.
#: KEYS: due, leased. ARGV: record key prefix, lease ms, limit, owner, force (0/1).
#: Returns {'none'}, {'wait', ms until due}, or {'batch', member, fields, member, ...}.
CLAIM = _NOW + """
local due, leased = KEYS[1], KEYS[2]
for _, member in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', now)) do
  redis.call('ZREM', leased, member)
  redis.call('ZADD', due, now, member)
  redis.call('HDEL', ARGV[1] .. member, 'lease', 'claimed')
end
local head = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if #head == 0 then return {'none'} end
local limit = tonumber(ARGV[3])
local wait = tonumber(head[2]) - now
if wait > 0 and ARGV[5] ~= '1' and redis.call('ZCARD', due) < limit then
  return {'wait', wait}
end
local out = {'batch'}
for _, member in ipairs(redis.call('ZRANGE', due, 0, limit - 1)) do
  local rec = ARGV[1] .. member
  redis.call('ZREM', due, member)
  if redis.call('EXISTS', rec) == 1 then
    redis.call('ZADD', leased, now + tonumber(ARGV[2]), member)
    redis.call('HSET', rec, 'lease', ARGV[4], 'claimed', redis.call('HGET', rec, 'v') or '0')
    table.insert(out, member)
    table.insert(out, redis.call('HGETALL', rec))
  end
end
return out
"""

#: Settle what one flusher claimed. Per record (a JSON list of {m, o, after_ms, count, s}):
#: only while ``owner`` still holds its lease; ``sent`` remembers the versions sent (``s``);
#: ``sent`` and ``dead`` delete the record unless it was written since it was claimed (then
#: it is due again at once); ``retry`` puts it back, due in ``after_ms``, counting a try
#: when ``count``. KEYS: due, leased. ARGV: record prefix, sent prefix, owner, sent TTL s,
#: outcomes JSON. Returns the count settled.
SETTLE = _NOW + """
local due, leased = KEYS[1], KEYS[2]
local settled = 0
for _, item in ipairs(cjson.decode(ARGV[5])) do
  local rec = ARGV[1] .. item.m
  if redis.call('HGET', rec, 'lease') == ARGV[3] then
    settled = settled + 1
    redis.call('ZREM', leased, item.m)
    redis.call('HDEL', rec, 'lease')
    if item.o == 'sent' then
      local sent = ARGV[2] .. item.m
      for name, stamp in pairs(item.s) do
        local last = tonumber(redis.call('HGET', sent, name) or '-1')
        if tonumber(stamp) > last then redis.call('HSET', sent, name, stamp) end
      end
      redis.call('EXPIRE', sent, tonumber(ARGV[4]))
    end
    local claimed = redis.call('HGET', rec, 'claimed')
    redis.call('HDEL', rec, 'claimed')
    if item.o == 'retry' then
      if item.count then redis.call('HINCRBY', rec, 'tries', 1) end
      redis.call('ZADD', due, now + tonumber(item.after_ms), item.m)
    elseif redis.call('HGET', rec, 'v') == claimed then
      redis.call('DEL', rec)
    else
      redis.call('HDEL', rec, 'tries')
      redis.call('ZADD', due, now, item.m)
    end
  end
end
return settled
"""
