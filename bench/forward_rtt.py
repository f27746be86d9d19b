"""Where a kernel round trip's time goes: small request/reply round trips through our forward.

    python bench/forward_rtt.py [--n 2000] [--rounds 4] [--baseline REV]

A server on node1 answers a 200-byte message with the same bytes in two writes, and an
800-byte message with five 800-byte writes (about what a trivial cell's execute gets
back: busy, execute_input, execute_result, idle, execute_reply). Measured, in interleaved
rounds, p50/p90 of one round trip, with no kernel CPU in the way:
  - direct from login (no SSH: the network and Python alone);
  - ours with the ciphers ssh2 can use with OpenSSH here (aes128-gcm, the default, and
    aes128-ctr + HMAC; both run in Node's OpenSSL),
    through the agent's LocalForward over laptop -> bastion -> login -> node1;
  - ssh -L (OpenSSH, -tt on login so both sshds have TCP_NODELAY on the client side).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import TESTBED, free_port, pct  # noqa: E402
from throughput import NODE, bundle_driver, node_server_run, start_driver, wait_listening  # noqa: E402

SERVER = r"""
import os, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0)); s.listen(8); print(s.getsockname()[1], os.getpid(), flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(65536)
        if not d: break
        if len(d) == 200:  # echo, in two writes
            c.sendall(d[:8]); c.sendall(d[8:])
        else:  # a kernel-like reply: five 800-byte messages, one write each
            for _ in range(5): c.sendall(b"r" * 800)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import json, socket, sys, time
host, port, n, burst = sys.argv[1], int(sys.argv[2]), int(sys.argv[4]), sys.argv[3] == "burst"
c = socket.create_connection((host, port)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"m" * (800 if burst else 200); want = 4000 if burst else 200; ts = []
for i in range(n + 50):
    t = time.perf_counter(); c.sendall(msg); got = 0
    while got < want: got += len(c.recv(65536))
    if i >= 50: ts.append(time.perf_counter() - t)
print(json.dumps(ts))
"""

# chacha20-poly1305@openssh.com is left out: without ssh2's native binding, the second hop
# (SSH inside a channel of the first) never completes its handshake here (timed out).
CIPHERS = ["aes128-gcm@openssh.com", "aes128-ctr"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--baseline", metavar="REV", help="also measure the agent's sources at git revision REV")
    args = ap.parse_args()
    with node_server_run("rc-bench-rtt-", SERVER) as (env, work, procs, port):
        paths: dict[str, list[str]] = {}
        driver = bundle_driver(work)
        variants = [(f"ours {c}", driver, {"cipher": c}) for c in CIPHERS]
        if args.baseline:
            variants.insert(0, (f"ours at {args.baseline}", bundle_driver(work, args.baseline), {}))
        for name, drv, extra in variants:
            p, lp = start_driver(drv, env, port, **extra)
            procs.append(p)
            paths[name] = [sys.executable, "-c", CLIENT, "127.0.0.1", str(lp)]
        sshl_port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    "ssh",
                    "-F",
                    env["RC_TESTBED_SSH_CONFIG"],
                    "-tt",
                    "-o",
                    "ExitOnForwardFailure=yes",
                    "-L",
                    f"127.0.0.1:{sshl_port}:{NODE}:{port}",
                    "login",
                    "sleep 3600",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_listening(sshl_port)
        paths["ssh -L (OpenSSH)"] = [sys.executable, "-c", CLIENT, "127.0.0.1", str(sshl_port)]
        paths["direct from login"] = [
            str(TESTBED),
            "exec",
            "login",
            "--user",
            "alice",
            "--",
            "python3",
            "-c",
            CLIENT,
            NODE,
            str(port),
        ]
        samples: dict[tuple[str, str], list[float]] = {(k, m): [] for m in ("echo", "burst") for k in paths}
        names = list(paths)
        for r in range(args.rounds):
            for mode in ("echo", "burst"):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    out = subprocess.run(
                        paths[name] + [mode, str(args.n // args.rounds)],
                        check=True,
                        capture_output=True,
                        text=True,
                        timeout=300,
                    ).stdout
                    samples[name, mode] += json.loads(out)
    print(f"round trips to node1, n={args.n} per path and pattern in {args.rounds} interleaved rounds")
    for mode, what in (("echo", "200 B request, echoed in two writes"), ("burst", "800 B request, five 800 B replies")):
        direct = pct(samples["direct from login", mode], 0.5)
        print(f" {what}:")
        for name in paths:
            ts = samples[name, mode]
            print(
                f"  {name:34s} p50 {pct(ts, 0.5):6.3f} ms  p90 {pct(ts, 0.9):6.3f} ms  p50 - direct {pct(ts, 0.5) - direct:+6.3f} ms"
            )


if __name__ == "__main__":
    main()
