"""Tracker 16 (drop-in): the frameworks people build on, from the npm registry
(test/package.json), through sluice as nothing but a base URL: the Vercel AI
SDK 7 (`ai`, @ai-sdk/openai, @ai-sdk/anthropic), LangChain JS 1.x
(@langchain/openai, @langchain/anthropic) and the OpenAI Agents SDK
(@openai/agents). Each test runs `node test/sdk/<lib>.mjs <case>` (vercel,
langchain, agents) against the stack of test_sdk.py and checks what the user
sees (text, tool arguments, parsed objects, usage) and sluice's access log
(one line per call, its path and model). A library that cannot be installed
fails these tests naming why (sdk.installed), never a skip.
Structured output: the mock does not follow a schema, so the prompt scripts
its answer (MOCK_REPLY:{json}); against a Claude model sluice's forced tool
gives the mock's schema-filled arguments instead."""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdk
import test_sdk as base  # a module object only: no test_ names land here

CLAUDE = "claude-3-5-haiku"
FORECAST = {"city": "Paris", "days": 3}  # scripted through MOCK_REPLY
TOOL_ARGS = {"city": "mock", "days": 1}  # the mock fills the tool's schema


class Run:
    """One stack; each call runs a case and returns its JSON and its new log lines."""

    def __init__(self, lib):
        self.lib, self.st, self.seen = lib, base.Stack(), 0

    def __call__(self, case, model=None, api=None, calls=1):
        env = {}
        if model:
            env["SLUICE_MODEL"] = model
        if api:
            env["SLUICE_API"] = api
        r = sdk.run(self.lib, case, self.st.s.url + "/v1", base.CLIENT_KEY, env=env)
        log = self.st.s.wait_log(self.seen + calls)
        assert len(log) == self.seen + calls, ("one access-log line per call", case, log[self.seen:])
        new, self.seen = log[self.seen:], len(log)
        return r, new

    def stop(self):
        self.st.stop()


def _logged(lines, path, model):
    for l in lines:
        assert l["path"] == path and l["model"] == model and l["status"] == 200, (path, model, l)
        assert l["tenant"] == "sdk" and l["prompt_tokens"] > 0 and l["completion_tokens"] > 0, l


def _usage_matches(u, log, inp="inputTokens", out="outputTokens"):
    assert u[inp] == log["prompt_tokens"] and u[out] == log["completion_tokens"], (u, log)


def test_framework_clients_installed():
    v = sdk.installed()
    assert v["ai"].startswith("7.") and v["@ai-sdk/openai"].startswith("4.") and v["@ai-sdk/anthropic"].startswith("4."), v
    assert v["@langchain/core"].startswith("1.") and v["@langchain/openai"].startswith("1."), v
    assert v["@langchain/anthropic"].startswith("1.") and v["@openai/agents"].startswith("0."), v


# ---- the Vercel AI SDK --------------------------------------------------------

def test_vercel_openai_responses():
    """openai(model): the Responses API, text, stream, tool round trip (plain and
    streamed) and generateObject."""
    run = Run("vercel")
    r, log = run("text")
    assert r["text"].startswith("mock reply to: hello vercel") and r["finish"] == "stop", r
    _logged(log, "/v1/responses", "gpt-4o-mini")
    _usage_matches(r["usage"], log[0])
    r, log = run("stream")
    assert r["text"].startswith("mock reply to: stream vercel") and r["parts"] >= 2 and r["finish"] == "stop", r
    _usage_matches(r["usage"], log[0])
    r, log = run("tools", calls=2)
    assert r["steps"] == 2 and r["name"] == "get_weather" and r["args"] == TOOL_ARGS, r
    assert r["result"] == "sunny in mock" and r["text"].startswith("mock reply to: sunny in mock"), r
    _logged(log, "/v1/responses", "gpt-4o-mini")
    r, log = run("tools_stream", calls=2)
    assert r["steps"] == 2 and r["args"] == TOOL_ARGS and r["text"].startswith("mock reply to: sunny in mock"), r
    r, log = run("object")
    assert r["object"] == FORECAST and r["finish"] == "stop", r
    sent = json.loads(run.st.oa.last()["body"])
    assert sent["text"]["format"]["type"] == "json_schema", sent
    _logged(log, "/v1/responses", "gpt-4o-mini")
    run.stop()


