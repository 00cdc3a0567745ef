"""Issue 16 (tests): sluice driven by the official client libraries, `openai`
7.x and `@anthropic-ai/sdk` 1.x from the npm registry (test/package.json),
for what sluice routes today. The not-yet-routed calls are in
test_sdk_pending.py. Each test: redis, the mock(s) and sluice as the other
tests start them, then `node test/sdk/<lib>.mjs <case>` with the base URL and
key in its environment; its JSON output is checked here."""
import json
import sdk
from harness import Mock, Redis, Sluice, base_config

KEYS = [{"key": "sk-sdk-client", "tenant": "sdk"}]
CLIENT_KEY = "sk-sdk-client"


class Stack:
    """redis + an openai-kind and an anthropic-kind mock provider + sluice with keys."""

    def __init__(self, provider_extra=None, **over):
        """provider_extra: {"claude" | "oa": {more provider keys}}; over: more top-level keys."""
        self.redis, self.oa, self.an = Redis(), Mock(), Mock()
        c = base_config(self.oa, keys=KEYS, redis={"url": self.redis.url, "timeout_ms": 200}, **over)
        c["providers"] = [
            {"name": "claude", "kind": "anthropic", "base_url": self.an.url, "api_key": "sk-anthropic-upstream",
             "models": ["claude-*"]},
            {"name": "oa", "kind": "openai", "base_url": self.oa.url + "/v1", "api_key": "sk-upstream-secret",
             "models": ["*"]},
        ]
        for p in c["providers"]:
            p.update((provider_extra or {}).get(p["name"], {}))
        self.s = Sluice(c)

    def openai(self, case, key=CLIENT_KEY, **kw):
        return sdk.run("openai", case, self.s.url + "/v1", key, **kw)

    def anthropic(self, case, key=CLIENT_KEY, **kw):
        return sdk.run("anthropic", case, self.s.url, key, **kw)

    def stop(self):
        self.s.stop()


def test_sdk_clients_installed():
    v = sdk.installed()
    assert v["openai"].startswith("7.") and v["@anthropic-ai/sdk"].startswith("1."), v


def test_openai_sdk_chat():
    st = Stack()
    r = st.openai("chat")
    assert r["object"] == "chat.completion" and r["finish"] == "stop", r
    assert r["text"].startswith("mock reply to: hello sdk"), r
    assert r["usage"]["prompt_tokens"] > 0 and r["usage"]["completion_tokens"] > 0, r
    last = st.oa.last()
    assert last["path"] == "/v1/chat/completions", last
    assert last["headers"]["authorization"] == "Bearer sk-upstream-secret", last["headers"]
    assert CLIENT_KEY not in json.dumps(last), "the client's sluice key reached the provider"
    log = st.s.wait_log(1)
    assert log[-1]["tenant"] == "sdk" and log[-1]["status"] == 200, log[-1]
    st.stop()


def test_openai_sdk_chat_stream():
    st = Stack()
    r = st.openai("chat_stream")
    assert r["text"].startswith("mock reply to: stream sdk"), r
    assert r["chunks"] >= 3 and r["finish"] == "stop", r
    assert r["usage"] and r["usage"]["completion_tokens"] == len(r["text"].split()), r
    assert json.loads(st.oa.last()["body"])["stream"] is True
    st.stop()


def test_openai_sdk_tools():
    st = Stack()
    r = st.openai("tools")
    assert r["finish"] == "tool_calls" and r["name"] == "get_weather", r
    assert r["args"] == {"city": "mock", "days": 1} and r["id"].startswith("call_"), r
    assert r["second"].startswith("mock reply to: sunny"), r  # the tool result went back
    assert r["stream"] == {"name": "get_weather", "args": {"city": "mock", "days": 1}, "finish": "tool_calls"}, r
    st.stop()


def test_openai_sdk_tools_to_anthropic_provider():
    """Function calling through the chat -> messages translation."""
    st = Stack()
    r = st.openai("tools", env={"SLUICE_MODEL": "claude-3-5-haiku"})
    assert r["finish"] == "tool_calls" and r["name"] == "get_weather", r
    assert r["args"] == {"city": "mock", "days": 1}, r
    assert r["stream"]["name"] == "get_weather" and r["stream"]["finish"] == "tool_calls", r
    sent = json.loads(st.an.last()["body"])
    assert st.an.last()["path"] == "/v1/messages" and sent["tools"][0]["name"] == "get_weather", sent
    st.stop()


