"""Issue 16: the mock provider's new routes and knobs, checked on the wire (the
SDK tests check the same shapes through the official clients). Every test runs
against both builds of the mock: release (build/sluice-mock, what the other
tests use) and ASan/UBSan (build/test/sluice-mock, whose stderr must stay free
of sanitizer reports)."""
import json, os, subprocess, tempfile
import harness
from harness import post_json, request, stream, wait_port, free_port, SANITIZER_MARKS

BINS = [os.path.join(harness.ROOT, "build/sluice-mock"), os.path.join(harness.ROOT, "build/test/sluice-mock")]
TOOL = {"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}}}


class MockAt(harness.Mock):
    def __init__(self, binary):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.errf = tempfile.NamedTemporaryFile(prefix="sluice-mock-", suffix=".err", delete=False)
        self.proc = subprocess.Popen([binary, "--listen", "127.0.0.1:%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=self.errf)
        harness._procs.append(self.proc)
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(10) == 0, "the mock exited %s" % self.proc.returncode
        err = open(self.errf.name, errors="replace").read()
        os.unlink(self.errf.name)
        for mark in SANITIZER_MARKS:
            assert mark not in err, "sanitizer report in the mock's stderr:\n" + err[-4000:]


def both(check):
    for b in BINS:
        m = MockAt(b)
        try:
            check(m)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (os.path.relpath(b, harness.ROOT), e)) from e
        m.stop()


def sse(raw):
    """[(event name, data dict)] of an SSE body."""
    out = []
    for block in raw.decode().split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


def test_mock_responses_plain():
    def check(m):
        st, _, j, _ = post_json(m.url + "/v1/responses", {"model": "gpt-4o-mini", "input": "hello there",
                                                          "instructions": "be brief"})
        assert st == 200 and j["object"] == "response" and j["status"] == "completed", j
        assert j["id"].startswith("resp_") and j["previous_response_id"] is None, j
        item = j["output"][0]
        assert item["type"] == "message" and item["role"] == "assistant" and item["status"] == "completed", item
        assert item["content"][0]["type"] == "output_text", item
        assert item["content"][0]["text"].startswith("mock reply to: hello there"), item
        u = j["usage"]
        assert u["input_tokens"] > 0 and u["input_tokens_details"] == {"cached_tokens": 0}, u
        assert u["output_tokens"] == len(item["content"][0]["text"].split()), u
        assert u["output_tokens_details"] == {"reasoning_tokens": 0}, u
        assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"], u
        # the same question streamed and plain gets the same answer; a cut one is incomplete
        st, _, k, _ = post_json(m.url + "/v1/responses", {"model": "gpt-4o-mini", "input": "hello there",
                                                          "max_output_tokens": 2})
        assert k["status"] == "incomplete" and k["incomplete_details"] == {"reason": "max_output_tokens"}, k
        assert k["usage"]["output_tokens"] == 2 and k["max_output_tokens"] == 2, k
        # items as input, previous_response_id echoed and part of the id
        body = {"model": "gpt-4o-mini", "previous_response_id": j["id"],
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "second turn"}]}]}
        st, _, r2, _ = post_json(m.url + "/v1/responses", body)
        assert st == 200 and r2["previous_response_id"] == j["id"] and r2["id"] != j["id"], r2
        assert "second turn" in r2["output"][0]["content"][0]["text"], r2
        st, _, e, _ = post_json(m.url + "/v1/responses", {"input": "no model"})
        assert st == 400 and e["error"]["param"] == "model", e
        assert m.stats()["by_path"]["/v1/responses"] == 4
    both(check)


