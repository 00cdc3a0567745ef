"""Issue 5: Anthropic natively and by translation, both ways."""
import json, threading, time
from harness import Mock, Sluice, base_config, chat, post_json, request, stream


def providers(m, kind, **over):
    c = base_config(m, **over)
    base = m.url if kind == "anthropic" else m.url + "/v1"
    c["providers"] = [{"name": "p", "kind": kind, "base_url": base, "api_key": "sk-prov", "models": ["*"]}]
    return c


MSG = {"model": "claude-3-5-haiku", "max_tokens": 50, "system": "be brief",
       "messages": [{"role": "user", "content": "hello claude"}]}


def test_messages_native_plain_and_stream():
    m = Mock()
    s = Sluice(providers(m, "anthropic"))
    st, h, j, _ = post_json(s.url + "/v1/messages", MSG, {"x-api-key": "anything"})
    assert st == 200 and j["type"] == "message" and "hello claude" in j["content"][0]["text"], j
    last = m.last()
    assert last["path"] == "/v1/messages" and last["headers"]["x-api-key"] == "sk-prov"
    assert "anthropic-version" in last["headers"]
    st, h, ev, raw = stream(s.url + "/v1/messages", dict(MSG, stream=True))
    assert st == 200 and b"event: message_stop" in raw and b"event: content_block_delta" in raw, raw[:300]
    log = s.wait_log(2)
    assert log[1]["prompt_tokens"] > 0 and log[1]["completion_tokens"] > 0, log[1]
    s.stop()


def test_chat_to_anthropic_provider_plain_and_stream():
    m = Mock()
    s = Sluice(providers(m, "anthropic"))
    u = s.url + "/v1/chat/completions"
    body = {"model": "claude-3-5-haiku", "messages": [{"role": "system", "content": "sys"},
                                                      {"role": "user", "content": "hi there"}], "stop": "END"}
    st, h, j, _ = post_json(u, body)
    assert st == 200 and j["object"] == "chat.completion", j
    assert "hi there" in j["choices"][0]["message"]["content"] and j["usage"]["prompt_tokens"] > 0
    sent = json.loads(m.last()["body"])
    assert sent["system"] == "sys" and sent["stop_sequences"] == ["END"] and sent["max_tokens"] > 0, sent
    assert all(x["role"] != "system" for x in sent["messages"])
    st, h, ev, _ = stream(u, dict(body, stream=True, stream_options={"include_usage": True}))
    assert st == 200 and ev[-1] == "[DONE]", ev
    chunks = [json.loads(e) for e in ev[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == j["choices"][0]["message"]["content"], (text, j)
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    s.stop()


def test_messages_to_openai_provider():
    m = Mock()
    s = Sluice(providers(m, "openai"))
    st, h, j, _ = post_json(s.url + "/v1/messages", MSG)
    assert st == 200 and j["type"] == "message" and j["content"][0]["type"] == "text", j
    assert j["usage"]["output_tokens"] > 0 and j["stop_reason"] == "end_turn"
    sent = json.loads(m.last()["body"])
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}, sent
    st, h, ev, raw = stream(s.url + "/v1/messages", dict(MSG, stream=True))
    assert b"event: message_start" in raw and b"event: message_stop" in raw, raw[:400]
    deltas = [json.loads(e) for e in ev if '"text_delta"' in e]
    assert "".join(d["delta"]["text"] for d in deltas) == j["content"][0]["text"]
    s.stop()


def test_fallback_openai_to_anthropic_and_unsupported():
    m1, m2 = Mock(), Mock()
    c = base_config(m1, retries={"max": 1, "base_ms": 1})
    c["providers"] = [{"name": "oa", "kind": "openai", "base_url": m1.url + "/v1", "api_key": "a", "models": ["*"]},
                      {"name": "claude", "kind": "anthropic", "base_url": m2.url, "api_key": "b", "models": ["*"]}]
    s = Sluice(c)
    m1.config(status=503)
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("fall over"))
    assert st == 200 and h["x-sluice-provider"] == "claude" and j["object"] == "chat.completion", (st, j)
    m1.config(status=200)
    s.stop()
    m = Mock()
    s = Sluice(providers(m, "anthropic"))
    st, _, j, _ = post_json(s.url + "/v1/chat/completions", chat(n=2))
    assert st == 400 and j["error"]["param"] == "n", j
    st, _, j, _ = post_json(s.url + "/v1/messages", {"model": "c", "messages": []})
    assert st == 400 and j["type"] == "error", j
    assert m.stats()["requests"] == 0
    s.stop()


