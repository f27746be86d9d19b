"""The job's GPUs as nvidia-smi reports them, sampled once per heartbeat for the
efficiency card (usage.py) and idle reclaim (idle.py). Only the GPUs the batch system gave
the job count: CUDA_VISIBLE_DEVICES (indices or UUIDs) where it is set. None where there
is no nvidia-smi (no NVIDIA GPU on the node, or no driver)."""

import os
import subprocess

QUERY = (
    "nvidia-smi",
    "--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
)
MIB = 1024 * 1024


def parse(text, visible=None):
    """nvidia-smi's CSV lines -> [{"index", "uuid", "percent", "memUsedBytes", "memTotalBytes"}],
    keeping the GPUs named in `visible` (CUDA_VISIBLE_DEVICES' value; None: all). A value
    nvidia-smi cannot read ("[N/A]", "[Not Supported]") leaves that GPU's field out."""
    keep = None
    if visible is not None:
        keep = {v.strip() for v in visible.split(",") if v.strip()}
    gpus = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 5:
            continue
        index, uuid = cells[0], cells[1]
        if keep is not None and index not in keep and uuid not in keep:
            continue
        gpu = {"index": index, "uuid": uuid}
        for key, cell, scale in (
            ("percent", cells[2], 1),
            ("memUsedBytes", cells[3], MIB),
            ("memTotalBytes", cells[4], MIB),
        ):
            try:
                gpu[key] = float(cell) * scale
            except ValueError:
                pass
        gpus.append(gpu)
    return gpus


def sample(env=None):
    """The job's GPUs now, or None where nvidia-smi does not answer."""
    env = os.environ if env is None else env
    try:
        out = subprocess.run(QUERY, capture_output=True, timeout=10, check=True).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return None
    return parse(out, env.get("CUDA_VISIBLE_DEVICES"))


def busiest_percent(gpus):
    """The busiest GPU's utilization, or None (no GPUs, or none reports it)."""
    values = [g["percent"] for g in gpus or [] if "percent" in g]
    return max(values) if values else None
