"""The Lua scripts RedisStore runs (each one atomic on the server)."""

from __future__ import annotations

_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""

# record: KEYS = the counters then the keys to delete; ARGV[1] = how many counters,
# then (amount, ttl ms) per counter. Returns the counters' new values.
_RECORD = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local created = redis.call('EXISTS', KEYS[i]) == 0
  out[i] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * i])
  if created and tonumber(ARGV[2 * i + 1]) > 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
  end
end
if #KEYS > n then redis.call('DEL', unpack(KEYS, n + 1)) end
return out
"""

# The window log: a sorted set of "<id>:<units>" scored by stamp, plus its running
# total in a string key (so a call costs O(entries pruned), not O(entries)).
_WINDOW_LIB = """
-- Window stamps are the server's TIME (ARGV[1] = ''), so entries from every
-- process and machine are ordered as the server ran them; a number in ARGV[1]
-- is used instead (a caller's own clock).
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function units(member) return tonumber(string.match(member, ':([^:]*)$')) end
local function prune(zkey, tkey, now, window)
  local total = tonumber(redis.call('GET', tkey) or '0')
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - window)
  if #old > 0 then
    for i = 1, #old do total = total - units(old[i]) end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - window)
  end
  if redis.call('ZCARD', zkey) == 0 then total = 0 end
  return total
end
local function save(zkey, tkey, total, window)
  local ms = math.ceil(window * 1000) + 1000
  redis.call('SET', tkey, string.format('%.17g', total), 'PX', ms)
  redis.call('PEXPIRE', zkey, ms)
end
local function wait_for(zkey, total, cost, limit, now, window)
  local excess = total + cost - limit
  local entries = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    excess = excess - units(entries[i])
    if excess <= 0 then return tonumber(entries[i + 1]) + window - now end
  end
  return window
end
"""

_ACQUIRE = _WINDOW_LIB + """
local now, limit, window, cost = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
if cost > limit then return 'inf' end
local total = prune(KEYS[1], KEYS[2], now, window)
if total + cost > limit then
  save(KEYS[1], KEYS[2], total, window)
  return string.format('%.17g', wait_for(KEYS[1], total, cost, limit, now, window))
end
if cost > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. ARGV[4])
  total = total + cost
end
save(KEYS[1], KEYS[2], total, window)
return '0'
"""

_ADJUST = _WINDOW_LIB + """
local now, window, delta = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local total = prune(KEYS[1], KEYS[2], now, window)
if delta > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. ARGV[3])
  total = total + delta
else
  local refund = -delta
  while refund > 0 do
    local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if #newest == 0 then break end
    local u = units(newest[1])
    local take = math.min(refund, u)
    redis.call('ZREM', KEYS[1], newest[1])
    if u - take > 0 then
      local id = string.match(newest[1], '^(.*):[^:]*$')
      redis.call('ZADD', KEYS[1], newest[2], id .. ':' .. string.format('%.17g', u - take))
    end
    total = total - take
    refund = refund - take
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then total = 0 end
save(KEYS[1], KEYS[2], total, window)
"""

# gate: KEYS[1] = the breaker's open key, then (zset, total) per window.
# ARGV: '' (server time) or now, id, then (limit, window, cost) per window.
# Returns {open stamp or '', wait}. When the breaker key exists nothing is
# acquired (the caller's slow path decides); otherwise every window is
# acquired, all or nothing.
_GATE = _WINDOW_LIB + """
local opened = redis.call('GET', KEYS[1])
if opened then return {opened, '0'} end
local now = clock(ARGV[1])
local n = (#KEYS - 1) / 2
local totals = {}
for i = 1, n do
  local z, t = KEYS[2 * i], KEYS[2 * i + 1]
  local limit, window, cost = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]),
    tonumber(ARGV[3 * i + 2])
  if cost > limit then return {'', 'inf'} end
  local total = prune(z, t, now, window)
  totals[i] = total
  if total + cost > limit then
    save(z, t, total, window)
    return {'', string.format('%.17g', wait_for(z, total, cost, limit, now, window))}
  end
end
for i = 1, n do
  local z, t = KEYS[2 * i], KEYS[2 * i + 1]
  local window, cost = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  if cost > 0 then redis.call('ZADD', z, now, ARGV[2] .. '.' .. i .. ':' .. ARGV[3 * i + 2]) end
  save(z, t, totals[i] + cost, window)
end
return {'', '0'}
"""
