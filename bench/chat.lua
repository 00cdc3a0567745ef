-- chat.lua — the wrk request generator for every scenario of bench/run.py.
--
--   wrk -t1 -cN -dS -s bench/chat.lua URL -- MODE NONCE
--
-- MODE:
--   fixed   the same chat request every time: after the first one, a cache hit
--           (wrk builds it once: no Lua per request)
--   unique  a different prompt per request: never a cache hit, never coalesced
--   stream  like unique, with "stream": true (an SSE answer)
--   responses  a Responses API request (POST /v1/responses), unique input
-- NONCE keeps prompts of one run apart from those of earlier runs on the same
-- sluice instance (a "unique" prompt must not be a cache hit from before).
--
-- done() prints one line `BENCH_JSON {...}` with wrk's exact percentiles (µs)
-- and error counts; bench/run.py parses that line, not wrk's text output.

local FIXED = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}'
local mode, prefix, suffix, n = "fixed", "", '"}]}', 0

local function dynamic_request()
  n = n + 1
  return wrk.format(nil, nil, nil, prefix .. n .. suffix)
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  mode = args[1] or "fixed"
  local nonce = (args[2] or "0") .. "-" .. tostring(tid or "")
  wrk.method = "POST"
  wrk.path = wrk.path ~= "/" and wrk.path or "/v1/chat/completions"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = FIXED
  if mode == "stream" then
    prefix = '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"bench ' .. nonce .. ' '
    request = dynamic_request
  elseif mode == "unique" then
    prefix = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bench ' .. nonce .. ' '
    request = dynamic_request
  elseif mode == "responses" then
    prefix = '{"model":"gpt-4o-mini","input":"bench ' .. nonce .. ' '
    suffix = '"}'
    request = dynamic_request
  elseif mode ~= "fixed" then
    error("chat.lua: unknown mode " .. mode)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"p999_us":%.0f,"max_us":%.0f,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
