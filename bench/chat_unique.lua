-- A different prompt per request: every one a cache miss (pass-through).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bench ' .. n .. ' ' .. math.random(1e9) .. '"}]}'
  return wrk.format(nil, nil, nil, body)
end
