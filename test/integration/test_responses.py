"""Issue 16, section 1: the OpenAI Responses API, native and translated, with
conversation state (previous_response_id, GET/DELETE, input_items) kept by sluice."""
import json
from harness import Mock, Redis, Sluice, base_config, post_json, request, stream

KEYS = [{"key": "sk-a", "tenant": "team-a"}, {"key": "sk-b", "tenant": "team-b"}]
A = {"Authorization": "Bearer sk-a"}
B = {"Authorization": "Bearer sk-b"}


def setup(kind="openai", api=None, redis=None, **over):
    m = Mock()
    c = base_config(m, **over)
    base = m.url if kind == "anthropic" else m.url + "/v1"
    p = {"name": "p", "kind": kind, "base_url": base, "api_key": "sk-prov", "models": ["*"]}
    if api:
        p["api"] = api
        m.config(no_responses=True)
    c["providers"] = [p]
    if redis:
        c["redis"] = {"url": redis.url, "timeout_ms": 200}
    return m, Sluice(c)


def events(raw):
    """(event name, data object) of every SSE event."""
    out = []
    for block in raw.decode().split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:].strip())
        if data is not None:
            out.append((name, data))
    return out


def text_of(resp):
    return "".join(c.get("text", "") for o in resp["output"] if o["type"] == "message" for c in o["content"])


def check_stream(evs):
    """The documented sequence: created, in_progress, ..., completed; numbered from 0."""
    types = [d["type"] for _, d in evs]
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    assert [n for n, _ in evs] == types, "event: lines must name the data's type"
    assert [d["sequence_number"] for _, d in evs] == list(range(len(evs))), evs
    final = evs[-1][1]["response"]
    deltas = "".join(d["delta"] for _, d in evs if d["type"] == "response.output_text.delta")
    assert deltas == text_of(final), (deltas, final)
    return types, final


BODY = {"model": "gpt-4o-mini", "input": "hello responses", "instructions": "be brief"}


def test_responses_native_pass_through_plain_and_stream():
    m, s = setup()
    st, h, j, raw = post_json(s.url + "/v1/responses", BODY)
    assert st == 200 and j["object"] == "response" and j["status"] == "completed", j
    assert text_of(j).startswith("mock reply to: hello responses"), j
    last = m.last()
    assert last["path"] == "/v1/responses" and json.loads(last["body"]) == BODY, last
    assert last["headers"]["authorization"] == "Bearer sk-prov"
    assert float(h["x-sluice-cost-usd"]) > 0 and h["x-sluice-provider"] == "p", h
    direct = request("POST", m.url + "/v1/responses", dict(BODY, stream=True))[2]
    st, h, _, raw = stream(s.url + "/v1/responses", dict(BODY, stream=True))
    assert st == 200 and h["content-type"].startswith("text/event-stream")
    assert events(raw) == events(direct), "every event relayed as the provider sent it"
    check_stream(events(raw))
    log = s.wait_log(2)
    assert log[0]["path"] == "/v1/responses" and log[0]["model"] == "gpt-4o-mini", log[0]
    assert log[0]["prompt_tokens"] == j["usage"]["input_tokens"] > 0, log[0]
    assert log[0]["completion_tokens"] == j["usage"]["output_tokens"] and log[0]["cost_usd"] > 0, log[0]
    assert log[1]["cost_usd"] > 0, log[1]
    assert log[1]["completion_tokens"] > 0 and log[1]["stream"] is True, log[1]
    s.stop()



