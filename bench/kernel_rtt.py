"""Kernel execute round trip through our tunnel, against its anchors, in one run.

    python bench/kernel_rtt.py [--n 200] [--rounds 5]

On the running testbed: starts the agent (own dirs), submits a session with the testbed
profile, starts a kernel, then measures a trivial cell (`1`) N times, p50 and p90:
  - ours:    jupyter_client on the laptop -> agent's local forwards -> SSH (bastion, login)
             -> the helper's TLS relay on the node -> the kernel's Unix sockets
and, to the anchor, a kernel with TCP ports started next to it on the same node (the
session's kernels have none since helper protocol 2):
  - ssh -L:  OpenSSH `ssh -L` over the same hops (with a pty session on the connection, as
             an interactive user has)
  - direct:  jupyter_client on the login node straight to the node (no SSH at all)
  - --baseline REV: bench/forward_driver.ts (LocalForward over one ClusterConnection, as
             in the agent) built from the working tree and from REV: REV's path to a kernel
             before the relay, when kernels listened on TCP
and prints the ratios (goals: ours/direct <= 1.3, ours/ssh-L <= 1.0, ours/REV <= 1.1). The
paths are measured in interleaved rounds, so load from others on the shared machine hits
them alike. Cancels the job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, TESTBED, free_port, pct, testbed_env  # noqa: E402

CLIENT = r"""
import json, sys, time
from jupyter_client import BlockingKernelClient
info = json.load(open(sys.argv[1])); n = int(sys.argv[2])
kc = BlockingKernelClient(); kc.load_connection_info(info); kc.start_channels(); kc.wait_for_ready(timeout=60)
for _ in range(5): kc.execute_interactive("1", timeout=30, output_hook=lambda m: None)
ts = []
for _ in range(n):
    t = time.perf_counter(); kc.execute_interactive("1", timeout=30, output_hook=lambda m: None); ts.append(time.perf_counter() - t)