def test_mock_responses_stream_event_sequence():
    def check(m):
        m.config(stream_chunks=3)
        st, h, _, raw = stream(m.url + "/v1/responses", {"model": "gpt-4o-mini", "input": "stream me", "stream": True})
        assert st == 200 and h["content-type"] == "text/event-stream", h
        ev = sse(raw)
        names = [n for n, _ in ev]
        assert names == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"] + ["response.output_text.delta"] * 3 + [
                         "response.output_text.done", "response.content_part.done",
                         "response.output_item.done", "response.completed"], names
        assert all(d["type"] == n for n, d in ev), ev
        assert [d["sequence_number"] for _, d in ev] == list(range(len(ev)))
        assert b"[DONE]" not in raw
        d = dict((n, d) for n, d in ev)
        assert d["response.created"]["response"]["status"] == "in_progress"
        assert d["response.created"]["response"]["output"] == []
        text = "".join(x["delta"] for n, x in ev if n == "response.output_text.delta")
        assert text == d["response.output_text.done"]["text"] == d["response.content_part.done"]["part"]["text"]
        item_id = d["response.output_item.added"]["item"]["id"]
        assert all(x["item_id"] == item_id for n, x in ev if "output_text" in n or "content_part" in n)
        final = d["response.completed"]["response"]
        assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == text, final
        assert final["usage"]["output_tokens"] == len(text.split()), final
        plain = post_json(m.url + "/v1/responses", {"model": "gpt-4o-mini", "input": "stream me"})[2]
        assert plain["output"][0]["content"][0]["text"] == text and plain["id"] == final["id"]
    both(check)


def test_mock_responses_function_call():
    def check(m):
        u = m.url + "/v1/responses"
        st, _, j, _ = post_json(u, {"model": "m", "input": "weather? MOCK_TOOL", "tools": [TOOL]})
        fc = j["output"][0]
        assert fc["type"] == "function_call" and fc["name"] == "get_weather" and fc["status"] == "completed", fc
        assert json.loads(fc["arguments"]) == {"city": "mock", "n": 1} and fc["call_id"].startswith("call_"), fc
        # without the marker or with tool_choice none: text; forced by tool_choice: a call
        assert post_json(u, {"model": "m", "input": "weather?", "tools": [TOOL]})[2]["output"][0]["type"] == "message"
        assert post_json(u, {"model": "m", "input": "MOCK_TOOL", "tools": [TOOL], "tool_choice": "none"})[2][
            "output"][0]["type"] == "message"
        forced = {"model": "m", "input": "weather?", "tools": [TOOL], "tool_choice": {"type": "function", "name": "get_weather"}}
        assert post_json(u, forced)[2]["output"][0]["type"] == "function_call"
        # the function's output comes back: a message
        back = {"model": "m", "tools": [TOOL], "previous_response_id": j["id"],
                "input": [{"type": "function_call_output", "call_id": fc["call_id"], "output": "sunny"}]}
        r2 = post_json(u, back)[2]
        assert r2["output"][0]["type"] == "message" and "sunny" in r2["output"][0]["content"][0]["text"], r2
        st, _, _, raw = stream(u, dict(forced, stream=True))
        names = [n for n, _ in sse(raw)]
        assert names == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.function_call_arguments.delta", "response.function_call_arguments.done",
                         "response.output_item.done", "response.completed"], names
        d = dict(sse(raw))
        assert d["response.output_item.added"]["item"]["arguments"] == ""
        assert json.loads(d["response.function_call_arguments.done"]["arguments"]) == {"city": "mock", "n": 1}
        assert d["response.completed"]["response"]["output"][0]["type"] == "function_call"
    both(check)


def test_mock_without_responses_knob():
    def check(m):
        m.config(no_responses=True)
        st, _, j, _ = post_json(m.url + "/v1/responses", {"model": "m", "input": "x"})
        assert st == 404 and j == {"detail": "Not Found"}, (st, j)
        assert post_json(m.url + "/v1/chat/completions", harness.chat())[0] == 200
        m.config(no_responses=False)
        assert post_json(m.url + "/v1/responses", {"model": "m", "input": "x"})[0] == 200
        m.config(no_responses=True)
        m.reset()
        assert post_json(m.url + "/v1/responses", {"model": "m", "input": "x"})[0] == 200
    both(check)


