-- The bucket math of tollgate-budget (filters/budget/src/{bucket,cost}.rs), in Redis: every
-- operation is one script, so it is atomic across every account it touches. Time is Redis's
-- (TIME), the same for every replica. State per account: "level,last_fill;..." (integers),
-- expiring once every bucket would be full again (a new account starts full: nothing is lost).
-- This file is the common prelude; the service appends one operation to it.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function load(key, buckets, now)
  local raw = redis.call('GET', key)
  local st = {}
  if raw then
    for l, f in string.gmatch(raw, '(-?%d+),(%d+)') do
      st[#st + 1] = { tonumber(l), tonumber(f) }
    end
  end
  if #st ~= #buckets then
    st = {}
    for k, b in ipairs(buckets) do st[k] = { b.max_tokens, now } end
  end
  for k, b in ipairs(buckets) do
    local s = st[k]
    local interval = math.max(b.fill_interval_ms, 1)
    if now > s[2] then
      local p = math.floor((now - s[2]) / interval)
      if p > 0 then
        s[1] = s[1] + p * b.tokens_per_fill
        s[2] = s[2] + p * interval
      end
    end
    if s[1] > b.max_tokens then s[1] = b.max_tokens end
  end
  return st
end

-- ms until the bucket holds `need`; nil: never.
local function until_level(s, b, need, now)
  if s[1] >= need then return 0 end
  if need > b.max_tokens then return nil end
  local periods = math.ceil((need - s[1]) / b.tokens_per_fill)
  local at = s[2] + periods * math.max(b.fill_interval_ms, 1)
  if at > now then return at - now end
  return 0
end

local function save(key, st, buckets, now)
  local parts = {}
  local idle = 0
  for k, s in ipairs(st) do
    parts[k] = string.format('%d,%d', s[1], s[2])
    local u = until_level(s, buckets[k], buckets[k].max_tokens, now) or 0
    if u > idle then idle = u end
  end
  redis.call('SET', key, table.concat(parts, ';'), 'PX', idle + 60000)
end

-- `input` holds every prompt token; `cached` (reads) and `written` (prompt-cache writes) are
-- parts of it, each at its own price (tollgate_core::pricing::cost_pico_usd).
local function cost(price, input, cached, output, written)
  written = written or 0
  local pico = (input - cached - written) * price.input + cached * price.cached_input
    + written * (price.cache_write or price.input) + output * price.output
  return math.ceil(pico / 1000000)
end

local function amount(unit, price, input, cached, output, written)
  if unit == 'tokens' then return input + output end
  if unit == 'requests' then return 1 end
  return cost(price, input, cached, output, written)
end

-- Most output (<= want) the bucket pays for on top of `input`; nil below `min`.
local function fit(unit, price, available, input, want, min)
  if min > want then min = want end
  if unit == 'requests' then
    if available >= 1 then return want end
    return nil
  end
  local room
  if unit == 'tokens' then
    room = available - input
  else
    if available < cost(price, input, 0, 0) then return nil end
    if price.output == 0 then return want end
    room = math.floor((available * 1000000 - input * price.input) / price.output)
  end
  if room < min then return nil end
  if room < want then return room end
  return want
end

local function headers_of(s, b, now)
  local remaining = s[1]
  if remaining < 0 then remaining = 0 end
  return { limit = b.max_tokens, remaining = remaining, reset_ms = until_level(s, b, b.max_tokens, now) or 0 }
end

local function tighter(a, b)
  if a == nil then return b end
  if b ~= nil and b.remaining < a.remaining then return b end
  return a
end
