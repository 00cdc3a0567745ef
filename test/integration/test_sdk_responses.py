"""Issue 16, section 1: the official openai client (7.x) on sluice's Responses API,
native and translated (H6's pending SDK tests, now real)."""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_sdk as base  # a module object only: no test_ names land here
from harness import request

CLIENT_KEY = base.CLIENT_KEY


# ---- 1. the Responses API ----------------------------------------------------

def test_openai_responses_native():
    """To an openai-kind provider the client's bytes are forwarded and the answer relayed."""
    st = base.Stack()
    r = st.openai("responses")
    assert r["object"] == "response" and r["status"] == "completed", r
    assert r["id"].startswith("resp_") and r["text"].startswith("mock reply to: hello responses"), r
    assert r["usage"]["input_tokens"] > 0 and r["usage"]["output_tokens_details"]["reasoning_tokens"] == 0, r
    last = st.oa.last()
    assert last["path"] == "/v1/responses" and last["headers"]["authorization"] == "Bearer sk-upstream-secret", last
    assert json.loads(last["body"])["instructions"] == "be brief"
    log = st.s.wait_log(1)[-1]
    assert log["path"] == "/v1/responses" and log["prompt_tokens"] == r["usage"]["input_tokens"], log
    st.stop()


def test_openai_responses_stream_native():
    """Every event relayed as it arrives, sequence_number untouched."""
    st = base.Stack()
    r = st.openai("responses_stream")
    assert r["types"][0] == "response.created" and r["types"][-1] == "response.completed", r
    for t in ("response.in_progress", "response.output_item.added", "response.content_part.added",
              "response.output_text.delta", "response.output_text.done", "response.content_part.done",
              "response.output_item.done"):
        assert t in r["types"], (t, r["types"])
    assert r["seq"] == list(range(len(r["seq"]))), r["seq"]
    assert r["text"] == r["final_text"] and r["status"] == "completed", r
    st.stop()


def _chat_only():
    """An openai-kind provider marked `api: chat` that lacks /v1/responses (like vLLM)."""
    st = base.Stack(provider_extra={"oa": {"api": "chat"}})
    st.oa.config(no_responses=True)
    return st


def test_openai_responses_translated_to_chat_provider():
    st = _chat_only()
    r = st.openai("responses")
    assert r["object"] == "response" and r["text"].startswith("mock reply to: hello responses"), r
    u = r["usage"]
    assert u["input_tokens"] > 0 and u["output_tokens"] == len(r["text"].split()), u
    assert "input_tokens_details" in u and "output_tokens_details" in u, u
    last = st.oa.last()
    sent = json.loads(last["body"])
    assert last["path"] == "/v1/chat/completions", last
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}, sent
    assert st.oa.stats()["by_path"]["/v1/responses"] == 0, "sluice tried /v1/responses on an api: chat provider"
    st.stop()


def test_openai_responses_stream_translated():
    st = _chat_only()
    r = st.openai("responses_stream")
    assert r["types"][:4] == ["response.created", "response.in_progress", "response.output_item.added",
                              "response.content_part.added"], r["types"]
    assert r["types"][-4:] == ["response.output_text.done", "response.content_part.done",
                               "response.output_item.done", "response.completed"], r["types"]
    assert r["seq"] == list(range(len(r["seq"]))) and r["text"] == r["final_text"], r
    assert r["usage"]["output_tokens"] > 0, r
    assert st.oa.last()["path"] == "/v1/chat/completions"
    st.stop()


def test_openai_responses_tools_translated():
    """function tools and function_call_output items across a chat-only provider."""
    st = _chat_only()
    r = st.openai("responses_tools")
    assert r["name"] == "get_weather" and r["args"] == {"city": "mock", "days": 1}, r
    assert r["second"].startswith("mock reply to: sunny") and r["prev"] is not None, r
    sent = json.loads(st.oa.last()["body"])
    roles = [m["role"] for m in sent["messages"]]
    assert roles[-2:] == ["assistant", "tool"], sent  # the call from turn 1, resolved by sluice
    assert sent["tools"][0]["function"]["name"] == "get_weather", sent
    st.stop()


def test_openai_responses_two_turns_translated():
    """previous_response_id resolved by sluice from its state store (Redis here)."""
    st = base.Stack()
    r = st.openai("responses_two_turns", env={"SLUICE_MODEL": "claude-3-5-haiku"})
    assert r["prev"] == r["first"] and r["second"] != r["first"], r
    sent = json.loads(st.an.last()["body"])
    texts = json.dumps(sent["messages"])
    assert st.an.last()["path"] == "/v1/messages" and "my name is Ada" in texts, sent
    # GET /v1/responses/{id} works for a response sluice handled; another tenant gets 404
    stt, _, body = request("GET", st.s.url + "/v1/responses/" + r["first"],
                           headers={"Authorization": "Bearer " + CLIENT_KEY})
    assert stt == 200 and json.loads(body)["id"] == r["first"], body
    st.stop()


def test_openai_responses_retrieve_input_items_delete():
    """responses.retrieve, inputItems.list and delete on a response sluice keeps."""
    st = base.Stack()
    r = st.openai("responses_state", env={"SLUICE_MODEL": "claude-3-5-haiku"})
    assert r["got"] == r["id"] and r["text"].startswith("mock reply to: remember me"), r
    assert r["items"] == ["remember me"], r
    assert r["gone"] == {"name": "NotFoundError", "status": 404}, r
    st.stop()
