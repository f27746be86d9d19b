"""A notebook's own Dask (docs/scale-out.md, "A notebook's own scheduler"), on the testbed's
real Slurm: `LocalCluster()` typed in a session's notebook runs on the session's mutual
TLS with its dashboard off TCP; bob, with a job on the node, reaches none of it (in the
clear on 127.0.0.1, its scheduler would run his code as alice); the session offers its
dashboard, which opens through the proxy and is withdrawn when the cluster closes."""

import json
import re
import subprocess
import time

import pytest

from .attacker import Probe, nothing_reached
from .conftest import TESTBED, agent_call, on_login, proxy_get, running_session, running_session_kernel, session_kernel

ALICE_UID = int(subprocess.run(["id", "-u", "alice"], capture_output=True, text=True).stdout)
SECRET = "nb-dask-secret-7"


@pytest.fixture(scope="module")
def light_session(jupyter_dirs):
    """A running session without the session's own Dask (only the notebook's), and a kernel."""
    with running_session_kernel(jupyter_dirs, "rcit-notebook-dask", dask=False) as session_and_kernel:
        yield session_and_kernel


def run(kc, code: str, timeout: float = 120) -> str:
    """What `code` prints on stdout (the in-kernel scheduler logs bob's attempts on stderr)."""
    out = []

    def hook(m):
        c = m["content"]
        if m["msg_type"] == "error" or c.get("name") == "stdout":
            out.append(c.get("text") or "".join(c.get("traceback") or []))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out).strip()


def session_when(sid: str, pred, timeout: float = 60) -> dict:
    """The session (as the agent reports it) once `pred(session)` holds, or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        code, s = agent_call("GET", f"/api/v1/sessions/{sid}")
        assert code == 200, s
        if pred(s) or time.monotonic() > deadline:
            return s
        time.sleep(1)


def served(sid: str, pred, timeout: float = 60) -> dict:
    """The session once `pred(its httpPorts)` holds."""
    return session_when(sid, lambda s: pred(s.get("httpPorts") or []), timeout)


def running_worker_jobs(s: dict) -> list:
    return sorted(j["id"] for j in s.get("workerJobs") or [] if j["state"] == "running")


def test_a_notebooks_local_cluster_is_private_and_its_dashboard_opens_in_lab(light_session):
    session, kc = light_session
    sid = session["id"]
    out = run(
        kc,
        "from distributed import LocalCluster, Client\n"
        "lc = LocalCluster(n_workers=2, threads_per_worker=1)\nc = Client(lc)\nc.wait_for_workers(2)\n"
        "print(lc.scheduler_address, c.submit(lambda x: x * 2, 21).result(), lc.dashboard_link)",
    )
    address, answer, link = out.split()

    # bob, with a job on alice's node, tries every listener of hers: the scheduler, the
    # workers and nannies, the relay; Dask (running os.getuid), HTTP(S), ZMQ, raw reads
    probe = Probe(session["node"], uid=ALICE_UID)
    probe.ready()
    assert run(kc, f"print({SECRET!r})") == SECRET  # alice at work while bob listens
    result = probe.result()
    assert nothing_reached(result, SECRET) == []
    assert ["127.0.0.1", int(address.rsplit(":", 1)[1])] in result["enumerated"]["tcp"], result["enumerated"]
    assert len(result["enumerated"]["tcp"]) >= 5, result["enumerated"]  # scheduler, 2 workers, 2 nannies
    # alice's Dask works, on TLS, and prints the proxied dashboard's link
    assert address.startswith("tls://127.0.0.1:") and answer == "42", out
    assert re.search(r"/remote-cluster/proxied/[A-Za-z0-9_-]{43}/1/status$", link), out

    # the session offers the dashboard (the sidebar's row), through the proxy
    s = served(sid, lambda ports: any(p["port"] == 1 and p.get("workers") == 2 for p in ports))
    offered = [p for p in s.get("httpPorts") or [] if p["port"] == 1]
    assert len(offered) == 1 and offered[0]["name"] == "dask-notebook" and offered[0]["path"] == link, s
    assert offered[0]["stripPrefix"] is True and offered[0]["threads"] == 2, offered
    assert offered[0]["kernelId"] in (s.get("kernels") or []), (offered, s.get("kernels"))
    code, body = proxy_get(link)
    assert code == 200 and b"<html" in body.lower() and b"bokeh" in body.lower(), body[:300]
    code, body = proxy_get(link.replace("/status", "/json/identity.json"))
    assert code == 200, body[:300]
    identity = json.loads(body)
    assert identity["type"] == "Scheduler" and identity["address"] == address and identity["n_workers"] == 2

    # closed in the notebook: withdrawn from the session, and from the proxy
    run(kc, "c.close(); lc.close()")
    s = served(sid, lambda ports: not any(p["port"] == 1 for p in ports), 30)
    assert not any(p["port"] == 1 for p in s.get("httpPorts") or []), s
    code, _ = proxy_get(link)
    assert code == 404


@pytest.fixture(scope="module")
def dask_session(jupyter_dirs):
    """A running session with its own Dask scheduler (no kernel); cancelled by its test."""
    with running_session(jupyter_dirs, "rcit-add-workers", dask=True) as s:
        yield s


def squeue_names(tag: str) -> list:
    """alice's jobs named `tag`: "<id> <state> <nodes>" each."""
    return on_login("squeue", "-h", "-u", "alice", "-n", tag, "-o", "%i %T %N").split("\n")[:-1]


