"""Bulk throughput through our forward against OpenSSH `ssh -L` over the same hops, in one run.

    python bench/throughput.py [--mib 256] [--rounds 3] [--baseline REV]

On the running testbed, with a source/sink server on node1 (198.18.2.11, as alice):
  - ours:    the agent's LocalForward over one ClusterConnection (laptop -> bastion -> login,
             direct-tcpip to node1), driven by bench/forward_driver.ts bundled with esbuild
             from the same sources as the agent;
  - ssh -L:  OpenSSH `ssh -N -L` to login with ProxyJump through the bastion (testbed ssh_config);
  - direct:  the same client run on the login node straight to node1 (no SSH; the ceiling).
Upload: the client announces and sends N MiB, waits for the server's byte count.
Download: the server sends N MiB and closes. Best of --rounds per path and direction, in MB/s
(10^6 bytes/s), and the ratio ours/ssh -L (goal >= 1.0x). --baseline REV adds the driver
built from the agent's sources at git revision REV, measured in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, TESTBED, bench_tls, free_port, start_relay, stop_all, testbed_env  # noqa: E402,F401  (re-exported)

NODE = "198.18.2.11"

# On node1: "up\n" -> read to EOF, reply with the byte count; "down N\n" -> send N bytes, close.
# On TCP (first line: "PORT PID") and on a Unix socket in a private dir (second line: its
# path), which the helper's relay serves as a session's socket.
SERVER = r"""
import os, socket, sys, tempfile, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0)); s.listen(4); print(s.getsockname()[1], os.getpid(), flush=True)
u = socket.socket(socket.AF_UNIX); path = os.path.join(tempfile.mkdtemp(), "sink.sock")
u.bind(path); u.listen(4); print(path, flush=True)
buf = b"x" * (1 << 20)

def serve(s):
  while True:
    c, _ = s.accept()
    f = c.makefile("rb"); cmd = f.readline().split()
    if not cmd:  # a readiness probe
        pass
    elif cmd[0] == b"up":
        n, want = 0, int(cmd[1])
        while n < want:
            d = f.read1(1 << 20)
            if not d: break
            n += len(d)
        c.sendall(b"%d\n" % n)
    else:
        left = int(cmd[1])
        while left > 0:
            k = c.send(buf[:min(left, len(buf))]); left -= k
    f.close(); c.close()  # the makefile holds the fd open: no FIN until both are closed

threading.Thread(target=serve, args=(u,), daemon=True).start()
serve(s)
"""

# Anywhere: one transfer; prints the seconds it took (connect to last byte / reply).
CLIENT = r"""
import socket, sys, time
mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
buf = b"y" * (1 << 20)
t = time.perf_counter()
c = socket.create_connection((host, port))
if mode == "up":
    # the size first, not a half-close at the end: a TLS stream through the relay has none
    c.sendall(b"up %d\n" % n); left = n
    while left > 0:
        k = min(left, len(buf)); c.sendall(buf[:k]); left -= k
    got = int(c.makefile("rb").readline())
else:
    c.sendall(b"down %d\n" % n); got = 0
    while True:
        d = c.recv(1 << 20)
        if not d: break
        got += len(d)
dt = time.perf_counter() - t
if got != n: sys.exit("got %d bytes, expected %d" % (got, n))
print(dt)
"""


def transfer(
    mode: str, host: str, port: int, size: int, prefix: list[str] | None = None, python=sys.executable
) -> float:
    cmd = (prefix or []) + [python, "-c", CLIENT, mode, host, str(port), str(size)]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout.strip())


def bundle_driver(work: Path, rev: str | None = None, script: str = "forward_driver.ts") -> Path:
    """bench/forward_driver.ts (or `script`) bundled with the agent's sources: the working
    tree's, or those of git revision `rev` (to measure a change against its baseline in one run)."""
    src = REPO
    if rev:
        src = work / f"src-{rev.replace('/', '_')}"
        (src / "bench").mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "src/agent", "src/common"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        for f in (script, "driver_common.ts"):  # today's driver, that revision's agent
            shutil.copy(REPO / "bench" / f, src / "bench")
    out = work / f"{Path(script).stem}-{src.name}.js"
    subprocess.run(
        [
            str(REPO / "node_modules" / ".bin" / "esbuild"),
            str(src / "bench" / script),
            "--bundle",
            "--platform=node",
            "--target=node20",
            "--log-level=warning",
            f"--outfile={out}",
            # the same externals as the agent bundle (scripts/bundle-agent.mjs)
            "--external:cpu-features",
            "--external:./crypto/build/Release/sshcrypto.node",
        ],
        check=True,
        env=dict(os.environ, NODE_PATH=str(REPO / "node_modules")),
    )
    return out


def relay_spec(env: dict[str, str], work: Path, procs: list, sink: str) -> tuple[dict, int]:
    """The helper's relay on node1 in front of the sink's Unix socket (started, added to
    `procs`): the arguments a relay driver needs to reach it with the session's TLS, and
    the relay's pid (kill it: `testbed exec` does not pass signals on)."""
    tls = bench_tls(work)
    token = secrets.token_hex(32)
    relay, relay_port, relay_pid = start_relay("node1", tls, token, {"http/9": sink})
    procs.append(relay)
    spec = {
        "configFile": env["RC_TESTBED_SSH_CONFIG"],
        "host": "login",
        "to": NODE,
        "relayPort": relay_port,
        "targets": ["http/9"],
        "name": "jrc-bench",
        "token": token,
        **{k: tls[k] for k in ("ca", "cert", "key")},
    }
    return spec, relay_pid