def test_responses_native_stream_relays_unknown_events_and_numbers():
    """Native: events sluice does not know (a future type, one without an
    event: line) reach the client byte for byte, sequence_number as the
    provider numbered them; usage still comes from response.completed."""
    m, s = setup()
    resp = {"id": "resp_future", "object": "response", "status": "completed", "model": "gpt-4o-mini",
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
            "usage": {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}
    evs = [("response.created", {"type": "response.created", "sequence_number": 7,
                                 "response": dict(resp, status="in_progress", output=[], usage=None)}),
           ("response.reasoning_summary_text.delta", {"type": "response.reasoning_summary_text.delta",
                                                      "sequence_number": 8, "delta": "thinking"}),
           ("response.sluice_does_not_know_this", {"type": "response.sluice_does_not_know_this",
                                                    "sequence_number": 10, "x": [1, {"y": None}]}),
           (None, {"type": "response.output_text.delta", "sequence_number": 11, "delta": "hi",
                   "item_id": "msg_1", "output_index": 0, "content_index": 0}),
           ("response.completed", {"type": "response.completed", "sequence_number": 12, "response": resp})]
    body = "".join(("event: %s\n" % n if n else "") + "data: %s\n\n" % json.dumps(d, separators=(",", ":"))
                   for n, d in evs)
    m.config(sse_body=body)
    st, h, _, raw = stream(s.url + "/v1/responses", dict(BODY, stream=True))
    # sluice adds only its own `id:` line to each event (resumable streams)
    got = "".join(l + "\n" for l in raw.decode().split("\n")[:-1] if not l.startswith("id: "))
    assert st == 200 and got == body, (got, body)
    log = s.wait_log(1)[-1]
    assert log["prompt_tokens"] == 11 and log["completion_tokens"] == 2 and log["cost_usd"] > 0, log
    s.stop()

def test_responses_to_anthropic_provider_plain_and_stream():
    m, s = setup("anthropic")
    body = dict(BODY, model="claude-3-5-haiku", max_output_tokens=60, temperature=0.5,
                metadata={"run": "7"})
    st, h, j, _ = post_json(s.url + "/v1/responses", body)
    assert st == 200 and j["object"] == "response" and j["id"].startswith("resp_"), j
    assert j["id"].endswith("_p"), "the id names its provider"
    assert text_of(j).startswith("mock reply to: hello responses"), j
    assert j["metadata"] == {"run": "7"} and j["instructions"] == "be brief", j
    u = j["usage"]
    assert u["input_tokens"] > 0 and u["output_tokens"] > 0, u
    assert "cached_tokens" in u["input_tokens_details"] and "reasoning_tokens" in u["output_tokens_details"]
    last = m.last()
    sent = json.loads(last["body"])
    assert last["path"] == "/v1/messages" and sent["system"] == "be brief", sent
    assert sent["max_tokens"] == 60 and sent["temperature"] == 0.5, sent
    msg = sent["messages"]
    assert len(msg) == 1 and msg[0]["role"] == "user" and "hello responses" in json.dumps(msg), sent
    st, h, _, raw = stream(s.url + "/v1/responses", dict(body, stream=True))
    types, final = check_stream(events(raw))
    assert types[2:4] == ["response.output_item.added", "response.content_part.added"], types
    assert types[-4:-1] == ["response.output_text.done", "response.content_part.done",
                            "response.output_item.done"], types
    assert final["usage"]["output_tokens"] > 0 and final["status"] == "completed", final
    log = s.wait_log(2)
    assert log[1]["completion_tokens"] == final["usage"]["output_tokens"], log[1]
    s.stop()


TOOL = {"type": "function", "name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_responses_to_chat_provider_plain_stream_and_tools():
    m, s = setup(api="chat")
    st, h, j, _ = post_json(s.url + "/v1/responses", BODY)
    assert st == 200 and text_of(j).startswith("mock reply to: hello responses"), j
    sent = json.loads(m.last()["body"])
    assert m.last()["path"] == "/v1/chat/completions", m.last()
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}, sent
    st, h, _, raw = stream(s.url + "/v1/responses", dict(BODY, stream=True))
    check_stream(events(raw))
    body = {"model": "gpt-4o-mini", "input": "weather please MOCK_TOOL", "tools": [TOOL],
            "tool_choice": "auto"}
    st, h, j, _ = post_json(s.url + "/v1/responses", body)
    call = [o for o in j["output"] if o["type"] == "function_call"]
    assert st == 200 and call and call[0]["name"] == "get_weather", j
    assert json.loads(call[0]["arguments"])["city"], call
    sent = json.loads(m.last()["body"])
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto", sent
    st, h, _, raw = stream(s.url + "/v1/responses", dict(body, stream=True))
    evs = events(raw)
    types = [d["type"] for _, d in evs]
    assert "response.function_call_arguments.delta" in types and types[-1] == "response.completed", types
    item = evs[-1][1]["response"]["output"][-1]
    args = "".join(d["delta"] for _, d in evs if d["type"] == "response.function_call_arguments.delta")
    assert item["type"] == "function_call" and item["arguments"] == args, (item, args)
    # the tool's answer, a second turn through previous_response_id
    out = [{"type": "function_call_output", "call_id": call[0]["call_id"], "output": "sunny"}]
    st, h, j2, _ = post_json(s.url + "/v1/responses", {"model": "gpt-4o-mini", "tools": [TOOL],
                                                       "previous_response_id": j["id"], "input": out})
    assert st == 200 and text_of(j2).startswith("mock reply to: sunny"), j2
    assert j2["previous_response_id"] == j["id"], j2
    msgs = json.loads(m.last()["body"])["messages"]
    assert [x["role"] for x in msgs][-3:] == ["user", "assistant", "tool"], msgs
    assert msgs[-2]["tool_calls"][0]["id"] == call[0]["call_id"] and msgs[-1]["content"] == "sunny", msgs
    s.stop()


def two_turns(s, m, model):
    u = s.url + "/v1/responses"
    st, _, r1, _ = post_json(u, {"model": model, "input": "my name is Ada"}, A)
    assert st == 200, r1
    st, _, r2, _ = post_json(u, {"model": model, "input": "what is my name?",
                                 "previous_response_id": r1["id"]}, A)
    assert st == 200 and r2["previous_response_id"] == r1["id"] and r2["id"] != r1["id"], r2
    texts = json.dumps(json.loads(m.last()["body"]))
    assert "my name is Ada" in texts and text_of(r1)[:20] in texts, texts
    return r1, r2


def test_responses_two_turns_get_delete_input_items_and_tenants():
    m, s = setup("anthropic", keys=KEYS)
    r1, r2 = two_turns(s, m, "claude-3-5-haiku")
    u = s.url + "/v1/responses/"
    st, _, b = request("GET", u + r1["id"], headers=A)
    assert st == 200 and json.loads(b) == r1, b
    st, _, b = request("GET", u + r1["id"], headers=B)
    assert st == 404 and json.loads(b)["error"]["code"] == "response_not_found", b
    st, _, b = request("GET", u + r2["id"] + "/input_items", headers=A)
    items = json.loads(b)
    assert st == 200 and items["object"] == "list" and len(items["data"]) == 1, items
    assert items["data"][0]["content"][0]["text"] == "what is my name?" and items["data"][0]["id"], items
    st, _, b = request("GET", u + r2["id"] + "/input_items", headers=B)
    assert st == 404, b
    st, _, b = request("DELETE", u + r1["id"], headers=B)
    assert st == 404, b
    st, _, b = request("DELETE", u + r1["id"], headers=A)
    assert st == 200 and json.loads(b) == {"id": r1["id"], "object": "response", "deleted": True}, b
    st, _, b = request("GET", u + r1["id"], headers=A)
    assert st == 404, b
    st, _, b = request("GET", u + r2["id"], headers={"Authorization": "Bearer nope"})
    assert st == 401, b
    # a continuation of a response sluice does not know, to a translated provider
    st, _, j, _ = post_json(s.url + "/v1/responses", {"model": "claude-3-5-haiku", "input": "x",
                                                      "previous_response_id": r1["id"]}, A)
    assert st == 400 and j["error"]["param"] == "previous_response_id", j
    # store: false keeps nothing
    st, _, j, _ = post_json(s.url + "/v1/responses", {"model": "claude-3-5-haiku", "input": "y",
                                                      "store": False}, A)
    assert st == 200 and request("GET", u + j["id"], headers=A)[0] == 404
    s.stop()


def test_responses_two_turns_in_redis_across_a_chat_provider():
    r = Redis()
    m, s = setup(api="chat", redis=r, keys=KEYS)
    r1, r2 = two_turns(s, m, "gpt-4o-mini")
    keys = [k.decode() for k in r.cmd("KEYS", "sluice:resp:*")]
    assert any(r1["id"] in k for k in keys) and any(r2["id"] in k for k in keys), keys
    ttl = int(r.cmd("PTTL", [k for k in keys if r1["id"] in k][0]))
    assert 29 * 86400 * 1000 < ttl <= 30 * 86400 * 1000, ttl
    st, _, b = request("GET", s.url + "/v1/responses/" + r2["id"], headers=A)
    assert st == 200 and json.loads(b)["id"] == r2["id"], b
    # a second instance on the same Redis continues the conversation the moment
    # the first one's stream has ended (the end waited for the SET's answer)
    c = base_config(m, keys=KEYS, redis={"url": r.url, "timeout_ms": 200})
    c["providers"] = [{"name": "p", "kind": "openai", "api": "chat", "base_url": m.url + "/v1",
                       "models": ["*"]}]
    s2 = Sluice(c)
    for i in range(5):
        st, _, _, raw = stream(s.url + "/v1/responses", {"model": "gpt-4o-mini", "stream": True,
                                                         "input": "turn %d" % i}, A)
        rid = events(raw)[-1][1]["response"]["id"]
        st, _, j, _ = post_json(s2.url + "/v1/responses", {"model": "gpt-4o-mini", "input": "next",
                                                           "previous_response_id": rid}, A)
        assert st == 200 and j["previous_response_id"] == rid, j
        assert "turn %d" % i in json.dumps(json.loads(m.last()["body"])), m.last()
    s2.stop()
    s.stop()



def test_responses_delete_reaches_the_native_provider():
    """DELETE of a response a native provider made deletes its copy too (with
    the provider's key), then sluice's; a provider that fails it leaves both."""
    m, s = setup(keys=KEYS)
    u = s.url + "/v1/responses/"
    st, _, r1, _ = post_json(s.url + "/v1/responses", BODY, A)
    assert st == 200, r1
    m.config(status=500)
    st, _, b = request("DELETE", u + r1["id"], headers=A)
    assert st == 502 and json.loads(b)["error"]["code"] == "upstream_unavailable", b
    assert m.last()["path"] == "/v1/responses/" + r1["id"], m.last()
    assert request("GET", u + r1["id"], headers=A)[0] == 200, "a failed DELETE deletes nothing"
    m.config(status=200)
    assert request("DELETE", u + r1["id"], headers=B)[0] == 404  # another tenant: not even asked
    st, _, b = request("DELETE", u + r1["id"], headers=A)
    assert st == 200 and json.loads(b) == {"id": r1["id"], "object": "response", "deleted": True}, b
    last = m.last()
    assert last["path"] == "/v1/responses/" + r1["id"], last
    assert last["headers"]["authorization"] == "Bearer sk-prov" and "sk-a" not in json.dumps(last), last
    assert request("GET", u + r1["id"], headers=A)[0] == 404
    s.stop()
    # a translated response lives only in sluice: nothing to ask the provider
    m, s = setup("anthropic")
    st, _, r2, _ = post_json(s.url + "/v1/responses", dict(BODY, model="claude-3-5-haiku"))
    before = m.stats()["requests"]
    assert request("DELETE", s.url + "/v1/responses/" + r2["id"])[0] == 200
    assert m.last()["path"] == "/v1/messages" and m.stats()["requests"] == before, m.last()
    s.stop()

def test_responses_native_state_moves_to_a_fallback_provider():
    """Turn 1 on a native provider; it fails for turn 2, which the fallback answers from
    sluice's copy of the conversation."""
    m, an = Mock(), Mock()
    c = base_config(m, retries={"max": 1, "base_ms": 1})
    c["providers"] = [
        {"name": "native", "kind": "openai", "base_url": m.url + "/v1", "models": ["*"]},
        {"name": "claude", "kind": "anthropic", "base_url": an.url, "models": ["*"]}]
    s = Sluice(c)
    u = s.url + "/v1/responses"
    st, _, r1, _ = post_json(u, {"model": "gpt-4o-mini", "input": "my name is Ada"})
    assert st == 200 and m.last()["path"] == "/v1/responses", r1
    m.config(status=500)
    st, h, r2, _ = post_json(u, {"model": "gpt-4o-mini", "input": "what is my name?",
                                 "previous_response_id": r1["id"]})
    assert st == 200 and h["x-sluice-provider"] == "claude", r2
    texts = json.dumps(json.loads(an.last()["body"])["messages"])
    assert "my name is Ada" in texts and text_of(r1)[:20] in texts, texts
    s.stop()


def test_responses_cache_replays_as_json_and_as_events():
    m, s = setup("anthropic", cache={"enabled": True, "ttl_s": 60})
    u = s.url + "/v1/responses"
    body = {"model": "claude-3-5-haiku", "input": "cache me"}
    st, h, j, _ = post_json(u, body)
    assert st == 200 and h["x-sluice-cache"] == "miss", h
    st, h, _, raw = stream(u, dict(body, stream=True))
    assert h["x-sluice-cache"] == "hit", h
    types, final = check_stream(events(raw))
    assert final == j and "response.output_text.delta" in types, (final, j)
    # and the other way round: a stream stored, served plain and replayed
    body2 = {"model": "claude-3-5-haiku", "input": "stream first"}
    st, h, _, raw = stream(u, dict(body2, stream=True))
    assert h["x-sluice-cache"] == "miss"
    _, first = check_stream(events(raw))
    st, h, j2, _ = post_json(u, body2)
    assert h["x-sluice-cache"] == "hit" and j2 == first, (j2, first)
    st, h, _, raw = stream(u, dict(body2, stream=True))
    assert h["x-sluice-cache"] == "hit" and check_stream(events(raw))[1] == first
    assert m.stats()["requests"] == 2, m.stats()
    s.stop()


def test_responses_untranslatable_parameters_are_400_naming_them():
    m, s = setup("anthropic")
    u = s.url + "/v1/responses"
    cases = [({"reasoning": {"effort": "high"}}, "reasoning"),
             ({"tools": [{"type": "web_search"}]}, "tools"),
             ({"background": True}, "background"),
             ({"include": ["reasoning.encrypted_content"]}, "include"),
             ({"input": [{"type": "input_file", "file_id": "f"}]}, "input")]
    for extra, param in cases:
        st, _, j, _ = post_json(u, dict({"model": "claude-3-5-haiku", "input": "hi"}, **extra))
        assert st == 400 and j["error"]["param"] == param, (extra, j)
    st, _, j, _ = post_json(u, {"model": "claude-3-5-haiku"})
    assert st == 400 and j["error"]["param"] == "input", j
    assert m.stats()["requests"] == 0
    s.stop()


def test_responses_coalesced_followers_get_their_own_form():
    """One upstream call: a plain follower of a stream gets the final object, a stream
    follower of a plain answer gets it replayed as events."""
    import threading, time
    m, s = setup("anthropic", cache={"enabled": True, "ttl_s": 60})
    u = s.url + "/v1/responses"
    for lead_stream in (True, False):
        m.reset()
        m.config(delay_ms=400)
        body = {"model": "claude-3-5-haiku", "input": "together %s" % lead_stream}
        res = {}
        lead = threading.Thread(target=lambda: res.setdefault(
            "lead", stream(u, dict(body, stream=True)) if lead_stream else post_json(u, body)))
        lead.start()
        time.sleep(0.15)
        if lead_stream:
            st, h, j, _ = post_json(u, body)
            lead.join()
            _, final = check_stream(events(res["lead"][3]))
            assert st == 200 and h["x-sluice-cache"] == "coalesced" and j == final, (h, j, final)
        else:
            st, h, _, raw = stream(u, dict(body, stream=True))
            lead.join()
            _, final = check_stream(events(raw))
            assert h["x-sluice-cache"] == "coalesced" and final == res["lead"][2], (h, final)
        assert m.stats()["requests"] == 1, m.stats()
    s.stop()


def test_responses_answer_survives_a_hung_state_store():
    """Redis stopped: the answer's end waits for the SET at most redis.timeout_ms, then goes."""
    import time
    r = Redis()
    m, s = setup(api="chat", redis=r)
    u = s.url + "/v1/responses"
    r.stop_signal()
    try:
        for body in ({"model": "gpt-4o-mini", "input": "hung"},
                     {"model": "gpt-4o-mini", "input": "hung stream", "stream": True}):
            t0 = time.time()
            st, h, raw = request("POST", u, body)
            assert st == 200 and time.time() - t0 < 3, (st, raw[:200])
            assert b"response.completed" in raw if body.get("stream") else json.loads(raw)["status"] == "completed"
    finally:
        r.cont_signal()
    s.stop()


def test_responses_native_conversation_moves_to_another_native_provider():
    """The second native provider never saw turn 1: it gets the conversation as items."""
    m1, m2 = Mock(), Mock()
    c = base_config(m1, retries={"max": 1, "base_ms": 1})
    c["providers"] = [{"name": "one", "kind": "openai", "base_url": m1.url + "/v1", "models": ["*"]},
                      {"name": "two", "kind": "openai", "base_url": m2.url + "/v1", "models": ["*"]}]
    s = Sluice(c)
    u = s.url + "/v1/responses"
    st, _, r1, _ = post_json(u, {"model": "gpt-4o-mini", "input": "my name is Ada"})
    assert st == 200, r1
    st, _, r2, _ = post_json(u, {"model": "gpt-4o-mini", "input": "same provider",
                                 "previous_response_id": r1["id"]})
    sent = json.loads(m1.last()["body"])
    assert sent["previous_response_id"] == r1["id"] and sent["input"] == "same provider", sent
    m1.config(status=503)
    st, h, r3, _ = post_json(u, {"model": "gpt-4o-mini", "input": "what is my name?",
                                 "previous_response_id": r2["id"], "temperature": 0.3})
    assert st == 200 and h["x-sluice-provider"] == "two", r3
    sent = json.loads(m2.last()["body"])
    assert "previous_response_id" not in sent and sent["temperature"] == 0.3, sent
    texts = [json.dumps(i) for i in sent["input"]]
    assert "my name is Ada" in texts[0] and "same provider" in json.dumps(sent["input"]), sent
    assert sent["input"][-1]["content"][0]["text"] == "what is my name?", sent
    assert [i.get("role") for i in sent["input"]].count("assistant") == 2, sent
    s.stop()


def test_responses_translated_stream_cut_ends_with_a_numbered_error_event():
    m, s = setup("anthropic")
    m.config(drop_after_chunks=2, stream_chunks=6)
    st, h, _, raw = stream(s.url + "/v1/responses", {"model": "claude-3-5-haiku", "input": "cut me",
                                                     "stream": True})
    evs = events(raw)
    types = [d["type"] for _, d in evs]
    assert st == 200 and types[0] == "response.created" and types[-1] == "error", types
    assert "response.completed" not in types, types
    assert [d["sequence_number"] for _, d in evs] == list(range(len(evs))), evs
    assert evs[-1][1]["code"] == "upstream_stream_error" and evs[-1][0] == "error", evs[-1]
    log = s.wait_log(1)
    assert log[0]["status"] == 200 and log[0]["error"], log[0]
    s.stop()


def test_responses_keys_and_limits_apply():
    m, s = setup(keys=[{"key": "sk-a", "tenant": "team-a", "rpm": 1}])
    u = s.url + "/v1/responses"
    st, _, j, _ = post_json(u, BODY)
    assert st == 401 and j["error"]["code"] == "invalid_api_key", j
    assert post_json(u, BODY, A)[0] == 200
    st, h, j, _ = post_json(u, BODY, A)
    assert st == 429 and "retry-after" in h, (st, j)
    log = s.wait_log(3)
    assert [x["status"] for x in log] == [401, 200, 429] and log[1]["tenant"] == "team-a", log
    s.stop()
