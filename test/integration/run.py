"""Runs every test_* function of every test_*.py module here.
Prints PASS/FAIL lines; exits 1 if anything failed. Args filter by substring."""
import importlib, os, sys, threading, time, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
TIMEOUT = float(os.environ.get("SLUICE_TEST_TIMEOUT", "90"))


def run_one(fn):
    result = {}

    def target():
        try:
            fn()
            result["ok"] = True
        except BaseException as e:  # noqa: B902 - report everything
            result["err"] = e
            result["tb"] = traceback.format_exc()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(TIMEOUT)
    if t.is_alive():
        return "timed out after %ds" % TIMEOUT, ""
    if result.get("ok"):
        return None, ""
    return "%s: %s" % (type(result["err"]).__name__, result["err"]), result["tb"]


def main():
    filters = sys.argv[1:]
    failed = 0
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        mod = importlib.import_module(name[:-3])
        for fname in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = "%s.%s" % (name[:-3], fname)
            if filters and not any(f in full for f in filters):
                continue
            t0 = time.time()
            err, tb = run_one(getattr(mod, fname))
            if err is None:
                print("PASS %s (%.1fs)" % (full, time.time() - t0), flush=True)
            else:
                failed += 1
                print("FAIL %s: %s" % (full, err.splitlines()[0][:300]), flush=True)
                for line in (tb or err).splitlines()[-25:]:
                    print("    " + line)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
