#!/usr/bin/env python3
"""Instructions per pass-through request, /v1/responses beside /v1/chat/completions.

Each row runs build/sluice (release, cache off, the mock as an openai-kind
provider speaking Responses natively) under callgrind twice, with N1 and N2
sequential unique requests on one keep-alive connection; the difference over
N2 - N1 is the cost of one request, start and shutdown cancelled out. Needs
only valgrind (no wrk): python3 bench/instructions_responses.py"""
import http.client, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as B  # noqa: E402

N1, N2 = 50, 450


def total(mock_port, path, body_of, n):
    out = []

    def wrap(d):
        out.append(os.path.join(d, "callgrind.out"))
        return ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out[0]]

    p, port = B.sluice(mock_port, False, wrap=wrap)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(n):
        c.request("POST", path, body=json.dumps(body_of(i)), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    c.close()
    p.send_signal(15)
    p.wait(timeout=120)
    for line in open(out[0]):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit("no totals in " + out[0])


def main():
    mock_port = B.free_port()
    B.spawn([os.path.join(B.ROOT, "build/sluice-mock"), "--listen", "127.0.0.1:%d" % mock_port])
    B.wait_port(mock_port)
    chat = lambda i: {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello %d" % i}]}
    resp = lambda i: {"model": "gpt-4o-mini", "input": "Say hello %d" % i}
    rows = [("chat", "/v1/chat/completions", chat),
            ("responses", "/v1/responses", resp),
            ("responses, store: false", "/v1/responses", lambda i: dict(resp(i), store=False)),
            ("chat stream", "/v1/chat/completions", lambda i: dict(chat(i), stream=True)),
            ("responses stream", "/v1/responses", lambda i: dict(resp(i), stream=True))]
    print("| pass-through | instructions per request |\n|---|---:|")
    for name, path, fn in rows:
        a, b = total(mock_port, path, fn, N1), total(mock_port, path, fn, N2)
        print("| %s | %.0f |" % (name, (b - a) / (N2 - N1)), flush=True)
    B.cleanup()


if __name__ == "__main__":
    main()
