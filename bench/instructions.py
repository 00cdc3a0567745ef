#!/usr/bin/env python3
"""Instructions per request of sluice, counted by callgrind.

Unlike req/s, this does not drift with what else the machine is doing: the
same binary, configuration and requests give the same count. It is how the
before/after lines of hot-path changes in results.md are measured.

    python3 bench/instructions.py            # cache hit (tracing off, on) and pass-through
    python3 bench/instructions.py --redis    # the same on one Redis and on a
                                             # Redis Cluster (3 masters), side by side
Each scenario starts sluice under `valgrind --tool=callgrind`, sends one
request to warm up, then drives wrk (8 connections, INSTR_SECONDS, default 5)
and divides the program's total instructions by the requests answered (start
and shutdown included, which adds a few hundred instructions per request)."""
import os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as B  # noqa: E402

SECS = int(os.environ.get("INSTR_SECONDS", "5"))


def scenario(name, mock_port, cache, mode, redis_yaml=None, secs=SECS, tracing_url=None):
    out = []

    def under_callgrind(d):
        out.append(os.path.join(d, "callgrind.out"))
        return ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out[0]]

    p, port = B.sluice(mock_port, cache, wrap=under_callgrind, redis_yaml=redis_yaml, tracing_url=tracing_url)
    url = "http://127.0.0.1:%d/v1/chat/completions" % port
    if redis_yaml:
        time.sleep(1.0)  # connected, and on the slot map (slow under valgrind)
    B.post(url, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the benchmark"}]})
    r = B.wrk(url, mode, conns=8, secs=secs) if secs else {"total": 0}
    p.send_signal(15)
    p.wait(timeout=60)
    total = 0
    with open(out[0]) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = int(line.split()[1])
    return name, r["total"], total


def main():
    if not B.shutil.which("valgrind"):
        raise SystemExit("valgrind is missing")
    mock_port = B.free_port()
    B.spawn([os.path.join(B.ROOT, "build/sluice-mock"), "--listen", "127.0.0.1:%d" % mock_port])
    B.wait_port(mock_port)
    if "--redis" in sys.argv[1:]:
        # as in run.py: a cache hit, and a pass-through with the cache on (an L2
        # miss, a coalescing lock and a store per request: what the cluster routes)
        one = "{ url: \"redis://127.0.0.1:%d/0\", timeout_ms: 200 }" % B.redis_single()
        many = "{ cluster: [%s], timeout_ms: 200 }" % ", ".join('"127.0.0.1:%d"' % p for p in B.redis_cluster())
        rows = []
        for label, yaml in (("one Redis", one), ("Redis Cluster", many)):
            # start, one request and shutdown, counted alone and taken off: the
            # cluster's start (slot map, node connections) would otherwise be
            # spread over a different number of requests than one Redis's
            _, _, fixed = scenario("start", mock_port, True, "fixed", yaml, secs=0)
            for what, mode in (("cache hit, ", "fixed"), ("pass-through + L2 store, ", "unique")):
                name, n, total = scenario(what + label, mock_port, True, mode, yaml)
                rows.append((name + " (start taken off)", n, total - fixed))
    else:
        rows = [scenario("cache hit", mock_port, True, "fixed"),
                # every request's spans exported to the mock's OTLP sink (issue 23)
                scenario("cache hit, tracing on", mock_port, True, "fixed",
                         tracing_url="http://127.0.0.1:%d" % mock_port),
                scenario("pass-through (cache off)", mock_port, False, "unique")]
    rev = subprocess.run(["git", "-C", B.ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["### instructions per request (callgrind) — commit %s — %s" % (rev, time.strftime("%Y-%m-%d %H:%M")), "",
             "| scenario | requests | instructions per request |", "|---|---:|---:|"]
    for name, n, total in rows:
        lines.append("| %s | %d | %.0f |" % (name, n, total / max(n, 1)))
    text = "\n".join(lines) + "\n"
    print(text)
    if os.environ.get("BENCH_RESULTS") != "-":
        with open(os.path.join(B.ROOT, "bench", "results.md"), "a") as f:
            f.write(text + "\n")
    B.cleanup()


if __name__ == "__main__":
    try:
        main()
    finally:
        B.cleanup()
