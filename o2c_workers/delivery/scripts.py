"""The Lua scripts of reliable delivery: every move of a message is one of these.

A message is always in exactly one place: a queue's list, one consumer's held list, or the
delayed set. Each script moves it between two of them atomically, on the Redis clock.

Keys a script derives from a consumer id (its held lists and queue set) are built from the
project's prefix exactly as ``o2c_workers.keys`` builds them; a test holds the two to each
other. Queue keys are given whole (with kombu's ``global_keyprefix``, if any).
"""

from __future__ import annotations

#: Redis time in whole milliseconds.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: Put back everything one consumer holds, newest last, at the head of each queue, and
#: forget the consumer. Needs ``prefix``; returns the count of messages put back.
_RELEASE_FN = """
local function release(prefix, id, queue_prefix)
  local base = prefix .. ':delivery:consumer:' .. id
  local moved = 0
  for _, queue in ipairs(redis.call('SMEMBERS', base .. ':queues')) do
    local held = base .. ':held:' .. queue
    while redis.call('LMOVE', held, queue_prefix .. queue, 'LEFT', 'RIGHT') do
      moved = moved + 1
    end
  end
  redis.call('DEL', base .. ':queues')
  redis.call('ZREM', prefix .. ':delivery:consumers', id)
  return moved
end
"""

#: Take the first message of the first non-empty queue into its held list.
#: KEYS: queue 1, held 1, queue 2, held 2, ... Returns {index, message} or nil.
FETCH = """
for i = 1, #KEYS, 2 do
  local message = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
  if message then return {(i + 1) / 2, message} end
end
return nil
"""

#: Put one held message back at the head of its queue (a reject with requeue).
#: KEYS: held list, queue; ARGV: the message exactly as held. Returns 1 if it was held.
REQUEUE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

#: Register consumers before they take anything, so that whatever they hold can be found.
#: KEYS: the consumers zset; ARGV: prefix, then per consumer: id, queue count, queues...
REGISTER = _NOW + """
local prefix, pos = ARGV[1], 2
while pos <= #ARGV do
  local id, count = ARGV[pos], tonumber(ARGV[pos + 1])
  redis.call('ZADD', KEYS[1], now, id)
  for i = 1, count do
    redis.call('SADD', prefix .. ':delivery:consumer:' .. id .. ':queues', ARGV[pos + 1 + i])
  end
  pos = pos + 2 + count
end
return now
"""

#: Release one consumer's held messages (a clean close, or a predecessor of this process).
#: KEYS: none; ARGV: prefix, consumer id, queue key prefix. Returns the count put back.
RELEASE = _RELEASE_FN + """
return release(ARGV[1], ARGV[2], ARGV[3])
"""

#: Move due delayed messages onto their queues, then (when ``reap`` is 1) release every
#: consumer silent for ``dead_after_ms``. KEYS: consumers zset, delayed zset; ARGV: prefix,
#: queue key prefix, dead_after_ms, reap (0/1), most messages to move.
#: Returns {messages moved, consumers reaped, messages put back}.
MAINTAIN = _NOW + _RELEASE_FN + """
local prefix, queue_prefix = ARGV[1], ARGV[2]
local moved = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0,
                                   tonumber(ARGV[5]))) do
  local cut = string.find(member, '\\n', 1, true)
  redis.call('LPUSH', string.sub(member, 1, cut - 1), string.sub(member, cut + 1))
  redis.call('ZREM', KEYS[2], member)
  moved = moved + 1
end
local reaped, returned = 0, 0
if ARGV[4] == '1' then
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]),
                          'LIMIT', 0, 100)
  for _, id in ipairs(dead) do
    returned = returned + release(prefix, id, queue_prefix)
    reaped = reaped + 1
  end
end
return {moved, reaped, returned}
"""
