-- KEYS: the accounts' state keys; ARGV[1]: the ReserveRequest (JSON); ARGV[2]: the key of the
-- id counter; ARGV[3]: the prefix of reservation records.
local req = cjson.decode(ARGV[1])
local now = now_ms()
local input, want, min = req.input, req.want, req.min
local states = {}
for i, acc in ipairs(req.accounts) do
  states[i] = load(KEYS[i], acc.buckets, now)
end
local g = want
for i, acc in ipairs(req.accounts) do
  for k, b in ipairs(acc.buckets) do
    local r = fit(b.unit, req.price, states[i][k][1], input, g, min)
    if r == nil then
      local least = min
      if least > want then least = want end
      local retry = 0
      local headers = nil
      for k2, b2 in ipairs(acc.buckets) do
        local w = until_level(states[i][k2], b2, amount(b2.unit, req.price, input, 0, least), now)
        if w == nil or retry == nil then retry = nil elseif w > retry then retry = w end
        if b2.unit == 'tokens' then headers = tighter(headers, headers_of(states[i][k2], b2, now)) end
      end
      return cjson.encode({ result = 'refused', account = i - 1, bucket = k - 1,
        needed = amount(b.unit, req.price, input, 0, least), available = states[i][k][1],
        retry_after_ms = retry, headers = headers })
    end
    g = r
  end
end
local amounts = {}
local limits = {}
local headers = nil
for i, acc in ipairs(req.accounts) do
  amounts[i] = {}
  for k, b in ipairs(acc.buckets) do
    local a = amount(b.unit, req.price, input, 0, g)
    states[i][k][1] = states[i][k][1] - a
    amounts[i][k] = a
    if b.unit == 'tokens' then headers = tighter(headers, headers_of(states[i][k], b, now)) end
  end
  save(KEYS[i], states[i], acc.buckets, now)
  limits[i] = acc.buckets
end
local id = tostring(redis.call('INCR', ARGV[2]))
redis.call('SET', ARGV[3] .. id,
  cjson.encode({ k = KEYS, b = limits, a = amounts, i = input, o = g }), 'PX', req.ttl_ms)
return cjson.encode({ result = 'admitted', id = id, output = g, headers = headers })