# ---- issue 16, section 3: Anthropic as Anthropic's clients expect it ----------

THINKING_SSE = "".join("event: %s\ndata: %s\n\n" % (json.loads(d)["type"], d) for d in [
    '{"type":"message_start","message":{"id":"msg_01Think","type":"message","role":"assistant","content":[],'
    '"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":42,'
    '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}',
    '{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me solve this:\\n\\n1. 27 * 453"}}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" = 12,231 \\u00e9\\u4e2d"}}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h+/=="}}',
    '{"type":"content_block_stop","index":0}',
    '{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"}}',
    '{"type":"content_block_stop","index":1}',
    '{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}',
    '{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"27 * 453 = 12,231"}}',
    '{"type":"content_block_stop","index":2}',
    '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":120}}',
    '{"type":"message_stop"}'])

THINKING = {"type": "thinking", "thinking": "Let me solve this:\n\n1. 27 * 453 = 12,231 \u00e9\u4e2d",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h+/=="}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}


def assemble(events):
    """The client side of a messages stream, as the Anthropic SDK folds it."""
    msg, blocks = None, []
    for e in (json.loads(x) for x in events):
        if e["type"] == "message_start":
            msg = e["message"]
        elif e["type"] == "content_block_start":
            blocks.append(dict(e["content_block"]))
        elif e["type"] == "content_block_delta":
            d, b = e["delta"], blocks[e["index"]]
            if d["type"] == "thinking_delta":
                b["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                b["signature"] = b.get("signature", "") + d["signature"]
            elif d["type"] == "text_delta":
                b["text"] += d["text"]
            elif d["type"] == "input_json_delta":
                b["_json"] = b.get("_json", "") + d["partial_json"]
        elif e["type"] == "message_delta":
            msg.update(e["delta"])
            msg["usage"].update(e.get("usage", {}))
    for b in blocks:
        if "_json" in b:
            b["input"] = json.loads(b.pop("_json"))
    msg["content"] = blocks
    return msg


def cached(m, kind="anthropic", **over):
    c = providers(m, kind, cache={"enabled": True, "ttl_s": 60}, **over)
    return c


def test_messages_cached_with_thinking_byte_exact():
    """A streamed answer is stored as the message it makes; it then serves a
    plain request and a stream, thinking, signature and redacted_thinking exact."""
    m = Mock()
    s = Sluice(cached(m))
    m.config(sse_body=THINKING_SSE)
    u = s.url + "/v1/messages"
    body = dict(MSG, stream=True, thinking={"type": "enabled", "budget_tokens": 1024})
    st, h, ev, raw = stream(u, body)
    assert st == 200 and h["x-sluice-cache"] == "miss" and "request-id" in h, (st, h)
    first = assemble(ev)
    assert first["content"] == [THINKING, REDACTED, {"type": "text", "text": "27 * 453 = 12,231"}], first
    plain = dict(body)
    del plain["stream"]
    st, h, j, _ = post_json(u, plain)
    assert st == 200 and h["x-sluice-cache"] == "hit", (st, h, j)
    assert j["content"] == first["content"] and j["stop_reason"] == "end_turn", j
    assert j["usage"]["input_tokens"] == 42 and j["usage"]["output_tokens"] == 120, j
    st, h, ev, raw = stream(u, body)
    assert st == 200 and h["x-sluice-cache"] == "hit", h
    again = assemble(ev)
    assert again["content"] == first["content"] and again["usage"]["output_tokens"] == 120, again
    assert b"event: message_stop" in raw and b'"type":"signature_delta"' in raw, raw[:500]
    assert m.stats()["requests"] == 1
    # a plain answer is stored as its bytes
    m.config(sse_body=None)
    plain2 = dict(MSG, messages=[{"role": "user", "content": "plain and cached"}])
    st, h, a, ra = post_json(u, plain2)
    st, h, b, rb = post_json(u, plain2)
    assert h["x-sluice-cache"] == "hit" and ra == rb, h
    log = s.wait_log(5)
    assert log[-1]["cache"] == "hit" and log[-1]["saved_usd"] >= 0, log[-1]
    s.stop()


def test_messages_cache_scope_and_cache_control_passthrough():
    """Another anthropic-beta is another entry; cache_control reaches the provider as sent."""
    m = Mock()
    s = Sluice(cached(m))
    u = s.url + "/v1/messages"
    body = dict(MSG, system=[{"type": "text", "text": "long shared prefix " * 20,
                              "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    st, h, _, _ = post_json(u, body, {"anthropic-beta": "extended-cache-ttl-2025-04-11"})
    assert st == 200 and h["x-sluice-cache"] == "miss"
    sent = json.loads(m.last()["body"])
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}, sent
    st, h, _, _ = post_json(u, body, {"anthropic-beta": "extended-cache-ttl-2025-04-11"})
    assert h["x-sluice-cache"] == "hit", h
    st, h, _, _ = post_json(u, body)
    assert h["x-sluice-cache"] == "miss", h  # no beta: not the same answer to give
    assert m.stats()["requests"] == 2
    s.stop()


def test_messages_coalesced():
    m = Mock()
    s = Sluice(cached(m))
    m.config(delay_ms=400)
    u = s.url + "/v1/messages"
    out = []
    body = dict(MSG, messages=[{"role": "user", "content": "together"}])

    def one():
        out.append(post_json(u, body))
    ts = [threading.Thread(target=one) for _ in range(3)]
    for t in ts:
        t.start()
        time.sleep(0.05)
    for t in ts:
        t.join()
    kinds = sorted(o[1]["x-sluice-cache"] for o in out)
    assert kinds == ["coalesced", "coalesced", "miss"], kinds
    assert all(o[3] == out[0][3] for o in out) and out[0][2]["type"] == "message"
    assert m.stats()["requests"] == 1
    s.stop()


def err_type(resp):
    st, h, j, raw = resp
    assert j and j.get("type") == "error" and set(j["error"]) >= {"type", "message"}, raw
    assert "request-id" in h and h["request-id"] == h["x-request-id"], h
    return st, j["error"]["type"]


def test_every_messages_answer_is_anthropic_shaped():
    m = Mock()
    c = providers(m, "anthropic", keys=[{"key": "sk-a", "tenant": "a", "rpm": 1}],
                  retries={"max": 0, "base_ms": 1})
    s = Sluice(c)
    u = s.url + "/v1/messages"
    k = {"x-api-key": "sk-a"}
    assert err_type(post_json(u, MSG, {"x-api-key": "sk-wrong"})) == (401, "authentication_error")
    assert err_type(post_json(u + "/count_tokens", MSG, {"x-api-key": "sk-wrong"})) == \
        (401, "authentication_error")  # every /v1/messages* path
    assert err_type(post_json(s.url + "/v1/messages/nope", MSG, k)) == (404, "not_found_error")
    st, h, raw = request("GET", u, headers=k)
    assert err_type((st, h, json.loads(raw), raw)) == (405, "invalid_request_error")
    assert err_type(post_json(u, {"model": "claude-x", "messages": []}, k)) == (400, "invalid_request_error")
    m.config(status=500)
    assert err_type(post_json(u, MSG, k)) == (500, "api_error")  # the mock's OpenAI-shaped 500, reshaped
    assert err_type(post_json(u, MSG, k)) == (429, "rate_limit_error")  # rpm 1 spent
    m.config(status=200)
    s.stop()
    # translated: an openai-kind provider's 503 and 429
    m = Mock()
    s = Sluice(providers(m, "openai", retries={"max": 0, "base_ms": 1}))
    m.config(status=503)
    assert err_type(post_json(s.url + "/v1/messages", MSG)) == (503, "overloaded_error")
    m.config(status=429)
    assert err_type(post_json(s.url + "/v1/messages", MSG)) == (429, "rate_limit_error")
    m.config(status=200)
    st, h, j, _ = post_json(s.url + "/v1/messages", MSG)
    assert st == 200 and h["request-id"] == h["x-request-id"], h
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("no request-id here"))
    assert st == 200 and "request-id" not in h, h
    s.stop()


def test_count_tokens_forwarded_and_estimated():
    m = Mock()
    c = base_config(m)
    c["providers"] = [{"name": "claude", "kind": "anthropic", "base_url": m.url, "api_key": "sk-an",
                       "models": ["claude-*"]},
                      {"name": "oa", "kind": "openai", "base_url": m.url + "/v1", "api_key": "sk-oa",
                       "models": ["*"]}]
    s = Sluice(c)
    u = s.url + "/v1/messages/count_tokens"
    body = {"model": "claude-3-5-haiku", "system": "be brief", "messages": [{"role": "user", "content": "count me"}]}
    st, h, j, raw = post_json(u, body, {"anthropic-beta": "token-counting-2024-11-01"})
    assert st == 200 and j["input_tokens"] > 0 and "x-sluice-estimated" not in h, (st, h, raw)
    last = m.last()
    assert last["path"] == "/v1/messages/count_tokens" and last["headers"]["x-api-key"] == "sk-an", last
    assert last["headers"]["anthropic-beta"] == "token-counting-2024-11-01"
    assert json.loads(last["body"]) == body  # the client's bytes
    st, h, j, _ = post_json(u, dict(body, model="gpt-4o-mini"))
    assert st == 200 and h["x-sluice-estimated"] == "true" and j == {"input_tokens": 5}, (h, j)
    assert m.stats()["by_path"]["/v1/messages/count_tokens"] == 1
    st, h, j, _ = post_json(u, {"model": "claude-3-5-haiku"})
    assert st == 400 and j["type"] == "error" and j["error"]["type"] == "invalid_request_error", j
    log = s.wait_log(3)
    assert log[0]["path"] == "/v1/messages/count_tokens" and log[0]["cost_usd"] == 0, log[0]
    s.stop()


def test_models_list_every_provider_filtered_once():
    m1, m2 = Mock(), Mock()
    c = base_config(m1)
    c["providers"] = [{"name": "claude", "kind": "anthropic", "base_url": m2.url, "api_key": "sk-an",
                       "models": ["claude-sonnet-*"]},
                      {"name": "oa", "kind": "openai", "base_url": m1.url + "/v1", "api_key": "sk-oa",
                       "models": ["gpt-*", "claude-*"]},
                      {"name": "fixed", "kind": "openai", "base_url": m1.url + "/v1", "api_key": "x",
                       "models": ["gpt-4o-mini", "my-local-model"]}]
    s = Sluice(c)
    st, h, body = request("GET", s.url + "/v1/models")
    j = json.loads(body)
    ids = [x["id"] for x in j["data"]]
    # claude lists claude-3-5-haiku too, but serves only claude-sonnet-*; oa's claude-3-5-haiku stays
    assert ids == ["claude-sonnet-4-5", "gpt-4o-mini", "claude-3-5-haiku", "my-local-model"], ids
    assert j["data"][0]["owned_by"] == "claude" and j["data"][0]["display_name"] == "Claude Sonnet 4.5", j
    assert all(x["object"] == "model" and x["type"] == "model" for x in j["data"]), j
    assert j["has_more"] is False and j["first_id"] == ids[0] and j["last_id"] == ids[-1], j
    assert m2.stats()["by_path"]["/v1/models"] == 1, m2.stats()
    s.stop()


# ---- issue 16, section 4: translation without loss ----------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
          "required": ["city", "days"], "additionalProperties": False}


def test_response_format_json_schema_to_anthropic():
    """Native structured outputs where the model has them, a forced tool where it does not;
    either way the chat client gets its JSON as the message's content."""
    m = Mock()
    s = Sluice(providers(m, "anthropic"))
    u = s.url + "/v1/chat/completions"
    rf = {"type": "json_schema", "json_schema": {"name": "forecast", "strict": True, "schema": SCHEMA}}
    st, h, j, _ = post_json(u, chat("forecast please", model="claude-sonnet-4-5", response_format=rf))
    assert st == 200, j
    sent = json.loads(m.last()["body"])
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}, sent
    assert "tools" not in sent, sent
    st, h, j, _ = post_json(u, chat("forecast please", model="claude-3-5-haiku", response_format=rf))
    assert st == 200, j
    sent = json.loads(m.last()["body"])
    assert sent["tools"][0]["name"] == "sluice_response_format" and sent["tools"][0]["input_schema"] == SCHEMA
    assert sent["tool_choice"] == {"type": "tool", "name": "sluice_response_format"}, sent
    msg = j["choices"][0]["message"]
    assert j["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in msg, j
    assert set(json.loads(msg["content"])) == {"city", "days"}, msg
    st, h, ev, _ = stream(u, chat("forecast please", model="claude-3-5-haiku", response_format=rf, stream=True))
    chunks = [json.loads(e) for e in ev[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert json.loads(text) == json.loads(msg["content"]), text
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == ["stop"]
    assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
    # JSON mode: the same tool, any object
    st, h, j, _ = post_json(u, chat("json please", model="claude-sonnet-4-5",
                                    response_format={"type": "json_object"}))
    assert st == 200 and isinstance(json.loads(j["choices"][0]["message"]["content"]), dict), j
    assert json.loads(m.last()["body"])["tools"][0]["input_schema"] == {"type": "object"}
    s.stop()


def test_chat_cache_control_and_tool_choice_reach_anthropic():
    m = Mock()
    s = Sluice(providers(m, "anthropic"))
    body = {"model": "claude-3-5-haiku", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "big prefix " * 50, "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "none"}
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", body)
    assert st == 200, j
    sent = json.loads(m.last()["body"])
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}, sent
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}, sent
    assert sent["tool_choice"] == {"type": "none"}, sent
    assert j["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, j  # the mock wrote the cache
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", body)
    assert j["usage"]["prompt_tokens_details"]["cached_tokens"] > 0, j  # ... and read it
    log = s.wait_log(2)
    assert log[0]["cache_write_tokens"] > 0 and log[1]["cached_tokens"] == j["usage"]["prompt_tokens_details"]["cached_tokens"], log
    s.stop()


# ---- issue 16, section 5: money that matches the invoice ----------------------

PRICES = {"claude-*": {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75,
                       "cache_write_1h": 6.0},
          "gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached_input": 0.075}}


def test_cache_tokens_priced_plain_and_streamed():
    m = Mock()
    s = Sluice(providers(m, "anthropic", prices=PRICES))
    m.config(cached_tokens=1000, cache_write_tokens=2000, cache_write_1h_tokens=4000)
    st, h, j, _ = post_json(s.url + "/v1/messages", MSG)
    u = j["usage"]
    assert u["cache_read_input_tokens"] == 1000 and u["cache_creation_input_tokens"] == 6000, u
    want = (u["input_tokens"] * 3.0 + 1000 * 0.3 + 2000 * 3.75 + 4000 * 6.0 + u["output_tokens"] * 15.0) / 1e6
    assert abs(float(h["x-sluice-cost-usd"]) - want) < 1e-8, (h["x-sluice-cost-usd"], want)
    stream(s.url + "/v1/messages", dict(MSG, stream=True))  # native stream
    stream(s.url + "/v1/chat/completions", chat("hello claude", model="claude-3-5-haiku", stream=True))  # translated
    log = s.wait_log(3)
    for line in log:
        assert line["cached_tokens"] == 1000 and line["cache_write_tokens"] == 6000, line
        want = (line["prompt_tokens"] * 3.0 + 1000 * 0.3 + 2000 * 3.75 + 4000 * 6.0
                + line["completion_tokens"] * 15.0) / 1e6
        assert abs(line["cost_usd"] - want) < 1e-8, (line, want)
    assert log[0]["prompt_tokens"] == u["input_tokens"]  # Anthropic's convention: beside the cache
    st, _, body = request("GET", s.url + "/metrics")
    text = body.decode()
    assert 'direction="cached_input"} 3' in text and 'direction="cache_write"} 18000' in text, \
        [ln for ln in text.splitlines() if "sluice_tokens_total" in ln]
    s.stop()


def test_openai_cached_and_reasoning_tokens_priced_once():
    m = Mock()
    s = Sluice(providers(m, "openai", prices=PRICES))
    m.config(cached_tokens=64, reasoning_tokens=5)
    st, h, j, _ = post_json(s.url + "/v1/chat/completions", chat("hello"))
    u = j["usage"]
    assert u["prompt_tokens_details"]["cached_tokens"] == 64 and u["completion_tokens_details"]["reasoning_tokens"] == 5
    want = ((u["prompt_tokens"] - 64) * 0.15 + 64 * 0.075 + u["completion_tokens"] * 0.60) / 1e6
    assert abs(float(h["x-sluice-cost-usd"]) - want) < 1e-8, (h, want)
    stream(s.url + "/v1/chat/completions", chat("hello", stream=True))
    stream(s.url + "/v1/messages", dict(MSG, model="gpt-4o-mini", stream=True))  # translated
    log = s.wait_log(3)
    for line in log:
        assert line["cached_tokens"] == 64 and line["reasoning_tokens"] == 5, line
        want = ((line["prompt_tokens"] - 64) * 0.15 + 64 * 0.075 + line["completion_tokens"] * 0.60) / 1e6
        assert abs(line["cost_usd"] - want) < 1e-8, (line, want)
    s.stop()


def test_cache_hit_saves_what_the_call_cost():
    """A hit's saved_usd is the miss's cost_usd to the cent: the entry keeps the
    prompt-cache counts, so cache reads and writes are priced as they were
    (not the whole prompt as uncached input), plain and streamed, both
    conventions."""
    for kind, path, body in (("anthropic", "/v1/messages", MSG),
                             ("openai", "/v1/chat/completions", chat("hello saved"))):
        m = Mock()
        s = Sluice(providers(m, kind, prices=PRICES, cache={"enabled": True, "ttl_s": 60}))
        m.config(cached_tokens=1000, cache_write_tokens=2000, cache_write_1h_tokens=4000,
                 reasoning_tokens=5)
        st, h, _, _ = post_json(s.url + path, body)
        assert st == 200 and h["x-sluice-cache"] == "miss", h
        st, h, _, _ = post_json(s.url + path, body)
        assert h["x-sluice-cache"] == "hit" and float(h["x-sluice-cost-usd"]) == 0, h
        stream(s.url + path, dict(body, stream=True))  # the entry replayed as events
        miss, hit, replay = s.wait_log(3)[-3:]
        assert miss["cost_usd"] > 0 and replay["cache"] == "hit", (miss, replay)
        for line in (hit, replay):
            assert line["cached_tokens"] == miss["cached_tokens"] > 0, (kind, line)
            assert line["cache_write_tokens"] == miss["cache_write_tokens"], (kind, line)
            assert line["reasoning_tokens"] == miss["reasoning_tokens"], (kind, line)
            assert abs(line["saved_usd"] - miss["cost_usd"]) < 1e-9, (kind, miss, line)
        assert m.stats()["requests"] == 1
        s.stop()


def test_messages_coalesced_across_stream_and_plain():
    """A streamed leader's answer, assembled, serves a plain follower; a plain
    leader's, replayed as Anthropic events, serves a stream follower."""
    for leader_streams in (True, False):
        m = Mock()
        s = Sluice(cached(m))
        m.config(delay_ms=400, sse_body=THINKING_SSE)
        u = s.url + "/v1/messages"
        body = dict(MSG, messages=[{"role": "user", "content": "mixed %s" % leader_streams}])
        if not leader_streams:
            m.config(sse_body=None)
        out = {}

        def lead():
            out["lead"] = stream(u, dict(body, stream=True)) if leader_streams else post_json(u, body)

        def follow():
            out["follow"] = post_json(u, body) if leader_streams else stream(u, dict(body, stream=True))
        t1 = threading.Thread(target=lead)
        t1.start()
        time.sleep(0.15)
        t2 = threading.Thread(target=follow)
        t2.start()
        t1.join()
        t2.join()
        assert out["follow"][1]["x-sluice-cache"] == "coalesced", out["follow"][1]
        assert m.stats()["requests"] == 1
        if leader_streams:
            assert out["follow"][2]["content"] == assemble(out["lead"][2])["content"], out
            assert out["follow"][2]["content"][0] == THINKING, out["follow"][2]
        else:
            assert assemble(out["follow"][2])["content"] == out["lead"][2]["content"], out
        s.stop()
