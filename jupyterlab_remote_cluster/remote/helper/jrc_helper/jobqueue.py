"""Elastic Dask workers from a notebook: dask-jobqueue preconfigured for the session.

The agent writes `jobqueue` into config.json (the batch system's dask-jobqueue config
name, the session's tag, the profile's queue, account, walltime, cores and memory, and
the launcher, the profile's setup lines). The kernels get it as Dask configuration, so that in a notebook
`SLURMCluster()` (or SGECluster, PBSCluster, LSFCluster) with no argument, then `scale(n)` or
`adapt()`, submits worker jobs that:
  - are named with the session's tag (how the helper and the agent find and cancel them:
    when the session stops, and after a helper that could not);
  - run `helper.pyz job-worker` instead of python (the launcher): it puts the session's
    TLS in a private directory on the worker's node and runs the Dask worker on mutual
    TLS, its HTTP server off TCP (the preload), its scratch space private;
  - write their logs into the session directory (0700), not the notebook's folder;
  - are recorded, one empty file per job id in the runtime's `worker-jobs/` (the preload
    wraps dask-jobqueue's Job.start/close in the kernel), so that the helper reports them
    (state.json `workerJobs`) and the agent counts them in its batched status query;
  - end with the session: the helper cancels them by tag when it stops, and each worker
    stops itself at the session's end (job-worker gives it `--lifetime`, whatever
    walltime the job asked for).
The notebook's scheduler listens on the session's TLS (kernel_dask_env in served.py),
on the node's address so that the worker jobs reach it; its dashboard is offered like
any notebook scheduler's.
"""

import json
import os
import re
import subprocess

from .common import log

CANCEL_TIMEOUT = 10
WORKER_JOBS_DIR = "worker-jobs"
WORKER_JOB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# a runaway adapt() must not grow state.json without bound: the newest ones are reported
MAX_REPORTED_JOBS = 200


def worker_jobs(directory):
    """The ids of the worker jobs the kernels' clusters submitted and have not closed,
    oldest first (at most MAX_REPORTED_JOBS, the newest)."""
    try:
        names = [n for n in os.listdir(directory) if WORKER_JOB_RE.match(n)]
    except OSError:
        return []
    stamped = []
    for n in names:
        try:
            stamped.append((os.lstat(os.path.join(directory, n)).st_mtime, n))
        except OSError:
            continue  # closed meanwhile
    return [n for _t, n in sorted(stamped)[-MAX_REPORTED_JOBS:]]


def jobqueue_env(jq, session_dir, jobs_dir):
    """The kernels' dask-jobqueue configuration (DASK_JOBQUEUE__<CONFIG>__*)."""
    p = "DASK_JOBQUEUE__%s__" % jq["config"].upper()
    env = {
        p + "NAME": jq["name"],
        p + "PYTHON": jq["launcher"],
        p + "CORES": str(jq["cores"]),
        p + "MEMORY": jq["memory"],
        p + "LOG_DIRECTORY": os.path.join(session_dir, "jobqueue"),
        # TLS (the session's certificates come from the kernels' Dask config); no host:
        # the scheduler listens on the node's addresses, for workers on other nodes
        p + "SCHEDULER_OPTIONS": json.dumps({"protocol": "tls"}),
        # the profile's setup (module load, ...): batch systems that do not pass the
        # submitter's environment on (SGE, PBS without -V) need it in the worker job
        p + "JOB_SCRIPT_PROLOGUE": json.dumps(jq.get("setup") or []),
        # where the preload records the jobs they submit (node-local, 0700)
        "JRC_WORKER_JOBS_DIR": jobs_dir,
    }
    for key in ("queue", "account", "walltime"):
        if jq.get(key):
            env[p + key.upper()] = jq[key]
    # the batch system's own keys (HTCondor: the tag as batch_name, a disk request)
    for key, value in (jq.get("extra") or {}).items():
        env[p + key.upper().replace("-", "_")] = json.dumps(value)
    return env


def check_jobqueue(jq):
    """config.json's `jobqueue` (None: not preconfigured); raises ValueError when malformed."""
    if jq is None:
        return None
    strings = ("config", "name", "cancel", "launcher", "memory")
    if not (
        isinstance(jq, dict)
        and all(isinstance(jq.get(k), str) and jq[k] for k in strings)
        and isinstance(jq.get("cores"), int)
        and not isinstance(jq.get("cores"), bool)
        and all(isinstance(jq.get(k, ""), str) for k in ("queue", "account", "walltime"))
        and jq["config"].isalpha()
        and isinstance(jq.get("extra", {}), dict)
        and all(re.match(r"^[a-z][a-z-]*$", k) for k in jq.get("extra", {}))
        and isinstance(jq.get("setup", []), list)
        and all(isinstance(line, str) for line in jq.get("setup", []))
    ):
        raise ValueError("config.json: jobqueue must hold config, name, cancel, launcher, cores and memory")
    return jq


def cancel_worker_jobs(jq, env):
    """Cancel every worker job of the session (by its tag); best effort, bounded."""
    if not jq:
        return
    try:
        r = subprocess.run(
            ["sh", "-c", jq["cancel"]],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=CANCEL_TIMEOUT,
        )
        log(
            "worker jobs %s cancelled (%s): %s" % (jq["name"], r.returncode, r.stdout.decode("utf-8", "replace")[-300:])
        )
    except (OSError, subprocess.SubprocessError) as e:
        log("cannot cancel the worker jobs %s: %s" % (jq["name"], e))