def test_add_workers_submits_tagged_jobs_that_join_and_end_with_the_session(dask_session, light_session):
    """ "Add workers" (no code): two worker jobs join the session's own scheduler; the
    sidebar's count says so; cancelling the session cancels them. A bad count and a
    session without a scheduler are refused with nothing submitted."""
    sid, tag = dask_session["id"], f"jrc-w-{dask_session['id']}"
    for bad in ({"count": 0}, {"count": 33}, {"count": "2"}, {}):
        code, body = agent_call("POST", f"/api/v1/sessions/{sid}/workers", bad)
        assert code == 400 and "count" in body["error"]["message"], (bad, body)
    code, body = agent_call("POST", f"/api/v1/sessions/{light_session[0]['id']}/workers", {"count": 1})
    assert code == 409 and "no Dask scheduler" in body["error"]["message"], body
    assert squeue_names(tag) == [] and squeue_names(f"jrc-w-{light_session[0]['id']}") == []
    assert dask_session.get("canAddWorkers") is True, dask_session

    code, added = agent_call("POST", f"/api/v1/sessions/{sid}/workers", {"count": 2})
    assert code == 201 and len(added["jobIds"]) == 2, added
    hh, mm, _ = (int(x) for x in added["walltime"].split(":"))
    assert 0 < hh * 60 + mm <= 60, added  # capped at the session's end (1 h walltime)
    s = served(sid, lambda ports: any(p["port"] == 0 and p.get("workers") == 3 for p in ports), 150)
    assert next(p for p in s["httpPorts"] if p["port"] == 0)["workers"] == 3, s
    kc = session_kernel(sid)
    try:
        got = json.loads(
            run(
                kc,
                "import json, socket\nfrom distributed import Client\nc = Client()\n"
                "print(json.dumps({'names': sorted(c.run(lambda dask_worker: dask_worker.name).values()),\n"
                "  'sum': sum(c.gather(c.map(lambda x: x, range(30))))}))",
            )
        )
    finally:
        kc.stop_channels()
    assert got["sum"] == 435 and len(got["names"]) == 3, got
    assert sum(n.startswith(tag + "-") for n in got["names"]) == 2, got
    jobs = squeue_names(tag)
    assert sorted(j.split()[0] for j in jobs) == sorted(added["jobIds"]) and all(" RUNNING " in j for j in jobs), jobs
    # the sidebar's worker jobs, from the agent's batched status query
    s = session_when(sid, lambda s: running_worker_jobs(s) == sorted(added["jobIds"]), 90)
    assert running_worker_jobs(s) == sorted(added["jobIds"]), s.get("workerJobs")

    code, _ = agent_call("DELETE", f"/api/v1/sessions/{sid}")
    assert code == 200
    deadline = time.monotonic() + 60
    while squeue_names(tag) and time.monotonic() < deadline:
        time.sleep(2)
    assert squeue_names(tag) == []


