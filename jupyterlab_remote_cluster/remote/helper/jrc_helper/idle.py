"""Idle reclaim, decided here on the node so that it works with the laptop closed
(docs/allocation.md, "Idle sessions"). A session is idle when, for the whole timeout:
  - no kernel was busy: each kernel (jrc_kernel.py) writes "busy"/"idle" to its activity
    file whenever it publishes its status; a live kernel that never reported (another
    kind of kernel) makes the session never idle;
  - nobody used it: the extension renews a lease through the agent (POST /activity) only
    on activity in JupyterLab, not for a tab merely left open;
  - the session's processes used less CPU than `cpuCores`, and its GPUs (where
    nvidia-smi answers) less than `gpuPercent`.
From `warnSeconds` before the end the helper reports `reclaimAt` (the UI counts down and
offers Keep running, which renews the lease); then the helper ends the session by exiting,
which ends the job under every batch system.
"""

import os

NO_REPORT_GRACE = 60.0  # seconds a new kernel has to write its first activity


def check_idle_config(raw):
    """config.json's `idle` (None: off), checked."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("config.json: idle must be an object")
    timeout = raw.get("timeoutSeconds")
    # (profiles say minutes; below a minute is for tests, two heartbeats at least)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 20:
        raise ValueError("config.json: idle.timeoutSeconds must be an integer of at least 20")
    cores = raw.get("cpuCores", 0.25)
    gpu = raw.get("gpuPercent", 5)
    warn = raw.get("warnSeconds", min(300, timeout // 2))
    for name, v in (("cpuCores", cores), ("gpuPercent", gpu), ("warnSeconds", warn)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError("config.json: idle.%s must be a non-negative number" % name)
    return {"timeoutSeconds": timeout, "cpuCores": float(cores), "gpuPercent": float(gpu), "warnSeconds": float(warn)}


def kernel_activity(path):
    """("busy"|"idle", when) from a kernel's activity file, or None when it has none."""
    try:
        with open(path, "rb") as f:
            status = f.read(16).decode("ascii", "replace").strip()
        return status, os.stat(path).st_mtime
    except OSError:
        return None


class IdleWatch:
    """The idle clock of one session. `observe()` at every heartbeat with what was
    seen; it answers "active", "warn" or "reclaim". Times are time.time() seconds."""

    def __init__(self, cfg, started_at):
        self.cfg = cfg
        self.last_use = started_at  # the latest sign of use: lease, busy kernel, CPU, GPU
        self.why = "started"
        self.kept_at = None

    def renew(self, now, keep=False):
        """The UI saw the user (or the user pressed Keep running)."""
        self.last_use = max(self.last_use, now)
        self.why = "kept running" if keep else "used in JupyterLab"
        if keep:
            self.kept_at = now

    def observe(self, now, kernels, cores, gpu):
        """kernels: [(started_at, activity or None)], cores: CPUs busy over the last
        heartbeat, gpu: the busiest GPU's % (None: no GPU). Returns (verdict, state)."""
        for started, activity in kernels:
            if activity is None:
                if now - started > NO_REPORT_GRACE:
                    return self._use(now, "a kernel that does not report its activity")
                continue
            status, at = activity
            if status == "busy":
                return self._use(now, "a kernel is busy")
            if at > self.last_use:
                self.last_use, self.why = at, "a kernel ran code"
        if cores is not None and cores >= self.cfg["cpuCores"]:
            return self._use(now, "the session's processes use %.2f CPUs" % cores)
        if gpu is not None and gpu >= self.cfg["gpuPercent"]:
            return self._use(now, "a GPU is %.0f%% busy" % gpu)
        reclaim_at = self.last_use + self.cfg["timeoutSeconds"]
        state = self.state()
        if now >= reclaim_at:
            return "reclaim", state
        if now >= reclaim_at - self.cfg["warnSeconds"]:
            state["reclaimAt"] = reclaim_at
            return "warn", state
        return "active", state

    def _use(self, now, why):
        self.last_use, self.why = now, why
        return "active", self.state()

    def state(self):
        s = {"timeoutSeconds": self.cfg["timeoutSeconds"], "lastUse": self.last_use, "lastUseWhy": self.why}
        if self.kept_at is not None:
            s["keptAt"] = self.kept_at
        return s


def released_core_hours(cpus, ends_at, now):
    """Core-hours the job no longer holds when it ends now (None: walltime or CPUs unknown)."""
    if not cpus or not ends_at or ends_at <= now:
        return None
    return round(cpus * (ends_at - now) / 3600.0, 1)
