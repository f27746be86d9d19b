"""Scale-out on the testbed's Slurm: the same dask.array reduction in a 1-node and a 2-node
session of one run, and the time from Submit to every worker connected; then elastic
workers in the 1-node session: from "Add workers" (2 jobs) to both connected, and from
`SLURMCluster().scale(2)` in the notebook to both connected.

    testbed/testbed start && .venv/bin/python bench/scale_out.py [--size 6000 --repeats 3]

The testbed's nodes are network namespaces sharing this machine's 2 cores, so a second
node adds no CPU: the figures show placement (tasks per worker) and what the second node
costs (submission, start-up, transfers over the session's TLS), not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from jupyter_client import BlockingKernelClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import TESTBED  # noqa: E402

PYTHON = "/opt/rc-testbed/python/bin/python"

WORK = """
import json, socket, time
from distributed import Client, wait
import dask.array as da
c = Client()
t0 = time.perf_counter()
c.wait_for_workers({nodes}, timeout=120)
waited = time.perf_counter() - t0
names = {{a: w['name'] for a, w in c.scheduler_info()['workers'].items()}}
x = da.random.random(({size}, {size}), chunks=({size} // 8, {size} // 8))
times, held = [], {{}}
for i in range({repeats}):
    t = time.perf_counter()
    y = x.persist()
    wait(y)
    if i == 0:  # where the chunks live: the placement
        held = {{names.get(a, a): len(keys) for a, keys in c.has_what().items()}}
    float((y @ y.T).sum().compute())
    times.append(time.perf_counter() - t)
    del y
hosts = sorted(c.run(socket.gethostname).values())
print(json.dumps({{'waited': waited, 'times': times, 'hosts': hosts, 'stored': held}}))
"""


def setup_agent(tmp: Path):
    env = dict(
        line.split("=", 1)
        for line in subprocess.run(
            [str(TESTBED), "env"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        if "=" in line
    )
    for k in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        (tmp / k).mkdir(parents=True)
        os.environ[k] = str(tmp / k)
    base = {
        "ssh": {"host": "login", "configFile": env["RC_TESTBED_SSH_CONFIG"]},
        "scheduler": "slurm",
        "python": PYTHON,
        "dask": True,
    }
    res = {"partition": "debug", "walltime": "00:20:00", "cpus": 1, "memory": "2G"}
    profiles = [
        {**base, "name": "one-node", "resources": {**res, "nodes": 1}},
        {**base, "name": "two-nodes", "resources": {**res, "nodes": 2}},
    ]
    d = tmp / "JUPYTERLAB_SETTINGS_DIR" / "jupyterlab-remote-cluster"
    d.mkdir()
    (d / "profiles.jupyterlab-settings").write_text(json.dumps({"profiles": profiles}))

    from jupyter_core.utils import run_sync

    from jupyterlab_remote_cluster.agent_process import get_agent

    agent = get_agent()

    def request(method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        r = run_sync(agent.request)(method, path, data, {"Content-Type": "application/json"} if data else None)
        return r.code, json.loads(r.body or b"{}")

    return request


@contextmanager
def session_with_kernel(request, profile: str):
    """A session of `profile`, running, with a ready kernel client: yields (session id,
    client, seconds from submit to running); cancelled after."""
    t0 = time.monotonic()
    code, s = request("POST", "/api/v1/sessions", {"profile": profile})
    assert code == 201, s
    sid = s["id"]
    try:
        while s["state"] not in ("running", "ended"):
            time.sleep(0.5)
            s = request("GET", f"/api/v1/sessions/{sid}")[1]
        assert s["state"] == "running", s
        running = time.monotonic() - t0
        code, conn = request("POST", f"/api/v1/sessions/{sid}/kernels", {})
        assert code == 201, conn
        kc = BlockingKernelClient()
        kc.load_connection_info(conn)
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        try:
            yield sid, kc, running
        finally:
            kc.stop_channels()
    finally:
        request("DELETE", f"/api/v1/sessions/{sid}")


def run_code(kc, code: str) -> str:
    """What `code` prints (its last line), or the kernel's error."""
    out: list[str] = []
    reply = kc.execute_interactive(
        code,
        timeout=900,
        output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out).strip().splitlines()[-1]


def measure(request, profile: str, nodes: int, size: int, repeats: int) -> dict:
    with session_with_kernel(request, profile) as (_sid, kc, running):
        got = json.loads(run_code(kc, WORK.format(nodes=nodes, size=size, repeats=repeats)))
    got["running"] = running
    got["workers_ready"] = running + got.pop("waited")
    return got


ELASTIC = """
import json, time
from distributed import Client
from dask_jobqueue import SLURMCluster
c = Client()
c.wait_for_workers(3, timeout=300)
added = time.time()
t = time.perf_counter()
jq = SLURMCluster()
jq.scale(2)
jc = Client(jq)
jc.wait_for_workers(2, timeout=300)
print(json.dumps({'added_at': added, 'jobqueue': time.perf_counter() - t}))
jc.close(); jq.close()
"""


def measure_elastic(request, profile: str) -> dict:
    """In a running 1-node session: Add workers (2) until the scheduler has 3 workers, then
    SLURMCluster().scale(2) until its 2 workers are connected."""
    with session_with_kernel(request, profile) as (sid, kc, _running):
        t0 = time.time()
        code, added = request("POST", f"/api/v1/sessions/{sid}/workers", {"count": 2})
        assert code == 201, added
        got = json.loads(run_code(kc, ELASTIC))
    return {"add_workers": got["added_at"] - t0, "jobqueue": got["jobqueue"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=6000, help="the array is size × size float64")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    # (the agent started for the run still holds its runtime dir when the run ends)
    with tempfile.TemporaryDirectory(prefix="rc-bench-scale-", ignore_cleanup_errors=True) as tmp:
        request = setup_agent(Path(tmp))
        rows = {
            n: measure(request, name, n, args.size, args.repeats) for n, name in ((1, "one-node"), (2, "two-nodes"))
        }
        elastic = measure_elastic(request, "one-node")
    print(f"dask.array (X @ X.T).sum(), {args.size}² float64, {args.repeats} repeats, testbed Slurm (2 shared cores)")
    print("| nodes | hosts | submit → running | submit → all workers | best compute | chunks held per worker |")
    print("|---|---|---|---|---|---|")
    for n, r in rows.items():
        print(
            f"| {n} | {', '.join(r['hosts'])} | {r['running']:.1f} s | {r['workers_ready']:.1f} s | "
            f"{min(r['times']):.2f} s | {json.dumps(r['stored'])} |"
        )
    print(f"2 nodes / 1 node, best compute: {min(rows[2]['times']) / min(rows[1]['times']):.2f}×")
    anchor = rows[1]["running"]  # a session's own submit → running, same run
    print("| elastic workers (2 jobs) | to both connected | / a session's submit → running |")
    print("|---|---|---|")
    for what, key in (("Add workers (sidebar, API)", "add_workers"), ("SLURMCluster().scale(2)", "jobqueue")):
        print(f"| {what} | {elastic[key]:.1f} s | {elastic[key] / anchor:.2f}× |")


if __name__ == "__main__":
    main()
