"""The embeddings storm of `make bench` (issue 21): one-line /v1/embeddings
requests from 200 connections, against sluice with micro-batching on
(embeddings.batch defaults) and off (window_ms: 0) in the same run. Reports
requests, upstream calls, req/s and p99 of each."""
import json, os, re, subprocess, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def _mock_requests(mock_url):
    return json.loads(urllib.request.urlopen(mock_url + "/_mock/stats").read())["requests"]


def _wrk(port, secs, conns, nonce):
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--latency", "-s",
           os.path.join(HERE, "embed.lua"), "http://127.0.0.1:%d/v1/embeddings" % port, "--", nonce]
    if (os.cpu_count() or 1) >= 2:
        cmd = ["taskset", "-c", "0"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_us = float(p99.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total, rps, p99_us, int(bad.group(1)) if bad else 0


def run(start_sluice, mock_port, secs=2, conns=200):
    """start_sluice(extra_yaml) -> (process, port): bench/run.py's sluice() in
    front of the mock. -> (table rows, notes): batching on and off, one after
    the other."""
    mock_url = "http://127.0.0.1:%d" % mock_port
    rows, notes = [], []
    for name, window in (("on (window 2 ms)", 2), ("off (window 0)", 0)):
        p, port = start_sluice("embeddings: { batch: { window_ms: %d } }\n" % window)
        before = _mock_requests(mock_url)
        total, rps, p99, bad = _wrk(port, secs, conns, "%d-%d" % (os.getpid(), window))
        calls = _mock_requests(mock_url) - before
        rows.append("| embeddings storm, batching %s | %d | %d | %.1f | %.0f | %.0f | %d |"
                    % (name, total, calls, total / max(calls, 1), rps, p99, bad))
        p.kill()
        p.wait()
        time.sleep(0.2)
    head = ["| scenario (%d connections, %d s) | requests | upstream calls | requests/call | req/s | p99 µs | non-2xx |"
            % (conns, secs), "|---|---:|---:|---:|---:|---:|---:|"]
    return head + rows, notes