def test_mock_old_answers_unchanged():
    """No tools, no cache_control, no knob: the answers keep exactly their old keys."""
    def check(m):
        j = post_json(m.url + "/v1/chat/completions", harness.chat())[2]
        # chat usage carries OpenAI's zero details (cache fidelity, issue 17 item 9)
        assert set(j["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens",
                                   "prompt_tokens_details", "completion_tokens_details"}, j
        assert j["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, j
        assert set(j["choices"][0]["message"]) == {"role", "content"}, j
        a = post_json(m.url + "/v1/messages", {"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]})[2]
        assert set(a["usage"]) == {"input_tokens", "output_tokens"} and a["content"][0]["type"] == "text", a
        # tools given but not asked for: still a text answer
        t = post_json(m.url + "/v1/chat/completions", harness.chat(tools=[{"type": "function", "function": TOOL}]))[2]
        assert t["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in t["choices"][0]["message"], t
        o = json.loads(request("GET", m.url + "/v1/models")[2])
        assert o["object"] == "list" and o["data"][0]["object"] == "model", o
    both(check)


def test_mock_tool_calls_chat_and_messages():
    def check(m):
        ctool = {"type": "function", "function": TOOL}
        j = post_json(m.url + "/v1/chat/completions", harness.chat("go", tools=[ctool], tool_choice="required"))[2]
        ch = j["choices"][0]
        assert ch["finish_reason"] == "tool_calls" and ch["message"]["content"] is None, j
        call = ch["message"]["tool_calls"][0]
        assert call["type"] == "function" and call["function"]["name"] == "get_weather", call
        assert json.loads(call["function"]["arguments"]) == {"city": "mock", "n": 1}, call
        assert j["usage"]["completion_tokens"] > 0
        back = harness.chat("go", tools=[ctool])
        back["messages"] += [ch["message"], {"role": "tool", "tool_call_id": call["id"], "content": "rainy"}]
        assert "rainy" in post_json(m.url + "/v1/chat/completions", back)[2]["choices"][0]["message"]["content"]
        st, _, ev, _ = stream(m.url + "/v1/chat/completions",
                              harness.chat("MOCK_TOOL", tools=[ctool], stream=True, stream_options={"include_usage": True}))
        chunks = [json.loads(e) for e in ev[:-1]]
        assert ev[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"]["tool_calls"][0]["id"].startswith("call_mock_"), chunks
        args = "".join(c["choices"][0]["delta"].get("tool_calls", [{}])[0].get("function", {}).get("arguments", "")
                       for c in chunks if c["choices"])
        assert json.loads(args) == {"city": "mock", "n": 1}, chunks
        assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls" and chunks[-1]["usage"]["completion_tokens"] > 0
        atool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
        body = {"model": "c", "max_tokens": 50, "tools": [atool], "messages": [{"role": "user", "content": "MOCK_TOOL:lookup"}]}
        a = post_json(m.url + "/v1/messages", body)[2]
        assert a["stop_reason"] == "tool_use" and a["content"][0]["type"] == "tool_use", a
        assert a["content"][0]["name"] == "lookup" and a["content"][0]["input"] == {"q": "mock"}, a
        st, _, _, raw = stream(m.url + "/v1/messages", dict(body, stream=True))
        ev = sse(raw)
        assert [n for n, _ in ev] == ["message_start", "content_block_start", "content_block_delta",
                                      "content_block_stop", "message_delta", "message_stop"], ev
        assert ev[1][1]["content_block"]["type"] == "tool_use" and ev[2][1]["delta"]["type"] == "input_json_delta"
        assert json.loads(ev[2][1]["delta"]["partial_json"]) == {"q": "mock"}
        assert ev[4][1]["delta"]["stop_reason"] == "tool_use"
    both(check)


def test_mock_cache_usage_knobs():
    def check(m):
        base = post_json(m.url + "/v1/chat/completions", harness.chat("cache me"))[2]["usage"]
        m.config(cached_tokens=40, reasoning_tokens=7, cache_write_tokens=11, cache_write_1h_tokens=5)
        u = post_json(m.url + "/v1/chat/completions", harness.chat("cache me"))[2]["usage"]
        assert u["prompt_tokens"] == base["prompt_tokens"] + 40 and u["prompt_tokens_details"] == {"cached_tokens": 40}, u
        assert u["completion_tokens"] == base["completion_tokens"] + 7, u
        assert u["completion_tokens_details"] == {"reasoning_tokens": 7}, u
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
        ev = stream(m.url + "/v1/chat/completions", harness.chat("cache me", stream=True,
                                                                 stream_options={"include_usage": True}))[2]
        assert json.loads(ev[-2])["usage"] == u, ev[-2]
        msg = {"model": "c", "max_tokens": 50, "messages": [{"role": "user", "content": "cache me"}]}
        a = post_json(m.url + "/v1/messages", msg)[2]["usage"]
        assert a["cache_read_input_tokens"] == 40 and a["cache_creation_input_tokens"] == 16, a
        assert a["cache_creation"] == {"ephemeral_5m_input_tokens": 11, "ephemeral_1h_input_tokens": 5}, a
        raw = stream(m.url + "/v1/messages", dict(msg, stream=True))[3]
        start = [d for n, d in sse(raw) if n == "message_start"][0]
        assert start["message"]["usage"]["cache_read_input_tokens"] == 40, start
        r = post_json(m.url + "/v1/responses", {"model": "m", "input": "cache me"})[2]["usage"]
        assert r["input_tokens_details"]["cached_tokens"] == 40 and r["output_tokens_details"]["reasoning_tokens"] == 7, r
        m.reset()
        u = post_json(m.url + "/v1/chat/completions", harness.chat("cache me"))[2]["usage"]
        assert u["prompt_tokens_details"]["cached_tokens"] == 0, u
    both(check)


def test_mock_anthropic_cache_control():
    """A block with cache_control: written the first time (5m, or 1h with ttl), read on a repeat."""
    def check(m):
        big = "shared prefix " * 40
        body = {"model": "c", "max_tokens": 20, "messages": [{"role": "user", "content": "q"}],
                "system": [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]}
        plain = dict(body, system=big)
        whole = post_json(m.url + "/v1/messages", plain)[2]["usage"]["input_tokens"]
        u1 = post_json(m.url + "/v1/messages", body)[2]["usage"]
        marked = (len(big) + 3) // 4
        assert u1["cache_creation_input_tokens"] == marked and u1["cache_read_input_tokens"] == 0, u1
        assert u1["cache_creation"] == {"ephemeral_5m_input_tokens": marked, "ephemeral_1h_input_tokens": 0}, u1
        assert u1["input_tokens"] == whole - marked, (u1, whole)
        u2 = post_json(m.url + "/v1/messages", body)[2]["usage"]
        assert u2["cache_read_input_tokens"] == marked and u2["cache_creation_input_tokens"] == 0, u2
        body["system"][0]["cache_control"]["ttl"] = "1h"
        body["messages"][0]["content"] = "another question"
        u3 = post_json(m.url + "/v1/messages", body)[2]["usage"]
        assert u3["cache_creation"]["ephemeral_1h_input_tokens"] == marked, u3
    both(check)


def test_mock_count_tokens_and_anthropic_models():
    def check(m):
        msg = {"model": "claude-3-5-haiku", "system": "sys", "messages": [{"role": "user", "content": "count me please"}]}
        st, _, j, _ = post_json(m.url + "/v1/messages/count_tokens", msg, {"anthropic-version": "2023-06-01"})
        used = post_json(m.url + "/v1/messages", dict(msg, max_tokens=9))[2]["usage"]["input_tokens"]
        assert st == 200 and j == {"input_tokens": used}, (j, used)
        st, _, e, _ = post_json(m.url + "/v1/messages/count_tokens", {"messages": []})
        assert st == 400 and e["type"] == "error" and e["error"]["type"] == "invalid_request_error", e
        assert m.stats()["by_path"]["/v1/messages/count_tokens"] == 2
        st, _, b = request("GET", m.url + "/v1/models", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
        a = json.loads(b)
        assert st == 200 and a["has_more"] is False and a["data"][0]["type"] == "model", a
        assert a["first_id"] == a["data"][0]["id"] and a["last_id"] == a["data"][-1]["id"], a
        assert all(set(x) == {"type", "id", "display_name", "created_at"} for x in a["data"]), a
        o = json.loads(request("GET", m.url + "/v1/models", headers={"Authorization": "Bearer k"})[2])
        assert o["object"] == "list" and "has_more" not in o, o
    both(check)


def multipart(fields, files):
    bnd = "----sluiceMockBoundary7MA4YWxk"
    out = b""
    for k, v in fields.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (bnd, k, v)).encode()
    for k, (name, data) in files.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (bnd, k, name)).encode() + data + b"\r\n"
    out += ("--%s--\r\n" % bnd).encode()
    return out, {"Content-Type": "multipart/form-data; boundary=" + bnd}


def test_mock_uploads():
    def check(m):
        audio = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"
        body, h = multipart({"model": "whisper-1"}, {"file": ("a.wav", audio)})
        st, _, j, _ = post_json(m.url + "/v1/audio/transcriptions", body, h)
        assert st == 200 and j == {"text": "mock transcription of %d bytes" % len(audio)}, j
        last = m.last()  # still valid JSON with a binary body
        assert last["path"] == "/v1/audio/transcriptions" and last["headers"]["content-type"] == h["Content-Type"]
        body2, h2 = multipart({"model": "whisper-1", "response_format": "text"}, {"file": ("a.wav", b"xyz")})
        st, rh, raw = request("POST", m.url + "/v1/audio/translations", body2, h2)
        assert st == 200 and rh["content-type"] == "text/plain" and raw == b"mock transcription of 3 bytes\n", raw
        st, _, e, _ = post_json(m.url + "/v1/audio/transcriptions", *multipart({"model": "whisper-1"}, {}))
        assert st == 400 and e["error"]["param"] == "file", e
        st, _, e, _ = post_json(m.url + "/v1/audio/transcriptions", {"model": "whisper-1"})
        assert st == 400 and "multipart" in e["error"]["message"], e
        body, h = multipart({"purpose": "batch"}, {"file": ("b.jsonl", b'{"a":1}\n' * 10)})
        st, _, f, _ = post_json(m.url + "/v1/files", body, h)
        assert st == 200 and f["object"] == "file" and f["id"].startswith("file-") and f["bytes"] == 80, f
        assert f["filename"] == "b.jsonl" and f["purpose"] == "batch" and f["status"] == "processed", f
        assert m.stats()["by_path"]["uploads"] == 5
    both(check)


def test_mock_moderations_and_speech():
    def check(m):
        st, _, j, _ = post_json(m.url + "/v1/moderations", {"input": ["ok text", "MOCK_FLAG violent"]})
        assert st == 200 and j["id"].startswith("modr-") and [r["flagged"] for r in j["results"]] == [False, True], j
        assert j["results"][1]["categories"]["violence"] is True and len(j["results"][0]["category_scores"]) == 13
        assert len(post_json(m.url + "/v1/moderations", {"input": "one"})[2]["results"]) == 1
        st, h, b = request("POST", m.url + "/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": "hello"})
        assert st == 200 and h["content-type"] == "audio/mpeg" and len(b) == 256 + 32 * 5 and b[:3] == b"ID3", (h, len(b))
        assert set(b[3:256]) == set(range(3, 256)), "every byte value is sent"
        st, h, b2 = request("POST", m.url + "/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": "hello",
                                                                 "response_format": "wav"})
        assert h["content-type"] == "audio/wav" and b2 == b, "deterministic bytes"
        assert post_json(m.url + "/v1/audio/speech", {"model": "tts-1"})[0] == 400
    both(check)


def test_mock_failure_knobs_on_new_routes():
    def check(m):
        m.config(status=503)
        assert post_json(m.url + "/v1/responses", {"model": "m", "input": "x"})[0] == 503
        st, _, e, _ = post_json(m.url + "/v1/messages/count_tokens", {"model": "c", "messages": []})
        assert st == 503 and e["type"] == "error", e
        assert post_json(m.url + "/v1/moderations", {"input": "x"})[0] == 503
        m.config(status=200, fail_next=1)
        assert post_json(m.url + "/v1/audio/speech", {"input": "x"})[0] == 500
        assert post_json(m.url + "/v1/audio/speech", {"input": "x"})[0] == 200
        m.config(delay_ms=300)
        st, _, _, raw = stream(m.url + "/v1/responses", {"model": "m", "input": "late", "stream": True})
        assert st == 200 and b"response.completed" in raw
    both(check)
