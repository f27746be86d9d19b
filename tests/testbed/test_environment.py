"""Environment setup on the testbed, through the agent's HTTP API: a profile's setup lines
(a venv activated with `.`, an exported variable) and its container wrapper (Debian's
bubblewrap, a real mount/pid namespace around the helper) are what the kernel runs in; a
failing setup line, a missing Python or a container command ends the session within
seconds saying why (one sentence where the job script knows, else its stderr), instead of a
silent wait; the login node's checks warn before queuing. Also two bad requests end to end: a walltime over
the partition's limit is cancelled with the reason, an unknown node feature is refused."""

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from .conftest import agent_call, on_login, session_kernel, wait_state

PYTHON = "/opt/rc-testbed/python/bin/python"
VENV = "/home/alice/rcit-env-venv"
# A container wrapper that works in the testbed's namespaces without root: its own mount
# namespace (a private /tmp) and an environment variable set by the wrapper itself.
BWRAP = "bwrap --dev-bind / / --tmpfs /tmp --setenv RC_CONTAINER bubblewrap --"


@pytest.fixture(scope="module")
def profiles(jupyter_dirs):
    """The testbed profile plus this module's ones, in the user's settings file."""
    assert shutil.which("bwrap") or Path("/usr/bin/bwrap").exists(), "apt-get install -y bubblewrap"
    path = Path(jupyter_dirs["JUPYTERLAB_SETTINGS_DIR"]) / "jupyterlab-remote-cluster" / "profiles.jupyterlab-settings"
    original = path.read_text()
    settings = json.loads("\n".join(line for line in original.splitlines() if not line.strip().startswith("//")))
    base = settings["profiles"][0]
    resources = {"partition": "debug", "walltime": "00:10:00", "cpus": 1, "memory": "500M"}

    def profile(name, **over):
        return {**base, "name": name, "title": name, "resources": resources, "dask": False, **over}

    settings["profiles"] = [
        base,
        # (a) + (b): a venv activated by a setup line (its `python` is the profile's python), a
        # variable exported by another, and the whole helper inside bubblewrap
        profile(
            "rcit-env",
            setup=["export RC_SETUP_VAR=from-setup", f". {VENV}/bin/activate"],
            container=BWRAP,
            python="python",
        ),
        profile("rcit-env-badmodule", setup=["export A=1", "module load python/9.9", "export B=2"]),
        profile("rcit-env-false", setup=["echo preparing >&2", "false"]),
        profile("rcit-env-nopython", python="/opt/no/python3.12"),
        profile("rcit-env-noworkdir", workdir="/home/alice/rcit-no-such-dir"),
        profile("rcit-env-nocontainer", container="no-such-runtime exec image.sif"),
        profile("rcit-env-badcontainer", container="bwrap --no-such-option"),
    ]
    # a real venv on the shared home; a .pth lets it see the cluster python's packages
    # (ipykernel: that python is a venv itself, so --system-site-packages would not)
    on_login(
        "sh",
        "-c",
        f"test -x {VENV}/bin/python || {{ {PYTHON} -m venv {VENV} && "
        f"{PYTHON} -c 'import site; print(site.getsitepackages()[0])' > "
        f"$({VENV}/bin/python -c 'import site; print(site.getsitepackages()[0])')/rc-testbed.pth; }}",
    )
    path.write_text(json.dumps(settings, indent=1))
    code, listed = agent_call("GET", "/api/v1/profiles")
    assert code == 200 and {p["name"] for p in listed["profiles"]} >= {"rcit-env", "rcit-env-false"}, listed
    yield
    path.write_text(original)
    on_login("rm", "-rf", VENV)


def submit(profile: str) -> dict:
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": profile})
    assert code == 201, s
    return s


@pytest.fixture(scope="module")
def env_kernel(profiles):
    s = submit("rcit-env")
    try:
        running = wait_state(s["id"], {"running", "ended"}, 120)
        assert running["state"] == "running", running
        kc = session_kernel(s["id"])
        yield running, kc
        kc.stop_channels()
    finally:
        agent_call("DELETE", f"/api/v1/sessions/{s['id']}")  # cancels the job


def run(kc, code: str) -> str:
    out = []
    reply = kc.execute_interactive(
        code,
        timeout=60,
        output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out).strip()


def test_setup_lines_activate_the_environment_the_kernel_runs_in(env_kernel):
    _, kc = env_kernel
    got = json.loads(
        run(
            kc,
            "import json, os, sys; print(json.dumps([os.environ.get('RC_SETUP_VAR'), sys.prefix, os.environ.get('VIRTUAL_ENV')]))",
        )
    )
    assert got == ["from-setup", VENV, VENV]


def test_the_container_wrapper_runs_around_the_kernel(env_kernel):
    session, kc = env_kernel
    inside = json.loads(
        run(
            kc, "import json, os; print(json.dumps([os.environ.get('RC_CONTAINER'), os.readlink('/proc/self/ns/mnt')]))"
        )
    )
    assert inside[0] == "bubblewrap"
    # the kernel's mount namespace is not the node's own (bwrap made one)
    outside = on_login("ssh", "-o", "BatchMode=yes", session["node"], "readlink /proc/self/ns/mnt").strip()
    assert re.fullmatch(r"mnt:\[\d+\]", outside)
    assert inside[1] != outside


