"""Dask workers on the other nodes of a multi-node allocation.

The helper runs on the allocation's first node (where the batch system starts the job
script) with the scheduler and one worker. For every other node it starts, through the
batch system's own launcher (`srun --overlap`, `qrsh -inherit`, `pbsdsh`, `blaunch`: the
agent's adapter writes the command into config.json), `helper.pyz worker`, which makes a
private runtime directory on that node, writes the session's TLS files into it and runs
one Dask worker (with its nanny) under the session's mutual TLS. The launcher ties the
worker to the job: it ends with the job, and the helper stops it at the session's end.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from .common import DASK_PRELOAD, log, make_runtime_dir, write_tls_files

HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
HOSTS_TIMEOUT = 30
# A worker job's worker stops this long before the session ends (its scheduler goes then)
LIFETIME_MARGIN = 30
MIN_LIFETIME = 60


def allocation_hosts(command, env):
    """The allocation's hosts, one per line of `command`'s output, first seen first."""
    r = subprocess.run(
        ["sh", "-c", command],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=HOSTS_TIMEOUT,
    )
    if r.returncode != 0:
        raise RuntimeError(
            "cannot list the allocation's nodes (%s): %s" % (command, r.stderr.decode("utf-8", "replace").strip())
        )
    hosts = []
    for line in r.stdout.decode("utf-8", "replace").split():
        if not HOST_RE.match(line):
            raise RuntimeError("the allocation's node list has %r, which is not a host name" % line)
        if line not in hosts:
            hosts.append(line)
    return hosts


def other_hosts(hosts):
    """The hosts that are not this one (the batch host is the allocation's first)."""
    me = {socket.gethostname(), socket.gethostname().split(".")[0]}
    mine = [h for h in hosts if h in me or h.split(".")[0] in me]
    return [h for h in hosts if h not in mine] if mine else hosts[1:]


def launch_command(template, host, threads, name):
    """The launcher's shell line for one node: {host}, {threads} and {name} filled in
    (all checked: a host name, a number, rc-worker-<n>)."""
    return template.replace("{host}", host).replace("{threads}", str(int(threads))).replace("{name}", name)


class WorkersMixin:
    """Helper's remote workers (uses Helper's config, dir and _spawn_dask)."""

    def start_remote_workers(self, threads, env):
        """Start a worker on every other node of the allocation; returns their names."""
        spec = self.config.get("workers")
        if not spec:
            return []
        hosts = other_hosts(allocation_hosts(spec["hosts"], env))
        names = []
        for i, host in enumerate(hosts, start=1):
            name = "rc-worker-%d" % i
            line = launch_command(spec["launch"], host, threads, name)
            self._spawn_dask(["sh", "-c", line], "dask-%s.log" % name, env)
            names.append({"name": name, "host": host})
            log("dask worker %s on %s: %s" % (name, host, line))
        return names


def run_worker(session_dir, name, nthreads):
    """`helper.pyz worker`: one Dask worker on this node for the session in `session_dir`
    (a node of its allocation), named `name`, with the scheduler from its scheduler file."""
    if not re.match(r"^rc-worker-[0-9]{1,4}$", name):
        log("worker name %r is not rc-worker-<n>" % name)
        return 2
    args = [
        "--scheduler-file",
        os.path.join(session_dir, "dask-scheduler.json"),
        "--nthreads",
        str(nthreads),
        "--nworkers",
        "1",
        "--no-dashboard",
        "--name",
        name,
        "--death-timeout",
        "60",  # exits by itself if the scheduler is gone
    ]
    return run_dask_worker(session_dir, args)


def session_seconds_left(session_dir):
    """Seconds until the session's end as its helper reports it (state.json `endsAt`),
    or None when unknown (no walltime, no state yet)."""
    try:
        with open(os.path.join(session_dir, "state.json"), "rb") as f:
            ends_at = json.loads(f.read().decode("utf-8")).get("endsAt")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(ends_at, bool) or not isinstance(ends_at, (int, float)):
        return None
    return ends_at - time.time()


def run_job_worker(session_dir, argv):
    """`helper.pyz job-worker --session-dir D -m distributed.cli.dask_worker <args>`: what
    a worker job runs (a dask-jobqueue job: its `python` is this launcher, jobqueue.py;
    "Add workers"): the worker asked for, on the session's TLS, private on this node,
    stopping itself LIFETIME_MARGIN before the session's end, whatever walltime the job
    has (dask-jobqueue's is the profile's, from the session's start)."""
    # Slurm's end-of-walltime warning (--signal=B:USR1, at once for a short job) reaches a
    # worker job's launcher too: not a reason to stop (the worker's --lifetime ends it in time)
    signal.signal(signal.SIGUSR1, lambda signum, frame: log("the batch system warns that the walltime ends soon"))
    if argv[:2] != ["-m", "distributed.cli.dask_worker"]:
        log("job-worker runs distributed.cli.dask_worker only, not %r" % argv[:2])
        return 2
    args = argv[2:]
    left = session_seconds_left(session_dir)
    if left is not None:
        lifetime = int(left - LIFETIME_MARGIN)
        if lifetime < MIN_LIFETIME:
            log("the session ends in %d s: no worker started" % max(0, left))
            return 0
        args += ["--lifetime", "%ds" % lifetime, "--lifetime-stagger", "0s", "--no-lifetime-restart"]
    return run_dask_worker(session_dir, args)


def run_dask_worker(session_dir, worker_args):
    """A Dask worker with `worker_args`, on the session's TLS (its files written into a
    private runtime directory on this node, removed when it stops), its HTTP server off
    TCP (the preload), its scratch space in that directory."""
    path = os.path.join(session_dir, "config.json")
    st = os.stat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        log("%s is not a private file of this user: not starting a worker" % path)
        return 2
    with open(path, "rb") as f:
        cfg = json.loads(f.read().decode("utf-8"))
    runtime = make_runtime_dir([os.environ.get("TMPDIR"), "/tmp"])
    proc = None
    try:
        tls = write_tls_files(os.path.join(runtime, "tls"), cfg["tls"])
        argv = [
            cfg.get("python") or sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            *worker_args,
            # (after the caller's: the last one counts)
            "--protocol",
            "tls",
            "--tls-ca-file",
            tls["ca"],
            "--tls-cert",
            tls["cert"],
            "--tls-key",
            tls["key"],
            "--preload",
            DASK_PRELOAD,
            "--local-directory",
            os.path.join(runtime, "dask-worker"),
        ]
        env = dict(os.environ)
        env.update(cfg.get("kernelEnv") or {})
        env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
        env["DASK_TEMPORARY_DIRECTORY"] = os.path.join(runtime, "dask")
        proc = subprocess.Popen(argv, cwd=cfg.get("workdir") or None, env=env, stdin=subprocess.DEVNULL)

        def stop(signum, frame):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)
        log("dask worker on %s: %s" % (socket.gethostname(), " ".join(worker_args)))
        return proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(runtime, ignore_errors=True)
