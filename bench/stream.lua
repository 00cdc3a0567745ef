-- Streaming chat, a different prompt per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream ' .. n .. ' ' .. math.random(1e9) .. '"}]}'
  return wrk.format(nil, nil, nil, body)
end
