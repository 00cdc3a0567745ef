#!/usr/bin/env python3
"""Memory per open stream and PSS idle of sluice (issue 18's memory rows).

    python3 bench/stream_mem.py          # cache on and off, 1,000 streams
    STREAMS=N MASSIF=1 ...               # sluice under valgrind's massif

For each of cache on / off: sluice starts (release build), answers one
request (warm), then its idle RSS and PSS are read from /proc/PID/smaps_rollup;
N streaming requests are opened at once against the mock dripping one chunk
every 500 ms, and after every stream got its first event the RSS is read
again: (open - idle) / N is the memory per open stream. bench/run.py uses the
same functions for its rows."""
import json, os, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as B  # noqa: E402

N = int(os.environ.get("STREAMS", "1000"))


def one(mock_port, mock_url, cache):
    wrap = None
    if os.environ.get("MASSIF") == "1":  # a heap profile with the streams open (ms_print it)
        def wrap(d):
            return ["valgrind", "--tool=massif", "--depth=12", "--peak-inaccuracy=0.5",
                    "--massif-out-file=/tmp/sluice-massif-%s" % ("on" if cache else "off")]
    p, port = B.sluice(mock_port, cache, wrap=wrap)
    pid = B.sut_pid(p)
    r = B.stream_memory(pid, port, mock_url, N)
    if wrap:  # heaptrack writes its file when sluice itself exits
        os.kill(p.pid, 15)
        p.wait(60)
    B.stop_group(p)
    return r


def main():
    mock_port = B.free_port()
    B.spawn([os.path.join(B.ROOT, "build/sluice-mock"), "--listen", "127.0.0.1:%d" % mock_port], core=0)
    B.wait_port(mock_port)
    mock_url = "http://127.0.0.1:%d" % mock_port
    for cache in (True, False):
        r = one(mock_port, mock_url, cache)
        print(json.dumps(dict(r, cache=cache)))
    B.cleanup()


if __name__ == "__main__":
    try:
        main()
    finally:
        B.cleanup()
