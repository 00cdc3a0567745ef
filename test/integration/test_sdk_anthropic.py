"""Issue 16, sections 3 and 5 through the official clients: Anthropic as
Anthropic's clients expect it (count_tokens, models.list, headers, error
shapes) and prompt-cache usage in the access log. Formerly pending_ tests of
test_sdk_pending.py."""
import json
import re
import test_sdk as base  # a module object only: no test_ names land here
from harness import post_json, request

CLIENT_KEY = base.CLIENT_KEY


def test_anthropic_count_tokens():
    st = base.Stack()
    r = st.anthropic("count_tokens")
    assert r["input_tokens"] == r["usage_input"] and r["input_tokens"] > 0, r
    assert st.an.stats()["by_path"]["/v1/messages/count_tokens"] == 1
    # a model an openai-kind provider serves: an estimate, marked as one
    stt, h, j, _ = post_json(st.s.url + "/v1/messages/count_tokens",
                             {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "estimate me"}]},
                             {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert stt == 200 and j["input_tokens"] > 0 and h.get("x-sluice-estimated") == "true", (stt, h, j)
    st.stop()


def test_anthropic_models_list():
    st = base.Stack()
    r = st.anthropic("models")
    ids = [m["id"] for m in r["models"]]
    assert "claude-3-5-haiku" in ids and "claude-sonnet-4-5" in ids, r  # asked at {base_url}/v1/models
    assert len(ids) == len(set(ids)), r
    # the mock answers Anthropic's shape only to anthropic-version: that is how sluice asked
    assert st.an.stats()["by_path"]["/v1/models"] == 1, st.an.stats()
    assert all(m["type"] == "model" for m in r["models"]), r
    st.stop()


def test_anthropic_beta_and_version_forwarded():
    st = base.Stack()
    st.anthropic("headers", env={"SLUICE_BETA": "token-efficient-tools-2025-02-19"})
    h = st.an.last()["headers"]
    assert h["anthropic-beta"] == "token-efficient-tools-2025-02-19", h
    # the SDK sends its own anthropic-version (a date): the client's reaches the provider
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", h["anthropic-version"]), h
    assert h["x-api-key"] == "sk-anthropic-upstream" and "authorization" not in h, h
    body = {"model": "claude-3-5-haiku", "max_tokens": 5, "messages": [{"role": "user", "content": "v"}]}
    post_json(st.s.url + "/v1/messages", body, {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-01-01"})
    h = st.an.last()["headers"]
    assert h["anthropic-version"] == "2023-01-01" and "anthropic-beta" not in h, h
    post_json(st.s.url + "/v1/messages", body, {"x-api-key": CLIENT_KEY})
    assert st.an.last()["headers"]["anthropic-version"] == "2023-06-01"  # none sent: sluice's
    # a chat client translated to an anthropic provider: sluice's version, the betas of nobody
    post_json(st.s.url + "/v1/chat/completions", {"model": "claude-3-5-haiku", "messages": body["messages"]},
              {"Authorization": "Bearer " + CLIENT_KEY})
    h = st.an.last()["headers"]
    assert h["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in h, h
    st.stop()


def test_anthropic_errors_are_anthropic_shaped():
    st = base.Stack()
    r = st.anthropic("auth_error", key="sk-wrong")
    assert r["auth"] is True and r["error_type"] == "authentication_error", r
    stt, h, j, _ = post_json(st.s.url + "/v1/messages", {"model": "claude-3-5-haiku", "max_tokens": 5,
                                                         "messages": [{"role": "user", "content": "x"}]},
                             {"x-api-key": CLIENT_KEY})
    assert "request-id" in h and "x-request-id" in h, h
    st.stop()


def test_anthropic_cache_usage_metered():
    st = base.Stack()
    r = st.anthropic("cache_usage")
    assert r["first"]["cache_creation_input_tokens"] > 0 and r["second"]["cache_read_input_tokens"] > 0, r
    log = st.s.wait_log(2)
    assert log[-2]["cache_write_tokens"] == r["first"]["cache_creation_input_tokens"], log[-2]
    assert log[-1]["cached_tokens"] == r["second"]["cache_read_input_tokens"], log[-1]
    st.stop()


def test_openai_cached_tokens_in_access_log():
    st = base.Stack()
    st.oa.config(cached_tokens=64, reasoning_tokens=5)
    r = st.openai("chat")
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] == 64, r
    log = st.s.wait_log(1)[-1]
    assert log["cached_tokens"] == 64 and log["reasoning_tokens"] == 5, log
    st.stop()


def test_anthropic_sdk_stream_usage_through_translation():
    """The SDK's final message counts the prompt: the translated stream's last
    message_delta carries the real input_tokens an OpenAI provider reported."""
    st = base.Stack()
    r = st.anthropic("stream", env={"SLUICE_MODEL": "gpt-4o-mini"})
    log = st.s.wait_log(1)[-1]
    assert r["usage"]["input_tokens"] == log["prompt_tokens"] > 0, (r["usage"], log)
    assert r["usage"]["output_tokens"] == log["completion_tokens"] > 0, (r["usage"], log)
    # message_start went out before the provider counted (its last chunk):
    # sluice's estimate, near the real count, never 0
    est = r["start_usage"]["input_tokens"]
    assert 0 < est <= 4 * log["prompt_tokens"] + 8, (r["start_usage"], log)
    st.oa.config(cached_tokens=32)
    r = st.anthropic("stream", env={"SLUICE_MODEL": "gpt-4o-mini"})
    assert r["usage"]["cache_read_input_tokens"] == 32, r["usage"]
    assert r["usage"]["input_tokens"] == st.s.wait_log(2)[-1]["prompt_tokens"] - 32, r["usage"]
    # natively, message_start carries the provider's own count, cache tokens beside it
    st.an.config(cached_tokens=16)
    r = st.anthropic("stream")
    log = st.s.wait_log(3)[-1]
    assert r["start_usage"]["input_tokens"] == r["usage"]["input_tokens"] > 0, r
    assert r["start_usage"]["cache_read_input_tokens"] == 16 == log["cached_tokens"], (r, log)
    st.stop()


def test_openai_sdk_structured_output_from_claude():
    """chat.completions.parse with a json_schema against a Claude model without
    structured outputs: a forced tool whose input the SDK parses as the answer.
    (The native output_config.format path: test_anthropic.py; the mock does
    not constrain its text, so the SDK's parse cannot be shown on it.)"""
    st = base.Stack()
    r = st.openai("structured", env={"SLUICE_MODEL": "claude-3-5-haiku"})
    sent = json.loads(st.an.last()["body"])
    assert sent["tool_choice"] == {"type": "tool", "name": "sluice_response_format"}, sent
    assert r["finish"] == "stop" and r["tool_calls"] == [], r
    assert set(r["parsed"]) == {"city", "days"} and isinstance(r["parsed"]["days"], int), r
    st.stop()


def test_openai_sdk_stream_usage_from_anthropic_provider():
    """The openai client streaming from a Claude model: the usage chunk's
    prompt_tokens is the whole prompt (message_start's input_tokens plus the
    cache's reads and writes), cached_tokens the reads."""
    st = base.Stack()
    st.an.config(cached_tokens=16, cache_write_tokens=4)
    r = st.openai("chat_stream", env={"SLUICE_MODEL": "claude-3-5-haiku"})
    log = st.s.wait_log(1)[-1]  # Anthropic's convention: prompt_tokens beside the cache
    assert log["cached_tokens"] == 16 and log["cache_write_tokens"] == 4 and log["prompt_tokens"] > 0, log
    u = r["usage"]
    assert u["prompt_tokens"] == log["prompt_tokens"] + 16 + 4, (u, log)
    assert u["prompt_tokens_details"]["cached_tokens"] == 16, u
    assert u["completion_tokens"] == log["completion_tokens"] == len(r["text"].split()), (u, log)
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
    st.stop()