def test_openai_sdk_embeddings():
    st = Stack()
    r = st.openai("embeddings")
    assert r["n"] == 2 and r["dims"] == 256 and r["usage"]["prompt_tokens"] > 0, r
    st.stop()


def test_openai_sdk_models_list():
    st = Stack()
    r = st.openai("models")
    assert "gpt-4o-mini" in r["ids"] and len(r["ids"]) == len(set(r["ids"])), r
    st.stop()


def test_openai_sdk_401_is_authentication_error():
    st = Stack()
    r = st.openai("auth_error", key="sk-wrong")
    assert r == {"thrown": "AuthenticationError", "auth": True, "status": 401, "code": "invalid_api_key"}, r
    assert st.oa.stats()["requests"] == 0
    st.stop()


def test_anthropic_sdk_messages():
    st = Stack()
    r = st.anthropic("messages")
    assert r["type"] == "message" and r["role"] == "assistant" and r["stop"] == "end_turn", r
    assert r["text"].startswith("mock reply to: hello anthropic sdk"), r
    assert r["usage"]["input_tokens"] > 0 and r["usage"]["output_tokens"] > 0, r
    assert st.an.last()["path"] == "/v1/messages" and st.oa.stats()["requests"] == 0
    st.stop()


def test_anthropic_sdk_stream():
    st = Stack()
    r = st.anthropic("stream")
    assert r["text"] == r["final_text"] and r["text"].startswith("mock reply to: stream anthropic sdk"), r
    assert r["types"][0] == "message_start" and r["types"][-1] == "message_stop", r
    assert "content_block_delta" in r["types"] and r["stop"] == "end_turn", r
    assert r["usage"]["output_tokens"] == len(r["text"].split()), r
    st.stop()


def test_anthropic_sdk_tools():
    st = Stack()
    r = st.anthropic("tools")
    assert r["stop"] == "tool_use" and r["name"] == "get_weather" and r["id"].startswith("toolu_"), r
    assert r["input"] == {"city": "mock", "unit": "c"}, r
    assert r["second"].startswith("mock reply to:"), r
    assert r["stream"] == {"stop": "tool_use", "name": "get_weather", "input": {"city": "mock", "unit": "c"}}, r
    sent = json.loads(st.an.last()["body"])
    assert sent["tool_choice"] == {"type": "any"}, sent
    st.stop()


def test_anthropic_sdk_to_openai_provider():
    """The Anthropic SDK against a model an openai-kind provider serves (translated)."""
    st = Stack()
    r = st.anthropic("messages", env={"SLUICE_MODEL": "gpt-4o-mini"})
    assert r["type"] == "message" and r["text"].startswith("mock reply to: hello anthropic sdk"), r
    r = st.anthropic("stream", env={"SLUICE_MODEL": "gpt-4o-mini"})
    assert r["text"] == r["final_text"] and r["stop"] == "end_turn", r
    r = st.anthropic("tools", env={"SLUICE_MODEL": "gpt-4o-mini"})
    assert r["stop"] == "tool_use" and r["input"] == {"city": "mock", "unit": "c"}, r
    assert st.oa.last()["path"] == "/v1/chat/completions"
    st.stop()


def test_anthropic_sdk_401_is_authentication_error():
    st = Stack()
    r = st.anthropic("auth_error", key="sk-wrong")
    assert r["thrown"] == "AuthenticationError" and r["auth"] is True and r["status"] == 401, r
    assert st.an.stats()["requests"] == 0
    st.stop()


def test_anthropic_sdk_headers_forwarded():
    """The provider gets its own key (never the client's) and the client's anthropic-version."""
    st = Stack()
    st.anthropic("headers")
    h = st.an.last()["headers"]
    assert h["x-api-key"] == "sk-anthropic-upstream", h
    assert h["anthropic-version"], h  # the SDK's own (issue 16: the client's is forwarded)
    assert "authorization" not in h and CLIENT_KEY not in json.dumps(h), h
    assert h["content-type"].startswith("application/json"), h
    st.stop()


def test_sdk_missing_client_is_a_failure_not_a_skip():
    """Without Node.js (or the packages) every SDK test fails saying why."""
    import os, subprocess, sys, tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys; sys.path.insert(0, %r); import sdk\n"
            "try:\n    sdk.run('openai', 'chat', 'http://127.0.0.1:9/v1')\n"
            "except AssertionError as e:\n    print('FAILED:', e)\n") % here
    with tempfile.TemporaryDirectory() as empty:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PATH=empty))
    assert "FAILED: the SDK tests need Node.js" in p.stdout, (p.stdout, p.stderr)
