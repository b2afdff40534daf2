-- ARGV: [1] the reservation record's key, [2] "commit" or "release", [3] input, [4] cached
-- input, [5] output, [6..8] prices (input, output, cached input), [9] prompt-cache writes
-- (part of input), [10] their price. Settles once: the record is
-- deleted; an unknown id (settled, or expired and so left charged) does nothing.
local raw = redis.call('GET', ARGV[1])
if not raw then return cjson.encode({ settled = false, overshoot = 0 }) end
redis.call('DEL', ARGV[1])
local rec = cjson.decode(raw)
local release = ARGV[2] == 'release'
local input, cached, output = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local written = tonumber(ARGV[9])
local price = { input = tonumber(ARGV[6]), output = tonumber(ARGV[7]), cached_input = tonumber(ARGV[8]),
  cache_write = tonumber(ARGV[10]) }
local now = now_ms()
for i, key in ipairs(rec.k) do
  local buckets = rec.b[i]
  -- An account that expired meanwhile was full again: nothing to give back.
  if redis.call('EXISTS', key) == 1 then
    local st = load(key, buckets, now)
    for k, b in ipairs(buckets) do
      local real = 0
      if not release then real = amount(b.unit, price, input, cached, output, written) end
      st[k][1] = st[k][1] + rec.a[i][k] - real
      if st[k][1] > b.max_tokens then st[k][1] = b.max_tokens end
    end
    save(key, st, buckets, now)
  end
end
local overshoot = 0
if not release then
  overshoot = input + output - (rec.i + rec.o)
  if overshoot < 0 then overshoot = 0 end
end
return cjson.encode({ settled = true, overshoot = overshoot })
