"""Shared helpers for the testbed tests (stdlib + pytest only).

The tests run as root in the root network namespace (the "laptop") against a testbed
started with `testbed/testbed start`.
"""

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

TESTBED = str(Path(__file__).resolve().parent.parent / "testbed")
HOSTS = ("bastion", "login", "node1", "node2", "node3", "node4")


def run(cmd, timeout=60, **kw):
    """subprocess.run with captured text output and a bounded time."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def tbctl(*args, timeout=120):
    return run([TESTBED, *args], timeout=timeout)


def tb_env():
    """`testbed env` parsed into a dict (it prints shell-sourceable KEY=VALUE lines)."""
    r = tbctl("env")
    assert r.returncode == 0, r.stderr
    env = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


def require_healthy():
    r = tbctl("status")
    if r.returncode != 0:
        pytest.fail("testbed is not running/healthy; run `testbed/testbed start` first:\n" + r.stdout + r.stderr)


class SSH:
    """OpenSSH from the laptop side with the testbed's ssh_config and one master
    connection per alias (so polling reuses it, and bob needs only one TOTP login)."""

    def __init__(self, env, alias, extra_env=None, batch=True):
        self.env = env
        self.alias = alias
        self.dir = tempfile.mkdtemp(prefix="rctb-ssh-")
        self.base = ["ssh", "-F", env["RC_TESTBED_SSH_CONFIG"], "-o", f"ControlPath={self.dir}/%C"]
        self.proc_env = dict(os.environ, **(extra_env or {}))
        self.batch = batch

    def open(self, timeout=30):
        log = Path(self.dir) / "master.log"
        with open(log, "w") as err:
            # -f: go to the background once authenticated; its stdio must not be our pipes
            r = subprocess.run(
                self.base
                + [
                    "-o",
                    "ControlMaster=yes",
                    "-o",
                    "ControlPersist=300",
                    "-o",
                    f"BatchMode={'yes' if self.batch else 'no'}",
                    "-N",
                    "-f",
                    self.alias,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self.proc_env,
                timeout=timeout,
            )
        return r.returncode, log.read_text()

    def run(self, command, timeout=60):
        return run(
            self.base + ["-o", "ControlMaster=no", "-o", "BatchMode=yes", self.alias, command],
            timeout=timeout,
            env=self.proc_env,
        )

    def check(self, command, timeout=60):
        r = self.run(command, timeout=timeout)
        assert r.returncode == 0, f"{command!r} on {self.alias}: rc={r.returncode}\n{r.stdout}{r.stderr}"
        return r.stdout

    def close(self):
        run(self.base + ["-O", "exit", self.alias], timeout=15, env=self.proc_env)
        shutil.rmtree(self.dir, ignore_errors=True)


ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}


def wait_jobs(ssh, job_ids, timeout=60):
    """Poll squeue over the same ssh connection until the jobs left the queue; return
    {job_id: JobState} from scontrol (accounting is off, so no sacct)."""
    deadline = time.monotonic() + timeout
    ids = ",".join(job_ids)
    while True:
        out = ssh.check(f"squeue -h -j {ids} -o '%i %T' 2>/dev/null || true")
        active = [l for l in out.splitlines() if l.split()[1:2] and l.split()[1] in ACTIVE_STATES]
        if not active:
            break
        assert time.monotonic() < deadline, f"jobs still active after {timeout}s: {active}"
        time.sleep(0.5)
    states = {}
    for jid in job_ids:
        out = ssh.check(f"scontrol show job {jid}")
        fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
        states[jid] = (fields.get("JobState"), fields.get("ExitCode"), fields.get("NodeList"))
    return states


@contextmanager
def logged_in(env, host="login"):
    """An SSH session of alice's on `host` through the bastion, closed afterwards."""
    ssh = SSH(env, host)
    rc, log = ssh.open()
    assert rc == 0, f"alice could not log in to {host} via bastion:\n{log}"
    try:
        yield ssh
    finally:
        ssh.close()
