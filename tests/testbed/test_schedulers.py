"""The whole flow under every batch-system adapter on the testbed: PBS Pro, Torque, LSF and
HTCondor through their stand-in commands (testbed/standins: native command outputs, jobs
really run on node1/node2 through Slurm), Grid Engine for real (testbed/addons/sge.sh), and
a plain SSH host (node1 itself, no batch system).

For each: a session is submitted through the real agent, a kernel is started on it with
jupyter_client (our provisioner), code proves it runs on a node inside that scheduler's job
(host name, the scheduler's job-id variable, no Slurm variables), Dask runs there and its
dashboard answers through the agent's session proxy, then the session is cancelled and the
job is gone for the scheduler and for the Slurm underneath. One bad request per scheduler is
refused with the scheduler's own message, and nothing is queued.

All sessions are submitted at once (module fixture), so the jobs start in parallel."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from . import conftest
from .attacker import Probe, nothing_reached
from .conftest import TESTBED, agent_call, kernel_client, proxy_get, wait_state

PYTHON = "/opt/rc-testbed/python/bin/python"
STANDINS = "/opt/rc-testbed/standins"

# scheduler -> how its profile differs, where its commands are, how its job shows in the kernel
CASES = {
    "pbs": {
        "resources": {"partition": "workq"},
        "login_setup": [f"export PATH={STANDINS}/pbs/bin:$PATH"],
        "job_env": "PBS_JOBID",
        "bad": ({"partition": "nope"}, "PBS refused the job: Unknown queue."),
    },
    "torque": {
        "resources": {"partition": "batch"},
        "login_setup": [f"export PATH={STANDINS}/torque/bin:$PATH"],
        "job_env": "PBS_JOBID",
        "bad": (
            {"walltime": "9:00:00"},
            "PBS refused the job: submit error (Job exceeds queue resource limits MSG=cannot satisfy queue max walltime requirement).",
        ),
    },
    "lsf": {
        "resources": {"partition": "normal"},
        "login_setup": [f"export PATH={STANDINS}/lsf/bin:$PATH"],
        "job_env": "LSB_JOBID",
        "bad": ({"partition": "nope"}, "LSF refused the job: nope: No such queue."),
    },
    "htcondor": {
        "resources": {},
        "login_setup": [f"export PATH={STANDINS}/htcondor/bin:$PATH"],
        "job_env": "_CONDOR_JOB_AD",
        # (extra directives come from the profile only: a profile that carries the bad one)
        "bad_in_profile": {"extraDirectives": ["requirements = (TARGET.Memory > "]},
        "bad": (
            {},
            "HTCondor refused the job: Parse error in expression: (requirements = (TARGET.Memory >; ^^^; Error in submit file)",
        ),
    },
    "ssh": {
        "host": "node1",
        "resources": None,  # a plain host: walltime only
        "login_setup": [],
        "job_env": "JRC_SSH_JOB_ID",
        "bad": (
            {"partition": "debug"},
            'Invalid partition "debug": a plain SSH host has no partitions or queues: leave it empty.',
        ),
    },
}

# a plain host (timeout) and Grid Engine (h_rt) enforce seconds; Slurm under the stand-ins whole minutes
SHORT_WALLTIME = {"ssh": "0:15", "sge": "0:20"}

CODE = r"""
import json, os, resource, socket
env = {k: v for k, v in os.environ.items() if k.startswith(("PBS_", "LSB_", "_CONDOR_", "JRC_SSH_", "SLURM_", "JOB_ID"))}
ad = open(env["_CONDOR_JOB_AD"]).read() if "_CONDOR_JOB_AD" in env else ""
from distributed import Client
with Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout=30) as c:
    worker_host = c.submit(socket.gethostname, pure=False).result(timeout=30)
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmPeak:"))
limit = resource.getrlimit(resource.RLIMIT_AS)[0]
print(json.dumps({"host": socket.gethostname(), "env": env, "ad": ad, "worker": worker_host, "vm": [peak, limit]}))
"""

# The connection files of the session's kernels (ip = where their ZMQ sockets listen).
CONNECTIONS_CODE = r"""
import glob, json, os
files = glob.glob(os.path.expanduser("~/.jupyter-remote-cluster/sessions/%s/kernels/*/connection.json"))
print(json.dumps([json.load(open(f)) for f in files]))
"""
ALICE_UID = int(subprocess.run(["id", "-u", "alice"], capture_output=True, text=True).stdout)


def on_host(host: str, command: str) -> str:
    """A shell command as alice on a testbed host; stdout (the exit status does not matter)."""
    import subprocess

    return subprocess.run(
        [str(TESTBED), "exec", host, "--user", "alice", "--", "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def standin(sched: str, command: str) -> str:
    return on_host("login", f"export PATH={STANDINS}/{sched}/bin:$PATH; {command} 2>&1")


def helper_pid(sid: str) -> int:
    return json.loads(on_host("login", f"cat ~/.jupyter-remote-cluster/sessions/{sid}/state.json"))["pid"]


def slurm_state(slurm_id: str) -> str:
    return on_host("login", f"squeue -h --states=all -j {slurm_id} -o %T 2>/dev/null").strip()


@pytest.fixture(scope="module")
def profiles(jupyter_dirs, tmp_path_factory):
    """The testbed profile plus one per scheduler. Each gets its own copy of the testbed's
    ssh_config, i.e. its own cluster (one SSH link and one status poller each), since the
    session manager polls all sessions of one SSH target with one profile's adapter."""
    sge_settings = Path(conftest.read_testbed_env()["RC_TESTBED_STATE"]) / "sge" / "settings.sh"
    cases = dict(CASES)
    cases["sge"] = {
        "resources": {"partition": "all.q"},
        "login_setup": [f". {sge_settings}"],
        "job_env": "JOB_ID",
        "bad": (
            {"partition": "nope.q"},
            'Grid Engine refused the job: Job was rejected because job requests unknown queue "nope.q"',
        ),
    }
    config = conftest.read_testbed_env()["RC_TESTBED_SSH_CONFIG"]
    confdir = tmp_path_factory.mktemp("ssh")
    settings = (
        Path(jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]) / "jupyterlab-remote-cluster" / "profiles.jupyterlab-settings"
    )
    existing = json.loads("\n".join(l for l in settings.read_text().splitlines() if not l.strip().startswith("//")))
    mine = []
    for sched, case in cases.items():
        own = confdir / f"ssh_config_{sched}"
        shutil.copy(config, own)
        resources = {"walltime": "00:30:00"}
        if case["resources"] is not None:
            resources.update(cpus=1, memory="500M", **case["resources"])
        p = {
            "name": f"t-{sched}",
            "ssh": {"host": case.get("host", "login"), "configFile": str(own)},
            "scheduler": sched,
            "resources": resources,
            "python": PYTHON,
            "dask": True,
        }
        if case["login_setup"]:
            p["loginSetup"] = case["login_setup"]
        mine.append(p)
        # the same with the shortest walltime the scheduler takes, and no Dask (lighter)
        short = SHORT_WALLTIME.get(sched, "1")
        mine.append({**p, "name": f"t-{sched}-short", "resources": {**resources, "walltime": short}, "dask": False})
        if "bad_in_profile" in case:
            mine.append({**p, "name": f"t-{sched}-bad", "resources": {**resources, **case["bad_in_profile"]}})
    settings.write_text(json.dumps({"profiles": [*existing["profiles"], *mine]}, indent=1))
    code, body = agent_call("GET", "/api/v1/profiles")
    assert code == 200 and not body.get("errors"), body
    return cases