def start_driver(driver: Path, env: dict[str, str], port: int | list[int], to: str = NODE, **extra):
    """Starts the driver; returns the process and the local port (a list for a list of ports)."""
    spec = {"configFile": env["RC_TESTBED_SSH_CONFIG"], "host": "login", "to": to, **extra}
    spec.update(ports=port) if isinstance(port, list) else spec.update(port=port)
    p = subprocess.Popen(
        ["node", str(driver), json.dumps(spec)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = p.stdout.readline()
    if not line:
        raise SystemExit(f"the forward driver ({driver.name}) did not start")
    out = json.loads(line)
    return p, (out["ports"] if isinstance(port, list) else out["port"])


def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def start_node_server(code: str) -> tuple[subprocess.Popen, int, int]:
    """Run a Python server on node1 as alice; it prints "PORT PID" once it listens."""
    server = subprocess.Popen(
        [str(TESTBED), "exec", "node1", "--user", "alice", "--", "python3", "-c", code, NODE],
        stdout=subprocess.PIPE,
        text=True,
    )
    port, pid = map(int, server.stdout.readline().split())
    return server, port, pid


@contextmanager
def node_server_run(prefix: str, server_code: str):
    """A benchmark run: the testbed's env, a scratch dir, the node-side server (its local
    port), and a list of processes; everything stopped and removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    procs: list[subprocess.Popen] = []
    server_pid = 0
    try:
        server, port, server_pid = start_node_server(server_code)
        procs.append(server)
        yield testbed_env(), work, procs, port
    finally:
        stop_all(procs, server_pid, work)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", metavar="REV", help="also measure the agent's sources at git revision REV")
    args = ap.parse_args()
    size = args.mib << 20
    with node_server_run("rc-bench-tp-", SERVER) as (env, work, procs, port):
        sink = procs[0].stdout.readline().strip()

        # Ours: the driver bundled from the agent's sources (and from a baseline revision).
        paths: dict[str, dict] = {}
        if args.baseline:
            p, lp = start_driver(bundle_driver(work, args.baseline), env, port)
            procs.append(p)
            paths[f"ours at {args.baseline}"] = dict(host="127.0.0.1", port=lp)
        p, ours_port = start_driver(bundle_driver(work), env, port)
        procs.append(p)

        sshl_port = free_port()
        sshl = subprocess.Popen(
            [
                "ssh",
                "-F",
                env["RC_TESTBED_SSH_CONFIG"],
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                f"127.0.0.1:{sshl_port}:{NODE}:{port}",
                "login",
            ],
            stdin=subprocess.DEVNULL,
        )
        procs.append(sshl)
        wait_listening(sshl_port)

        # Ours through the helper's TLS relay (via-login since protocol 2): the relay on node1
        # in front of the sink's Unix socket, as in front of a session's sockets.
        spec, relay_pid = relay_spec(env, work, procs, sink)

        def relay_driver(rev: str | None) -> int:
            rd = subprocess.Popen(
                ["node", str(bundle_driver(work, rev, script="relay_driver.ts")), json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(rd)
            return json.loads(rd.stdout.readline())["ports"][0]

        if args.baseline:
            # the same path built from the baseline's agent sources
            paths[f"relay at {args.baseline}"] = dict(host="127.0.0.1", port=relay_driver(args.baseline))
        paths.update(
            {
                "ours via the relay": dict(host="127.0.0.1", port=relay_driver(None)),
                "ours (LocalForward)": dict(host="127.0.0.1", port=ours_port),
                "ssh -L (OpenSSH)": dict(host="127.0.0.1", port=sshl_port),
                "direct from login": dict(
                    host=NODE,
                    port=port,
                    prefix=[str(TESTBED), "exec", "login", "--user", "alice", "--"],
                    python="python3",
                ),
            }
        )
        best: dict[tuple[str, str], float] = {}
        try:
            # Interleaved rounds, so a noisy neighbour on the shared machine hits every path alike.
            for _ in range(args.rounds):
                for mode in ("up", "down"):
                    for name, p in paths.items():
                        dt = transfer(mode, size=size, **p)
                        best[name, mode] = min(best.get((name, mode), dt), dt)
        finally:
            os.kill(relay_pid, 15)  # (`testbed exec` does not pass signals on)

    mbs = {k: size / v / 1e6 for k, v in best.items()}
    print(f"bulk throughput, {args.mib} MiB, best of {args.rounds}, laptop -> bastion -> login -> node1")
    for name in paths:
        print(f"  {name:24s} upload {mbs[name, 'up']:7.1f} MB/s   download {mbs[name, 'down']:7.1f} MB/s")
    for mode, label in (("up", "upload"), ("down", "download")):
        for ours in ("ours via the relay", "ours (LocalForward)"):
            ratio = mbs[ours, mode] / mbs["ssh -L (OpenSSH)", mode]
            print(f"  ratio {ours}/ssh -L {label:8s} {ratio:.2f}x (goal >= 1.0x)")
        if args.baseline:
            for ours, base in (("ours via the relay", "relay at"), ("ours (LocalForward)", "ours at")):
                ratio = mbs[ours, mode] / mbs[f"{base} {args.baseline}", mode]
                print(f"  ratio {ours}/{base} {args.baseline} {label:8s} {ratio:.2f}x (goal >= 0.9x)")


if __name__ == "__main__":
    main()