def test_elastic_workers_from_slurmcluster_join_on_tls_and_die_with_the_session(light_session):
    """SLURMCluster() with no argument in the notebook: scale(2) submits two worker jobs
    tagged with the session, which join over the session's TLS; bob's Dask client on the
    other node is refused; the notebook scheduler's dashboard shows them through the proxy;
    a helper killed outright leaves no worker job a minute later (this test ends the session)."""
    session, kc = light_session
    sid, tag = session["id"], f"jrc-w-{session['id']}"
    got = json.loads(
        run(
            kc,
            "import json, socket\nfrom dask_jobqueue import SLURMCluster\nfrom distributed import Client\n"
            "jq = SLURMCluster()\njq.scale(2)\njc = Client(jq)\njc.wait_for_workers(2, timeout=180)\n"
            "print(json.dumps({'hosts': sorted(jc.run(socket.gethostname).values()),\n"
            "  'workers': sorted(jc.scheduler_info()['workers']), 'scheduler': jq.scheduler_address,\n"
            "  'link': jq.dashboard_link, 'tasks': sum(jc.gather(jc.map(lambda x: x, range(10))))}))",
            timeout=300,
        )
    )
    assert got["tasks"] == 45 and len(got["workers"]) == 2, got
    assert got["scheduler"].startswith("tls://") and "127.0.0.1" not in got["scheduler"], got
    assert all(w.startswith("tls://") for w in got["workers"]), got
    jobs = squeue_names(tag)
    assert len(jobs) == 2 and all(" RUNNING " in j for j in jobs), jobs
    # reported by the helper (the kernel's jobqueue recorded them), counted in the agent's
    # status query: the session lists both as running
    ids = sorted(j.split()[0] for j in jobs)
    s = session_when(sid, lambda s: running_worker_jobs(s) == ids, 90)
    assert running_worker_jobs(s) == ids, s.get("workerJobs")
    # each worker stops itself before the session's end (the profile's walltime would outlive it)
    job_id, _state, node = jobs[0].split()
    ps = subprocess.run(
        [str(TESTBED), "exec", node, "--user", "alice", "--", "pgrep", "-af", "distributed.cli.dask_worker"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    lifetimes = [int(m) for m in re.findall(r"--lifetime (\d+)s", ps)]
    assert lifetimes and all(0 < t <= 3600 for t in lifetimes), ps

    # bob, on the other node and on the login node: the scheduler refuses him, plain or
    # with a certificate of his own (the controls: his own listeners answer the same probes)
    host, port = got["scheduler"][len("tls://") :].rsplit(":", 1)
    for where in ("node2", "login"):
        probe = Probe(where, tcp=[(host, int(port))], unix_prefixes=())
        probe.ready()
        assert nothing_reached(probe.result()) == [], where

    # its dashboard, offered by the session, lists the two workers
    s = served(sid, lambda ports: any(p["path"] == got["link"] and p.get("workers") == 2 for p in ports))
    assert any(p["path"] == got["link"] and p.get("workers") == 2 for p in s.get("httpPorts") or []), s
    code, body = proxy_get(got["link"].replace("/status", "/json/identity.json"))
    assert code == 200 and sorted(json.loads(body)["workers"]) == got["workers"], body[:300]

    # the helper killed outright (no cleanup of its own): the agent sees the session end
    # and cancels the tagged jobs; none is left a minute later
    r = subprocess.run(
        [
            str(TESTBED),
            "exec",
            session["node"],
            "--user",
            "alice",
            "--",
            "pkill",
            "-9",
            "-f",
            f"serve --session-dir .*{sid}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 60
    while squeue_names(tag) and time.monotonic() < deadline:
        time.sleep(2)
    assert squeue_names(tag) == []
