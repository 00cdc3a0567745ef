"""Issue 18, the bench itself: bench/run.py stops a server's whole process group
(nginx's workers too) and reads wrk's numbers from chat.lua's BENCH_JSON line."""
import os, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import run as B  # noqa: E402

WRK_TEXT = """Running 6s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.00us  101.00us   3.00ms   91.50%
  Latency Distribution
     50%  498.00us
     99%    1.10ms
  60000 requests in 6.00s, 30.00MB read
Requests/sec:  10000.00
BENCH_JSON {"requests":60000,"duration_us":6000000,"bytes":31457280,"p50_us":498,"p90_us":700,"p99_us":1100,"p999_us":2000,"max_us":3000,"mean_us":512.0,"err_connect":0,"err_read":0,"err_write":0,"err_status":0,"err_timeout":0}
"""


def test_wrk_numbers_come_from_bench_json():
    r = B.read_bench_json(WRK_TEXT)
    assert r["total"] == 60000 and abs(r["rps"] - 10000) < 1e-6
    assert r["p50_us"] == 498 and r["p99_us"] == 1100  # not the 91.50 of "+/- Stdev"
    bad = WRK_TEXT.replace('"err_status":0', '"err_status":7')
    try:
        B.read_bench_json(bad)
        raise AssertionError("non-2xx answers must fail the row")
    except SystemExit:
        pass


def test_stop_group_leaves_no_child_running():
    # a master that forks a worker and ignores nothing: like nginx's master/worker pair
    p = B.spawn(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    time.sleep(0.2)
    kids = [q for q in B.tree(p.pid) if q != p.pid]
    assert kids, "no child started"
    B.stop_group(p)
    assert not B._group_alive(p.pid)
    for k in kids:
        assert not os.path.exists("/proc/%d" % k) or open("/proc/%d/stat" % k).read().rsplit(")", 1)[1].split()[0] == "Z"
    B.procs.remove(p)
