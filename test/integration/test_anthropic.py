"""Issue 5: Anthropic natively and by translation, both ways."""
import json
from harness import Mock, Sluice, base_config, chat, post_json, stream


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