def test_vercel_openai_chat():
    """openai.chat(model): chat completions."""
    run = Run("vercel")
    r, log = run("text", api="chat")
    assert r["text"].startswith("mock reply to: hello vercel") and r["usage"]["raw"]["prompt_tokens"] > 0, r
    _logged(log, "/v1/chat/completions", "gpt-4o-mini")
    _usage_matches(r["usage"], log[0])
    r, log = run("object", api="chat")
    assert r["object"] == FORECAST, r
    run.stop()


def test_vercel_anthropic_messages():
    """anthropic(model): /v1/messages natively, text, stream, tools, object."""
    run = Run("vercel")
    r, log = run("text", model=CLAUDE, api="messages")
    assert r["text"].startswith("mock reply to: hello vercel") and r["finish"] == "stop", r
    _logged(log, "/v1/messages", CLAUDE)
    _usage_matches(r["usage"], log[0])
    r, log = run("stream", model=CLAUDE, api="messages")
    assert r["text"].startswith("mock reply to: stream vercel") and r["finish"] == "stop", r
    _usage_matches(r["usage"], log[0])
    r, log = run("tools", model=CLAUDE, api="messages", calls=2)
    assert r["steps"] == 2 and r["name"] == "get_weather" and r["args"] == TOOL_ARGS, r
    # the model answers the tool's result (the mock reads tool_result blocks as Anthropic does)
    assert r["text"].startswith("mock reply to: sunny in mock"), r
    assert log[1]["prompt_tokens"] > log[0]["prompt_tokens"], log  # the tool_use and its result count
    sent = json.loads(run.st.an.last()["body"])
    assert any(b.get("type") == "tool_result" for m in sent["messages"] if isinstance(m["content"], list)
               for b in m["content"]), sent
    r, log = run("object", model=CLAUDE, api="messages")
    assert set(r["object"]) == {"city", "days"} and isinstance(r["object"]["days"], int), r
    assert run.st.oa.stats()["requests"] == 0
    run.stop()


def test_vercel_claude_through_the_openai_provider():
    """openai(claude-…): sluice translates Responses to /v1/messages (and back)."""
    run = Run("vercel")
    r, log = run("text", model=CLAUDE)
    assert r["text"].startswith("mock reply to: hello vercel") and r["finish"] == "stop", r
    _logged(log, "/v1/responses", CLAUDE)
    _usage_matches(r["usage"], log[0])
    assert run.st.an.last()["path"] == "/v1/messages"
    r, log = run("stream", model=CLAUDE)
    assert r["text"].startswith("mock reply to: stream vercel") and r["finish"] == "stop", r
    _usage_matches(r["usage"], log[0])
    r, log = run("tools_stream", model=CLAUDE, calls=2)
    assert r["steps"] == 2 and r["name"] == "get_weather" and r["args"] == TOOL_ARGS, r
    _logged(log, "/v1/responses", CLAUDE)
    sent = json.loads(run.st.an.last()["body"])
    assert "sunny in mock" in json.dumps(sent["messages"]), sent  # the tool's result reached the model
    r, log = run("object", model=CLAUDE)
    assert set(r["object"]) == {"city", "days"} and isinstance(r["object"]["days"], int), r
    assert run.st.oa.stats()["requests"] == 0
    run.stop()


# ---- LangChain JS -------------------------------------------------------------

