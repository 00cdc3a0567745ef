-- embed.lua — wrk request generator for the embeddings storm of bench/run.py:
-- a different one-line input on every request (never a cache hit, never
-- coalesced), as an indexing job fires them.
--
--   wrk -t1 -c200 -dS -s bench/embed.lua URL -- NONCE
local prefix, n = "", 0

function init(args)
  wrk.method = "POST"
  wrk.path = "/v1/embeddings"
  wrk.headers["Content-Type"] = "application/json"
  prefix = '{"model":"text-embedding-3-small","input":"line ' .. (args[1] or "0") .. ' '
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, prefix .. n .. '"}')
end
