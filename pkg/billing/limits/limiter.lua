-- llmctl rate limiter: one script, four operations, each one round trip.
-- Time comes from the Redis server (TIME), never from the gateways, so every
-- replica sees the same windows. The arithmetic mirrors window.go exactly.
--
-- admit:  KEYS = counters1, slots1, counters2, slots2, ...
--         ARGV = 'admit', window_ms, lease_ms, ticket, tokens, then per bucket rpm, tpm, conc
--         → {admitted, wid, elapsed, denied_bucket, denied_dim, then per bucket rp, rc, tp, tc, in_use}
-- settle: KEYS as admit; ARGV = 'settle', wid, delta, ticket → {}
-- settle_admit: earlier requests' settles, then one admit, in one run.
--         KEYS = each settle's keys (as for settle), then the admit's keys
--         ARGV = 'settle_admit', nsettles, then per settle nkeys, wid, delta, ticket,
--                then the admit's ARGV without 'admit' → admit's reply
-- renew:  KEYS = slots...; ARGV = 'renew', lease_ms, ticket1, ticket2, ... → {}
local op = ARGV[1]

-- Redis' clock in ms: the one clock every replica shares.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- settle corrects a reservation by delta tokens in the window sw it was made
-- in and frees ticket's slots, over KEYS[k0+1 .. k0+nk].
local function settle(k0, nk, sw, delta, ticket)
  for i = 1, nk / 2 do
    local ck, sk = KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i]
    if delta ~= 0 then
      local v = redis.call('HMGET', ck, 'w', 'tp', 'tc')
      local w = tonumber(v[1])
      -- The reservation's own window: still current, or now the previous one.
      if w == sw then
        redis.call('HSET', ck, 'tc', math.max(0, tonumber(v[3]) + delta))
      elseif w == sw + 1 then
        redis.call('HSET', ck, 'tp', math.max(0, tonumber(v[2]) + delta))
      end
    end
    redis.call('ZREM', sk, ticket)
  end
end

-- admit decides one request over KEYS[k0+1 ..] with its arguments at
-- ARGV[a0+1 ..] (window_ms, lease_ms, ticket, tokens, per bucket rpm, tpm, conc).
local function admit(k0, a0)
  local now = now_ms()
  local win = tonumber(ARGV[a0 + 1])
  local lease = tonumber(ARGV[a0 + 2])
  local ticket = ARGV[a0 + 3]
  local cost = tonumber(ARGV[a0 + 4])
  local wid = math.floor(now / win)
  local elapsed = now - wid * win
  local n = (#KEYS - k0) / 2
  local out = {0, wid, elapsed, 0, 0}
  local st = {}
  local dim = 0
  for i = 1, n do
    local ck, sk = KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i]
    local rpm = tonumber(ARGV[a0 + 2 + 3 * i])
    local tpm = tonumber(ARGV[a0 + 3 + 3 * i])
    local conc = tonumber(ARGV[a0 + 4 + 3 * i])
    local rp, rc, tp, tc, inuse = 0, 0, 0, 0, 0
    if rpm > 0 or tpm > 0 then
      local v = redis.call('HMGET', ck, 'w', 'rp', 'rc', 'tp', 'tc')
      local w = tonumber(v[1])
      if w == wid then
        rp, rc, tp, tc = tonumber(v[2]), tonumber(v[3]), tonumber(v[4]), tonumber(v[5])
      elseif w == wid - 1 then
        rp, tp = tonumber(v[3]), tonumber(v[5])
      end
    end
    if conc > 0 then
      redis.call('ZREMRANGEBYSCORE', sk, '-inf', now)
      inuse = redis.call('ZCARD', sk)
    end
    st[i] = {rp, rc, tp, tc, inuse, rpm, tpm, conc}
    if dim == 0 then
      if rpm > 0 and (rc + 1) * win + rp * (win - elapsed) > rpm * win then
        dim = 1
      elseif tpm > 0 and (tc + cost) * win + tp * (win - elapsed) > tpm * win then
        dim = 2
      elseif conc > 0 and inuse >= conc then
        dim = 3
      end
      if dim > 0 then
        out[4] = i - 1
        out[5] = dim
      end
    end
  end
  if dim == 0 then
    out[1] = 1
    for i = 1, n do
      local s = st[i]
      local ck, sk = KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i]
      if s[6] > 0 or s[7] > 0 then
        s[2] = s[2] + 1
        s[4] = s[4] + cost
        redis.call('HSET', ck, 'w', wid, 'rp', s[1], 'rc', s[2], 'tp', s[3], 'tc', s[4])
        redis.call('PEXPIRE', ck, 2 * win + 1000)
      end
      if s[8] > 0 then
        redis.call('ZADD', sk, now + lease, ticket)
        redis.call('PEXPIRE', sk, 2 * lease)
        s[5] = s[5] + 1
      end
    end
  end
  for i = 1, n do
    local s = st[i]
    for j = 1, 5 do
      out[#out + 1] = s[j]
    end
  end
  return out
end

if op == 'admit' then
  return admit(0, 1)
elseif op == 'settle' then
  settle(0, #KEYS, tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
  return {}
elseif op == 'settle_admit' then
  local k0, a = 0, 3
  for _ = 1, tonumber(ARGV[2]) do
    local nk = tonumber(ARGV[a])
    settle(k0, nk, tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3])
    k0, a = k0 + nk, a + 4
  end
  return admit(k0, a - 1)
elseif op == 'renew' then
  local now = now_ms()
  local lease = tonumber(ARGV[2])
  for i = 1, #KEYS do
    -- XX: a slot that already expired (or was freed) is not brought back.
    redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[2 + i])
    redis.call('PEXPIRE', KEYS[i], 2 * lease)
  end
  return {}
end
return redis.error_reply('llmctl limiter: unknown op ' .. tostring(op))
