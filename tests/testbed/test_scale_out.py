"""Sessions on several nodes (docs/scale-out.md), on the testbed's real Slurm and real Grid
Engine: a session with `nodes: 2` runs a Dask worker on each node of its allocation
(started by the helper with `srun --overlap`, or `qrsh -inherit` in the PE `jrc1` whose
allocation rule is one slot per host), both on the session's mutual TLS; tasks run on
both, the dashboard lists both, and after cancel nothing of the session runs on either
node."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import TESTBED, agent_call, proxy_get, read_testbed_env, running_session, session_kernel

PYTHON = "/opt/rc-testbed/python/bin/python"
RESOURCES = {"nodes": 2, "cpus": 1, "memory": "2G", "walltime": "00:15:00"}


def two_node_profile(base: dict, scheduler: str) -> dict:
    if scheduler == "slurm":
        return {**base, "resources": {**RESOURCES, "partition": "debug"}}
    state = Path(read_testbed_env()["RC_TESTBED_STATE"])
    return {
        **base,
        "scheduler": "sge",
        "loginSetup": [f". {state}/sge/settings.sh"],
        "resources": {**RESOURCES, "partition": "all.q", "parallelEnvironment": "jrc1"},
    }


@pytest.fixture(scope="module", params=["slurm", "sge"])
def two_nodes(request, jupyter_dirs):
    """A running 2-node session and a kernel client of it; the session is cancelled after."""
    fields = two_node_profile({}, request.param)
    with running_session(jupyter_dirs, f"rcit-2node-{request.param}", dask=True, **fields) as s:
        kc = session_kernel(s["id"])
        yield s, kc
        kc.stop_channels()


def run(kc, code: str, timeout: float = 120) -> str:
    out = []
    reply = kc.execute_interactive(
        code,
        timeout=timeout,
        output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out).strip()


def session_processes(node: str, sid: str) -> str:
    """alice's processes on `node` whose command line names the session's directory."""
    r = subprocess.run(
        [str(TESTBED), "exec", node, "--user", "alice", "--", "pgrep", "-a", "-u", "alice", "-f", f"sessions/{sid}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return r.stdout.strip()


def test_a_worker_on_every_node_and_tasks_on_both(two_nodes):
    session, kc = two_nodes
    got = json.loads(
        run(
            kc,
            "import json, socket, time\n"
            "from distributed import Client, get_worker\n"
            "c = Client()\n"
            "c.wait_for_workers(2, timeout=90)\n"
            "hosts = sorted(c.run(socket.gethostname).values())\n"
            "def work(i):\n"
            "    time.sleep(0.2)\n"
            "    return get_worker().name\n"
            "names = c.gather(c.map(work, range(24), pure=False))\n"
            "info = c.scheduler_info()['workers']\n"
            "print(json.dumps({'hosts': hosts, 'tasks': {n: names.count(n) for n in set(names)},\n"
            "  'addresses': sorted(info), 'threads': sorted(w['nthreads'] for w in info.values())}))",
        )
    )
    assert got["hosts"] == ["node1", "node2"], got
    assert set(got["tasks"]) == {"rc-worker-0", "rc-worker-1"} and all(n > 0 for n in got["tasks"].values()), got
    assert all(a.startswith("tls://") for a in got["addresses"]), got
    assert got["threads"] == [1, 1], got

    # What the sidebar shows: both workers, where they run, with the node's CPUs.
    deadline = time.monotonic() + 60
    while True:
        code, now = agent_call("GET", f"/api/v1/sessions/{session['id']}")
        workers = now.get("daskWorkers") or []
        if len(workers) == 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted((w["host"], w["threads"]) for w in workers) == [("node1", 1), ("node2", 1)], now

    # The dashboard (through the proxy) lists both workers.
    dash = next(p for p in session["httpPorts"] if p["name"] == "dask-dashboard")
    base = dash["path"][: dash["path"].index("/status")]
    code, body = proxy_get(base + "/info/main/workers.html")
    assert code == 200, body[:300]
    page = body.decode()
    assert all(a.replace("://", "%3A%2F%2F").replace(":", "%3A") in page or a in page for a in got["addresses"]), page[
        :2000
    ]


# bob's Dask comms: an identity request to each address, plain and with TLS and a
# certificate of his own making; first to a scheduler he runs himself (the control: the
# probe works, so a refusal below is a refusal).
BOB_DASK = r"""
import asyncio, json, os, subprocess, sys, tempfile
os.environ["DASK_TEMPORARY_DIRECTORY"] = tempfile.mkdtemp(prefix="bob-dask-")
from distributed import LocalCluster
from distributed.comm import connect
from distributed.security import Security

d = tempfile.mkdtemp()
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=bob", "-days", "1", "-keyout", d + "/k.pem", "-out", d + "/c.pem"],
               check=True, capture_output=True)
mine = Security(tls_client_cert=d + "/c.pem", tls_client_key=d + "/k.pem", tls_ca_file=d + "/c.pem")

async def identity(address, security):
    kw = security.get_connection_args("client") if security else {}
    comm = await asyncio.wait_for(connect(address, timeout=10, **kw), 20)
    await comm.write({"op": "identity", "reply": True})
    r = await asyncio.wait_for(comm.read(), 20)
    await comm.close()
    return "answered %s" % r.get("type")

def attempt(address, security=None):
    try:
        return asyncio.run(identity(address, security))
    except Exception as e:
        return "refused (%s)" % type(e).__name__

out = {}
with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None) as own:
    out["control"] = attempt(own.scheduler_address)
for a in json.loads(sys.argv[1]):
    out[a] = [attempt(a.replace("tls://", "tcp://")), attempt(a, mine)]
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)
"""


def bob_dask(host: str, addresses: list) -> dict:
    r = subprocess.run(
        [str(TESTBED), "exec", host, "--user", "bob", "--", PYTHON, "-c", BOB_DASK, json.dumps(addresses)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, r.stdout[-2000:] + r.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_bob_reaches_neither_the_workers_nor_the_scheduler(two_nodes):
    """With several nodes Dask listens on the nodes' addresses: bob, on the node where
    alice's second worker runs and on the login node, gets no answer from her scheduler or
    either worker, plain or over TLS with his own certificate."""
    session, kc = two_nodes
    addresses = json.loads(
        run(
            kc,
            "import json\nfrom distributed import Client\nc = Client()\n"
            "print(json.dumps([c.scheduler.address] + sorted(c.scheduler_info()['workers'])))",
        )
    )
    assert len(addresses) == 3 and all(a.startswith("tls://") and "127.0.0.1" not in a for a in addresses), addresses
    other = "node2" if session["node"] == "node1" else "node1"
    for host in (other, "login"):
        got = bob_dask(host, addresses)
        assert got["control"] == "answered Scheduler", (host, got)
        reached = {a: r for a, r in got.items() if a != "control" and any(not x.startswith("refused") for x in r)}
        assert reached == {}, (host, got)


def test_nothing_of_the_session_is_left_on_either_node_after_cancel(two_nodes):
    session, _ = two_nodes
    sid = session["id"]
    assert session_processes("node2", sid), "the worker on node2 should be running before the cancel"
    code, s = agent_call("DELETE", f"/api/v1/sessions/{sid}")
    assert code == 200 and s["state"] == "ended", s
    deadline = time.monotonic() + 60
    left = {}
    while time.monotonic() < deadline:
        left = {n: session_processes(n, sid) for n in ("node1", "node2")}
        if not any(left.values()):
            break
        time.sleep(1)
    assert not any(left.values()), left
