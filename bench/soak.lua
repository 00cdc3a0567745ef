-- soak.lua — the mixed request stream of the soak (bench/soak.py).
--
--   wrk -t1 -cN -dS -s bench/soak.lua URL -- NONCE
--
-- Per request, by weight (per mille): cache hits (200 hot prompts per tenant,
-- plain and streamed), misses (unique prompts; some with Cache-Control:
-- no-store, no-cache or a short x-sluice-cache-ttl), unique streams, Anthropic
-- /v1/messages (translated, never cached), client errors (bad JSON and a bad
-- parameter 400, no key and a wrong key 401, a tenant over its rpm 429, an
-- unknown model 404), a model served only by a dead provider (502/503, its
-- breaker opening and closing), GET /v1/models and GET /health.
-- Upstream errors come from the mock's fail_next knob and client aborts from
-- a thread of bench/soak.py; neither is in this script.
--
-- NONCE keeps the unique prompts of one wrk run apart from those of earlier
-- runs against the same sluice. done() prints one line
-- `SOAK_JSON {...}` (requests, errors, statuses, x-sluice-cache values) that
-- bench/soak.py parses.

local nonce, n = "0", 0
local PATH = "/v1/chat/completions"
local A = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-soak-a" }
local B = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-soak-b" }
local NOSTORE = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-soak-a",
                  ["Cache-Control"] = "no-store" }
local NOCACHE = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-soak-b",
                  ["Cache-Control"] = "no-cache" }
local SHORTTTL = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-soak-a",
                   ["x-sluice-cache-ttl"] = "5" }
local TIGHT = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-soak-tight" }
local NOKEY = { ["Content-Type"] = "application/json" }
local BADKEY = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-wrong" }
local ANTH = { ["Content-Type"] = "application/json", ["x-api-key"] = "sk-soak-a",
               ["anthropic-version"] = "2023-06-01" }
local GETH = { ["Authorization"] = "Bearer sk-soak-a" }

local function chat(prompt, stream, model)
  return '{"model":"' .. (model or "gpt-4o-mini") .. '",' .. (stream and '"stream":true,' or '') ..
         '"messages":[{"role":"user","content":"' .. prompt .. '"}]}'
end

local function anthropic(prompt, stream)
  return '{"model":"gpt-4o-mini","max_tokens":64,' .. (stream and '"stream":true,' or '') ..
         '"messages":[{"role":"user","content":"' .. prompt .. '"}]}'
end

local function uniq(what)
  return "soak " .. what .. " " .. nonce .. " " .. n
end

-- {cumulative weight per mille, generator}
local MIX = {
  { 250, function() return wrk.format("POST", PATH, A, chat("soak hot " .. math.random(200))) end },
  { 440, function() return wrk.format("POST", PATH, B, chat("soak hot " .. math.random(200))) end },
  { 540, function() return wrk.format("POST", PATH, A, chat(uniq("miss"))) end },
  { 600, function() return wrk.format("POST", PATH, NOSTORE, chat(uniq("nostore"))) end },
  { 610, function() return wrk.format("POST", PATH, NOCACHE, chat("soak hot " .. math.random(200))) end },
  { 620, function() return wrk.format("POST", PATH, SHORTTTL, chat(uniq("shortttl"))) end },
  { 740, function() return wrk.format("POST", PATH, A, chat(uniq("stream"), true)) end },
  { 800, function() return wrk.format("POST", PATH, B, chat("soak hot stream " .. math.random(50), true)) end },
  { 810, function() return wrk.format("POST", "/v1/messages", ANTH, anthropic(uniq("anthropic"))) end },
  { 820, function() return wrk.format("POST", "/v1/messages", ANTH, anthropic(uniq("anthropic stream"), true)) end },
  { 860, function() return wrk.format("POST", PATH, A, '{"model":"gpt-4o-mini","messages":[{"role":') end },
  { 870, function() return wrk.format("POST", PATH, A,
           '{"model":"gpt-4o-mini","temperature":"hot","messages":[{"role":"user","content":"x"}]}') end },
  { 900, function() return wrk.format("POST", PATH, TIGHT, chat(uniq("tight"))) end },
  { 930, function() return wrk.format("POST", PATH, NOKEY, chat(uniq("nokey"))) end },
  { 940, function() return wrk.format("POST", PATH, BADKEY, chat(uniq("badkey"))) end },
  { 950, function() return wrk.format("POST", PATH, A, chat(uniq("nomodel"), false, "gpt-nonexistent")) end },
  { 960, function() return wrk.format("POST", PATH, A, chat(uniq("dead"), (n % 2) == 0, "gpt-dead")) end },
  { 990, function() return wrk.format("GET", "/v1/models", GETH, nil) end },
  { 1000, function() return wrk.format("GET", "/health", GETH, nil) end },
}

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- globals: done() reads them from each thread with thread:get()
statuses, caches = {}, {}

function init(args)
  nonce = (args[1] or "0") .. "-" .. tostring(tid or "")
  local seed = 0
  for i = 1, #nonce do seed = (seed * 31 + nonce:byte(i)) % 2147483647 end
  math.randomseed(seed)
end

function request()
  n = n + 1
  local r = math.random(1000)
  for i = 1, #MIX do
    if r <= MIX[i][1] then
      return MIX[i][2]()
    end
  end
end

function response(status, headers, body)
  local s = tostring(status)
  statuses[s] = (statuses[s] or 0) + 1
  local c = headers["x-sluice-cache"] or headers["X-Sluice-Cache"]
  if c then
    caches[c] = (caches[c] or 0) + 1
  end
end

local function to_json(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format('"%s":%d', k, v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local st, ca = {}, {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses") or {}) do st[k] = (st[k] or 0) + v end
    for k, v in pairs(thread:get("caches") or {}) do ca[k] = (ca[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"statuses":%s,"cache":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, to_json(st), to_json(ca)))
end