@pytest.fixture(scope="module")
def sessions(profiles, request):
    """One session per scheduler, and one with a short walltime each, submitted together
    (the short ones first: they must run out), for the tests selected to run; cancelled at
    the end whatever happened."""
    wanted = {
        (item.originalname, item.callspec.params["sched"])
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    ids = {}
    for key, test, profile in [(f"{s}-short", "test_walltime_ends_the_session", f"t-{s}-short") for s in profiles] + [
        (s, "test_whole_flow", f"t-{s}") for s in profiles
    ]:
        if (test, key.removesuffix("-short")) in wanted:
            code, body = agent_call("POST", "/api/v1/sessions", {"profile": profile})
            # each test checks its own submission: one scheduler failing does not hide the others
            ids[key] = body["id"] if code == 201 else (code, body)
    yield ids
    for sid in ids.values():
        if isinstance(sid, str):
            try:
                agent_call("DELETE", f"/api/v1/sessions/{sid}")
            except Exception as e:  # noqa: BLE001 - cancel the others anyway
                print(f"could not cancel session {sid}: {e}")


def run_code(kc, code: str) -> str:
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=90, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


def job_env_matches(sched: str, job_id: str, info: dict) -> None:
    env = info["env"]
    if sched == "htcondor":
        assert f"ClusterId = {job_id.split('.')[0]}" in info["ad"].splitlines()
        assert job_id.endswith(".0")
    elif sched in ("pbs", "torque"):
        assert env["PBS_JOBID"] == job_id and job_id.endswith(".login")
    elif sched == "lsf":
        assert env["LSB_JOBID"] == job_id
    elif sched == "sge":
        assert env["JOB_ID"] == job_id
    elif sched == "ssh":
        assert env["JRC_SSH_JOB_ID"] == job_id and job_id.startswith("node1:")


def scheduler_says_ended(sched: str, job_id: str) -> str:
    """ "" if the scheduler's own commands report the job as ended, else what they report."""
    if sched == "pbs":
        job = json.loads(standin("pbs", f"qstat -f -F json -x {job_id}"))["Jobs"][job_id]
        # qstat without -x forgets a finished job, with PBS's words
        ok = job["job_state"] == "F" and "Job has finished" in standin("pbs", f"qstat {job_id}")
        return "" if ok else str(job)
    if sched == "torque":
        out = standin("torque", f"qstat -f -1 {job_id}")
        return "" if "job_state = C" in out else out
    if sched == "lsf":
        rec = json.loads(standin("lsf", f'bjobs -o "stat exit_reason" -json {job_id}'))["RECORDS"][0]
        # EXIT (TERM_OWNER) after bkill; DONE if the helper, asked to shut down first, was quicker
        killed = rec.get("STAT") == "EXIT" and rec.get("EXIT_REASON", "").startswith("TERM_OWNER")
        return "" if killed or rec.get("STAT") == "DONE" else str(rec)
    if sched == "htcondor":
        queue = standin("htcondor", f"condor_q -json {job_id}").strip()
        history = json.loads(standin("htcondor", f"condor_history -json {job_id}") or "[]")
        # Removed (3) by condor_rm; Completed (4) if the helper, asked to shut down first, was quicker
        ok = queue == "" and history and history[0]["JobStatus"] in (3, 4)
        return "" if ok else f"condor_q: {queue} condor_history: {history}"
    if sched == "sge":
        sge = f". {Path(conftest.read_testbed_env()['RC_TESTBED_STATE']) / 'sge' / 'settings.sh'};"
        out = on_host("login", f"{sge} qstat -xml -u alice")
        return out if f"<JB_job_number>{job_id}</JB_job_number>" in out else ""
    if sched == "ssh":
        pid = job_id.split(":")[1]
        return on_host("node1", f"ps -o pid=,args= -p {pid}").strip()
    raise AssertionError(sched)


def gone_for_the_scheduler(sched: str, job_id: str) -> None:
    """The scheduler's own commands say the job ended (cancelled), and Slurm runs nothing of it."""
    deadline = time.monotonic() + 30
    while (left := scheduler_says_ended(sched, job_id)) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == "", left
    if sched in ("pbs", "torque", "lsf", "htcondor"):
        num = job_id.split(".")[0]
        while slurm_state(num) in ("RUNNING", "PENDING", "COMPLETING") and time.monotonic() < deadline:
            time.sleep(1)
        assert slurm_state(num) not in ("RUNNING", "PENDING", "COMPLETING")


@pytest.mark.parametrize("sched", ["pbs", "torque", "lsf", "htcondor", "sge", "ssh"])
def test_whole_flow(sched, sessions):
    sid = sessions[sched]
    assert isinstance(sid, str), f"the submission was refused: {sid}"
    s = wait_state(sid, ("running", "ended"), 150)
    assert s["state"] == "running", s
    job_id = s["jobId"]
    node = s["node"]
    assert node in ("node1", "node2"), s

    # The underlying job: a Slurm job under the stand-in's id, or a process on node1.
    if sched in ("pbs", "torque", "lsf", "htcondor"):
        assert slurm_state(job_id.split(".")[0]) == "RUNNING"
    if sched == "ssh":
        pid = job_id.split(":")[1]
        assert on_host("node1", f"ps -o sid= -p {pid}").strip() == pid  # its own session
        assert f"jrc-{sid}" not in on_host("login", "squeue -h -o %j")  # no batch job at all

    # A kernel in the session, through our provisioner, with plain jupyter_client.
    agent_call("GET", "/api/v1/profiles")  # kernelspecs follow the sessions
    with kernel_client(f"remote-cluster-session-{sid}", ready_timeout=90) as (_, kc):
        info = json.loads(run_code(kc, CODE).strip().splitlines()[-1])
        assert info["host"] == node
        assert info["worker"] == node  # the Dask worker runs in the job too
        job_env_matches(sched, job_id, info)
        # Grid Engine's h_vmem=500M limits address space, reservations included: the kernel
        # (with a Dask client) must keep room below it (it reached 98% and died 1 run in ~3).
        peak, limit = info["vm"]
        if sched == "sge":
            assert limit == 500 * 2**20, info["vm"]
        if limit != -1:
            assert peak < 0.75 * limit, f"the kernel reserved {peak >> 20} MiB of its {limit >> 20} MiB address space"
        # the job sees its own scheduler, not the Slurm underneath the stand-ins
        slurm_vars = [k for k in info["env"] if k.startswith("SLURM_")]
        assert slurm_vars == [], slurm_vars

        # The Dask dashboard of the session, through the agent's session proxy.
        dash = next(p for p in s["httpPorts"] if p["name"] == "dask-dashboard")
        code, body = proxy_get(dash["path"])
        assert code == 200 and b"bokeh" in body.lower()

        # Kernels listen on Unix sockets in the session's private directory, whatever the
        # batch system (Grid Engine's per-job $TMPDIR included).
        conns = json.loads(run_code(kc, CONNECTIONS_CODE % sid).strip().splitlines()[-1])
        runtime = json.loads(on_host("login", f"cat ~/.jupyter-remote-cluster/sessions/{sid}/state.json"))["runtimeDir"]
        assert conns and all(c["transport"] == "ipc" and c["ip"].startswith(runtime + "/") for c in conns), (
            conns,
            runtime,
        )
        if sched == "ssh":
            # A plain host is reached by SSH: its relay listens on loopback only.
            listening = on_host("node1", f"ss -Hltnp | grep 'pid={helper_pid(sid)},'").split("\n")
            local = [line.split()[3] for line in listening if line.strip()]
            assert local and all(a.startswith("127.0.0.1:") for a in local), listening

        # bob, with a job on the same node, while alice works: nothing of hers answers him.
        probe = Probe(node, uid=ALICE_UID)
        probe.ready()
        run_code(kc, "print('secret-42')")
        result = probe.result()
        assert nothing_reached(result, "secret-42") == []
        assert len(result["enumerated"]["tcp"]) >= 3, result["enumerated"]  # Dask (+ relay) was there to try

    # Cancel: the session ends, and the job is gone for the scheduler and underneath.
    code, body = agent_call("DELETE", f"/api/v1/sessions/{sid}")
    assert code == 200, body
    assert wait_state(sid, ("ended",), 30)["state"] == "ended"
    gone_for_the_scheduler(sched, job_id)
    if sched == "sge":
        # Grid Engine's own accounting of the job reaches the session's card (qacct: the
        # testbed's only batch system with accounting)
        deadline = time.monotonic() + 45
        while not agent_call("GET", f"/api/v1/sessions/{sid}")[1].get("accounting") and time.monotonic() < deadline:
            time.sleep(2)
        acct = agent_call("GET", f"/api/v1/sessions/{sid}")[1].get("accounting")
        assert acct and acct["source"] == "qacct" and acct["elapsedSeconds"] > 0, acct
        assert acct["maxRssBytes"] > 20 * 2**20, acct  # its largest process: the kernel
    if sched == "ssh":
        # nothing of the session is left on the host (helper, kernels, Dask)
        assert on_host("node1", f"pgrep -u alice -f 'sessions/{sid}'").strip() == ""


@pytest.mark.parametrize("sched", ["pbs", "torque", "lsf", "htcondor", "sge", "ssh"])
def test_bad_request_is_refused_with_the_schedulers_words(sched, profiles):
    overrides, message = profiles[sched]["bad"]
    # what records a new job: a record file of the plain-host wrapper, a submission record of
    # the stand-in (written only when a job was handed to Slurm), a job in Grid Engine's queue
    if sched == "ssh":
        jobs = lambda: set(on_host("node1", "ls -A ~/.jupyter-remote-cluster/ssh-jobs 2>/dev/null").split())
    elif sched == "sge":
        sge = f". {Path(conftest.read_testbed_env()['RC_TESTBED_STATE']) / 'sge' / 'settings.sh'};"
        jobs = lambda: set(on_host("login", f"{sge} qstat -xml -u alice | grep '<JB_job_number>'").split())
    else:
        jobs = lambda: set(on_host("login", f"cd ~/.rc-standins/{sched} 2>/dev/null && ls -A -- *.json").split())
    before_jobs = jobs()
    _, before = agent_call("GET", "/api/v1/sessions")
    profile = f"t-{sched}-bad" if "bad_in_profile" in profiles[sched] else f"t-{sched}"
    code, body = agent_call("POST", "/api/v1/sessions", {"profile": profile, "resources": overrides})
    assert code == 400, body
    assert body["error"]["message"].startswith(message), body
    # nothing queued: no session, no new job (jobs of the other tests may end meanwhile)
    _, after = agent_call("GET", "/api/v1/sessions")
    assert {s["id"] for s in after["sessions"]} == {s["id"] for s in before["sessions"]}
    assert jobs() - before_jobs == set()


@pytest.mark.parametrize("sched", ["pbs", "torque", "lsf", "htcondor", "sge", "ssh"])
def test_walltime_ends_the_session(sched, sessions):
    """The walltime reaches the job through each adapter and is enforced (by Slurm under the
    stand-ins, by Grid Engine, by timeout on a plain host); the session ends and says why."""
    sid = sessions[f"{sched}-short"]
    assert isinstance(sid, str), f"the submission was refused: {sid}"
    s = wait_state(sid, ("ended",), 180)
    assert s["state"] == "ended", s
    if sched == "sge":
        # Grid Engine forgets a job as it ends (qacct would know why; not asked): "left the queue"
        assert s["reason"].startswith("left the queue"), s
    else:
        assert s["reason"].startswith("walltime reached"), s
    if sched in ("pbs", "torque", "lsf", "htcondor"):
        assert slurm_state(s["jobId"].split(".")[0]) not in ("RUNNING", "PENDING", "COMPLETING")
