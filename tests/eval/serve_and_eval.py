#!/usr/bin/env python3
"""Test driver for tools/eval_tiny.py: starts `DSASERVE serve [SERVE_ARGS]` on a free loopback port with the
DeepSeek-V3.2 tool-call and reasoning parsers, waits until it answers, runs the harness with EVAL_ARGS against
it, stops the server. Exit status: the harness's (or --expect-rc: 0 when the harness exits with that code).
Usage: serve_and_eval.py DSASERVE [SERVE_ARGS...] -- [EVAL_ARGS...] [--expect-rc N]
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import eval_tiny  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc, url, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def split_args(argv):
    if len(argv) < 2 or "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    serve, evals = argv[1:cut], argv[cut + 1:]
    expect = None
    if "--expect-rc" in evals:
        i = evals.index("--expect-rc")
        expect = int(evals[i + 1])
        evals = evals[:i] + evals[i + 2:]
    return serve, evals, expect


def main(argv):
    serve, evals, expect = split_args(argv)
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    cmd = serve[:1] + ["serve", "--host", "127.0.0.1", "--port", str(port), "--tool-call-parser", "deepseekv32",
                       "--reasoning-parser", "deepseek-v3"] + serve[1:]
    log = tempfile.TemporaryFile()
    print("serve_and_eval: " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_ready(proc, url, 300):
            log.seek(0)
            print("serve_and_eval: the server did not come up:\n" + log.read().decode(errors="replace")[-3000:])
            return 2
        print("serve_and_eval: server ready in %.1f s" % (time.time() - t0), flush=True)
        rc = eval_tiny.main(["--base-url", url] + evals)
    finally:
        stop(proc)
    if rc not in (0, expect):
        log.seek(0)
        print("serve_and_eval: server log (tail):\n" + log.read().decode(errors="replace")[-2000:])
    if expect is None:
        return rc
    print("serve_and_eval: harness exit %d (expected %d)" % (rc, expect))
    return 0 if rc == expect else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
