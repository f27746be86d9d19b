"""What the session's processes use, sampled by the helper (the efficiency card,
docs/allocation.md): CPU time and memory of the helper and everything it started on this
node (kernels, Dask, what they run), from /proc; no scheduler involved, so it works with
the laptop closed and under every batch system.

CPU time is counted once per process: a live one's own (utime + stime), and, once it is
reaped, in its parent's cutime + cstime; so the sum over the tree of both is the tree's
CPU time so far, including processes that came and went between samples. A process that
leaves the tree (daemonized, reparented to init) takes its time with it. Workers on other
nodes (multi-node, worker jobs) are not counted here. The job's GPUs, where nvidia-smi
answers (gpus.py), add their peak and mean utilization and peak memory.
"""

import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stats():
    """{pid: (ppid, cpu ticks incl. reaped children, rss pages)} of every process we can read."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                rest = f.read().decode("ascii", "replace").rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        try:
            ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
            out[int(name)] = (int(rest[1]), ticks, int(rest[21]))
        except (IndexError, ValueError):
            continue
    return out


def tree_usage(root):
    """(CPU seconds, RSS bytes) of `root` and its descendants now."""
    stats = _stats()
    children = {}
    for pid, (ppid, _t, _r) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ticks = rss = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            ticks += stats[pid][1]
            rss += stats[pid][2]
            todo.extend(children.get(pid, []))
    return ticks / float(CLOCK_TICKS), rss * PAGE_BYTES


class UsageMeter:
    """Samples the tree under `root`; `sample()` returns state.json's `usage`."""

    def __init__(self, root, cpus):
        self.root = root
        self.cpus = cpus  # what the job asked for on this node (None: unknown)
        self.since = time.time()
        self.last = None  # (monotonic time, cpu seconds)
        self.cpu = 0.0
        self.peak_cores = 0.0
        self.peak_rss = 0
        self.cores_now = None  # CPUs busy over the last interval (idle reclaim)
        self.gpu = None  # the job's GPUs over the samples (gpus.py): peaks and mean

    def sample(self, gpus=None):
        """`gpus`: the job's GPUs now (gpus.sample()), None where nvidia-smi does not answer."""
        cpu, rss = tree_usage(self.root)
        now = time.monotonic()
        self.cpu = max(self.cpu, cpu)  # (never backwards: a process left the tree)
        if self.last is not None and now - self.last[0] >= 1:
            self.cores_now = (self.cpu - self.last[1]) / (now - self.last[0])
            self.peak_cores = max(self.peak_cores, self.cores_now)
        self.last = (now, self.cpu)
        self.peak_rss = max(self.peak_rss, rss)
        usage = {
            "since": self.since,
            "at": time.time(),
            "cpuSeconds": round(self.cpu, 1),
            "peakCores": round(self.peak_cores, 2),
            "rssBytes": rss,
            "peakRssBytes": self.peak_rss,
        }
        if self.cpus:
            usage["cpus"] = self.cpus
        if gpus:
            self._gpu_sample(gpus)
        if self.gpu is not None:
            usage["gpu"] = dict(self.gpu, meanPercent=round(self.gpu["meanPercent"], 1))
        return usage

    def _gpu_sample(self, gpus):
        percent = [g["percent"] for g in gpus if "percent" in g]
        used = sum(g.get("memUsedBytes", 0) for g in gpus)
        g = self.gpu or {"count": 0, "samples": 0, "peakPercent": 0.0, "meanPercent": 0.0, "memPeakBytes": 0}
        g["count"] = max(g["count"], len(gpus))
        g["memTotalBytes"] = sum(x.get("memTotalBytes", 0) for x in gpus)
        g["memPeakBytes"] = max(g["memPeakBytes"], int(used))
        if percent:
            busiest = max(percent)
            g["peakPercent"] = max(g["peakPercent"], busiest)
            # the mean, over samples, of the GPUs' mean utilization
            g["meanPercent"] += (sum(percent) / len(percent) - g["meanPercent"]) / (g["samples"] + 1)
            g["samples"] += 1
        self.gpu = g
