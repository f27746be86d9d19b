"""Agent memory under connection churn: 3 rounds of 5,000 connections through a kernel
forward (the agent's LocalForward → one ssh2 connection → the helper's TLS relay on node1,
as a via-login kernel channel). After each round the driver forces a GC and reports its JS
heap and RSS; the heap must not grow from round 1 to round 3 (a leak per connection would
show as ~N × its size). Anchor: round 1 of the same run.

    testbed/testbed start && .venv/bin/python bench/forward_memory.py [--connections 5000 --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import NODE, bundle_driver, node_server_run, relay_spec, wait_listening  # noqa: E402

# On node1: throughput.py's sink protocol ("up N\n" + N bytes -> "N\n"), one thread per
# connection and a deep backlog (that sink serves one connection at a time). First line
# "PORT PID" (a TCP listener node_server_run expects), second line the Unix socket's path.
SERVER = r"""
import os, socket, sys, tempfile, threading
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(1); print(s.getsockname()[1], os.getpid(), flush=True)
u = socket.socket(socket.AF_UNIX); path = os.path.join(tempfile.mkdtemp(), "sink.sock")
u.bind(path); u.listen(512); print(path, flush=True)

def serve(c):
    with c, c.makefile("rb") as f:
        cmd = f.readline().split()
        if len(cmd) == 2 and cmd[0] == b"up":
            want, n = int(cmd[1]), 0
            while n < want:
                d = f.read1(1 << 16)
                if not d:
                    return
                n += len(d)
            c.sendall(b"%d\n" % n)

while True:
    c, _ = u.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def one_connection(port: int) -> None:
    """What a reconnecting ZMQ socket does, at its smallest: connect, a message, an answer, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(b"up 5\nhello")
        reply = c.makefile("rb").readline()
        if reply.strip() != b"5":
            raise RuntimeError(f"unexpected reply {reply!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=16, help="connections in flight at once")
    args = ap.parse_args()
    with node_server_run("rc-bench-mem-", SERVER) as (env, work, procs, _port):
        sink = procs[0].stdout.readline().strip()
        spec, relay_pid = relay_spec(env, work, procs, sink)
        try:
            driver = subprocess.Popen(
                ["node", "--expose-gc", str(bundle_driver(work, script="memory_driver.ts")), json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(driver)
            port = json.loads(driver.stdout.readline())["ports"][0]
            wait_listening(port)

            def measure() -> dict:
                time.sleep(1.0)  # closes still in flight through the SSH connection settle
                driver.stdin.write("measure\n")
                driver.stdin.flush()
                return json.loads(driver.stdout.readline())

            results = [dict(round=0, seconds=0.0, **measure())]
            with ThreadPoolExecutor(args.parallel) as pool:
                for r in range(1, args.rounds + 1):
                    t0 = time.monotonic()
                    list(pool.map(lambda _: one_connection(port), range(args.connections)))
                    results.append(dict(round=r, seconds=time.monotonic() - t0, **measure()))
            driver.stdin.close()
        finally:
            os.kill(relay_pid, 15)  # (`testbed exec` does not pass signals on)

    mib = 1 << 20
    print(f"{args.connections} connections per round, {args.parallel} in flight, through the relay on {NODE}")
    print("| after round | seconds | JS heap after GC | RSS |")
    print("|---|---|---|---|")
    for x in results:
        print(f"| {x['round']} | {x['seconds']:.1f} | {x['heapUsed'] / mib:.2f} MiB | {x['rss'] / mib:.1f} MiB |")
    first, last = results[1], results[-1]
    spaces = sorted(first["spaces"], key=lambda k: -abs(last["spaces"][k] - first["spaces"][k]))[:4]
    print(
        "V8 spaces, round 1 -> round %d: " % last["round"]
        + ", ".join(f"{k} {(last['spaces'][k] - first['spaces'][k]) / 1024:+.0f} KiB" for k in spaces)
    )
    print(
        f"heap round {last['round']}/round 1: {last['heapUsed'] / first['heapUsed']:.3f}× "
        f"(+{(last['heapUsed'] - first['heapUsed']) / 1024:.0f} KiB); "
        f"RSS {last['rss'] / first['rss']:.3f}×"
    )


if __name__ == "__main__":
    main()
