"""Issue 16, part 2 (pass-through), driven by the official `openai` client:
files, an audio transcription upload, speech (a binary answer) and
moderations reach the first openai-kind provider as the client sent them,
with the provider's key, and come back as it answered (moved here from
test_sdk_pending.py)."""
import json
import test_sdk as base  # a module object only: its test_ names run there

CLIENT_KEY = base.CLIENT_KEY

def test_openai_files_passthrough():
    st = base.Stack()
    r = st.openai("files")
    assert r["object"] == "file" and r["bytes"] == 3000 and r["filename"] == "data.jsonl", r
    last = st.oa.last()
    assert last["path"] == "/v1/files" and last["headers"]["content-type"].startswith("multipart/form-data"), last
    assert last["headers"]["authorization"] == "Bearer sk-upstream-secret", last["headers"]
    assert CLIENT_KEY not in json.dumps(last)
    log = st.s.wait_log(1)[-1]
    assert log["path"] == "/v1/files" and log["status"] == 200, log
    st.stop()


def test_openai_transcription_upload():
    st = base.Stack()
    r = st.openai("transcription")
    assert r == {"text": "mock transcription of 48000 bytes"}, r  # the whole upload arrived
    assert st.oa.last()["path"] == "/v1/audio/transcriptions"
    st.stop()


def test_openai_speech_binary():
    st = base.Stack()
    r = st.openai("speech")
    assert r == {"bytes": 256 + 32 * len("hello there"), "type": "audio/mpeg", "head": "ID3"}, r
    st.stop()


def test_openai_moderations_passthrough():
    st = base.Stack()
    assert st.openai("moderations") == {"flagged": [False, True]}
    st.stop()