kc.stop_channels(); print(json.dumps(ts))
"""


def run_client(info: dict, n: int, python: str = sys.executable, prefix: list[str] | None = None) -> list[float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir="/tmp") as f:
        json.dump(info, f)
        path = f.name
    os.chmod(path, 0o644)
    try:
        cmd = (prefix or []) + [python, "-c", CLIENT, path, str(n)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        os.unlink(path)


def start_anchor_kernel(node: str, conn_file: Path, python: str) -> dict:
    """An ipykernel listening on TCP on `node` (as alice, in the background); its ports."""
    info = {
        "ip": "0.0.0.0",
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        "key": secrets.token_hex(32),
        "shell_port": 0,
        "iopub_port": 0,
        "stdin_port": 0,
        "control_port": 0,
        "hb_port": 0,
    }
    conn_file.write_text(json.dumps(info))
    os.chown(conn_file, pwd.getpwnam("alice").pw_uid, pwd.getpwnam("alice").pw_gid)
    os.chmod(conn_file, 0o600)
    subprocess.run(
        [
            str(TESTBED),
            "exec",
            node,
            "--user",
            "alice",
            "--",
            "sh",
            "-c",
            f"nohup {python} -m ipykernel_launcher -f {conn_file} >/dev/null 2>&1 &",
        ],
        check=True,
    )
    for _ in range(300):
        try:
            got = json.loads(conn_file.read_text())
            if all(got[ch] for ch in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")):
                return got
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise SystemExit("the anchor kernel did not start")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also time the kernel through bench/forward_driver.ts built from the working tree and from REV",
    )
    ap.add_argument(
        "--laptop-python",
        action="store_true",
        help="run the laptop-side clients with this script's Python instead of the cluster's",
    )
    args = ap.parse_args()
    same_python = not args.laptop_python
    n, rounds = args.n, max(1, args.rounds)
    env = testbed_env()
    work = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    os.environ.update(
        JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
        JUPYTER_DATA_DIR=str(work / "data"),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
    )
    subprocess.run(
        ["bash", "-c", f'source "{REPO}/scripts/lib.sh" && write_testbed_profile "{work}/settings"'], check=True
    )
    sys.path.insert(0, str(REPO))
    from jupyterlab_remote_cluster.agent_process import AgentProcess

    agent = AgentProcess()

    async def call(method: str, path: str, body=None):
        res = await agent.request(method, path, body=None if body is None else json.dumps(body).encode())
        data = json.loads(res.body or b"{}")
        if res.code >= 400:
            raise SystemExit(f"{method} {path}: {data}")
        return data

    session = await call("POST", "/api/v1/sessions", {"profile": "testbed"})
    sid = session["id"]
    node = ""
    anchor_file = Path("/nonexistent")
    ssh = None
    driver_procs: list[subprocess.Popen] = []
    try:
        for _ in range(120):
            session = await call("GET", f"/api/v1/sessions/{sid}")
            if session["state"] in ("running", "ended"):
                break
            await asyncio.sleep(1)
        if session["state"] != "running":
            raise SystemExit(f"session did not run: {session}")
        conn = await call("POST", f"/api/v1/sessions/{sid}/kernels", {})
        keys = [
            "ip",
            "transport",
            "signature_scheme",
            "key",
            "shell_port",
            "iopub_port",
            "stdin_port",
            "control_port",
            "hb_port",
        ]
        ours_info = {k: conn[k] for k in keys}
        if conn.get("iopub_kept"):
            # as the provisioner does: IOPub through the bridge to the node's keeper, shell
            # and stdin through the bridge too
            from jupyterlab_remote_cluster.iopub_bridge import IopubBridge

            bridge = IopubBridge(logging.getLogger("bench"))
            bridge.start(conn["iopub_port"], {"shell": conn["shell_port"], "stdin": conn["stdin_port"]})
            ours_info.update(iopub_port=bridge.port, shell_port=bridge.shell_port, stdin_port=bridge.stdin_port)
        node = session["node"]

        # The anchor: a kernel with TCP ports on the same node (as alice, outside the job),
        # its connection file on the shared home.
        chans = ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"]
        anchor_file = Path("/home/alice") / f".rc-bench-kernel-{sid}.json"
        remote = await asyncio.to_thread(start_anchor_kernel, node, anchor_file, env["RC_TESTBED_PYTHON"])
        anchor_info = dict(ours_info, key=remote["key"])

        # Anchor 1: OpenSSH ssh -L over the same hops, with a pty session open (-tt).
        local = {ch: free_port() for ch in chans}
        fwd = sum((["-L", f"127.0.0.1:{local[ch]}:{node}:{remote[ch]}"] for ch in chans), [])
        ssh = subprocess.Popen(
            [
                "ssh",
                "-F",
                env["RC_TESTBED_SSH_CONFIG"],
                "-tt",
                "-o",
                "ExitOnForwardFailure=yes",
                *fwd,
                "login",
                "sleep 3600",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", local["hb_port"]), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        # --baseline: the same kernel through bench/forward_driver.ts (LocalForward over one
        # ClusterConnection, as in the agent) built from the working tree and from REV.
        drivers: dict[str, dict] = {}
        if args.baseline:
            sys.path.insert(0, str(REPO / "bench"))
            from throughput import bundle_driver, start_driver

            for rev in ("worktree", args.baseline):
                drv = bundle_driver(work, None if rev == "worktree" else rev)
                p, ports = start_driver(drv, env, [remote[ch] for ch in chans], to=node)
                driver_procs.append(p)
                drivers[rev] = dict(anchor_info, **dict(zip(chans, ports)))
        # Anchor 2: direct, from the login node to the node, no SSH.
        direct_info = dict(anchor_info, ip=node, **{ch: remote[ch] for ch in chans})
        # The same client interpreter on every path (the cluster's Python, which runs in the
        # laptop namespace too): a different Python build must not pass for tunnel cost.
        py = env["RC_TESTBED_PYTHON"] if same_python else sys.executable
        paths = [
            ("ours", lambda k: run_client(ours_info, k, py)),
            *[
                (f"driver {rev}", (lambda bound: lambda k: run_client(bound, k, py))(info))
                for rev, info in drivers.items()
            ],
            ("sshl", lambda k: run_client(dict(anchor_info, **local), k, py)),
            (
                "direct",
                lambda k: run_client(direct_info, k, env["RC_TESTBED_PYTHON"], [str(TESTBED), "exec", "login", "--"]),
            ),
        ]
        # Interleaved rounds (order rotating): the testbed machine is shared, and a busy
        # minute must hit every path alike instead of skewing one ratio.
        samples: dict[str, list[float]] = {name: [] for name, _ in paths}
        for r in range(rounds):
            k = n // rounds + (1 if r < n % rounds else 0)
            for name, measure in paths[r % len(paths) :] + paths[: r % len(paths)]:
                samples[name] += await asyncio.to_thread(measure, k)
        ours, sshl, direct = samples["ours"], samples["sshl"], samples["direct"]
    finally:
        subprocess.run(
            [str(TESTBED), "exec", node, "--user", "alice", "--", "pkill", "-f", str(anchor_file)], capture_output=True
        )
        anchor_file.unlink(missing_ok=True)
        if ssh:
            ssh.kill()
        for p in driver_procs:
            p.stdin.close()
            p.terminate()
        await call("DELETE", f"/api/v1/sessions/{sid}")
        await agent.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = [("ours (agent tunnel)", ours), ("ssh -L (OpenSSH)", sshl), ("direct from login", direct)]
    rows[1:1] = [(f"driver, {name[7:]}", samples[name]) for name in samples if name.startswith("driver ")]
    print(
        f"kernel execute round trip, trivial cell, n={n} per path in {rounds} interleaved rounds, "
        f"client {'the same Python on all paths' if same_python else sys.executable + ' on the laptop'}"
    )
    for name, ts in rows:
        print(f"  {name:22s} p50 {pct(ts, 0.5):7.2f} ms   p90 {pct(ts, 0.9):7.2f} ms")
    print(f"  ratio ours/direct   p50 {pct(ours, 0.5) / pct(direct, 0.5):.2f}x (goal <= 1.3x)")
    print(f"  ratio ours/ssh -L   p50 {pct(ours, 0.5) / pct(sshl, 0.5):.2f}x (goal <= 1.0x)")
    if args.baseline:
        base = samples[f"driver {args.baseline}"]
        print(f"  ratio ours/{args.baseline}  p50 {pct(ours, 0.5) / pct(base, 0.5):.2f}x (goal <= 1.1x)")


if __name__ == "__main__":
    asyncio.run(main())