def _langchain(run, model, api, path):
    r, log = run("invoke", model=model, api=api)
    assert r["text"].startswith("mock reply to: hello langchain") and r["meta"] == model, r
    _logged(log, path, model)
    _usage_matches(r["usage"], log[0], "input_tokens", "output_tokens")
    r, log = run("stream", model=model, api=api)
    assert r["text"].startswith("mock reply to: stream langchain") and r["chunks"] >= 3, r
    assert r["usage"]["input_tokens"] == log[0]["prompt_tokens"] and r["usage"]["output_tokens"] > 0, (r, log)
    r, log = run("tools", model=model, api=api, calls=2)
    assert r["name"] == "get_weather" and r["args"] == TOOL_ARGS and r["id"], r
    assert r["second"].startswith("mock reply to:") and r["calls2"] == 0, r
    _logged(log, path, model)
    r, log = run("structured", model=model, api=api)
    _logged(log, path, model)
    return r["object"]


def test_langchain_chat_openai_chat_completions():
    run = Run("langchain")
    assert _langchain(run, "gpt-4o-mini", "chat", "/v1/chat/completions") == FORECAST
    run.stop()


def test_langchain_chat_openai_responses():
    """ChatOpenAI({useResponsesApi: true}), and a Claude model through it (translated)."""
    run = Run("langchain")
    assert _langchain(run, "gpt-4o-mini", "responses", "/v1/responses") == FORECAST
    r, log = run("tools", model=CLAUDE, api="responses", calls=2)
    assert r["name"] == "get_weather" and r["args"] == TOOL_ARGS, r
    _logged(log, "/v1/responses", CLAUDE)
    assert run.st.an.last()["path"] == "/v1/messages"
    run.stop()


def test_langchain_chat_anthropic():
    run = Run("langchain")
    o = _langchain(run, CLAUDE, "messages", "/v1/messages")
    assert set(o) == {"city", "days"} and isinstance(o["days"], int), o
    assert run.st.oa.stats()["requests"] == 0
    run.stop()


# ---- the OpenAI Agents SDK ----------------------------------------------------

def _agent_turns(r, log):
    assert r["items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"], r
    assert r["calls"] == 1 and r["final"].startswith("mock reply to:"), r
    u = r["usage"]
    assert u["requests"] == 2 == len(log), (u, log)
    assert u["input"] == sum(l["prompt_tokens"] for l in log) and u["output"] == sum(l["completion_tokens"] for l in log), (u, log)


def test_openai_agents_run_with_a_function_tool():
    """run(): a tool call, the tool runs, its output goes back, a final answer; then outputType."""
    run = Run("agents")
    r, log = run("run", calls=2)
    _agent_turns(r, log)
    assert r["name"] == "get_weather" and r["args"] == TOOL_ARGS, r
    assert r["final"].startswith("mock reply to: sunny in mock for 1 days"), r  # the tool's output was read
    _logged(log, "/v1/responses", "gpt-4o-mini")
    r, log = run("output")
    assert r["final"] == FORECAST and r["usage"]["requests"] == 1, r
    _logged(log, "/v1/responses", "gpt-4o-mini")
    run.stop()


def test_openai_agents_streaming_run():
    run = Run("agents")
    r, log = run("stream", calls=2)
    _agent_turns(r, log)
    assert r["text"] == r["final"] and r["final"].startswith("mock reply to: sunny in mock"), r
    _logged(log, "/v1/responses", "gpt-4o-mini")
    assert json.loads(run.st.oa.last()["body"])["stream"] is True
    run.stop()


def test_openai_agents_on_a_claude_model():
    """The agent's Responses calls translated to /v1/messages: tools both ways, streamed too."""
    run = Run("agents")
    r, log = run("run", model=CLAUDE, calls=2)
    _agent_turns(r, log)
    _logged(log, "/v1/responses", CLAUDE)
    sent = json.loads(run.st.an.last()["body"])
    assert "sunny in mock for 1 days" in json.dumps(sent["messages"]), sent  # the tool's output reached the model
    assert r["final"].startswith("mock reply to: sunny in mock for 1 days"), r  # and the model answered it
    r, log = run("stream", model=CLAUDE, calls=2)
    _agent_turns(r, log)
    assert r["text"] == r["final"], r
    r, log = run("output", model=CLAUDE)
    assert set(r["final"]) == {"city", "days"} and isinstance(r["final"]["days"], int), r
    assert run.st.oa.stats()["requests"] == 0
    run.stop()