@pytest.mark.parametrize(
    "profile, reason, stderr",
    [
        # the job script's own failure lines make one sentence (with the shell's complaint)
        (
            "rcit-env-badmodule",
            r"^Setup line 2 failed with exit code 127: module load python/9\.9 — .*module: not found\.$",
            r"module: not found.*setup line 2 failed \(exit code 127\): module load python/9\.9",
        ),
        (
            "rcit-env-false",
            r"^Setup line 2 failed with exit code 1: false — preparing\.$",
            r"preparing \| jupyterlab-remote-cluster: setup line 2 failed \(exit code 1\): false",
        ),
        (
            "rcit-env-nopython",
            r"^The remote Python /opt/no/python3\.12 was not found on node[12]\.$",
            r"the remote Python /opt/no/python3\.12 was not found on node[12]",
        ),
        # anything else: the reason with the last lines of the job's stderr
        ("rcit-env-nocontainer", r"job stderr: .*no-such-runtime: not found", r"no-such-runtime: not found"),
        ("rcit-env-badcontainer", r"job stderr: .*bwrap: Unknown option --no-such-option", r"bwrap: Unknown option"),
    ],
)
def test_a_failing_setup_line_python_or_container_ends_the_session_saying_why(profiles, profile, reason, stderr):
    s = submit(profile)
    t = time.monotonic()
    ended = wait_state(s["id"], {"ended", "running"}, 60)
    took = time.monotonic() - t
    assert ended["state"] == "ended", ended
    assert re.search(reason, ended["reason"]), ended["reason"]
    assert took < 30, f"took {took:.0f} s: should end within seconds"
    assert on_login("squeue", "-h", "-j", ended["jobId"], "-o", "%T").strip() in ("FAILED", "")
    # "Show log": the job's whole stderr, read from the session's directory on the cluster
    code, logs = agent_call("GET", f"/api/v1/sessions/{s['id']}/logs")
    assert code == 200, logs
    files = {f["name"]: f for f in logs["files"]}
    assert re.search(stderr, files["job.err"]["text"].replace("\n", " | ")), files["job.err"]
    assert files["job.err"]["size"] >= len(files["job.err"]["text"].encode()) > 0
    assert "config.json" not in files and "state.json" not in files
    # forgotten: its directory on the cluster goes too
    remote = f"/home/alice/.jupyter-remote-cluster/sessions/{s['id']}"
    assert on_login("sh", "-c", f"test -d {remote} && echo here").strip() == "here"
    assert agent_call("DELETE", f"/api/v1/sessions/{s['id']}")[0] == 200
    deadline = time.monotonic() + 10
    while on_login("sh", "-c", f"test -d {remote} && echo here || true").strip():
        assert time.monotonic() < deadline, f"{remote} still there 10 s after the session was forgotten"
        time.sleep(0.2)


def test_the_login_node_warns_before_queuing_and_the_job_says_why_it_failed(profiles):
    # a working directory the login node does not have: queued all the same (a node may
    # have it), with a warning; the helper then ends the session naming it
    s = submit("rcit-env-noworkdir")
    assert s["state"] == "queued", s
    assert s["warnings"] == [
        "The working directory /home/alice/rcit-no-such-dir does not exist on the login node; the session fails "
        "to start if its node does not have it either."
    ], s
    ended = wait_state(s["id"], {"ended", "running"}, 60)
    assert ended["state"] == "ended", ended
    assert re.fullmatch(
        r"The session failed to start on node[12]: working directory /home/alice/rcit-no-such-dir does not exist",
        ended["reason"],
    ), ended["reason"]
    assert "warnings" not in ended, ended
    agent_call("DELETE", f"/api/v1/sessions/{s['id']}")


# Bad requests through the agent, end to end (the dialog shows these messages).


def test_a_walltime_over_the_partition_limit_is_cancelled_with_the_reason(profiles):
    # EnforcePartLimits=NO on the testbed: sbatch queues it, it would pend forever
    s = submit_with("testbed", {"walltime": "9-00:00:00"})
    ended = wait_state(s["id"], {"ended"}, 30)
    assert ended["state"] == "ended", ended
    assert re.match(r"The job was cancelled: .*\(Slurm: Partition(TimeLimit|Config)\)\.$", ended["reason"]), ended[
        "reason"
    ]
    assert on_login("squeue", "-h", "-j", s["jobId"], "-t", "PD,R", "-o", "%i").strip() == ""
    agent_call("DELETE", f"/api/v1/sessions/{s['id']}")


def test_an_unknown_node_feature_is_refused_and_nothing_is_queued(profiles):
    code, body = agent_call("POST", "/api/v1/sessions", {"profile": "testbed", "resources": {"constraint": "nosuch"}})
    assert code == 400, body
    assert body["error"]["message"] == "Slurm refused the job: Invalid feature specification."
    # no job of alice's asks for that feature (other tests may queue jobs meanwhile)
    assert "nosuch" not in on_login("squeue", "-h", "--me", "--states=all", "-o", "%f")
    _, listing = agent_call("GET", "/api/v1/sessions")
    assert not [x for x in listing["sessions"] if x["resources"].get("constraint") == "nosuch"]


def submit_with(profile: str, resources: dict) -> dict:
    code, s = agent_call("POST", "/api/v1/sessions", {"profile": profile, "resources": resources})
    assert code == 201, s
    return s
